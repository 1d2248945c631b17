// The harness of the end-to-end tests (serve_test.cc, serve_kinds_test.cc): one real `tide
// serve` process with its own config, log and replica marker, the CLI as a process, and the
// polling helpers. Conditions are awaited by polling with a deadline.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http_client.h"

namespace tide::test {

namespace fs = std::filesystem;
using json = nlohmann::json;
using SteadyTime = std::chrono::steady_clock;

// Polls `cond` every 20 ms until it holds or `seconds` pass.
inline bool eventually(const std::function<bool()>& cond, double seconds) {
  const auto deadline = SteadyTime::now() + std::chrono::duration_cast<SteadyTime::duration>(
                                                std::chrono::duration<double>(seconds));
  while (SteadyTime::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

// The text of a file under /proc/PID, or "" where the process exited while it was read: the read
// then fails (ESRCH), which istream::read reports as badbit where a streambuf iterator throws.
inline std::string proc_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::string text;
  char buf[4096];
  while (f.read(buf, sizeof buf) || f.gcount() > 0)
    text.append(buf, static_cast<size_t>(f.gcount()));
  return f.bad() ? std::string() : text;
}

// Processes whose command line contains `marker`.
inline std::vector<int> processes_with(const std::string& marker) {
  std::vector<int> pids;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    const std::string cmd = proc_file(entry.path() / "cmdline");
    if (cmd.find(marker) == std::string::npos) continue;
    // Skip zombies: they are gone, only not reaped by their parent yet.
    const std::string stat = proc_file(entry.path() / "stat");
    const size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z') continue;
    pids.push_back(std::stoi(name));
  }
  return pids;
}

struct Options {
  std::string kind = "local";  // or slurm: replicas as jobs of the test cluster (SLURM_CONF)
  int min_replicas = 0;
  int max_replicas = 4;
  int concurrency = 2;
  std::string service = "fixed:500ms";
  std::string load_time = "300ms";
  std::string token_rate = "0";
  std::string slo = "{max_wait: 2s}";  // of each endpoint
  int queue_max = 1000;
  std::string queue_timeout = "30s";
  std::string idle_timeout = "1s";
  int queue_size = 2;
  std::string server_extra;             // more keys of `server:`
  std::string state = "state.db";       // state.path, relative to the test's directory, or :memory:
  std::string routing;                  // an endpoint `routing:` value; with it, a second group "b"
  std::string group_extra;              // more keys of each group, e.g. "agent: {enabled: true}"
  std::string scaling;                  // a group `scaling:` value instead of the queue policy
  std::string top_extra;                // more top-level keys; {dir} is the test's directory
  std::string ready_interval = "50ms";  // of the provisioner's readiness probe
  std::string provisioner;              // the group's `provisioner:` value (flow YAML); "" = local
  std::string local_extra;              // more keys of the local provisioner, e.g. "gpus: [1]"
  std::string endpoint_extra;           // more keys of endpoint chat, e.g. "models: [llama]"
  // A second endpoint with this name and the same groups, and more keys of it.
  std::string second_endpoint;
  std::string second_extra;
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
        << "\n        cold_start: 1s\n        provisioner:";
      if (!o.provisioner.empty()) {
        g << " " << o.provisioner << "\n";
      } else {
        g << "\n          kind: " << o.kind << "\n"
          << (o.kind == "slurm" ? "          poll_interval: 100ms\n          output: " +
                                      (dir_ / "job-%j.out").string() + "\n"
                                : "")
          << "          command: [\"{tide}\", demo-model, --port, \"{port}\", --load-time, "
          << o.load_time << ", --concurrency, \"" << o.concurrency << "\", --service, \""
          << o.service << "\", --token-rate, \"" << o.token_rate << "\", --model, " << marker_
          << "]\n          ready: {path: /health, interval: " << o.ready_interval << "}\n";
        if (!o.local_extra.empty()) g << "          " << o.local_extra << "\n";
      }
      if (!o.group_extra.empty()) g << "        " << o.group_extra << "\n";
      if (o.scaling.empty()) {
        g << "        scaling: {policy: queue, queue_size: " << o.queue_size
          << ", idle_timeout: " << o.idle_timeout << ", tick: 100ms}\n";
      } else {
        g << "        scaling: " << o.scaling << "\n";
      }
      return g.str();
    };
    const std::string state = o.state == ":memory:" ? o.state : (dir_ / o.state).string();
    std::string top = o.top_extra;
    for (size_t at = top.find("{dir}"); at != std::string::npos; at = top.find("{dir}"))
      top.replace(at, 5, dir_.string());
    auto endpoint = [&](const std::string& endpoint_name, const std::string& extra) {
      return "  - name: " + endpoint_name + "\n    slo: " + o.slo +
             "\n    queue: {max_length: " + std::to_string(o.queue_max) +
             ", timeout: " + o.queue_timeout + "}\n" +
             (extra.empty() ? "" : "    " + extra + "\n") +
             (o.routing.empty() ? "" : "    routing: " + o.routing + "\n") + "    groups:\n" +
             group("local") + (o.routing.empty() ? "" : group("b"));
    };
    std::ofstream(dir_ / "tide.yaml")
        << "server: {listen: 127.0.0.1:0, api: 127.0.0.1:0, api_token: " << kToken << o.server_extra
        << "}\n"
        << "state: {path: \"" << state << "\", sample_interval: 200ms}\n"
        << (top.empty() ? "" : top + "\n") << "endpoints:\n"
        << endpoint("chat", o.endpoint_extra)
        << (o.second_endpoint.empty() ? "" : endpoint(o.second_endpoint, o.second_extra));
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
    for (const std::string& job : slurm_jobs()) std::system(("scancel " + job).c_str());
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
      // Its own working directory: how its Slurm jobs are told apart (squeue %Z).
      if (::chdir(dir_.c_str()) != 0) ::_exit(127);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execl(TIDE_BIN, TIDE_BIN, "serve", "--config", config.c_str(), "--stop-grace", "2s",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    const std::regex ports(
        R"(gateway on https?://127\.0\.0\.1:(\d+) , API on https?://127\.0\.0\.1:(\d+))");
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

  json endpoint(const std::string& name = "chat") const {
    const HttpResponse r = api("GET", "/v1/endpoints/" + name);
    if (r.status != 200) return json::object();
    return json::parse(r.body, nullptr, false);
  }
  int count(const char* field) const {
    const json e = endpoint();
    if (!e.contains("groups")) return -1;
    return e["groups"][0][field].get<int>();
  }
  // The same, summed over every group.
  int count_all(const char* field) const {
    const json e = endpoint();
    if (!e.contains("groups")) return -1;
    int n = 0;
    for (const auto& g : e["groups"]) n += g[field].get<int>();
    return n;
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

  // Its Slurm jobs still pending, running or ending (none when Slurm is not used).
  std::vector<std::string> slurm_jobs() const {
    std::vector<std::string> jobs;
    if (std::getenv("SLURM_CONF") == nullptr) return jobs;
    FILE* p = ::popen("squeue -h -o '%i|%Z' 2>/dev/null", "r");
    if (p == nullptr) return jobs;
    char line[4096];
    while (std::fgets(line, sizeof line, p) != nullptr) {
      std::string l(line);
      const size_t bar = l.find('|');
      if (bar != std::string::npos && l.substr(bar + 1).starts_with(dir_.string()))
        jobs.push_back(l.substr(0, bar));
    }
    ::pclose(p);
    return jobs;
  }

  uint16_t port() const { return port_; }
  uint16_t api_port() const { return api_port_; }
  const std::string& marker() const { return marker_; }
  int pid() const { return pid_; }

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
// Runs a shell command line; its output (as the line redirects it) and exit status.
inline CliRun run_command(const std::string& cmd) {
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
inline CliRun tide_cli(const std::string& args, const std::string& env = "") {
  return run_command("env -u TIDE_API -u TIDE_API_TOKEN " + env + " " + TIDE_BIN + " " + args +
                     " 2>&1");
}

const std::string kCompletion = R"({"prompt": "hello", "max_tokens": 4})";

// Sends `n` requests at once; returns their responses.
inline std::vector<HttpResponse> burst(uint16_t port, int n,
                                       const std::string& body = kCompletion) {
  std::vector<HttpResponse> out(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back(
        [&, i] { out[static_cast<size_t>(i)] = http_post(port, "/chat/v1/completions", body); });
  for (auto& t : threads) t.join();
  return out;
}

// Clients that each send one request after another until stop(): the answers' statuses, counted.
class SteadyLoad {
 public:
  SteadyLoad(uint16_t port, int clients) {
    for (int i = 0; i < clients; ++i) {
      threads_.emplace_back([this, port] {
        while (!stop_) {
          const int status = http_post(port, "/chat/v1/completions", kCompletion).status;
          std::lock_guard lock(mu_);
          ++statuses_[status];
        }
      });
    }
  }
  ~SteadyLoad() { stop(); }
  // Stops sending and waits for the answers still on their way; returns status -> count.
  std::map<int, int> stop() {
    stop_ = true;
    for (auto& t : threads_) t.join();
    threads_.clear();
    std::lock_guard lock(mu_);
    return statuses_;
  }
  int answered() {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const auto& [status, count] : statuses_) n += count;
    return n;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<int, int> statuses_;
  std::vector<std::thread> threads_;
};

// The tests that hold for every kind of replica, run with local processes and with Slurm jobs.
class ServeKind : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() != "slurm") return;
    if (const char* skip = std::getenv("TIDE_SKIP_SLURM"); skip && std::string(skip) == "1")
      GTEST_SKIP() << "TIDE_SKIP_SLURM=1";
    ASSERT_NE(std::getenv("SLURM_CONF"), nullptr)
        << "SLURM_CONF is not set: run through ctest (its slurm fixture starts a cluster), or "
           "start one with scripts/slurm-local.sh start DIR and export SLURM_CONF=DIR/slurm.conf; "
           "TIDE_SKIP_SLURM=1 skips these tests";
  }
  Options options() const {
    Options o;
    o.kind = GetParam();
    return o;
  }
};

// The ids of an endpoint's replicas (GET /v1/endpoints/NAME), sorted.
inline std::vector<uint64_t> replica_ids(const json& endpoint) {
  std::vector<uint64_t> ids;
  if (!endpoint.contains("groups")) return ids;
  for (const auto& g : endpoint["groups"]) {
    for (const auto& r : g["replicas"]) ids.push_back(r["id"].get<uint64_t>());
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

// The history query from `from` to `to` (Unix seconds) by `step`, at full precision.
inline std::string fmt_history(double from, double to, double step) {
  std::ostringstream t;
  t.precision(17);
  t << "/v1/endpoints/chat/history?from=" << from << "&to=" << to << "&step=" << step;
  return t.str();
}

inline double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace tide::test
