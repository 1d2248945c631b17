// End to end: the real `tide serve` binary, real `tide demo-model` replicas it launches as
// processes, real HTTP on 127.0.0.1. Conditions are awaited by polling with a deadline.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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
  std::string server_extra;        // more keys of `server:`
  std::string state = "state.db";  // state.path, relative to the test's directory, or :memory:
  std::string routing;             // an endpoint `routing:` value; with it, a second group "b"
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
        << "]\n          ready: {path: /health, interval: 50ms}\n"
        << "        scaling: {policy: queue, queue_size: " << o.queue_size
        << ", idle_timeout: " << o.idle_timeout << ", tick: 100ms}\n";
      return g.str();
    };
    const std::string state = o.state == ":memory:" ? o.state : (dir_ / o.state).string();
    std::ofstream(dir_ / "tide.yaml")
        << "server: {listen: 127.0.0.1:0, api: 127.0.0.1:0, api_token: " << kToken << o.server_extra
        << "}\n"
        << "state: {path: \"" << state << "\", sample_interval: 200ms}\n"
        << "endpoints:\n  - name: chat\n    slo: {max_wait: 2s}\n    queue: {max_length: "
        << o.queue_max << ", timeout: " << o.queue_timeout << "}\n"
        << (o.routing.empty() ? "" : "    routing: " + o.routing + "\n") << "    groups:\n"
        << group("local") << (o.routing.empty() ? "" : group("b"));
    start();
  }

  void write_config(const std::string& text) const { std::ofstream(dir_ / "tide.yaml") << text; }
  const fs::path& dir() const { return dir_; }

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
    const size_t log_start = log_text().size();  // a restart appends to the same log
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
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
          const std::string all = log_text();
          const std::string text = all.size() > log_start ? all.substr(log_start) : "";
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

  static constexpr const char* kToken = "e2e-test-token-0123456789";

  static HttpRequest authorized(const std::string& method, const std::string& target) {
    HttpRequest req = make_request(method, target);
    req.headers.emplace_back("Authorization", std::string("Bearer ") + kToken);
    return req;
  }

  // A request to the admin API, with the token unless `token` says otherwise.
  HttpResponse api(const std::string& method, const std::string& target,
                   const std::string& body = {}, const char* token = kToken) const {
    HttpRequest req = make_request(method, target, body);
    if (token != nullptr) req.headers.emplace_back("Authorization", std::string("Bearer ") + token);
    return http(api_port_, req);
  }

  json endpoint() const {
    const HttpResponse r = api("GET", "/v1/endpoints/chat");
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

 private:
  fs::path dir_;
  std::string marker_;
  int pid_ = -1;
  uint16_t port_ = 0;
  uint16_t api_port_ = 0;
};

// `tide ARGS` as a process (stdout and stderr together) with `env` ("K=V ...") added to this
// environment without TIDE_API and TIDE_API_TOKEN: its exit status and output.
struct CliRun {
  int status = -1;
  std::string out;
};
CliRun tide_cli(const std::string& args, const std::string& env = "") {
  const std::string cmd =
      "env -u TIDE_API -u TIDE_API_TOKEN " + env + " " + TIDE_BIN + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  CliRun r;
  if (p == nullptr) return r;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

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
  // Each outcome is counted for the group, in the API and in /metrics.
  const json outcomes = s.endpoint()["groups"][0]["stats"]["outcomes"];
  EXPECT_EQ(outcomes["ok"], 1);
  EXPECT_EQ(outcomes["429"], 1);
  EXPECT_EQ(outcomes["503"], 1);
  const std::string metrics = s.api("GET", "/metrics").body;
  EXPECT_NE(metrics.find(R"(tide_requests_total{endpoint="chat",group="local",outcome="429"} 1)"),
            std::string::npos);
  EXPECT_NE(metrics.find(R"(tide_requests_total{endpoint="chat",group="local",outcome="503"} 1)"),
            std::string::npos);
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

TEST(Serve, WithoutAStateFileNoReplicaOutlivesTideEvenWhenItIsKilled) {
  Options o;
  o.min_replicas = 2;
  o.state = ":memory:";
  Serve s("sigkill", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 2; }, 10));
  ASSERT_EQ(processes_with(s.marker()).size(), 2u);
  s.kill_hard();
  EXPECT_TRUE(eventually([&] { return processes_with(s.marker()).empty(); }, 5));
}

