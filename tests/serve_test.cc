// End to end: the real `tide serve` binary, real `tide demo-model` replicas it launches as
// processes, real HTTP on 127.0.0.1. Conditions are awaited by polling with a deadline
// (serve_harness.h). The tests run for every kind of replica are in serve_kinds_test.cc.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
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
#include <iostream>
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
#include "serve_harness.h"
#include "tide/testing/fake_kube_api.h"

namespace tide::test {
namespace {

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

// ---- hardening: no request can hurt the fleet, nothing grows without bound --------------------

// The value of the first sample of /metrics text whose line starts with `series`, or -1.
double metric(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

// Sockets of the process `pid` (its /proc/PID/fd entries that are sockets).
int socket_count(int pid) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code lec;
    if (fs::read_symlink(e.path(), lec).string().starts_with("socket:")) ++n;
  }
  return n;
}

// Sends raw bytes on a new connection and returns what comes back within `seconds` (or until
// the gateway closes it).
std::string exchange(uint16_t port, const std::string& bytes, double seconds = 3) {
  const int fd = http_connect(port);
  if (fd < 0) return "connect failed";
  ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::string answer = read_until_close(fd, seconds);
  ::close(fd);
  return answer;
}

TEST(Hardening, RequestsAReplicaCannotTakeGetAClearAnswerAndKillNoReplica) {
  Options o;
  o.min_replicas = 2;
  o.max_replicas = 2;
  o.service = "fixed:100ms";
  Serve s("cannot-take", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 2; }, 10));
  // Under the gateway's limits (16 KiB head, 16 MiB body), over demo-model's (8 KiB, 1 MiB): it
  // closes the connection without an answer.
  HttpRequest big_head = make_request("POST", "/chat/v1/completions", kCompletion);
  big_head.headers.emplace_back("X-Big", std::string(9000, 'h'));
  const HttpRequest big_body =
      make_request("POST", "/chat/v1/completions", std::string(1'100'000, 'b'));
  std::vector<HttpResponse> bystanders;
  std::mutex mu;
  std::atomic<bool> done{false};
  std::vector<std::thread> load;
  for (int i = 0; i < 3; ++i) {
    load.emplace_back([&] {
      while (!done) {
        HttpResponse r = http_post(s.port(), "/chat/v1/completions", kCompletion);
        std::lock_guard lock(mu);
        bystanders.push_back(std::move(r));
      }
    });
  }
  std::vector<HttpResponse> refused;
  for (int i = 0; i < 4; ++i) {
    refused.push_back(http(s.port(), big_head));
    refused.push_back(http(s.port(), big_body));
  }
  done = true;
  for (auto& t : load) t.join();
  for (size_t i = 0; i < refused.size(); ++i) {
    const HttpResponse& r = refused[i];
    if (i % 2 == 0) {
      EXPECT_EQ(r.status, 502) << r.error << r.body;
      EXPECT_NE(r.body.find("replica_dropped"), std::string::npos) << r.body;
      EXPECT_NE(r.body.find("without answering"), std::string::npos) << r.body;
    } else {  // refused while the body went out (413), or after it (502)
      EXPECT_TRUE(r.status == 413 || r.status == 502) << r.status << r.error << r.body;
      EXPECT_TRUE(r.body.find("body_refused") != std::string::npos ||
                  r.body.find("replica_dropped") != std::string::npos)
          << r.body;
    }
  }
  ASSERT_FALSE(bystanders.empty());
  for (const auto& r : bystanders) EXPECT_EQ(r.status, 200) << r.error << r.body;
  const json e = s.endpoint();
  EXPECT_EQ(e["groups"][0]["failures"].get<int>(), 0) << e.dump();
  EXPECT_EQ(e["groups"][0]["launches"].get<int>(), 2);
  EXPECT_EQ(s.count("ready"), 2);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Hardening, PooledConnectionsToStoppedReplicasAreClosedSoSocketsStayFlat) {
  Options o;
  o.concurrency = 1;
  o.service = "fixed:200ms";
  o.load_time = "100ms";
  o.idle_timeout = "300ms";
  Serve s("fd-flat", o);
  const int before = socket_count(s.pid());
  ASSERT_GT(before, 0);
  for (int cycle = 0; cycle < 3; ++cycle) {
    for (const auto& r : burst(s.port(), 12)) ASSERT_EQ(r.status, 200) << r.error << r.body;
    ASSERT_TRUE(eventually([&] { return s.count("ready") + s.count("draining") == 0; }, 15));
    // Every pooled connection to the stopped replicas is closed (no CLOSE-WAIT left behind).
    EXPECT_TRUE(eventually([&] { return socket_count(s.pid()) <= before; }, 5))
        << "cycle " << cycle << ": " << socket_count(s.pid()) << " sockets, " << before
        << " before";
  }
  EXPECT_EQ(s.terminate(), 0);
}

