// The slurm provisioner against a real single-node Slurm (scripts/slurm-local.sh, started by the
// `slurm` ctest fixture; SLURM_CONF points at it): `tide demo-model` replicas as batch jobs.
// Tests may run in parallel on the same cluster: each names its replicas with its own prefix and
// looks only at its own jobs.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "tide/provision/provision.h"
#include "tide/provision/test_util.h"

#ifndef TIDE_BINARY
#error "TIDE_BINARY must name the tide executable"
#endif

namespace tide::provision::testing {
namespace {

using Kind = Event::Kind;

// What a shell command printed (its exit status in `status`).
std::string shell(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = ::pclose(p);
  if (status != nullptr) *status = st;
  return out;
}

// Records handles too.
class SlurmRecorder : public Recorder {
 public:
  void on_replica_handle(uint64_t id, std::string handle) override { handles[id] = handle; }
  std::map<uint64_t, std::string> handles;
};

class SlurmProvisionerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* skip = std::getenv("TIDE_SKIP_SLURM"); skip && std::string(skip) == "1")
      GTEST_SKIP() << "TIDE_SKIP_SLURM=1";
    ASSERT_NE(std::getenv("SLURM_CONF"), nullptr)
        << "SLURM_CONF is not set: run through ctest (its slurm fixture starts a cluster), or "
           "start one with scripts/slurm-local.sh start DIR and export SLURM_CONF=DIR/slurm.conf; "
           "TIDE_SKIP_SLURM=1 skips these tests";
    int status = 0;
    const std::string nodes = shell("sinfo -h -o %T 2>&1", &status);
    ASSERT_EQ(status, 0) << "no Slurm cluster answers at SLURM_CONF=" << std::getenv("SLURM_CONF")
                         << ": " << nodes;
    dir_ = make_temp_dir();
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    prefix_ = fmt::format("st{}-{}", ::getpid(), info->name());
    options_.liveness_interval = 200ms;
    group_.name = "g";
    group_.provisioner.kind = "slurm";
    group_.provisioner.ready.interval = 50ms;
    group_.provisioner.slurm.poll_interval = 100ms;
    group_.provisioner.slurm.output = dir_ + "/job-%j.out";
    group_.provisioner.command = {TIDE_BINARY, "demo-model",  "--port",
                                  "{port}",    "--load-time", "200ms"};
  }

  void TearDown() override {
    if (provisioner_) {
      bool done = false;
      provisioner_->shutdown([&] { done = true; });
      EXPECT_TRUE(run_until(io_, [&] { return done; }));
      provisioner_.reset();
    }
    if (prefix_.empty()) return;
    // No job left behind.
    EXPECT_TRUE(eventually([&] { return active_jobs().empty(); })) << shell("squeue 2>&1");
    for (uint64_t job : active_jobs()) shell(fmt::format("scancel {}", job));
  }

  LiveProvisioner& make() {
    provisioner_ = std::make_unique<LiveProvisioner>(io_, clock_, options_);
    return *provisioner_;
  }
  control::Replica replica_of(uint64_t id) const {
    control::Replica r;
    r.id = id;
    r.name = fmt::format("{}/g/{}", prefix_, id);
    return r;
  }
  void launch(uint64_t id) {
    events_.in_call = true;
    provisioner_->launch(replica_of(id), group_, events_);
    events_.in_call = false;
  }
  void stop(uint64_t id) { provisioner_->stop(replica_of(id)); }
  // Starts a provisioner, launches `ids` and waits until each is ready (false if one is not).
  bool launch_ready(const std::vector<uint64_t>& ids) {
    make();
    for (uint64_t id : ids) launch(id);
    EXPECT_TRUE(events_.events.empty()) << "launch() must only post";
    run_until(
        io_,
        [&] {
          return std::all_of(ids.begin(), ids.end(), [&](uint64_t id) { return settled(id); });
        },
        60s);
    return std::all_of(ids.begin(), ids.end(), [&](uint64_t id) {
      return events_.kinds(id) == std::vector<Kind>{Kind::kStarting, Kind::kReady};
    });
  }
  // Starts a provisioner, launches replica 1 and waits for it to fail: its error ("" if not).
  std::string launch_that_fails() {
    make();
    launch(1);
    EXPECT_TRUE(run_until(
        io_, [&] { return settled(1); }, 60s))
        << describe(events_.events);
    const Event* failed = events_.find(1, Kind::kFailed);
    EXPECT_NE(failed, nullptr) << describe(events_.events);
    return failed == nullptr ? "" : failed->text;
  }
  bool settled(uint64_t id) const {
    return events_.has(id, Kind::kReady) || events_.has(id, Kind::kFailed);
  }
  uint64_t job_of(uint64_t id) {
    const std::string& h = events_.handles[id];
    return h.starts_with("slurm job=") ? std::stoull(h.substr(10)) : 0;
  }

  // This test's jobs that are pending, running or still completing: job id -> state.
  std::map<uint64_t, std::string> jobs_by_state(bool active_only) {
    std::map<uint64_t, std::string> out;
    std::istringstream lines(shell("squeue -h --states=all -o '%i|%j|%T' 2>/dev/null"));
    for (std::string line; std::getline(lines, line);) {
      const size_t a = line.find('|'), b = line.rfind('|');
      if (a == std::string::npos || a == b) continue;
      if (line.substr(a + 1, b - a - 1).find(prefix_) == std::string::npos) continue;
      const std::string state = line.substr(b + 1);
      if (active_only && state != "PENDING" && state != "RUNNING" && state != "COMPLETING" &&
          state != "CONFIGURING")
        continue;
      out[std::stoull(line.substr(0, a))] = state;
    }
    return out;
  }
  std::set<uint64_t> active_jobs() {
    std::set<uint64_t> out;
    for (const auto& [job, state] : jobs_by_state(true)) out.insert(job);
    return out;
  }
  // Waits for Slurm's own state (asked with a command), running the io_context meanwhile.
  bool eventually(const std::function<bool()>& cond, Duration limit = 20s) {
    return run_until(io_, cond, limit);
  }

  boost::asio::io_context io_;
  SteadyClock clock_;
  SlurmRecorder events_;
  ProvisionOptions options_;
  config::GroupSpec group_;
  std::string dir_;
  std::string prefix_;
  std::unique_ptr<LiveProvisioner> provisioner_;
};