std::vector<uint64_t> replica_ids(const json& endpoint) {
  std::vector<uint64_t> ids;
  if (!endpoint.contains("groups")) return ids;
  for (const auto& g : endpoint["groups"]) {
    for (const auto& r : g["replicas"]) ids.push_back(r["id"].get<uint64_t>());
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::string fmt_history(double from, double to, double step) {
  std::ostringstream t;
  t.precision(17);
  t << "/v1/endpoints/chat/history?from=" << from << "&to=" << to << "&step=" << step;
  return t.str();
}

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TEST(Serve, AfterSigkillUnderLoadARestartAdoptsTheSameReplicasAndHistoryGoesOn) {
  Options o;
  o.min_replicas = 2;
  o.idle_timeout = "30s";
  Serve s("restart", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 2; }, 10));
  const std::vector<uint64_t> ids = replica_ids(s.endpoint());
  auto pids = processes_with(s.marker());
  std::sort(pids.begin(), pids.end());
  ASSERT_EQ(pids.size(), 2u);
  const double before = now_unix();

  // Under load: requests in flight when tide is killed.
  std::thread load([&] { burst(s.port(), 8); });
  ASSERT_TRUE(eventually([&] { return s.count("in_flight") > 0; }, 5));
  s.kill_hard();
  load.join();  // requests in flight at the kill are cut: a held queue is not persistent
  auto survivors = processes_with(s.marker());
  std::sort(survivors.begin(), survivors.end());
  EXPECT_EQ(survivors, pids) << "replicas outlive a crash of tide";

  s.start();
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 2; }, 10)) << s.endpoint().dump(2);
  EXPECT_EQ(replica_ids(s.endpoint()), ids) << "the same replicas, adopted";
  auto after = processes_with(s.marker());
  std::sort(after.begin(), after.end());
  EXPECT_EQ(after, pids) << "no duplicate launched, none orphaned";
  EXPECT_NE(s.log_text().find("adopting replica chat/local/"), std::string::npos);
  for (const auto& r : burst(s.port(), 4)) EXPECT_EQ(r.status, 200) << r.error;

  // History spans both runs.
  ASSERT_TRUE(eventually(
      [&] {
        const HttpResponse h = s.api("GET", fmt_history(before - 5, now_unix() + 1, 0.2));
        const json j = json::parse(h.body, nullptr, false);
        if (h.status != 200 || j["groups"].empty()) return false;
        const auto& pts = j["groups"][0]["points"];
        return pts.size() >= 3 && pts.front()["t"].get<double>() < before &&
               pts.back()["t"].get<double>() > before + 0.5 && pts.back()["ready"] == 2;
      },
      5));
  const json d = json::parse(s.api("GET", "/v1/endpoints/chat/decisions?from=0").body);
  ASSERT_FALSE(d["decisions"].empty());
  EXPECT_EQ(d["decisions"][0]["to"], 2) << "the first run's decision to reach min_replicas";

  // A clean stop stops them all, and the next start has nothing to adopt.
  EXPECT_EQ(s.terminate(), 0);
  EXPECT_TRUE(eventually([&] { return processes_with(s.marker()).empty(); }, 5));
}

TEST(Serve, ARestartStopsReplicasOfAGroupNoLongerConfigured) {
  Options o;
  o.min_replicas = 1;
  o.idle_timeout = "30s";
  Serve s("orphans", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 1; }, 10));
  const auto old = processes_with(s.marker());
  ASSERT_EQ(old.size(), 1u);
  s.kill_hard();
  std::string text = s.config_text();
  text.replace(text.find("- name: local"), 13, "- name: fresh");
  s.write_config(text);
  s.start();
  EXPECT_TRUE(eventually([&] { return ::kill(old[0], 0) != 0; }, 10)) << s.log_text();
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 1; }, 10));
  EXPECT_NE(s.log_text().find("no longer in the configuration"), std::string::npos);
  EXPECT_EQ(s.terminate(), 0);
}

// The endpoint entry of the config file as a document of its own (the body of a PUT).
std::string endpoint_entry(const std::string& config) {
  std::istringstream in(config.substr(config.find("  - name: chat")));
  std::string line, out;
  while (std::getline(in, line)) out += line.substr(std::min<size_t>(4, line.size())) + "\n";
  return out;
}

