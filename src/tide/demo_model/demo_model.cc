#include "tide/demo_model/demo_model.h"

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <exception>
#include <set>
#include <stdexcept>
#include <string>
#include <variant>

#include "tide/common/random.h"

namespace tide::demo_model {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::ip::tcp;
using boost::system::error_code;
using json = nlohmann::json;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr int64_t kMaxTokens = 100000;

std::optional<double> parse_number(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::string str(s);
  char* end = nullptr;
  const double v = std::strtod(str.c_str(), &end);
  if (end != str.c_str() + str.size() || !(v >= 0) || v > 1e9) return std::nullopt;
  return v;
}

int64_t count_words(std::string_view text) {
  int64_t n = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

Duration seconds(double s) { return from_seconds(std::max(0.0, s)); }

// One parsed completion request.
struct Request {
  bool chat = false;
  bool stream = false;
  int64_t input_tokens = 0;
  int64_t output_tokens = 16;
};

// Returns an error message, or nothing when `body` is a valid request.
std::optional<std::string> parse_request(const std::string& body, bool chat, Request& out) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return "invalid JSON in request body";
  if (!j.is_object()) return "request body must be a JSON object";
  out.chat = chat;
  if (auto it = j.find("stream"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) return "\"stream\" must be a boolean";
    out.stream = it->get<bool>();
  }
  if (auto it = j.find("max_tokens"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > kMaxTokens)
      return "\"max_tokens\" must be an integer from 0 to " + std::to_string(kMaxTokens);
    out.output_tokens = it->get<int64_t>();
  }
  if (chat) {
    auto it = j.find("messages");
    if (it == j.end() || !it->is_array()) return "\"messages\" must be an array";
    for (const auto& m : *it) {
      if (!m.is_object()) return "each of \"messages\" must be an object";
      auto c = m.find("content");
      if (c != m.end() && c->is_string()) out.input_tokens += count_words(c->get<std::string>());
    }
  } else {
    auto it = j.find("prompt");
    if (it != j.end() && !it->is_null()) {
      if (it->is_string()) {
        out.input_tokens = count_words(it->get<std::string>());
      } else if (it->is_array()) {
        for (const auto& p : *it) {
          if (!p.is_string()) return "\"prompt\" must be a string or an array of strings";
          out.input_tokens += count_words(p.get<std::string>());
        }
      } else {
        return "\"prompt\" must be a string or an array of strings";
      }
    }
  }
  return std::nullopt;
}

std::string error_json(std::string_view message, std::string_view type) {
  return json{{"error", {{"message", message}, {"type", type}}}}.dump();
}

const char* const kWords[] = {"the",   "tide",  "rises",  "and", "falls", "with", "load",
                              "every", "model", "waits",  "for", "a",     "slot", "while",
                              "gpus",  "hum",   "softly", "in",  "racks", "of",   "light"};

}  // namespace

std::optional<ServiceModel> parse_service_model(std::string_view text, std::string& error) {
  const auto colon = text.find(':');
  const std::string_view kind = text.substr(0, colon);
  const std::string_view args =
      colon == std::string_view::npos ? std::string_view{} : text.substr(colon + 1);
  const auto comma = args.find(',');
  const std::string_view a = args.substr(0, comma);
  const std::string_view b =
      comma == std::string_view::npos ? std::string_view{} : args.substr(comma + 1);
  ServiceModel m;
  if (kind == "fixed" && comma == std::string_view::npos) {
    auto d = parse_duration(a);
    if (d && d->count() >= 0) {
      m.kind = ServiceModel::Kind::kFixed;
      m.fixed_s = to_seconds(*d);
      return m;
    }
  } else if (kind == "lognormal" && comma != std::string_view::npos) {
    auto d = parse_duration(a);
    auto s = parse_number(b);
    if (d && d->count() > 0 && s) {
      m.kind = ServiceModel::Kind::kLognormal;
      m.median_s = to_seconds(*d);
      m.sigma = *s;
      return m;
    }
  } else if (kind == "tokens" && comma != std::string_view::npos) {
    auto p = parse_number(a);
    auto d = parse_number(b);
    if (p && d) {
      m.kind = ServiceModel::Kind::kTokens;
      m.prefill_s = *p;
      m.decode_s = *d;
      return m;
    }
  }
  error =
      "expected fixed:DURATION, lognormal:MEDIAN,SIGMA or tokens:PREFILL_S,DECODE_S (e.g. "
      "fixed:1s, lognormal:1s,0.5, tokens:0.0002,0.02); got \"" +
      std::string(text) + "\"";
  return std::nullopt;
}

struct DemoModelServer::Impl {
  // A request waiting for a slot; woken by cancelling its timer.
  struct Waiter {
    explicit Waiter(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    bool granted = false;
    bool abandoned = false;
  };

