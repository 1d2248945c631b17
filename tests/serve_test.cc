// End to end: the real `tide serve` binary, real `tide demo-model` replicas it launches as
// processes, real HTTP on 127.0.0.1. Conditions are awaited by polling with a deadline.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http_client.h"

namespace tide::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using SteadyTime = std::chrono::steady_clock;

// Polls `cond` every 20 ms until it holds or `seconds` pass.
bool eventually(const std::function<bool()>& cond, double seconds) {
  const auto deadline = SteadyTime::now() + std::chrono::duration_cast<SteadyTime::duration>(
                                                std::chrono::duration<double>(seconds));
  while (SteadyTime::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

// Processes whose command line contains `marker`.
std::vector<int> processes_with(const std::string& marker) {
  std::vector<int> pids;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::ifstream f(entry.path() / "cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (cmd.find(marker) == std::string::npos) continue;
    // Skip zombies: they are gone, only not reaped by their parent yet.
    std::ifstream st(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(st)), std::istreambuf_iterator<char>());
    const size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z') continue;
    pids.push_back(std::stoi(name));
  }
  return pids;
}

struct Options {
  int min_replicas = 0;
  int max_replicas = 4;
  int concurrency = 2;
  std::string service = "fixed:500ms";
  std::string load_time = "300ms";
  std::string token_rate = "0";
  int queue_max = 1000;
  std::string queue_timeout = "30s";
  std::string idle_timeout = "1s";
  int queue_size = 2;
  std::string server_extra;             // more keys of `server:`
  std::string routing;                  // an endpoint `routing:` value; with it, a second group "b"
  std::string group_extra;              // more keys of each group, e.g. "agent: {enabled: true}"
  std::string scaling;                  // a group `scaling:` value instead of the queue policy
  std::string top_extra;                // more top-level keys; {dir} is the test's directory
  std::string ready_interval = "50ms";  // of the provisioner's readiness probe
};

// One `tide serve` process with its own config, log and replica marker.
class Serve {
 public:
  Serve(const std::string& name, const Options& o) {
    marker_ = "e2e-" + std::to_string(getpid()) + "-" + name;
    dir_ = fs::temp_directory_path() / ("tide_serve_" + std::to_string(getpid()) + "_" + name);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto group = [&](const std::string& group_name) {
      std::ostringstream g;
      g << "      - name: " << group_name << "\n        min_replicas: " << o.min_replicas
        << "\n        max_replicas: " << o.max_replicas
        << "\n        concurrency: " << o.concurrency
        << "\n        cold_start: 1s\n        provisioner:\n          kind: local\n"
        << "          command: [\"{tide}\", demo-model, --port, \"{port}\", --load-time, "
        << o.load_time << ", --concurrency, \"" << o.concurrency << "\", --service, \"" << o.service
        << "\", --token-rate, \"" << o.token_rate << "\", --model, " << marker_
        << "]\n          ready: {path: /health, interval: " << o.ready_interval << "}\n";
      if (!o.group_extra.empty()) g << "        " << o.group_extra << "\n";
      if (o.scaling.empty()) {
        g << "        scaling: {policy: queue, queue_size: " << o.queue_size
          << ", idle_timeout: " << o.idle_timeout << ", tick: 100ms}\n";
      } else {
        g << "        scaling: " << o.scaling << "\n";
      }
      return g.str();
    };
    std::string top = o.top_extra;
    for (size_t at = top.find("{dir}"); at != std::string::npos; at = top.find("{dir}"))
      top.replace(at, 5, dir_.string());
    std::ofstream(dir_ / "tide.yaml")
        << "server: {listen: 127.0.0.1:0, api: 127.0.0.1:0" << o.server_extra << "}\n"
        << (top.empty() ? "" : top + "\n")
        << "endpoints:\n  - name: chat\n    slo: {max_wait: 2s}\n    queue: {max_length: "
        << o.queue_max << ", timeout: " << o.queue_timeout << "}\n"
        << (o.routing.empty() ? "" : "    routing: " + o.routing + "\n") << "    groups:\n"
        << group("local") << (o.routing.empty() ? "" : group("b"));
    start();
  }

  std::string config_text() const {
    std::ifstream f(dir_ / "tide.yaml");
    return {(std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()};
  }

  ~Serve() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    for (int p : processes_with(marker_)) ::kill(p, SIGKILL);
    // On failure, show what tide said (its log, and any sanitizer report) before it is deleted.
    if (::testing::Test::HasFailure()) std::cerr << "tide serve log:\n" << log_text();
    fs::remove_all(dir_);
  }

  void start() {
    const std::string log = (dir_ / "serve.log").string();
    const std::string config = (dir_ / "tide.yaml").string();
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execl(TIDE_BIN, TIDE_BIN, "serve", "--config", config.c_str(), "--stop-grace", "2s",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    const std::regex ports(
        R"(gateway on http://127\.0\.0\.1:(\d+) , API on http://127\.0\.0\.1:(\d+))");
    ASSERT_TRUE(eventually(
        [&] {
          std::smatch m;
          const std::string text = log_text();
          if (!std::regex_search(text, m, ports)) return false;
          port_ = static_cast<uint16_t>(std::stoi(m[1]));
          api_port_ = static_cast<uint16_t>(std::stoi(m[2]));
          return true;
        },
        10))
        << log_text();
  }

  std::string log_text() const {
    std::ifstream f(dir_ / "serve.log");
    return {(std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()};
  }

  json endpoint() const {
    const HttpResponse r = http_get(api_port_, "/v1/endpoints/chat");
    if (r.status != 200) return json::object();
    return json::parse(r.body, nullptr, false);
  }
  int count(const char* field) const {
    const json e = endpoint();
    if (!e.contains("groups")) return -1;
    return e["groups"][0][field].get<int>();
  }

  // Sends SIGTERM and waits for the exit status (-1 if it did not exit in time).
  int terminate(double seconds = 15) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    const bool exited =
        eventually([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, seconds);
    if (!exited) return -1;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  void kill_hard() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  uint16_t port() const { return port_; }
  uint16_t api_port() const { return api_port_; }
  const std::string& marker() const { return marker_; }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
  std::string marker_;
  int pid_ = -1;
  uint16_t port_ = 0;
  uint16_t api_port_ = 0;
};

const std::string kCompletion = R"({"prompt": "hello", "max_tokens": 4})";

// Sends `n` requests at once; returns their responses.
std::vector<HttpResponse> burst(uint16_t port, int n, const std::string& body = kCompletion) {
  std::vector<HttpResponse> out(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back(
        [&, i] { out[static_cast<size_t>(i)] = http_post(port, "/chat/v1/completions", body); });
  for (auto& t : threads) t.join();
  return out;
}

TEST(Serve, ScalesFromZeroAnswersEveryRequestAndScalesBackToZero) {
  Serve s("scale", {});
  EXPECT_EQ(s.count("ready"), 0);
  EXPECT_TRUE(processes_with(s.marker()).empty());
  std::atomic<int> max_ready{0};
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done) {
      max_ready = std::max(max_ready.load(), s.count("ready"));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  const std::vector<HttpResponse> responses = burst(s.port(), 20);
  done = true;
  watcher.join();
  for (const auto& r : responses) {
    EXPECT_EQ(r.status, 200) << r.error << r.body;
    EXPECT_NE(r.body.find("text_completion"), std::string::npos);
  }
  // 20 requests, queue_size 2: the queue policy asks for 10, capped at max 4.
  EXPECT_EQ(max_ready.load(), 4);
  const json e = s.endpoint();
  EXPECT_EQ(e["groups"][0]["launches"].get<int>(), 4);
  EXPECT_FALSE(e["decisions"].empty());
  // Idle 1 s: back to zero, and the processes are gone.
  EXPECT_TRUE(eventually([&] { return s.count("ready") == 0 && s.count("draining") == 0; }, 10))
      << s.endpoint().dump();
  EXPECT_TRUE(eventually([&] { return processes_with(s.marker()).empty(); }, 5));
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Serve, StreamingDeliversTokensAsTheyAreGenerated) {
  Options o;
  o.min_replicas = 1;
  o.token_rate = "20";
  Serve s("stream", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 1; }, 10));
  const HttpResponse r = http_post(s.port(), "/chat/v1/completions",
                                   R"({"prompt": "hi", "max_tokens": 10, "stream": true})");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.headers.at("content-type"), "text/event-stream");
  EXPECT_NE(r.body.find("data: [DONE]"), std::string::npos);
  // 10 tokens at 20/s: pieces spread over ~0.45 s, not one lump at the end.
  ASSERT_GE(r.piece_times.size(), 5u) << r.body;
  EXPECT_GT(r.piece_times.back() - r.piece_times.front(), 0.3);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Serve, ReplicaKilledMidBurstLosesNoRequest) {
  Options o;
  o.min_replicas = 2;
  o.max_replicas = 2;
  o.concurrency = 1;
  o.service = "fixed:400ms";
  Serve s("kill", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 2; }, 10));
  std::vector<HttpResponse> responses;
  std::thread client([&] { responses = burst(s.port(), 8); });
  // Once requests are in service, kill one replica outright.
  ASSERT_TRUE(eventually([&] { return s.count("in_flight") == 2; }, 5));
  const std::vector<int> pids = processes_with(s.marker());
  ASSERT_EQ(pids.size(), 2u);
  ::kill(pids[0], SIGKILL);
  client.join();
  for (const auto& r : responses) EXPECT_EQ(r.status, 200) << r.error << r.body;
  // The control loop replaces it.
  EXPECT_TRUE(eventually([&] { return s.count("ready") == 2; }, 10));
  EXPECT_GE(s.endpoint()["groups"][0]["failures"].get<int>(), 1);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Serve, FullQueueAnswers429AndOverdueRequestAnswers503WithRetryAfter) {
  Options o;
  o.min_replicas = 1;
  o.max_replicas = 1;
  o.concurrency = 1;
  o.service = "fixed:2s";
  o.queue_max = 1;
  o.queue_timeout = "500ms";
  Serve s("limits", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 1; }, 10));
  HttpResponse busy, held;
  std::thread a([&] { busy = http_post(s.port(), "/chat/v1/completions", kCompletion); });
  ASSERT_TRUE(eventually([&] { return s.count("in_flight") == 1; }, 5));
  std::thread b([&] { held = http_post(s.port(), "/chat/v1/completions", kCompletion); });
  ASSERT_TRUE(eventually([&] { return s.count("queued") == 1; }, 5));
  const HttpResponse full = http_post(s.port(), "/chat/v1/completions", kCompletion);
  EXPECT_EQ(full.status, 429);
  EXPECT_EQ(full.headers.count("retry-after"), 1u);
  EXPECT_NE(full.body.find("queue_full"), std::string::npos);
  b.join();
  EXPECT_EQ(held.status, 503);
  EXPECT_EQ(held.headers.count("retry-after"), 1u);
  EXPECT_NE(held.body.find("queue_timeout"), std::string::npos);
  a.join();
  EXPECT_EQ(busy.status, 200);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Serve, ClientThatLeavesWhileHeldGivesUpItsPlace) {
  Options o;
  o.min_replicas = 1;
  o.max_replicas = 1;
  o.concurrency = 1;
  o.service = "fixed:3s";
  Serve s("leave", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 1; }, 10));
  const int busy =
      http_send_only(s.port(), make_request("POST", "/chat/v1/completions", kCompletion));
  ASSERT_TRUE(eventually([&] { return s.count("in_flight") == 1; }, 5));
  const int held =
      http_send_only(s.port(), make_request("POST", "/chat/v1/completions", kCompletion));
  ASSERT_TRUE(eventually([&] { return s.count("queued") == 1; }, 5));
  ::close(held);
  EXPECT_TRUE(eventually([&] { return s.count("queued") == 0; }, 2));
  // The one in service is abandoned too: its slot frees long before its 3 s are up.
  ::close(busy);
  EXPECT_TRUE(eventually([&] { return s.count("in_flight") == 0; }, 2));
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Serve, RejectsOversizedAndUnknownRequestsWithReasons) {
  Options o;
  o.server_extra = ", max_body_bytes: 1000, max_header_bytes: 2048";
  Serve s("reject", o);
  const HttpResponse big = http_post(s.port(), "/chat/v1/completions", std::string(5000, 'x'));
  EXPECT_EQ(big.status, 413);
  EXPECT_NE(big.body.find("max_body_bytes"), std::string::npos);
  HttpRequest big_headers = make_request("GET", "/chat/");
  big_headers.headers.emplace_back("X-Big", std::string(4000, 'y'));
  const HttpResponse headers = http(s.port(), big_headers);
  EXPECT_EQ(headers.status, 431);
  const HttpResponse unknown = http_get(s.port(), "/nope/v1/models");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find("chat"), std::string::npos);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Serve, SlowClientGets408AfterTheReadTimeoutAndAnIdleOneIsClosed) {
  Options o;
  o.server_extra = ", read_timeout: 300ms, idle_timeout: 500ms";
  Serve s("slow", o);
  // Half a request head, then nothing: 408 once read_timeout has passed.
  const int slow = http_connect(s.port());
  ASSERT_GE(slow, 0);
  const std::string part = "POST /chat/v1/completions HTTP/1.1\r\nHost: x\r\n";
  ASSERT_EQ(::send(slow, part.data(), part.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(part.size()));
  const auto t0 = SteadyTime::now();
  const std::string answer = read_until_close(slow, 5);
  const double took = std::chrono::duration<double>(SteadyTime::now() - t0).count();
  ::close(slow);
  EXPECT_NE(answer.find("HTTP/1.1 408"), std::string::npos) << answer;
  EXPECT_NE(answer.find("read_timeout"), std::string::npos) << answer;
  EXPECT_LT(took, 3.0);
  // A connection that never sends anything is closed after idle_timeout, without an answer.
  const int idle = http_connect(s.port());
  ASSERT_GE(idle, 0);
  EXPECT_EQ(read_until_close(idle, 5), "");
  ::close(idle);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Serve, SplitHoldsItsWeightsAndKeepsAStickyClientOnOneGroup) {
  Options o;
  o.min_replicas = 1;
  o.concurrency = 4;
  o.service = "fixed:10ms";
  o.routing = "{mode: split, weights: {local: 3, b: 1}, sticky_header: X-User}";
  Serve s("split", o);
  ASSERT_TRUE(eventually(
      [&] {
        const json e = s.endpoint();
        return e.contains("groups") && e["groups"][0]["ready"] == 1 && e["groups"][1]["ready"] == 1;
      },
      10));
  int to_b = 0;
  for (int i = 0; i < 40; ++i) {
    const HttpResponse r = http_post(s.port(), "/chat/v1/completions", kCompletion);
    ASSERT_EQ(r.status, 200) << r.error;
    to_b += r.headers.at("tide-group") == "b" ? 1 : 0;
  }
  EXPECT_EQ(to_b, 10);  // smooth weighted round robin: exactly a quarter
  std::map<std::string, std::string> group_of;
  for (int round = 0; round < 3; ++round) {
    for (int user = 0; user < 8; ++user) {
      HttpRequest req = make_request("POST", "/chat/v1/completions", kCompletion);
      req.headers.emplace_back("X-User", "user-" + std::to_string(user));
      const HttpResponse r = http(s.port(), req);
      ASSERT_EQ(r.status, 200) << r.error;
      const std::string g = r.headers.at("tide-group");
      auto [it, fresh] = group_of.emplace("user-" + std::to_string(user), g);
      EXPECT_EQ(it->second, g) << "user-" << user << " moved";
    }
  }
  const json e = s.endpoint();
  EXPECT_EQ(e["routing"]["mode"], "split");
  EXPECT_EQ(e["groups"][0]["routed"].get<int>() + e["groups"][1]["routed"].get<int>(), 64);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Serve, OverflowSpillsOnlyWhileThePrimaryCannotStartInTime) {
  Options o;
  o.min_replicas = 1;
  o.max_replicas = 1;
  o.concurrency = 1;
  o.service = "fixed:1s";
  o.routing = "{mode: overflow, order: [local, b]}";
  Serve s("overflow", o);
  ASSERT_TRUE(eventually(
      [&] {
        const json e = s.endpoint();
        return e.contains("groups") && e["groups"][0]["ready"] == 1 && e["groups"][1]["ready"] == 1;
      },
      10));
  auto in_flight = [&](int g) { return s.endpoint()["groups"][g]["in_flight"].get<int>(); };
  HttpResponse r1, r3;
  std::thread t1([&] { r1 = http_post(s.port(), "/chat/v1/completions", kCompletion); });
  ASSERT_TRUE(eventually([&] { return in_flight(0) == 1; }, 5));
  // The primary is busy and has no service time to promise a start by: spill.
  const HttpResponse r2 = http_post(s.port(), "/chat/v1/completions", kCompletion);
  t1.join();
  EXPECT_EQ(r1.headers["tide-group"], "local");
  EXPECT_EQ(r2.status, 200);
  EXPECT_EQ(r2.headers.at("tide-group"), "b");
  // Now it knows a request takes 1 s: one in service, one slot, max_wait 2 s: wait for it.
  std::thread t3([&] { r3 = http_post(s.port(), "/chat/v1/completions", kCompletion); });
  ASSERT_TRUE(eventually([&] { return in_flight(0) == 1; }, 5));
  const HttpResponse r4 = http_post(s.port(), "/chat/v1/completions", kCompletion);
  t3.join();
  EXPECT_EQ(r4.status, 200);
  EXPECT_EQ(r4.headers.at("tide-group"), "local");
  const json e = s.endpoint();
  EXPECT_EQ(e["groups"][0]["spilled"], 1);
  EXPECT_EQ(e["groups"][1]["overflow_in"], 1);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Serve, NoReplicaOutlivesTideEvenWhenItIsKilled) {
  Options o;
  o.min_replicas = 2;
  Serve s("sigkill", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 2; }, 10));
  ASSERT_EQ(processes_with(s.marker()).size(), 2u);
  s.kill_hard();
  EXPECT_TRUE(eventually([&] { return processes_with(s.marker()).empty(); }, 5));
}