TEST(Serve, PutChangesWeightsMidRunLosingNothingAndTheChangeSurvivesARestart) {
  Options o;
  o.min_replicas = 1;
  o.idle_timeout = "30s";
  o.routing = "{mode: split, weights: {local: 1, b: 0}}";
  o.service = "fixed:100ms";
  Serve s("put", o);
  ASSERT_TRUE(eventually(
      [&] {
        const json e = s.endpoint();
        return e.contains("groups") && e["groups"][0]["ready"] == 1 && e["groups"][1]["ready"] == 1;
      },
      10));
  const std::string old_body = endpoint_entry(s.config_text());
  std::string new_body = old_body;
  new_body.replace(new_body.find("weights: {local: 1, b: 0}"), 25, "weights: {local: 0, b: 1}");

  // A steady stream of requests while the weights change.
  std::vector<std::pair<int, std::string>> answers(40);
  std::atomic<int> sent{0};
  std::thread load([&] {
    for (size_t i = 0; i < answers.size(); ++i) {
      const HttpResponse r = http_post(s.port(), "/chat/v1/completions", kCompletion);
      answers[i] = {r.status, r.headers.count("tide-group") ? r.headers.at("tide-group") : ""};
      sent = static_cast<int>(i) + 1;
    }
  });
  ASSERT_TRUE(eventually([&] { return sent >= 10; }, 20));
  const HttpResponse put = s.api("PUT", "/v1/endpoints/chat", new_body);
  const int changed_at = sent;
  load.join();
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(json::parse(put.body)["routing"]["weights"]["b"], 1.0);
  for (size_t i = 0; i < answers.size(); ++i) {
    EXPECT_EQ(answers[i].first, 200) << "request " << i << " was lost";
    if (static_cast<int>(i) < changed_at - 1) {
      EXPECT_EQ(answers[i].second, "local") << i;
    }
    if (static_cast<int>(i) > changed_at) {
      EXPECT_EQ(answers[i].second, "b") << i;
    }
  }

  // Bad changes are refused with the field and the reason, and change nothing.
  std::string bad = old_body;
  bad.replace(bad.find("max_replicas: 4"), 15, "max_replicas: -1");
  const HttpResponse invalid = s.api("PUT", "/v1/endpoints/chat", bad);
  EXPECT_EQ(invalid.status, 400);
  EXPECT_NE(invalid.body.find("body.groups[0].max_replicas"), std::string::npos) << invalid.body;
  std::string renamed = old_body;
  renamed.replace(renamed.find("name: chat"), 10, "name: talk");
  EXPECT_EQ(s.api("PUT", "/v1/endpoints/chat", renamed).status, 400);
  std::string one_group = new_body.substr(0, new_body.find("  - name: b"));
  const std::string routing_line = "routing: {mode: split, weights: {local: 0, b: 1}}\n";
  one_group.replace(one_group.find(routing_line), routing_line.size(), "");
  const HttpResponse fewer = s.api("PUT", "/v1/endpoints/chat", one_group);
  EXPECT_EQ(fewer.status, 409) << fewer.body;
  EXPECT_NE(fewer.body.find("groups: all 2 current groups must stay"), std::string::npos)
      << fewer.body;
  EXPECT_EQ(s.api("PUT", "/v1/endpoints/chat", new_body, nullptr).status, 401);

  // The change outlives a restart while the file stays as it was.
  EXPECT_EQ(s.terminate(), 0);
  s.start();
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 1; }, 10));
  const HttpResponse after = http_post(s.port(), "/chat/v1/completions", kCompletion);
  EXPECT_EQ(after.status, 200);
  EXPECT_EQ(after.headers.at("tide-group"), "b");
  EXPECT_NE(s.log_text().find("running the configuration set through the API"), std::string::npos);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Serve, TheAdminApiNeedsTheTokenAndValidatesQueries) {
  Serve s("auth", {});
  EXPECT_EQ(s.api("GET", "/healthz", "", nullptr).status, 200);
  const HttpResponse none = s.api("GET", "/v1/endpoints", "", nullptr);
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(none.body.find("Authorization: Bearer"), std::string::npos) << none.body;
  EXPECT_EQ(s.api("GET", "/v1/endpoints", "", "wrong-token-0123456789").status, 401);
  EXPECT_EQ(s.api("GET", "/v1/endpoints").status, 200);
  const HttpResponse bad = s.api("GET", "/v1/endpoints/chat/history?from=yesterday");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("from: expected Unix seconds"), std::string::npos) << bad.body;
  EXPECT_EQ(s.api("GET", "/v1/endpoints/chat/history?step=0").status, 400);
  EXPECT_EQ(s.api("GET", "/v1/endpoints/chat/decisions?limit=-1").status, 400);
  EXPECT_EQ(s.api("GET", "/v1/endpoints/nope/history").status, 404);
  EXPECT_EQ(s.terminate(), 0);

  Options open;
  open.server_extra = ", public_read: true";
  Serve p("public", open);
  EXPECT_EQ(p.api("GET", "/v1/endpoints/chat", "", nullptr).status, 200);
  EXPECT_EQ(p.api("PUT", "/v1/endpoints/chat", "{}", nullptr).status, 401)
      << "changes always need the token";
  EXPECT_EQ(p.terminate(), 0);
}