TEST_F(SlurmProvisionerTest, ScalesUpToThreeJobsThatBecomeReadyThenDownWithScancel) {
  ASSERT_TRUE(launch_ready({1, 2, 3})) << describe(events_.events);
  std::set<std::string> addresses;
  for (uint64_t id : {1, 2, 3}) {
    ASSERT_EQ(events_.kinds(id), (std::vector<Kind>{Kind::kStarting, Kind::kReady}))
        << describe(events_.events);
    EXPECT_NE(job_of(id), 0u) << events_.handles[id];
    const std::string address = events_.find(id, Kind::kReady)->text;
    EXPECT_TRUE(address.starts_with("127.0.0.1:")) << address;  // the node's NodeAddr
    addresses.insert(address);
  }
  EXPECT_EQ(addresses.size(), 3u);
  EXPECT_EQ(active_jobs().size(), 3u);
  // Scale down: two are cancelled, nothing more is reported for them; the third stays.
  stop(1);
  stop(2);
  const uint64_t j1 = job_of(1), j2 = job_of(2);
  EXPECT_TRUE(eventually([&] { return active_jobs() == std::set<uint64_t>{job_of(3)}; }))
      << shell("squeue --states=all 2>&1");
  const auto states = jobs_by_state(false);
  EXPECT_EQ(states.at(j1), "CANCELLED");
  EXPECT_EQ(states.at(j2), "CANCELLED");
  run_until(
      io_, [] { return false; }, 300ms);
  EXPECT_EQ(events_.kinds(1), (std::vector<Kind>{Kind::kStarting, Kind::kReady}));
  EXPECT_FALSE(events_.has(3, Kind::kFailed));
}

TEST_F(SlurmProvisionerTest, GpusComeFromSlurmGres) {
  group_.provisioner.slurm.gres = "gpu:1";
  group_.provisioner.command = {
      "/bin/sh",
      "-c",
      "echo \"$CUDA_VISIBLE_DEVICES\" > \"$1\"; exec \"$2\" demo-model --port \"$3\"",
      "sh",
      dir_ + "/gpu-{replica_id}",
      TIDE_BINARY,
      "{port}"};
  ASSERT_TRUE(launch_ready({1, 2})) << describe(events_.events);
  // The node has two fake GPUs: each job got its own.
  std::set<std::string> gpus = {read_file(dir_ + "/gpu-1"), read_file(dir_ + "/gpu-2")};
  EXPECT_EQ(gpus, (std::set<std::string>{"0\n", "1\n"}));
}

TEST_F(SlurmProvisionerTest, JobCancelledFromOutsideFailsWithItsState) {
  ASSERT_TRUE(launch_ready({1})) << describe(events_.events);
  ASSERT_TRUE(events_.has(1, Kind::kReady)) << describe(events_.events);
  shell(fmt::format("scancel {}", job_of(1)));
  ASSERT_TRUE(run_until(
      io_, [&] { return events_.has(1, Kind::kFailed); }, 20s))
      << describe(events_.events);
  const std::string error = events_.find(1, Kind::kFailed)->text;
  // squeue saw it CANCELLED, or still COMPLETING, or the probe found the replica gone first.
  // While it is COMPLETING, slurmstepd may not yet have written its "CANCELLED AT" line to the
  // output (seen in a clean-clone CI run), so the output is not required to tell.
  EXPECT_TRUE(error.find(fmt::format("job {} CANCELLED", job_of(1))) != std::string::npos ||
              error.find(fmt::format("job {} is ending (COMPLETING)", job_of(1))) !=
                  std::string::npos ||
              error.find("health check failed") != std::string::npos)
      << error;
}