// CPU seconds (user + system) the process `pid` has used.
double cpu_seconds(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

TEST(Hardening, AtTheFileDescriptorLimitTideNeitherSpinsNorBlamesTheReplica) {
  Options o;
  o.min_replicas = 1;
  o.max_replicas = 1;
  o.service = "fixed:10ms";
  o.state = ":memory:";  // no state file to write while descriptors are short
  Serve s("nofile", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 1; }, 10));
  // A few descriptors above what it holds now, then more clients than that.
  const auto fds = [&] {
    int n = 0;
    std::error_code ec;
    for (auto it = fs::directory_iterator("/proc/" + std::to_string(s.pid()) + "/fd", ec);
         it != fs::directory_iterator(); ++it)
      ++n;
    return n;
  };
  // What it takes idle over the same window (timers, probes; more under a sanitizer): the
  // measure below is against it.
  const double idle0 = cpu_seconds(s.pid());
  std::this_thread::sleep_for(std::chrono::seconds(2));  // a measurement window, not a wait
  const double idle = cpu_seconds(s.pid()) - idle0;
  const int limit = fds() + 6;
  rlimit old{};
  ASSERT_EQ(::prlimit(s.pid(), RLIMIT_NOFILE, nullptr, &old), 0);
  const rlimit low{static_cast<rlim_t>(limit), old.rlim_max};  // the soft limit only
  ASSERT_EQ(::prlimit(s.pid(), RLIMIT_NOFILE, &low, nullptr), 0);
  std::vector<int> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(http_connect(s.port()));
  ASSERT_TRUE(eventually([&] { return fds() >= limit; }, 5));
  const double cpu0 = cpu_seconds(s.pid());
  std::this_thread::sleep_for(std::chrono::seconds(2));  // a measurement window, not a wait
  const double busy = cpu_seconds(s.pid()) - cpu0;
  // Spinning takes a core on an idle machine, and still ~0.2 s of these 2 s on one loaded 10
  // times over; pausing 100 ms between tries takes a few ms beyond what it takes idle.
  EXPECT_LT(busy - idle, 0.05) << "tide spins at the descriptor limit (idle: " << idle
                               << " s of CPU in the same window)";
  for (int fd : clients) ::close(fd);
  ASSERT_EQ(::prlimit(s.pid(), RLIMIT_NOFILE, &old, nullptr), 0);
  HttpResponse r;
  EXPECT_TRUE(eventually(
      [&] {
        r = http_post(s.port(), "/chat/v1/completions", kCompletion);
        return r.status == 200;
      },
      5))
      << r.status << r.error << r.body;
  const json e = s.endpoint();
  // An answer without the endpoint (tide gone, or its API not answering) fails here, not in
  // json's assertion, so that the harness prints tide's log.
  ASSERT_TRUE(e.contains("groups")) << "the admin API did not answer after the limit was restored";
  EXPECT_EQ(e["groups"][0]["failures"].get<int>(), 0) << e.dump();
  EXPECT_EQ(
      s.api("GET", "/metrics").body.find(R"(tide_gateway_errors_total{kind="fd_exhausted"} 0)"),
      std::string::npos)
      << "the accepts it could not make are counted";
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Hardening, LimitsOnTrailersConnectionsAndBodyMemoryAnswerBeforeAnyAuthentication) {
  Options o;
  o.server_extra =
      ", max_body_bytes: 2000, max_body_memory: 3000, max_trailer_bytes: 1024, "
      "max_connections: 4, api_max_connections: 2";
  Serve s("limits2", o);
  const std::string trailer =
      "POST /chat/v1/completions HTTP/1.1\r\nHost: x\r\n"
      "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-T: " +
      std::string(5000, 't') + "\r\n\r\n";
  const std::string at_gateway = exchange(s.port(), trailer, 10);
  EXPECT_NE(at_gateway.find("HTTP/1.1 431"), std::string::npos) << at_gateway;
  EXPECT_NE(at_gateway.find("max_trailer_bytes"), std::string::npos) << at_gateway;
  std::string api_trailer = trailer;
  api_trailer.replace(api_trailer.find("/chat/v1/completions"), 20, "/v1/endpoints/chat");
  const std::string at_api = exchange(s.api_port(), api_trailer, 10);  // no token: 431, not 401
  EXPECT_NE(at_api.find("HTTP/1.1 431"), std::string::npos) << at_api;

  // Body memory: one body of 2000 bytes being received holds 2000 of the 3000. The second is
  // sent once the first holds its share: the gateway's threads may read the two heads in either
  // order, and the one read second is refused.
  const auto body_memory = [&] {
    return metric(s.api("GET", "/metrics").body, "tide_gateway_body_memory_bytes");
  };
  const int holding = http_connect(s.port());
  const std::string head =
      "POST /nope/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n" + std::string(10, 'a');
  ASSERT_EQ(::send(holding, head.data(), head.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(head.size()));
  ASSERT_TRUE(eventually([&] { return body_memory() == 2000; }, 10)) << body_memory();
  const HttpResponse over = http_post(s.port(), "/nope/x", std::string(2000, 'b'));
  EXPECT_EQ(over.status, 503) << over.error << over.body;
  EXPECT_NE(over.body.find("max_body_memory"), std::string::npos) << over.body;
  EXPECT_EQ(over.headers.count("retry-after"), 1u);
  ::close(holding);
  ASSERT_TRUE(eventually([&] { return body_memory() == 0; }, 10)) << body_memory();
  const HttpResponse after = http_post(s.port(), "/nope/x", std::string(2000, 'b'));
  EXPECT_EQ(after.status, 404) << after.error << after.body;  // read whole, then routed

  // Connections: 2 at the API; a third is answered 503 at once and closed.
  std::vector<int> open;
  for (int i = 0; i < 2; ++i) open.push_back(http_connect(s.api_port()));
  const std::string third = exchange(s.api_port(), "", 10);
  EXPECT_NE(third.find("HTTP/1.1 503"), std::string::npos) << third;
  EXPECT_NE(third.find("api_max_connections"), std::string::npos) << third;
  for (int fd : open) ::close(fd);
  EXPECT_TRUE(eventually([&] { return s.api("GET", "/v1/endpoints/chat").status == 200; }, 10));
  const std::string metrics = s.api("GET", "/metrics").body;
  // At least the third connection (a retry of the GET above may have been refused too).
  EXPECT_EQ(metrics.find(R"(tide_gateway_errors_total{kind="connection_limit"} 0)"),
            std::string::npos)
      << metrics;
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Hardening, InvalidUtf8GetsA400AtOnceAndLeavesNothingInProgress) {
  Options o;
  Serve s("utf8", o);
  const std::string path = exchange(s.port(), "GET /\xff/x HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(path.find("HTTP/1.1 400"), std::string::npos) << path;
  EXPECT_NE(path.find("not valid UTF-8"), std::string::npos) << path;
  const std::string body = "{\"endpoint\": \"\xff\"}";
  const std::string route =
      exchange(s.api_port(), "POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_NE(route.find("HTTP/1.1 400"), std::string::npos) << route;
  const std::string put_body = "name: \xff\xfe";
  const HttpResponse put = s.api("PUT", "/v1/endpoints/chat", put_body);
  EXPECT_EQ(put.status, 400) << put.error << put.body;
  EXPECT_NE(put.body.find("not valid UTF-8"), std::string::npos) << put.body;
  const std::string metrics = s.api("GET", "/metrics").body;
  EXPECT_NE(metrics.find("tide_gateway_active_requests 0"), std::string::npos) << metrics;
  EXPECT_NE(s.log_text().find("not valid UTF-8"), std::string::npos);
  // Nothing counted as in progress: a graceful stop does not wait for a drain timeout.
  const auto t0 = SteadyTime::now();
  EXPECT_EQ(s.terminate(), 0);
  EXPECT_LT(std::chrono::duration<double>(SteadyTime::now() - t0).count(), 5);
}

TEST(Hardening, EchoedValuesAreBoundedAndExpectContinueIsAnswered) {
  Options o;
  Serve s("echo", o);
  // A 10 MB config is refused while it is read (reading that much YAML held a thread that also
  // serves the gateway for seconds); one under the API's limit gets an answer of bounded size.
  const int api = http_connect(s.api_port());
  const std::string put_head = std::string("PUT /v1/endpoints/chat HTTP/1.1\r\nHost: x\r\n") +
                               "Authorization: Bearer " + Serve::kToken +
                               "\r\nContent-Length: 10000006\r\n\r\nname: ";
  ::send(api, put_head.data(), put_head.size(), MSG_NOSIGNAL);
  const std::string huge = read_until(api, "server.api_max_body_bytes", 10);
  ::close(api);
  EXPECT_TRUE(huge.starts_with("HTTP/1.1 413")) << huge;
  EXPECT_NE(huge.find("server.api_max_body_bytes"), std::string::npos) << huge;
  HttpRequest big = Serve::authorized("PUT", "/v1/endpoints/chat");
  big.body = "name: " + std::string(900'000, 'x');
  big.timeout_s = 60;
  const HttpResponse put = http(s.api_port(), big);
  EXPECT_EQ(put.status, 400) << put.error;
  EXPECT_LT(put.body.size(), 4000u);
  // (without groups the body fails on them first: what matters is the answer's size)
  // Expect: 100-continue: the gateway says 100 Continue, then takes the body.
  const int fd = http_connect(s.port());
  const std::string head =
      "POST /nope/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
  ::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  EXPECT_EQ(read_until(fd, "\r\n\r\n", 10), "HTTP/1.1 100 Continue\r\n\r\n");
  ::send(fd, "hello", 5, MSG_NOSIGNAL);
  const std::string answer = read_until(fd, "\r\n\r\n", 10);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 404")) << answer;
  ::close(fd);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Hardening, ASecondServeOnTheSamePortFailsToStartWithAClearError) {
  Options o;
  Serve s("port", o);
  const fs::path config = s.dir() / "second.yaml";
  std::ofstream(config) << "server: {listen: 127.0.0.1:" << s.port()
                        << ", api: 127.0.0.1:0, api_token: " << Serve::kToken
                        << "}\nstate: {path: \":memory:\"}\n"
                        << "endpoints:\n  - name: chat\n    groups:\n      - name: g\n"
                        << "        provisioner: {kind: static, urls: [\"http://127.0.0.1:1\"]}\n";
  // Still running after 3 s: it started (and took half of the traffic).
  const CliRun second = tide_cli("serve --config " + config.string() +
                                 " 2>&1 & p=$!; sleep 3; "
                                 "kill $p 2>/dev/null && echo STILL-RUNNING; wait $p");
  EXPECT_EQ(second.out.find("STILL-RUNNING"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("cannot listen on 127.0.0.1:" + std::to_string(s.port())),
            std::string::npos)
      << second.out;
  EXPECT_NE(second.out.find("another tide serve"), std::string::npos) << second.out;
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

// The rollout of the first group (GET /v1/endpoints/chat), and its replicas' generations.
json rollout_of(const Serve& s) {
  const json e = s.endpoint();
  return e.contains("groups") ? e["groups"][0]["rollout"] : json::object();
}
std::vector<int> generations(const Serve& s) {
  std::vector<int> out;
  const json e = s.endpoint();
  if (!e.contains("groups")) return out;
  for (const auto& r : e["groups"][0]["replicas"]) out.push_back(r["generation"].get<int>());
  return out;
}

// Two ready replicas under steady load, and the endpoint's entry with its launch command changed
// by `change`.
struct RolloutRun {
  explicit RolloutRun(const std::string& name) : s(name, options()) {}
  static Options options() {
    Options o;
    o.min_replicas = 2;
    o.max_replicas = 4;
    o.idle_timeout = "30s";
    o.service = "fixed:100ms";
    return o;
  }
  std::string changed(const std::string& from, const std::string& to) const {
    std::string body = endpoint_entry(s.config_text());
    const size_t at = body.find(from);
    EXPECT_NE(at, std::string::npos) << body;
    return at == std::string::npos ? body : body.replace(at, from.size(), to);
  }
  Serve s;
};

TEST(Rollout, AChangedCommandReplacesEveryReplicaUnderLoadLosingNothing) {
  RolloutRun run("rollout");
  Serve& s = run.s;
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 2; }, 15)) << s.endpoint().dump();
  EXPECT_EQ(rollout_of(s)["state"], "none");
  SteadyLoad load(s.port(), 3);
  ASSERT_TRUE(eventually([&] { return load.answered() >= 5; }, 15));
  const HttpResponse put =
      s.api("PUT", "/v1/endpoints/chat", run.changed("--load-time, 300ms", "--load-time, 200ms"));
  ASSERT_EQ(put.status, 200) << put.body;
  // The answer shows the endpoint as the change left it: a rollout to generation 2 begun.
  const json begun = json::parse(put.body)["groups"][0]["rollout"];
  EXPECT_EQ(begun["state"], "rolling") << begun.dump();
  EXPECT_EQ(begun["generation"], 2) << begun.dump();
  ASSERT_TRUE(eventually(
      [&] {
        return rollout_of(s)["state"] == "complete" && generations(s) == std::vector<int>{2, 2};
      },
      60))
      << s.endpoint().dump();
  const int before_end = load.answered();
  ASSERT_TRUE(eventually([&] { return load.answered() >= before_end + 5; }, 15));
  const std::map<int, int> statuses = load.stop();
  EXPECT_EQ(statuses.size(), 1u) << "every request answered 200";
  EXPECT_GT(statuses.count(200) ? statuses.at(200) : 0, 10) << "every request answered 200";
  const json r = rollout_of(s);
  EXPECT_EQ(r["generation"], 2);
  EXPECT_EQ(r["old_replicas"], 0);
  EXPECT_EQ(r["new_replicas"], 2);
  EXPECT_EQ(s.count("ready"), 2);
  const CliRun status = tide_cli("status --api http://127.0.0.1:" + std::to_string(s.api_port()) +
                                 " --token " + Serve::kToken);
  EXPECT_NE(status.out.find("rollout to template generation 2 complete: 0 old, 2 new"),
            std::string::npos)
      << status.out;
  EXPECT_NE(status.out.find("gen 2"), std::string::npos) << status.out;
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Rollout, ATemplateThatCannotStartStopsTheRolloutAndTheOldReplicasKeepServing) {
  RolloutRun run("rollout_broken");
  Serve& s = run.s;
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 2; }, 15)) << s.endpoint().dump();
  SteadyLoad load(s.port(), 2);
  // demo-model refuses the flag and exits at once.
  const HttpResponse put =
      s.api("PUT", "/v1/endpoints/chat", run.changed("--model, ", "--no-such-flag, --model, "));
  ASSERT_EQ(put.status, 200) << put.body;
  ASSERT_TRUE(eventually([&] { return rollout_of(s)["state"] == "stopped"; }, 30))
      << s.endpoint().dump();
  const json r = rollout_of(s);
  EXPECT_NE(r["reason"].get<std::string>().find("failed before they were ready"), std::string::npos)
      << r.dump();
  EXPECT_NE(r["reason"].get<std::string>().find("--no-such-flag"), std::string::npos) << r.dump();
  EXPECT_EQ(r["old_replicas"], 2);
  const int before = load.answered();
  ASSERT_TRUE(eventually([&] { return load.answered() >= before + 5; }, 15));
  const std::map<int, int> statuses = load.stop();
  EXPECT_EQ(statuses.size(), 1u) << "every request answered 200";
  EXPECT_GT(statuses.count(200) ? statuses.at(200) : 0, 5) << "every request answered 200";
  EXPECT_EQ(s.count("ready"), 2);
  EXPECT_EQ(generations(s), (std::vector<int>{1, 1}));
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Rollout, AChangedFileOnSighupRollsTheReplicasAndABrokenFileChangesNothing) {
  RolloutRun run("rollout_sighup");
  Serve& s = run.s;
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 2; }, 15)) << s.endpoint().dump();
  SteadyLoad load(s.port(), 2);
  // A file that does not parse: logged, and the replicas keep their template.
  const std::string text = s.config_text();
  s.write_config(text + "\n  - this: [is not closed\n");
  ASSERT_EQ(::kill(s.pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually(
      [&] { return s.log_text().find("not applied, nothing changed") != std::string::npos; }, 10))
      << s.log_text();
  EXPECT_EQ(rollout_of(s)["state"], "none");
  // The launch command changed in the file: the same rolling replacement as a PUT.
  std::string changed = text;
  const size_t at = changed.find("--load-time, 300ms");
  ASSERT_NE(at, std::string::npos) << changed;
  s.write_config(changed.replace(at, 18, "--load-time, 200ms"));
  ASSERT_EQ(::kill(s.pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually(
      [&] {
        return rollout_of(s)["state"] == "complete" && generations(s) == std::vector<int>{2, 2};
      },
      60))
      << s.endpoint().dump() << s.log_text();
  EXPECT_NE(s.log_text().find("SIGHUP: endpoint chat: the file's configuration applied"),
            std::string::npos)
      << s.log_text();
  const std::map<int, int> statuses = load.stop();
  EXPECT_EQ(statuses.size(), 1u) << "every request answered 200";
  // The file as running: a second SIGHUP changes nothing.
  ASSERT_EQ(::kill(s.pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually(
      [&] { return s.log_text().find("SIGHUP: endpoint chat: unchanged") != std::string::npos; },
      10))
      << s.log_text();
  EXPECT_EQ(generations(s), (std::vector<int>{2, 2}));
  EXPECT_EQ(s.terminate(), 0);
}

// The state file keeps each replica's launch template fingerprint: replicas adopted after a
// restart with a changed file are replaced as after a SIGHUP, while requests keep being answered.
TEST(Rollout, AFileChangedWhileTideWasDownReplacesTheReplicasItAdopts) {
  RolloutRun run("rollout_restart");
  Serve& s = run.s;
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 2; }, 15)) << s.endpoint().dump();
  const std::vector<int> old = processes_with(s.marker());
  ASSERT_FALSE(old.empty());
  s.kill_hard();
  std::string text = s.config_text();
  const size_t at = text.find("--load-time, 300ms");
  ASSERT_NE(at, std::string::npos) << text;
  s.write_config(text.replace(at, 18, "--load-time, 200ms"));
  s.start();
  ASSERT_TRUE(eventually([&] { return s.count("ready") >= 2; }, 15)) << s.log_text();
  SteadyLoad load(s.port(), 2);
  ASSERT_TRUE(eventually(
      [&] {
        return rollout_of(s)["state"] == "complete" && generations(s) == std::vector<int>{2, 2};
      },
      60))
      << s.endpoint().dump() << s.log_text();
  for (int pid : old) EXPECT_TRUE(eventually([&] { return ::kill(pid, 0) != 0; }, 10)) << pid;
  const std::map<int, int> statuses = load.stop();
  EXPECT_EQ(statuses.size(), 1u) << "every request answered 200";
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
  // On a loopback API, Prometheus scrapes /metrics without the token (metrics_auth: auto).
  EXPECT_EQ(s.api("GET", "/metrics", "", nullptr).status, 200);
  EXPECT_EQ(s.terminate(), 0);

  Options closed;
  closed.server_extra = ", metrics_auth: token";
  Serve c("metrics_token", closed);
  EXPECT_EQ(c.api("GET", "/metrics", "", nullptr).status, 401);
  EXPECT_EQ(c.api("GET", "/metrics").status, 200);
  EXPECT_EQ(c.terminate(), 0);

  Options open;
  open.server_extra = ", public_read: true";
  Serve p("public", open);
  EXPECT_EQ(p.api("GET", "/v1/endpoints/chat", "", nullptr).status, 200);
  EXPECT_EQ(p.api("PUT", "/v1/endpoints/chat", "{}", nullptr).status, 401)
      << "changes always need the token";
  EXPECT_EQ(p.terminate(), 0);
}