// ---- tide agent and two-step routing ----------------------------------------------------------

Options agent_options() {
  Options o;
  o.group_extra = "agent: {enabled: true, report_interval: 200ms}";
  o.top_extra = "route: {token_ttl: 30s, key_file: {dir}/route.key}";
  return o;
}

struct Route {
  int status = 0;
  uint16_t port = 0;  // of the replica's agent
  std::string token;
  json body;
  HttpResponse response;
};

Route route(const Serve& s, const std::string& endpoint = "chat") {
  Route r;
  r.response = http_post(s.api_port(), "/v1/route", json{{"endpoint", endpoint}}.dump());
  r.status = r.response.status;
  r.body = json::parse(r.response.body, nullptr, false);
  if (r.status == 200) {
    const std::string url = r.body["url"];
    r.port = static_cast<uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
    r.token = r.body["token"];
  }
  return r;
}

HttpResponse direct(uint16_t port, const std::string& token,
                    const std::string& body = kCompletion) {
  HttpRequest req = make_request("POST", "/v1/completions", body);
  if (!token.empty()) req.headers.emplace_back("Tide-Route-Token", token);
  return http(port, req);
}

std::string error_type(const HttpResponse& r) {
  const json j = json::parse(r.body, nullptr, false);
  return j.is_object() && j.contains("error") ? j["error"].value("type", "") : "";
}

