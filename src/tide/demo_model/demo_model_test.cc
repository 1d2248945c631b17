#include "tide/demo_model/demo_model.h"
#include "tide/testing/http_request.h"

#include <gtest/gtest.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace tide::demo_model {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using json = nlohmann::json;
using Steady = std::chrono::steady_clock;

double ms_since(Steady::time_point t0) {
  return std::chrono::duration<double, std::milli>(Steady::now() - t0).count();
}

// Runs a server on a background thread for the life of the fixture object.
class Running {
 public:
  explicit Running(DemoModelOptions o) : server_(std::move(o)) {
    thread_ = std::thread([this] { server_.run(); });
    wait_until_accepting();
  }
  ~Running() {
    server_.stop();
    thread_.join();
  }
  uint16_t port() const { return server_.port(); }

 private:
  // Polls the port until a connection succeeds.
  void wait_until_accepting() {
    for (int i = 0; i < 500; ++i) {
      asio::io_context io;
      tcp::socket s(io);
      boost::system::error_code ec;
      s.connect({asio::ip::make_address("127.0.0.1"), server_.port()}, ec);
      if (!ec) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    FAIL() << "server did not accept connections";
  }

  DemoModelServer server_;
  std::thread thread_;
};

using Reply = test::HttpReply;
using test::http_request;

DemoModelOptions fast_options() {
  DemoModelOptions o;
  o.service.kind = ServiceModel::Kind::kFixed;
  o.service.fixed_s = 0.01;
  return o;
}

TEST(ParseServiceModel, AcceptsTheThreeShapes) {
  std::string err;
  auto f = parse_service_model("fixed:250ms", err);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->kind, ServiceModel::Kind::kFixed);
  EXPECT_DOUBLE_EQ(f->fixed_s, 0.25);
  auto l = parse_service_model("lognormal:1s,0.5", err);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->kind, ServiceModel::Kind::kLognormal);
  EXPECT_DOUBLE_EQ(l->median_s, 1.0);
  EXPECT_DOUBLE_EQ(l->sigma, 0.5);
  auto t = parse_service_model("tokens:0.0002,0.02", err);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind, ServiceModel::Kind::kTokens);
  EXPECT_DOUBLE_EQ(t->prefill_s, 0.0002);
  EXPECT_DOUBLE_EQ(t->decode_s, 0.02);
  for (const char* bad :
       {"fixed", "fixed:abc", "lognormal:1s", "tokens:1", "tokens:a,b", "x:1s", "fixed:1s,2"}) {
    err.clear();
    EXPECT_FALSE(parse_service_model(bad, err)) << bad;
    EXPECT_NE(err.find("expected"), std::string::npos) << bad;
  }
}

TEST(DemoModel, HealthIs503WhileLoadingThen200) {
  const auto t0 = Steady::now();
  DemoModelOptions o = fast_options();
  o.load_time = std::chrono::milliseconds(300);
  Running server(o);
  Reply r = http_request(server.port(), http::verb::get, "/health");
  EXPECT_EQ(r.status, 503u);
  EXPECT_EQ(json::parse(r.body)["status"], "loading");
  // Completions are refused during the cold start too.
  EXPECT_EQ(http_request(server.port(), http::verb::post, "/v1/completions", "{}").status, 503u);
  while (r.status == 503 && ms_since(t0) < 5000) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    r = http_request(server.port(), http::verb::get, "/health");
  }
  EXPECT_EQ(r.status, 200u);
  EXPECT_GE(ms_since(t0), 300.0);
  EXPECT_EQ(json::parse(r.body)["status"], "ok");
}