TEST(Serve, ACrashLoopingReplicaFailsHeldRequestsFastSayingWhy) {
  Options o;
  o.queue_timeout = "60s";
  // demo-model refuses the flag and exits at once: every replica fails before it gets ready.
  o.provisioner =
      "{kind: local, command: [\"{tide}\", demo-model, --port, \"{port}\", --no-such-flag]}";
  Serve s("crash_loop", o);
  const auto sent = SteadyTime::now();
  const HttpResponse r = http_post(s.port(), "/chat/v1/completions", kCompletion);
  const double waited = std::chrono::duration<double>(SteadyTime::now() - sent).count();
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("replica_failing"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("3 replicas in a row failed before getting ready"), std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("exited with status"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("--no-such-flag"), std::string::npos) << "the replica's own words";
  // Three launches with 1 s and 2 s of backoff between them: well before queue.timeout.
  EXPECT_LT(waited, 30) << r.body;
  EXPECT_EQ(s.terminate(), 0);
}

TEST(Serve, TtftAndTpotOfStreamedAnswersShowInMetricsStatusAndSetTheWaitBudget) {
  Options o;
  o.min_replicas = 1;
  o.service = "tokens:0.05,0.02";  // 50 ms of prefill per prompt word, 20 ms per answer token
  o.slo = "{ttft: 1500ms}";
  o.idle_timeout = "60s";
  Serve s("ttft", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 1; }, 10));
  // Ten prompt words: 500 ms before the first token, then ten events 20 ms apart.
  const std::string streamed =
      R"({"prompt": "one two three four five six seven eight nine ten", "max_tokens": 10,)"
      R"( "stream": true})";
  for (int i = 0; i < 4; ++i) {
    const HttpResponse r = http_post(s.port(), "/chat/v1/completions", streamed);
    ASSERT_EQ(r.status, 200) << r.error << r.body;
    EXPECT_EQ(r.headers.at("content-type"), "text/event-stream");
  }
  // A whole (not streamed) answer counts no ttft.
  EXPECT_EQ(http_post(s.port(), "/chat/v1/completions", kCompletion).status, 200);

  const HttpResponse m = s.api("GET", "/metrics");
  ASSERT_EQ(m.status, 200);
  const std::string& t = m.body;
  const std::string g = R"(endpoint="chat",group="local")";
  EXPECT_EQ(metric(t, "tide_gateway_ttft_seconds_count{" + g + "}"), 4) << t;
  // Every first token came after the 500 ms prefill, well within 60 s.
  EXPECT_EQ(metric(t, "tide_gateway_ttft_seconds_bucket{" + g + R"(,le="0.25"})"), 0);
  EXPECT_EQ(metric(t, "tide_gateway_ttft_seconds_bucket{" + g + R"(,le="60"})"), 4);
  EXPECT_GE(metric(t, "tide_gateway_ttft_seconds_sum{" + g + "}"), 4 * 0.5);
  // Ten events each: a mean gap of about 20 ms, under 250 ms even on a loaded machine.
  EXPECT_EQ(metric(t, "tide_gateway_tpot_seconds_count{" + g + "}"), 4);
  EXPECT_EQ(metric(t, "tide_gateway_tpot_seconds_bucket{" + g + R"(,le="0.01"})"), 0);
  EXPECT_EQ(metric(t, "tide_gateway_tpot_seconds_bucket{" + g + R"(,le="0.25"})"), 4);

  const json e = s.endpoint();
  const json& stats = e["groups"][0]["stats"];
  EXPECT_GE(stats["ttft_s"]["p50"].get<double>(), 0.5) << stats.dump();
  EXPECT_EQ(stats["tpot_s"]["count"], 4);
  // The SLO as written, and the wait it leaves after the prefill the gateway saw (~0.5 s).
  EXPECT_EQ(e["slo"]["ttft_s"], 1.5);
  const double budget = e["slo"]["wait_budget_s"].get<double>();
  EXPECT_GT(budget, 0.0) << e["slo"].dump();
  EXPECT_LE(budget, 1.0) << e["slo"].dump();

  const CliRun status = tide_cli("status --api http://127.0.0.1:" + std::to_string(s.api_port()) +
                                 " --token " + Serve::kToken);
  ASSERT_EQ(status.status, 0) << status.out;
  std::smatch line;
  EXPECT_TRUE(std::regex_search(
      status.out, line,
      std::regex(R"(\n  local: ttft p50 \S+ p99 \S+, tpot p50 \S+ p99 \S+ \(4 streamed\)\n)")))
      << status.out;
  std::printf("tide status:%s", line.str().c_str());  // the figures seen, for the docs
  EXPECT_EQ(s.terminate(), 0);
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
  // The process's own figures, and what it was built from.
  EXPECT_GT(metric(t, "process_cpu_seconds_total"), 0);
  EXPECT_GT(metric(t, "process_resident_memory_bytes"), 1e6);
  EXPECT_GT(metric(t, "process_open_fds"), 3);
  EXPECT_NE(t.find("\ntide_build_info{version=\"0."), std::string::npos);
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