  // Releases a slot when it goes out of scope.
  struct SlotGuard {
    explicit SlotGuard(Impl* i) : impl(i) {}
    Impl* impl;
    SlotGuard(const SlotGuard&) = delete;
    SlotGuard& operator=(const SlotGuard&) = delete;
    ~SlotGuard() { impl->release_slot(); }
  };

  explicit Impl(DemoModelOptions o)
      : options(std::move(o)),
        acceptor(io),
        signals(io),
        rng(options.seed),
        words_rng(options.seed ^ 0x9e3779b97f4a7c15ULL),
        free_slots(options.concurrency) {
    if (options.concurrency < 1) throw std::runtime_error("concurrency must be at least 1");
    error_code ec;
    const auto address = asio::ip::make_address(options.host, ec);
    if (ec) throw std::runtime_error("bad host address \"" + options.host + "\": " + ec.message());
    const tcp::endpoint endpoint(address, options.port);
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      throw std::runtime_error("cannot listen on " + options.host + ":" +
                               std::to_string(options.port) + ": " + ec.message());
    bound_port = acceptor.local_endpoint().port();
    if (options.token_rate > 0)
      token_rate = options.token_rate;
    else if (options.service.kind == ServiceModel::Kind::kTokens && options.service.decode_s > 0)
      token_rate = 1.0 / options.service.decode_s;
    else
      token_rate = 50;
    loaded_at = clock.now() + options.load_time;
  }

  // The io_context goes first so that it is destroyed last.
  asio::io_context io;
  DemoModelOptions options;
  tcp::acceptor acceptor;
  asio::signal_set signals;
  SteadyClock clock;
  Time loaded_at;
  uint16_t bound_port = 0;
  double token_rate = 50;
  Random rng;
  Random words_rng;
  int free_slots;
  std::deque<std::shared_ptr<Waiter>> waiters;
  std::set<tcp::socket*> sockets;
  bool stopping = false;
  uint64_t next_id = 1;
  std::optional<Time> first_healthy;  // the first 2xx answer of /health

  bool loaded() const { return clock.now() >= loaded_at; }

  void release_slot() {
    while (!waiters.empty()) {
      auto w = std::move(waiters.front());
      waiters.pop_front();
      if (w->abandoned) continue;
      w->granted = true;
      w->timer.cancel();
      return;
    }
    ++free_slots;
  }

  // Waits for `timer`; returns true if the client went away first (or the server is stopping).
  static awaitable<bool> client_gone_before(tcp::socket& sock, asio::steady_timer& timer) {
    for (;;) {
      auto r = co_await (timer.async_wait(kNoThrow) ||
                         sock.async_wait(tcp::socket::wait_read, kNoThrow));
      if (r.index() == 0) co_return false;
      auto [ec] = std::get<1>(r);
      if (ec) co_return true;
      error_code aec;
      if (sock.available(aec) == 0 || aec) co_return true;  // readable with no data: EOF
      // Pipelined bytes of a next request: leave them be and wait for the timer alone.
      co_await timer.async_wait(kNoThrow);
      co_return false;
    }
  }

  awaitable<bool> sleep(tcp::socket& sock, Duration d) {
    asio::steady_timer timer(io);
    timer.expires_after(d);
    co_return co_await client_gone_before(sock, timer);
  }

  // Takes a slot, waiting FIFO behind earlier requests. False if the client left meanwhile.
  awaitable<bool> acquire_slot(tcp::socket& sock) {
    if (free_slots > 0 && waiters.empty()) {
      --free_slots;
      co_return true;
    }
    auto w = std::make_shared<Waiter>(io.get_executor());
    w->timer.expires_at(asio::steady_timer::time_point::max());
    waiters.push_back(w);
    for (;;) {
      const bool gone = co_await client_gone_before(sock, w->timer);
      if (w->granted) co_return true;  // the caller releases it
      if (gone || stopping) {
        w->abandoned = true;
        co_return false;
      }
    }
  }

  std::string fake_text(int64_t tokens, int64_t offset) {
    std::string s;
    for (int64_t i = 0; i < tokens; ++i) {
      s += (i + offset == 0 ? "" : " ");
      s += kWords[words_rng.below(std::size(kWords))];
    }
    return s;
  }

  double service_seconds(const Request& r) {
    const ServiceModel& m = options.service;
    switch (m.kind) {
      case ServiceModel::Kind::kFixed:
        return m.fixed_s;
      case ServiceModel::Kind::kLognormal:
        return rng.lognormal(m.median_s, m.sigma);
      case ServiceModel::Kind::kTokens:
        break;
    }
    return m.prefill_s * static_cast<double>(r.input_tokens) +
           m.decode_s * static_cast<double>(r.output_tokens);
  }