TEST(DemoModel, TimingHeadersMeasureFromTheFirstHealthyProbeToTheRequest) {
  DemoModelOptions o = fast_options();
  o.timing = true;
  Running server(o);
  const std::string body = R"({"prompt":"hi","max_tokens":1})";
  // Before anyone saw it healthy there is nothing to measure from.
  Reply early = http_request(server.port(), http::verb::post, "/v1/completions", body);
  EXPECT_EQ(early.status, 200u);
  EXPECT_EQ(early.fields.count("Demo-Ready-To-Request-Us"), 0u);
  const auto probed = Steady::now();
  ASSERT_EQ(http_request(server.port(), http::verb::get, "/health").status, 200u);
  std::this_thread::sleep_for(std::chrono::milliseconds(40));  // the gap to be measured
  http_request(server.port(), http::verb::get, "/health");     // a later probe changes nothing
  Reply r = http_request(server.port(), http::verb::post, "/v1/completions", body);
  const double upper_us = ms_since(probed) * 1000;
  ASSERT_EQ(r.status, 200u);
  const double ready_to_request = std::stod(std::string(r.fields["Demo-Ready-To-Request-Us"]));
  EXPECT_GE(ready_to_request, 40000);
  EXPECT_LE(ready_to_request, upper_us);
  EXPECT_GE(std::stod(std::string(r.fields["Demo-Health-Lag-Us"])), 0);
  // Streams carry them in their head.
  Reply s = http_request(server.port(), http::verb::post, "/v1/completions",
                         R"({"prompt":"hi","max_tokens":1,"stream":true})");
  EXPECT_GE(std::stod(std::string(s.fields["Demo-Ready-To-Request-Us"])), ready_to_request);
}

TEST(DemoModel, NoTimingHeadersUnlessAsked) {
  Running server(fast_options());
  ASSERT_EQ(http_request(server.port(), http::verb::get, "/health").status, 200u);
  Reply r = http_request(server.port(), http::verb::post, "/v1/completions", R"({"prompt":"hi"})");
  EXPECT_EQ(r.fields.count("Demo-Ready-To-Request-Us"), 0u);
  EXPECT_EQ(r.fields.count("Demo-Health-Lag-Us"), 0u);
}

TEST(DemoModel, CompletionReturnsTextAndUsage) {
  Running server(fast_options());
  Reply r = http_request(server.port(), http::verb::post, "/v1/completions",
                         R"({"model":"m","prompt":"one two three  four","max_tokens":5})");
  ASSERT_EQ(r.status, 200u) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 4);
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_EQ(j["usage"]["total_tokens"], 9);
  const std::string text = j["choices"][0]["text"];
  EXPECT_EQ(std::count(text.begin(), text.end(), ' '), 4);

  Reply c = http_request(server.port(), http::verb::post, "/v1/chat/completions",
                         R"({"messages":[{"role":"user","content":"hi there"}]})");
  ASSERT_EQ(c.status, 200u) << c.body;
  json cj = json::parse(c.body);
  EXPECT_EQ(cj["object"], "chat.completion");
  EXPECT_EQ(cj["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(cj["choices"][0]["message"]["content"].is_string());
  EXPECT_EQ(cj["usage"]["prompt_tokens"], 2);
  EXPECT_EQ(cj["usage"]["completion_tokens"], 16);
}

TEST(DemoModel, KeepAliveServesSeveralRequestsOnOneConnection) {
  Running server(fast_options());
  asio::io_context io;
  tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), server.port()});
  beast::flat_buffer buf;
  for (int i = 0; i < 3; ++i) {
    http::request<http::string_body> req{http::verb::get, "/health", 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(s, req);
    http::response<http::string_body> res;
    http::read(s, buf, res);
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_TRUE(res.keep_alive());
  }
}

TEST(DemoModel, ConcurrencyIsEnforced) {
  DemoModelOptions o;
  o.concurrency = 1;
  o.service.kind = ServiceModel::Kind::kFixed;
  o.service.fixed_s = 0.2;
  Running server(o);
  const auto t0 = Steady::now();
  auto one = [&] {
    Reply r = http_request(server.port(), http::verb::post, "/v1/completions", R"({"prompt":"x"})");
    EXPECT_EQ(r.status, 200u);
    return ms_since(t0);
  };
  auto a = std::async(std::launch::async, one);
  auto b = std::async(std::launch::async, one);
  double ta = a.get(), tb = b.get();
  if (ta > tb) std::swap(ta, tb);
  EXPECT_GE(ta, 195.0);
  EXPECT_GE(tb, 395.0);
  EXPECT_GE(tb - ta, 150.0);
}