// POST /v1/route for endpoint chat, with the client's sticky `key` when given.
Route route(const Serve& s, const std::optional<std::string>& key = std::nullopt) {
  json body = {{"endpoint", "chat"}};
  if (key) body["key"] = *key;
  Route r;
  r.response = http_post(s.api_port(), "/v1/route", body.dump());
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

TEST(TwoStep, RoutesSplitByWeightAcrossGroupsOfAgentsAndAKeyStaysOnItsGroup) {
  Options o = agent_options();
  o.min_replicas = 1;
  o.routing = "{mode: split, weights: {local: 3, b: 1}}";
  Serve s("route-split", o);
  ASSERT_TRUE(eventually([&] { return s.count_all("ready") == 2; }, 15));
  std::map<std::string, int> groups;
  for (int i = 0; i < 40; ++i) {
    const Route r = route(s);
    ASSERT_EQ(r.status, 200) << r.response.body;
    ++groups[r.body["group"].get<std::string>()];
    if (i < 4) {
      EXPECT_EQ(direct(r.port, r.token).status, 200);  // either group's agent serves
    }
  }
  EXPECT_EQ(groups["local"], 30);
  EXPECT_EQ(groups["b"], 10);
  // A key stays on its group; keys split by the weights.
  int keyed_b = 0;
  for (int k = 0; k < 60; ++k) {
    const std::string key = "user-" + std::to_string(k);
    const Route first = route(s, key);
    ASSERT_EQ(first.status, 200) << first.response.body;
    for (int again = 0; again < 2; ++again)
      ASSERT_EQ(route(s, key).body["group"], first.body["group"]) << key;
    keyed_b += first.body["group"] == "b" ? 1 : 0;
  }
  EXPECT_GT(keyed_b, 3);  // Binomial(60, 0.25): mean 15, sd 3.4
  EXPECT_LT(keyed_b, 30);
  const Route bad = route(s, "");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.response.body.find("key: must be a string of 1 to 1024 characters"),
            std::string::npos);
  // The control plane saw route calls, and no payload: its gateway counted none.
  const json ep = json::parse(s.api("GET", "/v1/endpoints/chat").body);
  EXPECT_EQ(ep["requests"], 0);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(TwoStep, OverflowRoutesToTheNextGroupOnlyWhileThePrimaryIsFull) {
  Options o = agent_options();
  o.min_replicas = 1;
  o.max_replicas = 1;
  o.concurrency = 1;
  // Reports far apart: what was routed since the last report is what fills the primary.
  o.group_extra = "agent: {enabled: true, report_interval: 30s}";
  o.routing = "{mode: overflow, order: [local, b]}";
  Serve s("route-overflow", o);
  ASSERT_TRUE(eventually([&] { return s.count_all("ready") == 2; }, 15));
  const Route first = route(s);
  ASSERT_EQ(first.status, 200) << first.response.body;
  EXPECT_EQ(first.body["group"], "local");
  const Route second = route(s);  // local's one slot is taken: it spills
  ASSERT_EQ(second.status, 200) << second.response.body;
  EXPECT_EQ(second.body["group"], "b");
  EXPECT_EQ(direct(second.port, second.token).status, 200);
  const json ep = json::parse(s.api("GET", "/v1/endpoints/chat").body);
  for (const auto& g : ep["groups"]) {
    if (g["name"] == "local") {
      EXPECT_EQ(g["spilled"], 1) << g.dump();
    }
  }
  EXPECT_EQ(s.terminate(), 0);
}

TEST(TwoStep, AgentsEnabledByPutGetKeysAtTheirFirstLaunch) {
  Options o;
  o.top_extra = "route: {key_file: {dir}/route.key}";
  Serve s("route-put", o);
  ASSERT_FALSE(fs::exists(s.dir() / "route.key"));  // no group runs agents yet
  EXPECT_EQ(route(s).status, 409);
  std::string body = endpoint_entry(s.config_text());
  const std::string min = "    min_replicas: 0\n";
  ASSERT_NE(body.find(min), std::string::npos) << body;
  body.replace(body.find(min), min.size(),
               "    min_replicas: 1\n    agent: {enabled: true, report_interval: 200ms}\n");
  const HttpResponse put = s.api("PUT", "/v1/endpoints/chat", body);
  ASSERT_EQ(put.status, 200) << put.body << "\n" << body;
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 1; }, 15)) << s.log_text();
  EXPECT_TRUE(fs::exists(s.dir() / "route.key"));
  const Route r = route(s);
  ASSERT_EQ(r.status, 200) << r.response.body;
  EXPECT_EQ(direct(r.port, r.token).status, 200);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(TwoStep, TheGpuReadingsOfTheAgentsShowInTheApiAndInMetrics) {
  // A stand-in libnvidia-ml.so.1 (two GPUs: 93% and 40% busy, 60 and 20 GiB of 80 used) where
  // the agents' dlopen finds it. The pool hands the replica GPU 1 (CUDA_VISIBLE_DEVICES=1): its
  // agent reads that GPU only.
  struct Dir {
    fs::path path = fs::temp_directory_path() / ("tide_nvml_" + std::to_string(getpid()));
    Dir() { fs::create_directories(path); }
    ~Dir() { fs::remove_all(path); }
  } lib;
  fs::create_symlink(FAKE_NVML, lib.path / "libnvidia-ml.so.1");
  const char* old_path = std::getenv("LD_LIBRARY_PATH");
  const std::string saved = old_path != nullptr ? old_path : "";
  ::setenv("LD_LIBRARY_PATH", lib.path.c_str(), 1);
  Options o = agent_options();
  o.min_replicas = 1;
  o.local_extra = "gpus: [1]\n          gpus_per_replica: 1";
  Serve s("gpus", o);
  if (old_path != nullptr) {
    ::setenv("LD_LIBRARY_PATH", saved.c_str(), 1);
  } else {
    ::unsetenv("LD_LIBRARY_PATH");
  }
  ASSERT_TRUE(eventually(
      [&] { return s.endpoint()["groups"][0]["replicas"][0]["report"].contains("gpus"); }, 10))
      << s.endpoint().dump(2);
  const json gpus = s.endpoint()["groups"][0]["replicas"][0]["report"]["gpus"];
  ASSERT_EQ(gpus.size(), 1u) << gpus.dump();
  EXPECT_EQ(gpus[0]["index"], 1);
  EXPECT_DOUBLE_EQ(gpus[0]["utilization"].get<double>(), 0.40);
  EXPECT_EQ(gpus[0]["memory_used_bytes"].get<uint64_t>(), 20ull << 30);
  EXPECT_EQ(gpus[0]["memory_total_bytes"].get<uint64_t>(), 80ull << 30);
  const std::string t = s.api("GET", "/metrics").body;
  const std::string l = R"({endpoint="chat",group="local",replica="1",gpu="1"})";
  EXPECT_DOUBLE_EQ(metric(t, "tide_replica_gpu_utilization_ratio" + l), 0.40) << t;
  EXPECT_EQ(metric(t, "tide_replica_gpu_memory_used_bytes" + l), 20.0 * (1ull << 30));
  EXPECT_EQ(metric(t, "tide_replica_gpu_memory_total_bytes" + l), 80.0 * (1ull << 30));
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
  const json agents = json::parse(s.api("GET", "/v1/agents").body);
  EXPECT_EQ(agents["reports"]["rejected"]["invalid_report"], 1);
  EXPECT_EQ(agents["reports"]["rejected"]["unauthorized"], 1);
  EXPECT_GE(agents["reports"]["accepted"].get<int>(), 1);  // the real agent's
  EXPECT_EQ(s.terminate(), 0);
}