  json usage(const Request& r) const {
    return {{"prompt_tokens", r.input_tokens},
            {"completion_tokens", r.output_tokens},
            {"total_tokens", r.input_tokens + r.output_tokens}};
  }

  static awaitable<bool> write(tcp::socket& sock, http::response<http::string_body>& res) {
    res.prepare_payload();
    auto [ec, n] = co_await http::async_write(sock, res, kNoThrow);
    co_return !ec;
  }

  // With options.timing, the readiness-to-dispatch figures of a request that arrived at `arrival`.
  void set_timing(http::fields& res, std::optional<Time> arrival) const {
    if (!options.timing || !arrival || !first_healthy) return;
    const auto us = [](Duration d) {
      return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
    };
    res.set("Demo-Health-Lag-Us", us(*first_healthy - loaded_at));
    res.set("Demo-Ready-To-Request-Us", us(*arrival - *first_healthy));
  }

  awaitable<bool> write_json(tcp::socket& sock, const http::request<http::string_body>& req,
                             http::status status, std::string body,
                             std::optional<Time> arrival = std::nullopt) {
    http::response<http::string_body> res{status, req.version()};
    res.set(http::field::server, "tide-demo-model");
    res.set(http::field::content_type, "application/json");
    set_timing(res, arrival);
    res.keep_alive(req.keep_alive());
    res.body() = std::move(body);
    const bool ok = co_await write(sock, res);
    co_return ok&& req.keep_alive();
  }

  // Serves one completion. Returns whether the connection may carry another request.
  awaitable<bool> complete(tcp::socket& sock, const http::request<http::string_body>& req,
                           const Request& r, Time arrival) {
    if (!co_await acquire_slot(sock)) co_return false;
    SlotGuard slot(this);
    const std::string id = (r.chat ? "chatcmpl-demo-" : "cmpl-demo-") + std::to_string(next_id++);
    const double service_s = service_seconds(r);
    if (!r.stream) {
      if (co_await sleep(sock, seconds(service_s))) co_return false;
      const std::string text = fake_text(r.output_tokens, 0);
      json choice = {{"index", 0}, {"finish_reason", "length"}};
      if (r.chat)
        choice["message"] = {{"role", "assistant"}, {"content", text}};
      else
        choice["text"] = text;
      json body = {{"id", id},
                   {"object", r.chat ? "chat.completion" : "text_completion"},
                   {"created", 0},
                   {"model", options.model_name},
                   {"choices", json::array({choice})},
                   {"usage", usage(r)}};
      co_return co_await write_json(sock, req, http::status::ok, body.dump(), arrival);
    }

    // Streaming: the first token after the prefill (kTokens) or whatever part of the service time
    // the decode at token_rate does not fill, then one event per token at token_rate.
    const double interval = 1.0 / token_rate;
    const double decode_span = interval * static_cast<double>(r.output_tokens);
    const double first_token_s =
        options.service.kind == ServiceModel::Kind::kTokens
            ? options.service.prefill_s * static_cast<double>(r.input_tokens)
            : std::max(0.0, service_s - decode_span);
    http::response<http::empty_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "tide-demo-model");
    res.set(http::field::content_type, "text/event-stream");
    res.set(http::field::cache_control, "no-cache");
    set_timing(res, arrival);
    res.keep_alive(req.keep_alive());
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    if (auto [ec, n] = co_await http::async_write_header(sock, sr, kNoThrow); ec) co_return false;
    for (int64_t i = 0; i < r.output_tokens; ++i) {
      if (co_await sleep(sock, seconds(i == 0 ? first_token_s : interval))) co_return false;
      const bool last = i + 1 == r.output_tokens;
      json choice = {{"index", 0}, {"finish_reason", last ? json("length") : json(nullptr)}};
      if (r.chat)
        choice["delta"] = {{"content", fake_text(1, i)}};
      else
        choice["text"] = fake_text(1, i);
      json event = {{"id", id},
                    {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
                    {"created", 0},
                    {"model", options.model_name},
                    {"choices", json::array({choice})}};
      if (last) event["usage"] = usage(r);
      const std::string data = "data: " + event.dump() + "\n\n";
      if (auto [ec, n] =
              co_await asio::async_write(sock, http::make_chunk(asio::buffer(data)), kNoThrow);
          ec)
        co_return false;
    }
    static const std::string kDone = "data: [DONE]\n\n";
    if (auto [ec, n] =
            co_await asio::async_write(sock, http::make_chunk(asio::buffer(kDone)), kNoThrow);
        ec)
      co_return false;
    if (auto [ec, n] = co_await asio::async_write(sock, http::make_chunk_last(), kNoThrow); ec)
      co_return false;
    co_return req.keep_alive();
  }