// GET /metrics until `pred` holds for what it says (a deadline, no fixed sleep).
metrics::EngineSignals metrics_when(
    uint16_t port, metrics::EngineKind kind,
    const std::function<bool(const metrics::EngineSignals&)>& pred) {
  metrics::EngineSignals last;
  for (const auto deadline = Steady::now() + std::chrono::seconds(5); Steady::now() < deadline;) {
    const Reply r = http_request(port, http::verb::get, "/metrics", "");
    EXPECT_EQ(r.status, 200u);
    const metrics::EngineScan scan = metrics::read_engine_signals(r.body, kind, 1 << 20);
    EXPECT_TRUE(scan.signals) << scan.error << "\n" << r.body;
    if (!scan.signals) break;
    last = *scan.signals;
    if (pred(last)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return last;
}

TEST(DemoModel, MetricsPageSaysRunningWaitingAndKvCacheAsVllmDoes) {
  DemoModelOptions o;
  o.concurrency = 2;
  o.service.kind = ServiceModel::Kind::kFixed;
  o.service.fixed_s = 1.0;
  Running server(o);
  using metrics::EngineSignals;
  const EngineSignals idle =
      metrics_when(server.port(), metrics::EngineKind::kVllm, [](auto&) { return true; });
  EXPECT_EQ(idle, (EngineSignals{.running = 0, .waiting = 0, .kv_cache = 0}));
  std::vector<std::future<void>> requests;
  for (int i = 0; i < 3; ++i) {
    requests.push_back(std::async(std::launch::async, [&] {
      http_request(server.port(), http::verb::post, "/v1/completions", R"({"prompt":"x"})");
    }));
  }
  // Two in the slots, one waiting: as vLLM's scheduler would report them.
  const EngineSignals busy = metrics_when(server.port(), metrics::EngineKind::kVllm,
                                          [](const EngineSignals& s) { return s.waiting == 1.0; });
  EXPECT_EQ(busy, (EngineSignals{.running = 2, .waiting = 1, .kv_cache = 1}));
  for (auto& f : requests) f.get();
}

TEST(DemoModel, MetricsPageOfTgi) {
  DemoModelOptions o = fast_options();
  o.engine = metrics::EngineKind::kTgi;
  Running server(o);
  const Reply r = http_request(server.port(), http::verb::get, "/metrics", "");
  EXPECT_NE(r.body.find("tgi_queue_size 0"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("vllm:"), std::string::npos) << r.body;
}

TEST(DemoModel, StreamingDeliversTokensIncrementally) {
  DemoModelOptions o = fast_options();
  o.token_rate = 50;  // 20 ms per token
  Running server(o);
  asio::io_context io;
  tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), server.port()});
  http::request<http::string_body> req{http::verb::post, "/v1/completions", 11};
  req.set(http::field::host, "127.0.0.1");
  req.body() = R"({"prompt":"a b","max_tokens":8,"stream":true})";
  req.prepare_payload();
  const auto t0 = Steady::now();
  http::write(s, req);

  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> parser;
  http::read_header(s, buf, parser);
  ASSERT_EQ(parser.get().result_int(), 200u);
  EXPECT_EQ(parser.get()[http::field::content_type], "text/event-stream");
  EXPECT_TRUE(parser.get().chunked());

  std::string stream;
  std::vector<double> event_times;  // when each "data:" event arrived
  char chunk[4096];
  size_t seen = 0;
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    boost::system::error_code ec;
    http::read_some(s, buf, parser, ec);
    if (ec && ec != http::error::need_buffer) FAIL() << ec.message();
    stream.append(chunk, sizeof chunk - parser.get().body().size);
    for (size_t p; (p = stream.find("data: ", seen)) != std::string::npos; seen = p + 6)
      event_times.push_back(ms_since(t0));
  }
  ASSERT_EQ(event_times.size(), 9u) << stream;  // 8 tokens and [DONE]
  EXPECT_NE(stream.find("data: [DONE]\n\n"), std::string::npos);
  EXPECT_EQ(stream.rfind("data: "), stream.find("data: [DONE]"));
  // 7 intervals of 20 ms separate the first token event from the last.
  EXPECT_GE(event_times[7] - event_times[0], 100.0);
  json first = json::parse(stream.substr(6, stream.find("\n\n") - 6));
  EXPECT_TRUE(first["choices"][0]["text"].is_string());
}

