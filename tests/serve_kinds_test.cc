// End to end, for every kind of replica: the same tests with local processes (in
// tide_serve_test) and with Slurm jobs of the test cluster (tide_serve_slurm_test, which alone
// needs the slurm fixture). TIDE_SERVE_KIND names the kind a binary runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "serve_harness.h"

namespace tide::test {
namespace {

INSTANTIATE_TEST_SUITE_P(Kinds, ServeKind, ::testing::Values(TIDE_SERVE_KIND),
                         [](const auto& p) { return p.param; });

TEST_P(ServeKind, ScalesFromZeroAnswersEveryRequestAndScalesBackToZero) {
  Options o = options();
  o.service = "fixed:1s";  // work enough for all four: Slurm starts jobs up to a second apart
  Serve s("scale-" + GetParam(), o);
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
  // Each decision reaches the state file with every input: the stored copy is the live one.
  json stored;
  EXPECT_TRUE(eventually(
      [&] {
        stored = json::parse(s.api("GET", "/v1/endpoints/chat/decisions?from=0").body)["decisions"];
        return stored.size() >= e["decisions"].size();
      },
      5));
  for (const json& d : e["decisions"]) {
    EXPECT_TRUE(d["utilization"].is_number()) << d.dump();
    EXPECT_NE(std::find(stored.begin(), stored.end(), d), stored.end())
        << d.dump() << " not in " << stored.dump();
  }
  // Idle 1 s: back to zero, and the processes are gone.
  EXPECT_TRUE(eventually([&] { return s.count("ready") == 0 && s.count("draining") == 0; }, 10))
      << s.endpoint().dump();
  EXPECT_TRUE(eventually([&] { return processes_with(s.marker()).empty(); }, 5));
  EXPECT_TRUE(eventually([&] { return s.slurm_jobs().empty(); }, 10));  // no job left behind
  EXPECT_EQ(s.terminate(), 0);
}

TEST_P(ServeKind, ReplicaKilledMidBurstFailsOnlyTheRequestItHadTaken) {
  Options o = options();
  o.min_replicas = 2;
  o.max_replicas = 2;
  o.concurrency = 1;
  o.service = "fixed:400ms";
  Serve s("kill-" + GetParam(), o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 2; }, 10));
  std::vector<HttpResponse> responses;
  std::thread client([&] { responses = burst(s.port(), 8); });
  // Once requests are in service, kill one replica outright.
  ASSERT_TRUE(eventually([&] { return s.count("in_flight") == 2; }, 5));
  const std::vector<int> pids = processes_with(s.marker());
  ASSERT_EQ(pids.size(), 2u);
  ::kill(pids[0], SIGKILL);
  client.join();
  // The request the killed replica had taken gets a 502 that says so (a request a replica took
  // is never sent to a second one); every other one is answered.
  int ok = 0;
  for (const auto& r : responses) {
    if (r.status == 200) {
      ++ok;
    } else {
      EXPECT_EQ(r.status, 502) << r.error << r.body;
      EXPECT_NE(r.body.find("replica_dropped"), std::string::npos) << r.body;
    }
  }
  // The killed replica may also have taken a second request in the instant before it died (a
  // connection its listen backlog had accepted): at most two answers are 502.
  EXPECT_GE(ok, 6);
  // The control loop replaces it.
  EXPECT_TRUE(eventually([&] { return s.count("ready") == 2; }, 10));
  EXPECT_GE(s.endpoint()["groups"][0]["failures"].get<int>(), 1);
  EXPECT_EQ(s.terminate(), 0);
}

#if TIDE_SERVE_SLURM
// Slurm only: what a cluster does to jobs behind tide's back.
class ServeSlurm : public ServeKind {};
INSTANTIATE_TEST_SUITE_P(Kinds, ServeSlurm, ::testing::Values("slurm"),
                         [](const auto& p) { return p.param; });

TEST_P(ServeSlurm, JobCancelledFromOutsideIsReplaced) {
  Options o = options();
  o.min_replicas = 2;
  o.max_replicas = 2;
  Serve s("scancel", o);
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 2; }, 20));
  const std::vector<std::string> jobs = s.slurm_jobs();
  ASSERT_EQ(jobs.size(), 2u);
  ASSERT_EQ(std::system(("scancel " + jobs[0]).c_str()), 0);
  EXPECT_TRUE(eventually([&] { return s.count("failures") == 1; }, 10)) << s.endpoint().dump();
  EXPECT_TRUE(eventually([&] { return s.count("ready") == 2; }, 20)) << s.endpoint().dump();
  const std::vector<std::string> now = s.slurm_jobs();
  EXPECT_EQ(now.size(), 2u);
  EXPECT_EQ(std::count(now.begin(), now.end(), jobs[0]), 0);  // a new job in its place
  // The error names the cancelled job: squeue saw it CANCELLED, or still COMPLETING (the state
  // it passes through first; a loaded machine may poll then), or the probe found it gone first.
  const std::string error = s.endpoint()["groups"][0]["last_error"].get<std::string>();
  EXPECT_TRUE(error.find("job " + jobs[0] + " CANCELLED") != std::string::npos ||
              error.find("job " + jobs[0] + " is ending (COMPLETING)") != std::string::npos ||
              error.find("health check failed") != std::string::npos)
      << s.endpoint().dump();
  for (const auto& r : burst(s.port(), 4)) EXPECT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_EQ(s.terminate(), 0);
  EXPECT_TRUE(eventually([&] { return s.slurm_jobs().empty(); }, 10));  // shutdown cancelled them
}
#endif  // TIDE_SERVE_SLURM

TEST_P(ServeKind, AfterSigkillUnderLoadARestartAdoptsTheSameReplicasAndHistoryGoesOn) {
  Options o = options();
  o.min_replicas = 2;
  o.idle_timeout = "30s";
  Serve s("restart-" + GetParam(), o);
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
  if (GetParam() == "slurm") {
    EXPECT_EQ(s.slurm_jobs().size(), 2u) << "the same two jobs";
  }
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
  EXPECT_TRUE(eventually([&] { return s.slurm_jobs().empty(); }, 10));
}

}  // namespace
}  // namespace tide::test