  // What a vLLM (TGI, SGLang) server would say now: running, waiting, KV cache in use.
  metrics::EngineSignals engine_signals() const {
    const int running = options.concurrency - free_slots;
    const auto waiting = std::count_if(waiters.begin(), waiters.end(),
                                       [](const auto& w) { return !w->abandoned && !w->granted; });
    return {.running = running,
            .waiting = static_cast<double>(waiting),
            .kv_cache = static_cast<double>(running) / options.concurrency};
  }

  awaitable<bool> write_metrics(tcp::socket& sock, const http::request<http::string_body>& req) {
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "tide-demo-model");
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.keep_alive(req.keep_alive());
    res.body() = metrics::engine_page(options.engine, engine_signals(), options.model_name);
    const bool ok = co_await write(sock, res);
    co_return ok&& req.keep_alive();
  }

  awaitable<bool> handle(tcp::socket& sock, const http::request<http::string_body>& req) {
    const Time arrival = clock.now();
    std::string_view target(req.target().data(), req.target().size());
    target = target.substr(0, target.find('?'));
    if (target == "/health") {
      if (req.method() != http::verb::get && req.method() != http::verb::head)
        co_return co_await write_json(sock, req, http::status::method_not_allowed,
                                      error_json("use GET /health", "invalid_request_error"));
      if (loaded()) {
        if (!first_healthy) first_healthy = arrival;
        co_return co_await write_json(sock, req, http::status::ok, R"({"status":"ok"})");
      }
      co_return co_await write_json(sock, req, http::status::service_unavailable,
                                    R"({"status":"loading"})");
    }
    if (target == "/metrics") {
      if (req.method() != http::verb::get)
        co_return co_await write_json(sock, req, http::status::method_not_allowed,
                                      error_json("use GET /metrics", "invalid_request_error"));
      co_return co_await write_metrics(sock, req);
    }
    const bool chat = target == "/v1/chat/completions";
    if (chat || target == "/v1/completions") {
      if (req.method() != http::verb::post)
        co_return co_await write_json(
            sock, req, http::status::method_not_allowed,
            error_json("use POST " + std::string(target), "invalid_request_error"));
      if (!loaded())
        co_return co_await write_json(sock, req, http::status::service_unavailable,
                                      error_json("model is loading", "unavailable"));
      Request r;
      if (auto problem = parse_request(req.body(), chat, r))
        co_return co_await write_json(sock, req, http::status::bad_request,
                                      error_json(*problem, "invalid_request_error"));
      co_return co_await complete(sock, req, r, arrival);
    }
    co_return co_await write_json(
        sock, req, http::status::not_found,
        error_json("no such path: " + std::string(target), "not_found_error"));
  }

  awaitable<void> session(tcp::socket sock) {
    sockets.insert(&sock);
    struct Forget {
      Impl* impl;
      tcp::socket* s;
      ~Forget() { impl->sockets.erase(s); }
    } forget{this, &sock};
    error_code ec;
    sock.set_option(tcp::no_delay(true), ec);
    beast::flat_buffer buffer;
    while (!stopping) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(1 << 20);
      auto [rec, n] = co_await http::async_read(sock, buffer, parser, kNoThrow);
      if (rec) break;
      bool keep_alive = false;
      try {
        keep_alive = co_await handle(sock, parser.get());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "tide demo-model: request failed: %s\n", e.what());
      }
      if (!keep_alive) break;
    }
    sock.shutdown(tcp::socket::shutdown_send, ec);
    sock.close(ec);
  }

  awaitable<void> accept_loop() {
    while (!stopping) {
      auto [ec, sock] = co_await acceptor.async_accept(kNoThrow);
      if (stopping || ec == asio::error::operation_aborted || !acceptor.is_open()) break;
      if (ec) continue;
      asio::co_spawn(io, session(std::move(sock)), [](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          std::fprintf(stderr, "tide demo-model: connection failed: %s\n", x.what());
        }
      });
    }
  }

  void do_stop() {
    if (stopping) return;
    stopping = true;
    error_code ec;
    acceptor.close(ec);
    signals.cancel(ec);
    for (tcp::socket* s : sockets) s->close(ec);
    for (auto& w : waiters) w->timer.cancel();
  }
};

DemoModelServer::DemoModelServer(DemoModelOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

DemoModelServer::~DemoModelServer() = default;

uint16_t DemoModelServer::port() const { return impl_->bound_port; }

void DemoModelServer::run() {
  Impl& impl = *impl_;
  if (impl.options.handle_signals) {
    impl.signals.add(SIGINT);
    impl.signals.add(SIGTERM);
    impl.signals.async_wait([&impl](const error_code& ec, int) {
      if (!ec) impl.do_stop();
    });
  }
  asio::co_spawn(impl.io, impl.accept_loop(), asio::detached);
  impl.io.run();
}

void DemoModelServer::stop() {
  asio::post(impl_->io, [impl = impl_.get()] { impl->do_stop(); });
}

}  // namespace tide::demo_model