// ---- kind kubernetes, against the fake API server -------------------------------------------

// The nodes of a fake cluster: each pod created through the fake API server runs as a real
// `tide demo-model` process on an address of its own (127.0.0.N, all on one port, as pods of a
// group are), and is stopped when its pod is deleted.
class FakeKubelet {
 public:
  FakeKubelet(provision::testing::FakeKubeApi& api, const std::string& marker) : api_(api) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    port_ = ntohs(a.sin_port);
    api.on_create([this, marker](const std::string& ns, const std::string& name) {
      const std::string ip = "127.0.0." + std::to_string(next_ip_++);
      const std::string port = std::to_string(port_);
      const int pid = ::fork();
      if (pid == 0) {
        const int null_fd = ::open("/dev/null", O_WRONLY);
        ::dup2(null_fd, 1);
        ::execl(TIDE_BIN, TIDE_BIN, "demo-model", "--host", ip.c_str(), "--port", port.c_str(),
                "--load-time", "300ms", "--concurrency", "2", "--service", "fixed:500ms", "--model",
                marker.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
      }
      {
        std::lock_guard lock(mu_);
        pids_[name] = pid;
      }
      api_.set_status(ns, name, "pod-running", ip);  // started; tide probes until it answers
    });
    api.on_delete([this](const std::string&, const std::string& name) {
      int pid = -1;
      {
        std::lock_guard lock(mu_);
        if (auto it = pids_.find(name); it != pids_.end()) {
          pid = it->second;
          pids_.erase(it);
        }
      }
      if (pid > 0) {
        ::kill(pid, SIGTERM);
        ::waitpid(pid, nullptr, 0);
      }
    });
  }
  ~FakeKubelet() {
    api_.on_create(nullptr);
    api_.on_delete(nullptr);
    std::lock_guard lock(mu_);
    for (const auto& [name, pid] : pids_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  uint16_t port() const { return port_; }

 private:
  provision::testing::FakeKubeApi& api_;
  uint16_t port_ = 0;
  std::atomic<int> next_ip_{2};
  std::mutex mu_;
  std::map<std::string, int> pids_;
};

struct KubernetesCluster {
  explicit KubernetesCluster(const std::string& name)
      : dir(fs::temp_directory_path() / ("tide_k8s_" + std::to_string(getpid()) + "_" + name)),
        marker("e2e-k8s-" + std::to_string(getpid()) + "-" + name),
        kubelet(api, marker) {
    fs::create_directories(dir);
    kubeconfig = api.write_kubeconfig(dir.string());
  }
  ~KubernetesCluster() { fs::remove_all(dir); }
  std::string provisioner() const {
    return "{kind: kubernetes, namespace: ml, kubeconfig: \"" + kubeconfig +
           "\", port: " + std::to_string(kubelet.port()) +
           ", pending_timeout: 30s, gpus_per_replica: 1, ready: {path: /health, interval: 50ms}, "
           "template: {metadata: {labels: {app: chat}}, spec: {containers: [{name: model, image: "
           "\"vllm/vllm-openai:v0.6.3\"}]}}}";
  }
  fs::path dir;
  std::string marker;
  provision::testing::FakeKubeApi api;
  FakeKubelet kubelet;
  std::string kubeconfig;
};

TEST(ServeKubernetes, ScalesPodsFromZeroAnswersEveryRequestAndDeletesThemAll) {
  KubernetesCluster k8s("scale");
  Options o;
  o.provisioner = k8s.provisioner();
  Serve s("k8s-scale", o);
  EXPECT_EQ(s.count("ready"), 0);
  EXPECT_TRUE(k8s.api.pod_names("ml").empty());
  std::atomic<size_t> max_pods{0};
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done) {
      max_pods = std::max(max_pods.load(), k8s.api.pod_names("ml").size());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  const std::vector<HttpResponse> responses = burst(s.port(), 20);
  done = true;
  watcher.join();
  for (const auto& r : responses) {
    EXPECT_EQ(r.status, 200) << r.error << r.body;
    EXPECT_NE(r.body.find("text_completion"), std::string::npos);
  }
  EXPECT_EQ(max_pods.load(), 4u);  // max_replicas
  EXPECT_EQ(s.endpoint()["groups"][0]["launches"].get<int>(), 4);
  EXPECT_EQ(k8s.api.created().size(), 4u);
  // Idle: back to zero replicas, every pod deleted, every "container" stopped.
  EXPECT_TRUE(eventually([&] { return s.count("ready") == 0 && s.count("draining") == 0; }, 10))
      << s.endpoint().dump();
  EXPECT_TRUE(eventually([&] { return k8s.api.pod_names("ml").empty(); }, 5));
  EXPECT_TRUE(eventually([&] { return processes_with(k8s.marker).empty(); }, 5));
  EXPECT_EQ(s.terminate(), 0);
}

TEST(ServeKubernetes, PodDeletedFromOutsideIsReplacedAndShutdownDeletesEveryPod) {
  KubernetesCluster k8s("replace");
  Options o;
  o.min_replicas = 2;
  o.provisioner = k8s.provisioner();
  Serve s("k8s-replace", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 2; }, 15)) << s.endpoint().dump();
  const std::vector<std::string> pods = k8s.api.pod_names("ml");
  ASSERT_EQ(pods.size(), 2u);
  k8s.api.remove("ml", pods[0]);  // kubectl delete pod
  EXPECT_TRUE(eventually([&] { return s.count("failures") == 1; }, 10)) << s.endpoint().dump();
  EXPECT_TRUE(eventually([&] { return s.count("ready") == 2 && s.count("launches") == 3; }, 15))
      << s.endpoint().dump();
  const std::vector<std::string> now = k8s.api.pod_names("ml");
  EXPECT_EQ(now.size(), 2u);
  EXPECT_EQ(std::count(now.begin(), now.end(), pods[0]), 0);
  EXPECT_NE(s.endpoint()["groups"][0].value("last_error", "").find("was deleted (not by tide)"),
            std::string::npos)
      << s.endpoint().dump();
  EXPECT_EQ(s.terminate(), 0);
  EXPECT_TRUE(k8s.api.pod_names("ml").empty());
  EXPECT_TRUE(eventually([&] { return processes_with(k8s.marker).empty(); }, 5));
}

TEST(ServeKubernetes, AfterSigkillARestartAdoptsTheSamePods) {
  KubernetesCluster k8s("restart");
  Options o;
  o.min_replicas = 2;
  o.idle_timeout = "30s";
  o.provisioner = k8s.provisioner();
  Serve s("k8s-restart", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 2; }, 15)) << s.endpoint().dump();
  const std::vector<uint64_t> ids = replica_ids(s.endpoint());
  std::vector<std::string> pods = k8s.api.pod_names("ml");
  ASSERT_EQ(pods.size(), 2u);

  s.kill_hard();  // the pods stay: they are not tide's children
  EXPECT_EQ(k8s.api.pod_names("ml"), pods);
  s.start();
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 2; }, 15)) << s.endpoint().dump();
  EXPECT_EQ(replica_ids(s.endpoint()), ids) << "the same replicas, adopted";
  EXPECT_EQ(k8s.api.pod_names("ml"), pods) << "no pod created, none deleted";
  EXPECT_EQ(k8s.api.created().size(), 2u);
  for (const auto& r : burst(s.port(), 4)) EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(s.terminate(), 0);
  EXPECT_TRUE(k8s.api.pod_names("ml").empty());
}

}  // namespace
}  // namespace tide::test
