// The agent in process, over loopback: a demo model server behind it, and a fake control plane
// that records reports and serves keys. Conditions are awaited by polling with a deadline.
#include "tide/agent/agent.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tide/agent/report.h"
#include "tide/auth/keys.h"
#include "tide/demo_model/demo_model.h"
#include "tide/testing/http_request.h"

namespace tide::agent {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using json = nlohmann::json;
using namespace std::chrono_literals;

bool eventually(const std::function<bool()>& cond, double seconds = 5) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(seconds));
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return cond();
}

using Reply = test::HttpReply;

// A control plane that records the reports it gets and serves the ring's public keys.
class FakeControl {
 public:
  explicit FakeControl(const auth::KeyRing& ring) : ring_(ring), acceptor_(io_) {
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen();
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeControl() {
    stop_ = true;
    boost::system::error_code ec;
    // Wake the blocking accept.
    tcp::socket s(io_);
    s.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  void set_away(bool away) { away_ = away; }
  std::vector<AgentReport> reports() {
    std::lock_guard lock(mu_);
    return reports_;
  }
  std::vector<std::string> authorizations() {
    std::lock_guard lock(mu_);
    return authorizations_;
  }
  int key_fetches() const { return key_fetches_; }

 private:
  void serve() {
    while (!stop_) {
      tcp::socket s(io_);
      boost::system::error_code ec;
      acceptor_.accept(s, ec);
      if (ec || stop_) continue;
      beast::flat_buffer buf;
      http::request<http::string_body> req;
      http::read(s, buf, req, ec);
      if (ec) continue;
      http::response<http::string_body> res{http::status::ok, 11};
      if (away_) {
        res.result(http::status::service_unavailable);
      } else if (req.target() == "/v1/pubkey") {
        ++key_fetches_;
        json keys = json::array();
        for (const auto& k : ring_.public_keys(SystemClock().now()))
          keys.push_back({{"id", k.id}, {"public_key", auth::base64url(k.bytes)}});
        res.body() = json{{"keys", keys}}.dump();
      } else {
        const ParsedReport p = parse_report(req.body());
        std::lock_guard lock(mu_);
        if (p.report) reports_.push_back(*p.report);
        authorizations_.emplace_back(req[http::field::authorization]);
        if (!p.report) res.result(http::status::bad_request);
      }
      res.prepare_payload();
      http::write(s, res, ec);
    }
  }

  const auth::KeyRing& ring_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> away_{false};
  std::atomic<int> key_fetches_{0};
  std::mutex mu_;
  std::vector<AgentReport> reports_;
  std::vector<std::string> authorizations_;
};

class AgentTest : public ::testing::Test {
 protected:
  AgentTest() : ring_(auth::KeyRing::ephemeral(SystemClock().now())), control_(ring_) {}
  ~AgentTest() override {
    if (agent_) {
      agent_->stop();
      agent_thread_.join();
    }
    if (model_) {
      model_->stop();
      model_thread_.join();
    }
  }

  // Starts the demo model and the agent; `with_keys`: the agent knows the keys from the start.
  void start(bool with_keys = true, int slots = 2, const std::string& service = "fixed:50ms") {
    demo_model::DemoModelOptions m;
    m.concurrency = slots;
    std::string error;
    m.service = *demo_model::parse_service_model(service, error);
    m.token_rate = 200;
    model_ = std::make_unique<demo_model::DemoModelServer>(m);
    model_thread_ = std::thread([this] { model_->run(); });
    AgentOptions o;
    o.upstream = "127.0.0.1:" + std::to_string(model_->port());
    o.control = control_.url();
    o.endpoint = "chat";
    o.replica_id = 3;
    o.secret = ring_.replica_secret("chat/gpu/3");
    o.slots = slots;
    o.report_interval = 200ms;
    o.health_interval = 20ms;
    if (with_keys) o.keys = ring_.public_keys(SystemClock().now());
    o.nvml_library = nvml_library_;
    o.engine_path = engine_path_;
    o.engine_kind = engine_kind_;
    o.engine_interval = 50ms;
    o.log = [](const std::string&) {};
    agent_ = std::make_unique<Agent>(o);
    agent_thread_ = std::thread([this] { agent_->run(); });
    ASSERT_TRUE(eventually([&] { return agent_->counters().state == "ready"; }));
  }

  std::string token(uint64_t replica = 3, Duration ttl = 30s, std::string endpoint = "chat") {
    auth::Claims c;
    c.endpoint = std::move(endpoint);
    c.replica_id = replica;
    c.expires_at = SystemClock().now() + ttl;
    c.request = auth::random_u64();
    return ring_.issue(c);
  }
  Reply completion(const std::vector<std::pair<std::string, std::string>>& headers,
                   const std::string& body = R"({"prompt": "hello there", "max_tokens": 5})") {
    return test::http_request(agent_->port(), http::verb::post, "/v1/completions", body, headers);
  }

  std::string nvml_library_ = "libnvidia-ml-that-is-not-here.so.1";
  std::string engine_path_;  // the model server's metrics page ("": not read)
  metrics::EngineKind engine_kind_ = metrics::EngineKind::kVllm;
  auth::KeyRing ring_;
  FakeControl control_;
  std::unique_ptr<demo_model::DemoModelServer> model_;
  std::thread model_thread_;
  std::unique_ptr<Agent> agent_;
  std::thread agent_thread_;
};

TEST_F(AgentTest, AValidTokenIsServedOnceAndBadTokensAreRefusedWithAReason) {
  start();
  const std::string t = token();
  const Reply ok = completion({{"Tide-Route-Token", t}});
  EXPECT_EQ(ok.status, 200u) << ok.body;
  EXPECT_NE(ok.body.find("text_completion"), std::string::npos);

  const Reply replayed = completion({{"Tide-Route-Token", t}});
  EXPECT_EQ(replayed.status, 403u);
  EXPECT_EQ(replayed.error()["type"], "replayed");

  const Reply missing = completion({});
  EXPECT_EQ(missing.status, 401u);
  EXPECT_EQ(missing.error()["type"], "missing_token");

  const Reply expired = completion({{"Tide-Route-Token", token(3, -10s)}});
  EXPECT_EQ(expired.status, 401u);
  EXPECT_EQ(expired.error()["type"], "expired");

  const Reply other = completion({{"Tide-Route-Token", token(4)}});
  EXPECT_EQ(other.status, 403u);
  EXPECT_EQ(other.error()["type"], "wrong_replica");
  EXPECT_NE(other.error()["message"].get<std::string>().find("replica 4"), std::string::npos);

  // Signed with a key nobody trusts, under the trusted key's id.
  auth::Claims c = *auth::peek_token(token());
  const Reply forged =
      completion({{"Tide-Route-Token", auth::sign_token(c, std::string(64, 'k'))}});
  EXPECT_EQ(forged.status, 401u);
  EXPECT_EQ(forged.error()["type"], "bad_signature");

  const AgentCounters counters = agent_->counters();
  EXPECT_EQ(counters.admitted_token, 1u);
  EXPECT_EQ(counters.rejected.at("replayed"), 1u);
  EXPECT_EQ(counters.rejected.at("bad_signature"), 1u);
  EXPECT_EQ(counters.completed, 1u);
}

TEST_F(AgentTest, TheGatewayIsAdmittedByTheReplicaSecret) {
  start();
  const Reply ok = completion({{"Tide-Replica-Secret", ring_.replica_secret("chat/gpu/3")}});
  EXPECT_EQ(ok.status, 200u) << ok.body;
  const Reply other = completion({{"Tide-Replica-Secret", ring_.replica_secret("chat/gpu/4")}});
  EXPECT_EQ(other.status, 401u);
  EXPECT_EQ(other.error()["type"], "bad_secret");
  EXPECT_EQ(agent_->counters().admitted_gateway, 1u);
}

TEST_F(AgentTest, PushesReadinessAtOnceThenReportsLoadAndTokensEveryInterval) {
  start();
  // The first report says ready, long before a 200 ms interval has passed.
  ASSERT_TRUE(eventually([&] { return !control_.reports().empty(); }, 2));
  EXPECT_EQ(control_.reports().front().state, control::AgentState::kReady);
  EXPECT_EQ(control_.authorizations().front(), "Bearer " + ring_.replica_secret("chat/gpu/3"));
  const Reply r = completion({{"Tide-Route-Token", token()}},
                             R"({"prompt": "one two three", "max_tokens": 6, "stream": true})");
  ASSERT_EQ(r.status, 200u);
  EXPECT_NE(r.body.find("data: [DONE]"), std::string::npos);
  ASSERT_TRUE(eventually([&] {
    for (const AgentReport& rep : control_.reports())
      if (rep.completed > 0) return true;
    return false;
  }));
  for (const AgentReport& rep : control_.reports()) {
    if (rep.completed == 0) continue;
    EXPECT_EQ(rep.tokens_in, 3u);  // usage from the last event of the stream
    EXPECT_EQ(rep.tokens_out, 6u);
    EXPECT_DOUBLE_EQ(rep.work, 9.0);
    EXPECT_TRUE(rep.load.learned);
    EXPECT_GT(rep.load.capacity, 0);
    EXPECT_TRUE(rep.latency_mean_s.has_value());
    EXPECT_TRUE(rep.gpus.empty());  // no NVML here
  }
}

TEST_F(AgentTest, ReportsTheGpusOfItsCudaVisibleDevicesAndShowsTheLastReadingsInItsStatus) {
  // The stand-in NVML has two GPUs; the replica was given the second.
  const char* before = std::getenv("CUDA_VISIBLE_DEVICES");
  const std::optional<std::string> saved =
      before ? std::optional<std::string>(before) : std::nullopt;
  ::setenv("CUDA_VISIBLE_DEVICES", "1", 1);
  nvml_library_ = FAKE_NVML;
  start();
  if (saved) {
    ::setenv("CUDA_VISIBLE_DEVICES", saved->c_str(), 1);
  } else {
    ::unsetenv("CUDA_VISIBLE_DEVICES");
  }
  ASSERT_TRUE(eventually([&] { return !control_.reports().empty(); }, 2));
  const std::vector<GpuReading> gpus = control_.reports().back().gpus;
  ASSERT_EQ(gpus.size(), 1u);
  EXPECT_EQ(gpus[0].index, 1);
  EXPECT_DOUBLE_EQ(gpus[0].utilization, 0.40);
  EXPECT_EQ(gpus[0].memory_used_bytes, 20ull << 30);
  EXPECT_EQ(gpus[0].memory_total_bytes, 80ull << 30);

  const Reply status = test::http_request(agent_->port(), http::verb::get, "/tide/status");
  ASSERT_EQ(status.status, 200u);
  const json j = json::parse(status.body);
  EXPECT_EQ(j["gpu"], true);
  ASSERT_EQ(j["gpus"].size(), 1u) << status.body;
  EXPECT_EQ(j["gpus"][0]["index"], 1);
  EXPECT_DOUBLE_EQ(j["gpus"][0]["utilization"].get<double>(), 0.40);
  EXPECT_EQ(j["gpus"][0]["memory_used_bytes"].get<uint64_t>(), 20ull << 30);
}

TEST_F(AgentTest, ReadsItsModelServersMetricsPageAndReportsWhatItSays) {
  engine_path_ = "/metrics";
  start();
  ASSERT_TRUE(eventually([&] {
    const auto reports = control_.reports();
    return !reports.empty() && reports.back().engine.has_value();
  }));
  EXPECT_EQ(*control_.reports().back().engine,
            (metrics::EngineSignals{.running = 0, .waiting = 0, .kv_cache = 0}));
  const Reply status = test::http_request(agent_->port(), http::verb::get, "/tide/status");
  const json j = json::parse(status.body);
  EXPECT_EQ(j["engine"]["waiting"], 0.0) << status.body;
  EXPECT_EQ(j["engine_error"], "");
}

TEST_F(AgentTest, APageItCannotReadFailsNothingAndSaysWhy) {
  engine_path_ = "/metrics";
  engine_kind_ = metrics::EngineKind::kTgi;  // the demo model writes vLLM's names
  start();
  ASSERT_TRUE(eventually([&] { return agent_->counters().engine_reads_failed >= 2; }));
  const AgentCounters c = agent_->counters();
  EXPECT_EQ(c.state, "ready");
  EXPECT_NE(c.engine_error.find("tgi_queue_size"), std::string::npos) << c.engine_error;
  for (const AgentReport& r : control_.reports()) EXPECT_FALSE(r.engine.has_value());
  EXPECT_EQ(completion({{"Tide-Route-Token", token()}}).status, 200u);
}

TEST_F(AgentTest, KeepsServingWhileTheControlPlaneIsAwayAndCatchesUp) {
  start();
  control_.set_away(true);
  // Counted once the agent has seen the plane away: a report already in flight when it went away
  // may still land.
  ASSERT_TRUE(eventually([&] { return agent_->counters().reports_failed >= 2; }));
  const size_t before = control_.reports().size();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(completion({{"Tide-Route-Token", token()}}).status, 200u);
  EXPECT_EQ(control_.reports().size(), before);
  control_.set_away(false);
  ASSERT_TRUE(eventually([&] { return control_.reports().size() > before; }));
  // The running totals carry what happened meanwhile.
  ASSERT_TRUE(eventually([&] { return control_.reports().back().total_completed == 3; }));
  EXPECT_GE(control_.reports().back().reports_failed, 2u);
}

TEST_F(AgentTest, ATokenFromAKeyItDoesNotKnowYetMakesItFetchTheKeys) {
  start(/*with_keys=*/false);
  const Reply r = completion({{"Tide-Route-Token", token()}});
  EXPECT_EQ(r.status, 200u) << r.body;
  EXPECT_GE(control_.key_fetches(), 1);
}

TEST_F(AgentTest, RequestsBeyondTheSlotsWaitAtTheAgent) {
  start(true, 1, "fixed:300ms");
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 3; ++i)
    clients.emplace_back([&] {
      if (completion({{"Tide-Route-Token", token()}}).status == 200) ++ok;
    });
  EXPECT_TRUE(eventually([&] { return agent_->counters().queued == 2; }, 2));
  EXPECT_EQ(agent_->counters().in_service, 1);
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 3);
  // The slot is given back just after the answer's last byte.
  EXPECT_TRUE(eventually([&] { return agent_->counters().in_service == 0; }, 2));
  EXPECT_EQ(agent_->counters().queued, 0);
}

TEST(AgentChild, TheModelServerDoesNotInheritTheReplicaSecret) {
  ::setenv("TIDE_AGENT_SECRET", "replica-secret-0123456789", 1);
  const std::string out = ::testing::TempDir() + "agent_child_env_" + std::to_string(::getpid());
  AgentOptions o;
  o.upstream = "127.0.0.1:1";  // nothing answers there: the agent stays "starting"
  o.endpoint = "chat";
  o.replica_id = 1;
  o.secret = "replica-secret-0123456789";
  o.command = {"/bin/sh", "-c",
               "echo \"secret=${TIDE_AGENT_SECRET:-none}\" > " + out + ".tmp && mv " + out +
                   ".tmp " + out + "; exec sleep 30"};
  o.log = [](const std::string&) {};
  Agent agent(o);
  std::thread t([&] { agent.run(); });
  std::string text;
  EXPECT_TRUE(eventually([&] {
    std::ifstream f(out);
    text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    return !text.empty();
  }));
  agent.stop();
  t.join();
  std::remove(out.c_str());
  EXPECT_EQ(text, "secret=none\n");
}

}  // namespace
}  // namespace tide::agent