// The value of the first sample of /metrics text whose line starts with `series`, or -1.
double metric(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(Serve, MetricsShowLiveNumbersOfARealRun) {
  Serve s("metrics", {});
  for (const auto& r : burst(s.port(), 6)) EXPECT_EQ(r.status, 200) << r.error << r.body;
  const HttpResponse m = s.api("GET", "/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const std::string& t = m.body;
  const std::string g = R"(endpoint="chat",group="local")";
  EXPECT_EQ(metric(t, "tide_requests_total{" + g + R"(,outcome="ok"})"), 6);
  EXPECT_EQ(metric(t, "tide_request_duration_seconds_count{" + g + "}"), 6);
  // 500 ms of service after a cold start: every request took more than 0.5 s, none over 30 s.
  EXPECT_EQ(metric(t, "tide_request_duration_seconds_bucket{" + g + R"(,le="0.5"})"), 0);
  EXPECT_EQ(metric(t, "tide_request_duration_seconds_bucket{" + g + R"(,le="30"})"), 6);
  EXPECT_EQ(metric(t, "tide_queue_wait_seconds_count{" + g + "}"), 6);
  EXPECT_GE(metric(t, "tide_cold_start_seconds_count{" + g + "}"), 1);
  EXPECT_GT(metric(t, "tide_cold_start_seconds_sum{" + g + "}"), 0.3);  // --load-time 300ms
  EXPECT_GE(metric(t, "tide_scaling_decisions_total{" + g + R"(,direction="up"})"), 1);
  EXPECT_GT(metric(t, "tide_replica_seconds_total{" + g + "}"), 0);
  EXPECT_EQ(metric(t, "tide_gateway_requests_total"), 6);
  // The same figures per group in the API, for comparing groups.
  const json stats = s.endpoint()["groups"][0]["stats"];
  EXPECT_EQ(stats["outcomes"]["ok"], 6);
  EXPECT_GT(stats["latency_s"]["p50"].get<double>(), 0.5);
  EXPECT_GT(stats["requests_per_replica_hour"].get<double>(), 0);
  EXPECT_GE(stats["cold_start_s"]["count"].get<int>(), 1);
  EXPECT_EQ(s.terminate(), 0);
}

// Reads from `fd` until `pred(text so far)` holds, the peer closes, or `seconds` pass.
std::string read_until(int fd, const std::function<bool(const std::string&)>& pred,
                       double seconds) {
  std::string text;
  const auto deadline = SteadyTime::now() + std::chrono::duration_cast<SteadyTime::duration>(
                                                std::chrono::duration<double>(seconds));
  char buf[4096];
  while (!pred(text) && SteadyTime::now() < deadline) {
    timeval tv{0, 50000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) break;
    if (n > 0) text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

size_t occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(Serve, EventStreamSendsASnapshotEverySecondAndDecisionsAsTheyHappen) {
  Serve s("events", {});
  EXPECT_EQ(s.api("GET", "/v1/events?endpoint=nope").status, 404);
  const int fd = http_send_only(s.api_port(), s.authorized("GET", "/v1/events?endpoint=chat"));
  ASSERT_GE(fd, 0);
  std::string text = read_until(
      fd, [](const std::string& t) { return occurrences(t, "event: endpoint") >= 2; }, 5);
  EXPECT_NE(text.find("Content-Type: text/event-stream"), std::string::npos) << text;
  EXPECT_NE(text.find("Transfer-Encoding: chunked"), std::string::npos) << text;
  EXPECT_EQ(occurrences(text, "event: endpoint"), 2u) << text;
  // A burst makes the endpoint scale up: the decision arrives on the stream within a second.
  std::thread load([&] { burst(s.port(), 4); });
  text += read_until(
      fd, [](const std::string& t) { return t.find("event: decision") != std::string::npos; }, 5);
  load.join();
  const size_t at = text.find("event: decision\ndata: ");
  ASSERT_NE(at, std::string::npos) << text;
  const json d = json::parse(text.substr(at + 22, text.find('\n', at + 22) - at - 22));
  EXPECT_EQ(d["endpoint"], "chat");
  EXPECT_GT(d["to"].get<int>(), d["from"].get<int>());
  // The snapshots carry the live figures the dashboard charts.
  const size_t last = text.rfind("event: endpoint\ndata: ");
  ASSERT_NE(last, std::string::npos);
  const json snap = json::parse(text.substr(last + 22, text.find('\n', last + 22) - last - 22));
  EXPECT_EQ(snap["name"], "chat");
  EXPECT_TRUE(snap["recent"][0].contains("latency_p95_s"));
  EXPECT_TRUE(snap["groups"][0]["stats"].contains("outcomes"));
  // The client leaves: the server goes on serving, and a new stream starts at once.
  ::close(fd);
  EXPECT_EQ(http_get(s.api_port(), "/healthz").status, 200);
  // Shutdown with a stream open does not wait for it: the stream ends, tide exits 0.
  const int fd2 = http_send_only(s.api_port(), s.authorized("GET", "/v1/events"));
  ASSERT_GE(fd2, 0);
  read_until(
      fd2, [](const std::string& t) { return t.find("event: endpoint") != t.npos; }, 5);
  const auto before = SteadyTime::now();
  EXPECT_EQ(s.terminate(5), 0);
  EXPECT_LT(std::chrono::duration<double>(SteadyTime::now() - before).count(), 5.0);
  const std::string tail = read_until(
      fd2, [](const std::string&) { return false; }, 3);
  ::close(fd2);
}

TEST(Serve, ApiListenerServesTheDashboard) {
  Serve s("web", {});
  const HttpResponse index = http_get(s.api_port(), "/");
#ifdef TIDE_WEB_BUILT
  ASSERT_EQ(index.status, 200) << index.body;
  EXPECT_EQ(index.headers.at("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(index.body.find("/ui/app.js"), std::string::npos);
  const HttpResponse app = http_get(s.api_port(), "/ui/app.js");
  EXPECT_EQ(app.status, 200);
  EXPECT_GT(app.body.size(), 10000u);  // uPlot is bundled in: nothing loads from elsewhere
  EXPECT_EQ(http_get(s.api_port(), "/ui/index.html").body, index.body);
#else
  EXPECT_EQ(index.status, 404);
  EXPECT_NE(index.body.find("not built"), std::string::npos);
#endif
  EXPECT_EQ(http_get(s.api_port(), "/ui/../../etc/passwd").status, 404);
  EXPECT_EQ(http_get(s.api_port(), "/ui/nothing.js").status, 404);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Serve, StatusAndHistoryCommandsShowTheLiveEndpointAndSayWhatIsWrong) {
  Options o;
  o.idle_timeout = "60s";  // the replicas stay while the commands look at them
  Serve s("cli", o);
  for (const auto& r : burst(s.port(), 8)) EXPECT_EQ(r.status, 200) << r.error << r.body;
  // Every replica ready, and samples of them in the history.
  ASSERT_TRUE(eventually(
      [&] {
        if (s.count("starting") != 0 || s.count("ready") != s.count("desired")) return false;
        const HttpResponse h = s.api("GET", "/v1/endpoints/chat/history?step=0.2");
        const json j = json::parse(h.body, nullptr, false);
        if (h.status != 200 || !j.contains("groups") || j["groups"].empty()) return false;
        const json& last = j["groups"][0]["points"].back();
        return last["ready"].get<int>() == s.count("ready");
      },
      15))
      << s.endpoint().dump();
  const json e = s.endpoint();
  const json& group = e["groups"][0];
  const int ready = group["ready"].get<int>();
  ASSERT_GT(ready, 1);
  const std::string api = "--api http://127.0.0.1:" + std::to_string(s.api_port());
  const std::string token = std::string(" --token ") + Serve::kToken;

  const CliRun status = tide_cli("status " + api + token);
  ASSERT_EQ(status.status, 0) << status.out;
  EXPECT_TRUE(status.out.starts_with("chat  routing split  queued 0 of 1000  requests 8  "))
      << status.out;
  // The group's row: desired, ready, starting, draining, min/max.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(status.out, m,
                                std::regex(R"(\n  local +(\d+) +(\d+) +(\d+) +(\d+) +0/4 )")))
      << status.out;
  EXPECT_EQ(std::stoi(m[1]), group["desired"].get<int>()) << status.out;
  EXPECT_EQ(std::stoi(m[2]), ready) << status.out;
  EXPECT_EQ(std::stoi(m[3]), 0) << status.out;
  // One row per replica, with its name, state and address.
  int ready_rows = 0;
  for (const json& r : group["replicas"]) {
    const std::string row = "\n  " + r["name"].get<std::string>() + "  ";
    const size_t at = status.out.find(row);
    ASSERT_NE(at, std::string::npos) << row << status.out;
    const std::string line = status.out.substr(at + 1, status.out.find('\n', at + 1) - at - 1);
    EXPECT_NE(line.find(r["address"].get<std::string>()), std::string::npos) << line;
    ready_rows += line.find("  ready  ") != std::string::npos;
  }
  EXPECT_EQ(ready_rows, ready) << status.out;

  // The address and token from the environment; --json is the API's own JSON.
  const CliRun as_json =
      tide_cli("status chat --json", "TIDE_API=127.0.0.1:" + std::to_string(s.api_port()) +
                                         " TIDE_API_TOKEN=" + Serve::kToken);
  ASSERT_EQ(as_json.status, 0) << as_json.out;
  const json j = json::parse(as_json.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << as_json.out;
  EXPECT_EQ(j["endpoints"][0]["groups"][0]["ready"].get<int>(), ready);

  const CliRun history =
      tide_cli("history chat --since 5m --step 1s" + std::string(" ") + api + token);
  ASSERT_EQ(history.status, 0) << history.out;
  EXPECT_NE(history.out.find("chat/local  "), std::string::npos) << history.out;
  EXPECT_NE(
      history.out.find(", step 1s\n  replicas (# ready, + starting, . desired but not there)\n"),
      std::string::npos)
      << history.out;
  // The chart's top row is the most replicas there were, and some were ready.
  EXPECT_TRUE(
      std::regex_search(history.out, std::regex("\n  " + std::to_string(ready) + R"( \|[ #+.]*#)")))
      << history.out;
  EXPECT_NE(history.out.find("\n  TIME      DESIRED  READY  STARTING"), std::string::npos)
      << history.out;
  EXPECT_NE(history.out.find("scaling decision"), std::string::npos) << history.out;
  EXPECT_NE(history.out.find("local  0 -> "), std::string::npos)
      << "the first scale-up" << history.out;
  const CliRun history_json = tide_cli("history chat --since 5m --json " + api + token);
  ASSERT_EQ(history_json.status, 0) << history_json.out;
  const json h = json::parse(history_json.out, nullptr, false);
  ASSERT_TRUE(h.is_object()) << history_json.out;
  EXPECT_FALSE(h["groups"][0]["points"].empty());
  EXPECT_FALSE(h["decisions"].empty());

  // What is wrong is said, with a non-zero exit.
  const CliRun wrong = tide_cli("status " + api + " --token wrong-token-0123456789");
  EXPECT_EQ(wrong.status, 1);
  EXPECT_NE(wrong.out.find("refused the API token (401: wrong API token)"), std::string::npos)
      << wrong.out;
  EXPECT_NE(wrong.out.find("TIDE_API_TOKEN"), std::string::npos) << wrong.out;
  const CliRun none = tide_cli("history chat " + api);
  EXPECT_EQ(none.status, 1);
  EXPECT_NE(none.out.find("needs an API token (401). Set TIDE_API_TOKEN or pass --token"),
            std::string::npos)
      << none.out;
  const CliRun unknown = tide_cli("history chta " + api + token);
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.out.find("no endpoint named \"chta\" at http://127.0.0.1:" +
                             std::to_string(s.api_port()) + " (endpoints: chat)"),
            std::string::npos)
      << unknown.out;
  const CliRun gateway = tide_cli("status --api 127.0.0.1:" + std::to_string(s.port()) + token);
  EXPECT_EQ(gateway.status, 1);
  EXPECT_NE(gateway.out.find("not the gateway"), std::string::npos) << gateway.out;

  EXPECT_EQ(s.terminate(), 0);
  const CliRun down = tide_cli("status " + api + token);
  EXPECT_EQ(down.status, 1);
  EXPECT_EQ(down.out, "tide: cannot reach tide at http://127.0.0.1:" +
                          std::to_string(s.api_port()) + ": connection refused\n");
}

}  // namespace
}  // namespace tide::test