TEST(TwoStep, RouteGivesAUrlAndATokenTheAgentServesOnceAndRefusesOthers) {
  Options o = agent_options();
  o.min_replicas = 1;
  o.ready_interval = "30s";  // the probe would take 30 s: readiness must come from the agent's push
  Serve s("route", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 1; }, 10));
  EXPECT_NE(s.log_text().find("pushed by its agent"), std::string::npos);

  const Route r = route(s);
  ASSERT_EQ(r.status, 200) << r.response.body;
  EXPECT_TRUE(r.body.contains("expires_at"));
  EXPECT_EQ(r.body["header"], "Tide-Route-Token");
  const HttpResponse ok = direct(r.port, r.token);
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_NE(ok.body.find("text_completion"), std::string::npos);

  const HttpResponse again = direct(r.port, r.token);
  EXPECT_EQ(again.status, 403);
  EXPECT_EQ(error_type(again), "replayed");
  const HttpResponse none = direct(r.port, "");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(error_type(none), "missing_token");
  std::string forged = route(s).token;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  const HttpResponse bad = direct(r.port, forged);
  EXPECT_EQ(bad.status, 401);
  EXPECT_EQ(error_type(bad), "bad_signature");

  // The keys agents trust.
  const json keys = json::parse(http_get(s.api_port(), "/v1/pubkey").body);
  EXPECT_EQ(keys["algorithm"], "Ed25519");
  ASSERT_EQ(keys["keys"].size(), 1u);
  // The signing key is kept on disk, readable by its owner only.
  EXPECT_EQ(fs::status(s.dir() / "route.key").permissions(),
            fs::perms::owner_read | fs::perms::owner_write);

  // The control plane saw route calls only, never the payload.
  json e = s.endpoint();
  EXPECT_EQ(e["requests"], 0);
  EXPECT_EQ(e["two_step"]["route_calls"], 2);
  EXPECT_EQ(e["two_step"]["routed"], 2);
  EXPECT_EQ(e["groups"][0]["direct_routes"], 2);

  // The gateway still reaches the replica through its agent (admitted by the replica secret).
  const HttpResponse via_gateway = http_post(s.port(), "/chat/v1/completions", kCompletion);
  EXPECT_EQ(via_gateway.status, 200) << via_gateway.body;
  EXPECT_EQ(s.endpoint()["requests"], 1);
  const json agent = json::parse(http_get(r.port, "/tide/status").body);
  EXPECT_EQ(agent["admitted"]["token"], 1);
  EXPECT_EQ(agent["admitted"]["gateway"], 1);
  EXPECT_EQ(agent["rejected"]["replayed"], 1);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(TwoStep, RouteWithNoReadyReplicaAnswersTheGroupStateAndStartsAScaleFromZero) {
  Options o = agent_options();
  o.load_time = "1s";
  Serve s("route0", o);
  EXPECT_EQ(s.count("ready"), 0);
  const Route first = route(s);
  ASSERT_EQ(first.status, 503) << first.response.body;
  ASSERT_EQ(first.response.headers.count("retry-after"), 1u);
  EXPECT_GE(std::stoi(first.response.headers.at("retry-after")), 1);
  EXPECT_EQ(first.body["error"]["type"], "no_ready_replica");
  EXPECT_EQ(first.body["state"]["group"], "local");
  EXPECT_EQ(first.body["state"]["ready"], 0);
  EXPECT_GE(first.body["state"]["queued"].get<int>(), 1);
  // The waiting client is demand: a replica starts, and the client gets one once it is ready.
  EXPECT_TRUE(eventually([&] { return s.count("starting") + s.count("ready") >= 1; }, 5));
  Route later;
  EXPECT_TRUE(eventually(
      [&] {
        later = route(s);
        return later.status == 200;
      },
      15));
  EXPECT_EQ(direct(later.port, later.token).status, 200);
  EXPECT_GE(s.endpoint()["two_step"]["no_replica"].get<int>(), 1);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(TwoStep, ScalingFollowsTheLoadTheAgentsReport) {
  Options o = agent_options();
  o.min_replicas = 1;
  o.max_replicas = 3;
  o.concurrency = 2;
  o.service = "fixed:1s";
  o.scaling =
      "{policy: target, metric: load, target: 0.5, sync_period: 1s, metric_window: 2s, tick: "
      "200ms}";
  Serve s("load", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 1; }, 10));
  // Four clients keep sending straight to the replicas: twice what 2 slots can take.
  std::atomic<bool> done{false};
  std::atomic<int> served{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i)
    clients.emplace_back([&] {
      while (!done) {
        const Route r = route(s);
        if (r.status == 200 && direct(r.port, r.token).status == 200) ++served;
        if (r.status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  const bool scaled = eventually([&] { return s.count("ready") >= 2; }, 20);
  done = true;
  for (auto& t : clients) t.join();
  ASSERT_TRUE(scaled) << s.endpoint().dump(2);
  EXPECT_GT(served.load(), 0);
  const json e = s.endpoint();
  // Nothing went through the gateway: the decision can only have come from the reports.
  EXPECT_EQ(e["requests"], 0);
  bool load_decision = false;
  for (const json& d : e["decisions"])
    load_decision = load_decision ||
                    (d["to"].get<int>() >= 2 && d["reason"].get<std::string>().find("load ") == 0);
  EXPECT_TRUE(load_decision) << e["decisions"].dump(2);
  EXPECT_TRUE(e["groups"][0]["replicas"][0].contains("report"));
  EXPECT_EQ(s.terminate(), 0);
}

TEST(TwoStep, ReportsThatFailValidationOrAuthenticationAreRefusedWithAReasonAndCounted) {
  Options o = agent_options();
  o.min_replicas = 1;
  Serve s("reports", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 1; }, 10));
  HttpRequest bad = make_request("POST", "/v1/agent/report", R"({"endpoint": "chat"})");
  bad.headers.emplace_back("Authorization", "Bearer 0123456789abcdef0123456789abcdef");
  const HttpResponse invalid = http(s.api_port(), bad);
  EXPECT_EQ(invalid.status, 400);
  EXPECT_EQ(error_type(invalid), "invalid_report");
  EXPECT_NE(invalid.body.find("replica_id: required"), std::string::npos) << invalid.body;
  // A well-formed report for replica 1, with a secret that is not replica 1's.
  const json report = {
      {"endpoint", "chat"}, {"replica_id", 1},     {"state", "ready"}, {"address", "127.0.0.1:1"},
      {"seq", 1},           {"slots", 2},          {"interval_s", 1},  {"in_service", 0},
      {"queued", 0},        {"avg_in_service", 0}, {"avg_queued", 0},  {"busy", 0},
      {"arrivals", 0},      {"completed", 0},      {"work", 0},        {"throughput", 0},
      {"capacity", 0},      {"demand", 0},         {"load", 0}};
  HttpRequest forged = make_request("POST", "/v1/agent/report", report.dump());
  forged.headers.emplace_back("Authorization", "Bearer 0123456789abcdef0123456789abcdef");
  const HttpResponse unauthorized = http(s.api_port(), forged);
  EXPECT_EQ(unauthorized.status, 401);
  EXPECT_EQ(error_type(unauthorized), "unauthorized");
  const json agents = json::parse(http_get(s.api_port(), "/v1/agents").body);
  EXPECT_EQ(agents["reports"]["rejected"]["invalid_report"], 1);
  EXPECT_EQ(agents["reports"]["rejected"]["unauthorized"], 1);
  EXPECT_GE(agents["reports"]["accepted"].get<int>(), 1);  // the real agent's
  EXPECT_EQ(s.terminate(), 0);
}

}  // namespace
}  // namespace tide::test