TEST(DemoModel, DisconnectedStreamFreesItsSlot) {
  DemoModelOptions o = fast_options();
  o.concurrency = 1;
  o.token_rate = 10;  // 100 ms per token: the stream would hold the slot for 10 s
  Running server(o);
  {
    asio::io_context io;
    tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), server.port()});
    http::request<http::string_body> req{http::verb::post, "/v1/completions", 11};
    req.set(http::field::host, "127.0.0.1");
    req.body() = R"({"prompt":"a","max_tokens":100,"stream":true})";
    req.prepare_payload();
    http::write(s, req);
    beast::flat_buffer buf;
    http::response_parser<http::buffer_body> parser;
    http::read_header(s, buf, parser);
  }  // closed
  const auto t0 = Steady::now();
  Reply r = http_request(server.port(), http::verb::post, "/v1/completions", R"({"max_tokens":1})");
  EXPECT_EQ(r.status, 200u);
  EXPECT_LT(ms_since(t0), 2000.0);
}

TEST(DemoModel, StopEndsInFlightRequestsPromptly) {
  DemoModelOptions o;
  o.concurrency = 1;
  o.service.fixed_s = 30;  // far longer than the test may take
  auto running = std::make_unique<Running>(o);
  asio::io_context io;
  tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), running->port()});
  http::request<http::string_body> req{http::verb::post, "/v1/completions", 11};
  req.set(http::field::host, "127.0.0.1");
  req.body() = "{}";
  req.prepare_payload();
  http::write(s, req);
  auto queued = std::async(std::launch::async, [port = running->port()] {
    try {
      return http_request(port, http::verb::post, "/v1/completions", "{}").status;
    } catch (const std::exception&) {
      return 0u;  // the server closed the connection
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let both requests arrive
  const auto t0 = Steady::now();
  running.reset();  // stop() and join the serving thread
  EXPECT_LT(ms_since(t0), 2000.0);
  EXPECT_EQ(queued.get(), 0u);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  boost::system::error_code ec;
  http::read(s, buf, res, ec);
  EXPECT_TRUE(ec);  // closed without an answer
}

TEST(DemoModel, BadJsonIs400AndUnknownPathIs404) {
  Running server(fast_options());
  Reply bad = http_request(server.port(), http::verb::post, "/v1/completions", "{not json");
  EXPECT_EQ(bad.status, 400u);
  EXPECT_NE(json::parse(bad.body)["error"]["message"].get<std::string>().find("invalid JSON"),
            std::string::npos);
  Reply neg =
      http_request(server.port(), http::verb::post, "/v1/completions", R"({"max_tokens":-1})");
  EXPECT_EQ(neg.status, 400u);
  EXPECT_NE(neg.body.find("max_tokens"), std::string::npos);
  Reply chat = http_request(server.port(), http::verb::post, "/v1/chat/completions", R"({})");
  EXPECT_EQ(chat.status, 400u);
  EXPECT_NE(chat.body.find("messages"), std::string::npos);
  Reply missing = http_request(server.port(), http::verb::get, "/nope");
  EXPECT_EQ(missing.status, 404u);
  EXPECT_TRUE(json::parse(missing.body).contains("error"));
}

}  // namespace
}  // namespace tide::demo_model