TEST_F(SlurmProvisionerTest, CommandThatExitsFailsTheJobWithItsOutput) {
  group_.provisioner.command = {"/bin/sh", "-c", "echo model file missing >&2; exit 3"};
  const std::string error = launch_that_fails();
  // squeue saw it FAILED, or still COMPLETING with the reason that says it failed (a loaded
  // machine may poll between the two); the command's output tells why either way.
  EXPECT_TRUE(error.find(fmt::format("job {} FAILED", job_of(1))) != std::string::npos ||
              error.find(fmt::format("job {} is ending (COMPLETING) (NonZeroExitCode)",
                                     job_of(1))) != std::string::npos)
      << error;
  EXPECT_NE(error.find("model file missing"), std::string::npos) << error;
}

TEST_F(SlurmProvisionerTest, JobPendingPastItsTimeoutFailsForNoCapacityAndIsCancelled) {
  group_.provisioner.slurm.sbatch_args = {"--begin=now+3600"};  // cannot start for an hour
  group_.provisioner.pending_timeout = 1s;
  const std::string error = launch_that_fails();
  EXPECT_NE(error.find("no capacity"), std::string::npos) << error;
  EXPECT_NE(error.find("PENDING after 1s (BeginTime)"), std::string::npos) << error;
  const Event* starting = events_.find(1, Kind::kStarting);
  const Event* failed = events_.find(1, Kind::kFailed);
  ASSERT_TRUE(starting != nullptr && failed != nullptr);
  EXPECT_GE(failed->time - starting->time, 900ms);
  EXPECT_TRUE(eventually([&] { return active_jobs().empty(); }));
}

TEST_F(SlurmProvisionerTest, SbatchRefusalFailsTheLaunchWithSlurmsWords) {
  group_.provisioner.slurm.partition = "no-such-partition";
  const std::string error = launch_that_fails();
  EXPECT_NE(error.find("sbatch: exit 1"), std::string::npos) << error;
  EXPECT_NE(error.find("Invalid partition name"), std::string::npos) << error;
}

TEST_F(SlurmProvisionerTest, ASecondProvisionerAdoptsTheJobsOfTheFirst) {
  ASSERT_TRUE(launch_ready({1, 2})) << describe(events_.events);
  const std::map<uint64_t, std::string> handles = events_.handles;
  const std::string address1 = events_.find(1, Kind::kReady)->text;
  // tide dies: the provisioner goes without shutdown; the jobs stay.
  provisioner_.reset();
  const std::set<uint64_t> jobs = active_jobs();
  EXPECT_EQ(jobs.size(), 2u);

  SlurmRecorder adopted;
  provisioner_ = std::make_unique<LiveProvisioner>(io_, clock_, options_);
  for (uint64_t id : {1, 2})
    EXPECT_TRUE(provisioner_->adopt(replica_of(id), group_, handles.at(id), adopted));
  // A handle of another kind, or of a job long gone.
  EXPECT_FALSE(provisioner_->adopt(replica_of(3), group_, "local pid=1 start=2 port=3", adopted));
  EXPECT_TRUE(provisioner_->adopt(replica_of(4), group_, "slurm job=999999", adopted));
  ASSERT_TRUE(run_until(
      io_,
      [&] {
        return adopted.has(1, Kind::kReady) && adopted.has(2, Kind::kReady) &&
               adopted.has(4, Kind::kFailed);
      },
      30s))
      << describe(adopted.events);
  EXPECT_EQ(adopted.kinds(1), (std::vector<Kind>{Kind::kStarting, Kind::kReady}));
  EXPECT_EQ(adopted.find(1, Kind::kReady)->text, address1);
  EXPECT_NE(adopted.find(4, Kind::kFailed)->text.find("no longer in Slurm's queue"),
            std::string::npos);
  EXPECT_EQ(active_jobs(), jobs);  // the same jobs, none launched anew
  // TearDown: shutdown cancels the adopted jobs too.
}

TEST_F(SlurmProvisionerTest, ShutdownCancelsEveryJobEvenOneStillBeingSubmitted) {
  ASSERT_TRUE(launch_ready({1})) << describe(events_.events);
  launch(2);  // its sbatch may still run when shutdown comes
  bool done = false;
  provisioner_->shutdown([&] { done = true; });
  ASSERT_TRUE(run_until(
      io_, [&] { return done; }, 30s));
  EXPECT_TRUE(eventually([&] { return active_jobs().empty(); })) << shell("squeue 2>&1");
  EXPECT_FALSE(events_.has(1, Kind::kFailed)) << describe(events_.events);
  provisioner_->launch(replica_of(3), group_, events_);
  ASSERT_TRUE(run_until(io_, [&] { return events_.has(3, Kind::kFailed); }));
  EXPECT_EQ(events_.find(3, Kind::kFailed)->text, "provisioner is shutting down");
  provisioner_.reset();
}

}  // namespace
}  // namespace tide::provision::testing
