// The local provisioner with real processes on 127.0.0.1: `tide demo-model` as the replica, and
// small sh scripts where a replica has to misbehave.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "tide/demo_model/demo_model.h"
#include "tide/provision/provision.h"
#include "tide/provision/test_util.h"

#ifndef TIDE_BINARY
#error "TIDE_BINARY must name the tide executable"
#endif

namespace tide::provision::testing {
namespace {

using Kind = Event::Kind;

// True once `pid` is gone or a zombie: it can run no more.
bool process_dead(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  const size_t paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] == 'Z';
}

class LocalProvisionerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir();
    options_.stop_grace = 5s;
    options_.liveness_interval = 100ms;
    options_.output = [this](std::string_view replica, std::string_view line) {
      std::lock_guard lock(output_mu_);
      output_.emplace_back(std::string(replica), std::string(line));
    };
    group_.name = "g";
    group_.provisioner.kind = "local";
    group_.provisioner.ready.interval = 20ms;
    group_.provisioner.ready.timeout = 1s;
  }

  void TearDown() override {
    if (!provisioner_) return;
    bool done = false;
    provisioner_->shutdown([&] { done = true; });
    EXPECT_TRUE(run_until(io_, [&] { return done; }));
    EXPECT_TRUE(provisioner_->children().empty());
    provisioner_.reset();
  }

  LiveProvisioner& make() {
    provisioner_ = std::make_unique<LiveProvisioner>(io_, clock_, options_);
    return *provisioner_;
  }

  void launch(uint64_t id) {
    events_.in_call = true;
    provisioner_->launch(replica(id), group_, events_);
    events_.in_call = false;
  }
  void stop(uint64_t id) {
    events_.in_call = true;
    provisioner_->stop(replica(id));
    events_.in_call = false;
  }

  bool has_child(uint64_t id) const {
    for (const auto& c : provisioner_->children()) {
      if (c.replica_id == id) return true;
    }
    return false;
  }
  int pid_of(uint64_t id) const {
    for (const auto& c : provisioner_->children()) {
      if (c.replica_id == id) return c.pid;
    }
    return -1;
  }
  bool printed(const std::string& replica, const std::string& text) {
    std::lock_guard lock(output_mu_);
    for (const auto& [r, line] : output_) {
      if (r == replica && line.find(text) != std::string::npos) return true;
    }
    return false;
  }
  bool settled(uint64_t id) const {
    return events_.has(id, Kind::kReady) || events_.has(id, Kind::kFailed);
  }

  // A replica that never answers HTTP; it prints "armed" once its traps are set.
  static std::vector<std::string> idle_script(const std::string& on_term) {
    return {"/bin/sh", "-c",
            "trap '" + on_term + "' TERM; echo \"armed $TIDE_PORT\"; while :; do sleep 0.05; done"};
  }

  boost::asio::io_context io_;
  SteadyClock clock_;
  Recorder events_;
  ProvisionOptions options_;
  config::GroupSpec group_;
  std::string dir_;
  std::unique_ptr<LiveProvisioner> provisioner_;
  std::mutex output_mu_;
  std::vector<std::pair<std::string, std::string>> output_;
};

TEST_F(LocalProvisionerTest, LaunchReportsStartingThenReadyWithAddressEnvironmentAndPort) {
  group_.provisioner.command = {
      "/bin/sh",
      "-c",
      "env > \"$1\"; exec \"$2\" demo-model --port \"$3\" --load-time 300ms",
      "sh",
      dir_ + "/env-{replica_id}",
      TIDE_BINARY,
      "{port}"};
  group_.provisioner.gpus = {2, 3};
  group_.provisioner.gpus_per_replica = 1;
  make();
  launch(7);
  EXPECT_TRUE(events_.events.empty()) << "launch() must only post";
  ASSERT_TRUE(run_until(io_, [&] { return settled(7); })) << describe(events_.events);

  ASSERT_EQ(events_.kinds(7), (std::vector<Kind>{Kind::kStarting, Kind::kReady}))
      << describe(events_.events);
  const Event& starting = *events_.find(7, Kind::kStarting);
  const Event& ready = *events_.find(7, Kind::kReady);
  EXPECT_GE(ready.time - starting.time, 250ms) << "ready before the 300ms load time was over";

  const std::string env = read_file(dir_ + "/env-7");
  const size_t at = env.find("TIDE_PORT=");
  ASSERT_NE(at, std::string::npos) << env;
  const std::string port = env.substr(at + 10, env.find('\n', at) - at - 10);
  EXPECT_EQ(ready.text, "127.0.0.1:" + port);
  EXPECT_NE(env.find("TIDE_REPLICA_ID=7\n"), std::string::npos) << env;
  EXPECT_NE(env.find("TIDE_REPLICA_NAME=ep/g/7\n"), std::string::npos) << env;
  EXPECT_NE(env.find("CUDA_VISIBLE_DEVICES=2\n"), std::string::npos) << env;
  EXPECT_NE(env.find("PATH="), std::string::npos) << "the environment is inherited";

  EXPECT_GT(pid_of(7), 0);
  EXPECT_TRUE(printed("ep/g/7", "listening on 127.0.0.1:" + port)) << "stdout is forwarded";
}

TEST_F(LocalProvisionerTest, GpuPoolHandsOutDistinctGpusAndTakesThemBackWhenTheProcessExits) {
  group_.provisioner.command = {
      "/bin/sh", "-c", "echo \"$CUDA_VISIBLE_DEVICES\" > \"$1-$TIDE_REPLICA_ID\"; exec sleep 30",
      "sh", dir_ + "/gpus"};
  group_.provisioner.gpus = {0, 1, 2, 3};
  group_.provisioner.gpus_per_replica = 2;
  make();
  launch(1);
  launch(2);
  launch(3);
  auto gpus = [&](uint64_t id) { return read_file(dir_ + "/gpus-" + std::to_string(id)); };
  ASSERT_TRUE(run_until(io_, [&] {
    return events_.has(1, Kind::kStarting) && events_.has(2, Kind::kStarting) &&
           events_.has(3, Kind::kFailed) && !gpus(1).empty() && !gpus(2).empty();
  })) << describe(events_.events);
  EXPECT_EQ(gpus(1), "0,1\n");
  EXPECT_EQ(gpus(2), "2,3\n");
  EXPECT_EQ(events_.find(3, Kind::kFailed)->text,
            "no free GPU: needs 2 of gpus [0,1,2,3], [0,1,2,3] in use");
  EXPECT_EQ(events_.kinds(3), std::vector<Kind>{Kind::kFailed});

  stop(1);
  ASSERT_TRUE(run_until(io_, [&] { return !has_child(1); }));
  launch(4);
  launch(5);
  ASSERT_TRUE(run_until(io_, [&] {
    return events_.has(4, Kind::kStarting) && events_.has(5, Kind::kFailed) && !gpus(4).empty();
  })) << describe(events_.events);
  EXPECT_EQ(gpus(4), "0,1\n");
  EXPECT_EQ(events_.kinds(1), std::vector<Kind>{Kind::kStarting}) << "nothing after stop()";
}

TEST_F(LocalProvisionerTest, ExitBeforeReadyReportsTheStatusAndTheLastOutput) {
  group_.provisioner.command = {
      "/bin/sh", "-c", "echo loading weights; echo 'CUDA error: out of memory' >&2; exit 3"};
  make();
  launch(1);
  ASSERT_TRUE(run_until(io_, [&] { return events_.has(1, Kind::kFailed); }))
      << describe(events_.events);
  EXPECT_EQ(events_.kinds(1), (std::vector<Kind>{Kind::kStarting, Kind::kFailed}));
  EXPECT_EQ(events_.find(1, Kind::kFailed)->text,
            "exited with status 3 before ready: loading weights\nCUDA error: out of memory");
  EXPECT_TRUE(provisioner_->children().empty());
}

TEST_F(LocalProvisionerTest, ProcessKilledAfterReadyIsReportedWithItsSignal) {
  group_.provisioner.command = {TIDE_BINARY, "demo-model", "--port", "{port}"};
  make();
  launch(1);
  ASSERT_TRUE(run_until(io_, [&] { return settled(1); })) << describe(events_.events);
  ASSERT_TRUE(events_.has(1, Kind::kReady)) << describe(events_.events);
  const int pid = pid_of(1);
  ASSERT_GT(pid, 0);
  ::kill(pid, SIGKILL);
  ASSERT_TRUE(run_until(io_, [&] { return events_.has(1, Kind::kFailed); }));
  const std::string error = events_.find(1, Kind::kFailed)->text;
  EXPECT_EQ(error.rfind("killed by signal 9", 0), 0u) << error;
  EXPECT_NE(error.find("after ready"), std::string::npos) << error;
  EXPECT_TRUE(provisioner_->children().empty());
}

// A replica that hangs (SIGSTOP) after ready: its probes time out, it is reported failed once
// and then stopped (SIGTERM with SIGCONT, so it need not wait for the SIGKILL).
TEST_F(LocalProvisionerTest, HungReplicaFailsItsHealthChecksAndIsStopped) {
  options_.liveness_interval = 50ms;
  group_.provisioner.ready.timeout = 100ms;
  group_.provisioner.command = {TIDE_BINARY, "demo-model", "--port", "{port}"};
  make();
  launch(1);
  ASSERT_TRUE(run_until(io_, [&] { return settled(1); }));
  ASSERT_TRUE(events_.has(1, Kind::kReady)) << describe(events_.events);
  ::kill(pid_of(1), SIGSTOP);
  ASSERT_TRUE(run_until(io_, [&] { return events_.has(1, Kind::kFailed); }));
  EXPECT_EQ(events_.find(1, Kind::kFailed)->text,
            "health check failed 3 times: timed out after 100ms");
  const Time failed_at = clock_.now();
  ASSERT_TRUE(run_until(io_, [&] { return !has_child(1); }));
  EXPECT_LT(clock_.now() - failed_at, options_.stop_grace);
  EXPECT_EQ(events_.kinds(1), (std::vector<Kind>{Kind::kStarting, Kind::kReady, Kind::kFailed}));
}

TEST_F(LocalProvisionerTest, ProgramThatCannotRunFailsTheLaunch) {
  group_.provisioner.command = {"/nonexistent/tide-replica"};
  make();
  launch(1);
  group_.provisioner.command = {"tide-no-such-command"};
  launch(2);
  ASSERT_TRUE(run_until(io_, [&] { return settled(1) && settled(2); }));
  EXPECT_EQ(events_.kinds(1), std::vector<Kind>{Kind::kFailed});
  EXPECT_EQ(events_.find(1, Kind::kFailed)->text,
            "cannot run /nonexistent/tide-replica: No such file or directory");
  EXPECT_EQ(events_.find(2, Kind::kFailed)->text, "command not found: tide-no-such-command");
}

TEST_F(LocalProvisionerTest, StopSendsSigtermToTheProcessGroupAndReportsNothing) {
  group_.provisioner.command = idle_script("echo got TERM; exit 0");
  make();
  launch(1);
  ASSERT_TRUE(run_until(io_, [&] { return printed("ep/g/1", "armed"); }));
  const Time stopped_at = clock_.now();
  stop(1);
  EXPECT_TRUE(run_until(io_, [&] { return !has_child(1); }));
  EXPECT_LT(clock_.now() - stopped_at, options_.stop_grace) << "it took SIGKILL, not SIGTERM";
  EXPECT_TRUE(printed("ep/g/1", "got TERM"));
  EXPECT_EQ(events_.kinds(1), std::vector<Kind>{Kind::kStarting});
  stop(1);  // again, and for an unknown replica: no-ops
  stop(99);
  EXPECT_FALSE(run_until(
      io_, [&] { return events_.events.size() > 1; }, 100ms));
}

TEST_F(LocalProvisionerTest, ChildIgnoringSigtermIsKilledAfterTheGracePeriod) {
  options_.stop_grace = 300ms;
  group_.provisioner.command = idle_script("");
  make();
  launch(1);
  ASSERT_TRUE(run_until(io_, [&] { return printed("ep/g/1", "armed"); }));
  const Time stopped_at = clock_.now();
  stop(1);
  ASSERT_TRUE(run_until(io_, [&] { return !has_child(1); }));
  EXPECT_GE(clock_.now() - stopped_at, 290ms) << "killed before the grace period was over";
  EXPECT_EQ(events_.kinds(1), std::vector<Kind>{Kind::kStarting});
}

// The replica ignores SIGTERM and a server answers on its port during the grace period: a probe
// that kept running after stop() would report it ready.
TEST_F(LocalProvisionerTest, StopWhileStartingNeverReportsReady) {
  options_.stop_grace = 700ms;
  group_.provisioner.command = idle_script("");
  make();
  launch(1);
  ASSERT_TRUE(run_until(io_, [&] { return printed("ep/g/1", "armed"); }));
  std::string port;
  {
    std::lock_guard lock(output_mu_);
    for (const auto& [r, line] : output_) {
      if (line.rfind("armed ", 0) == 0) port = line.substr(6);
    }
  }
  stop(1);
  demo_model::DemoModelOptions o;
  o.port = static_cast<uint16_t>(std::stoi(port));
  demo_model::DemoModelServer server(o);
  std::thread serving([&] { server.run(); });
  EXPECT_TRUE(run_until(io_, [&] { return !has_child(1); }));
  server.stop();
  serving.join();
  EXPECT_EQ(events_.kinds(1), std::vector<Kind>{Kind::kStarting});
}

TEST_F(LocalProvisionerTest, StopRightAfterLaunchReportsNothingAndLeavesNoProcess) {
  group_.provisioner.command = {"sleep", "30"};
  make();
  launch(1);
  stop(1);
  bool spawned = false;
  EXPECT_TRUE(run_until(io_, [&] {
    spawned = spawned || has_child(1);
    return spawned && !has_child(1);
  })) << "the child was never spawned or never reaped";
  EXPECT_TRUE(events_.events.empty()) << describe(events_.events);
}

// Children are forked by the provisioner's own thread: one that calls launch() or runs the
// io_context may end without taking the replica down (PR_SET_PDEATHSIG follows the forking
// thread).
TEST_F(LocalProvisionerTest, ReplicaOutlivesTheThreadThatLaunchedIt) {
  group_.provisioner.command = {TIDE_BINARY, "demo-model",  "--port",
                                "{port}",    "--load-time", "200ms"};
  make();
  std::thread launcher([&] {
    launch(1);
    run_until(io_, [&] { return events_.has(1, Kind::kStarting); });
  });
  launcher.join();
  ASSERT_TRUE(events_.has(1, Kind::kStarting));
  ASSERT_TRUE(run_until(io_, [&] { return settled(1); }));
  EXPECT_EQ(events_.kinds(1), (std::vector<Kind>{Kind::kStarting, Kind::kReady}))
      << describe(events_.events);
}

TEST_F(LocalProvisionerTest, ShutdownStopsEveryReplicaThenRefusesLaunches) {
  options_.stop_grace = 300ms;
  make();
  group_.provisioner.command = {TIDE_BINARY, "demo-model", "--port", "{port}"};
  launch(1);
  group_.provisioner.command = idle_script("");
  launch(2);
  ASSERT_TRUE(run_until(io_, [&] { return settled(1) && printed("ep/g/2", "armed"); }));
  ASSERT_EQ(provisioner_->children().size(), 2u);
  bool done = false;
  const Time begun = clock_.now();
  provisioner_->shutdown([&] { done = true; });
  EXPECT_FALSE(done);
  ASSERT_TRUE(run_until(io_, [&] { return done; }));
  EXPECT_GE(clock_.now() - begun, 290ms) << "replica 2 ignores SIGTERM";
  EXPECT_TRUE(provisioner_->children().empty());
  launch(3);
  ASSERT_TRUE(run_until(io_, [&] { return settled(3); }));
  EXPECT_EQ(events_.find(3, Kind::kFailed)->text, "provisioner is shutting down");
  EXPECT_EQ(events_.kinds(1), (std::vector<Kind>{Kind::kStarting, Kind::kReady}));
  EXPECT_EQ(events_.kinds(2), std::vector<Kind>{Kind::kStarting});
}

TEST_F(LocalProvisionerTest, DestroyingTheProvisionerKillsItsChildren) {
  group_.provisioner.command = {"sleep", "30"};
  make();
  launch(1);
  ASSERT_TRUE(run_until(io_, [&] { return events_.has(1, Kind::kStarting); }));
  const int pid = pid_of(1);
  ASSERT_GT(pid, 0);
  provisioner_.reset();
  EXPECT_TRUE(process_dead(pid));
  EXPECT_FALSE(run_until(
      io_, [&] { return events_.events.size() > 1; }, 100ms));
}

// tide itself SIGKILLed: PR_SET_PDEATHSIG takes its replicas down with it. A forked helper plays
// tide: it launches a replica, reports the replica's pid and waits to be killed.
TEST_F(LocalProvisionerTest, WithALogDirReplicasOutliveTheProvisionerAndTheNextOneAdoptsThem) {
  options_.replica_log_dir = dir_;
  group_.provisioner.command = {TIDE_BINARY, "demo-model",  "--port",
                                "{port}",    "--load-time", "100ms"};
  make();
  launch(7);
  ASSERT_TRUE(run_until(io_, [&] { return settled(7); })) << describe(events_.events);
  ASSERT_TRUE(events_.has(7, Kind::kReady)) << describe(events_.events);
  const std::string address = events_.find(7, Kind::kReady)->text;
  const std::string handle = events_.handles[7];
  EXPECT_TRUE(handle.starts_with("local pid=")) << handle;
  EXPECT_NE(handle.find(" log=" + dir_ + "/ep.g.7.log"), std::string::npos) << handle;
  ASSERT_TRUE(run_until(io_, [&] { return printed("ep/g/7", "listening on"); }))
      << "output is read back from the log file";
  const int pid = pid_of(7);
  ASSERT_GT(pid, 0);

  provisioner_.reset();  // as if tide crashed: the replica runs on
  EXPECT_FALSE(process_dead(pid));

  Recorder second;
  make();
  ASSERT_TRUE(provisioner_->adopt(replica(7), group_, handle, second));
  ASSERT_TRUE(run_until(io_, [&] { return second.has(7, Kind::kReady); }))
      << describe(second.events);
  EXPECT_EQ(second.find(7, Kind::kReady)->text, address);
  EXPECT_EQ(pid_of(7), pid);
  provisioner_->stop(replica(7));
  ASSERT_TRUE(run_until(io_, [&] { return process_dead(pid); }));
  EXPECT_TRUE(run_until(io_, [&] { return provisioner_->children().empty(); }));
  EXPECT_FALSE(second.has(7, Kind::kFailed)) << "a stopped replica reports nothing";
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/ep.g.7.log")) << "its log file goes with it";
}

TEST_F(LocalProvisionerTest, ALogFileIsFreedAsItIsReadAndNoLineIsLost) {
  options_.replica_log_dir = dir_;
  options_.replica_log_max_bytes = 20000;
  // 3000 numbered lines of 20 bytes (60 KB), a few at a time, then it idles.
  group_.provisioner.command = {
      "/bin/sh", "-c",
      "i=0; while [ $i -lt 3000 ]; do printf 'line %014d\\n' $i; i=$((i+1)); "
      "[ $((i % 100)) -eq 0 ] && sleep 0.02; done; echo done; while :; do sleep 1; done"};
  make();
  launch(3);
  ASSERT_TRUE(run_until(
      io_, [&] { return printed("ep/g/3", "done"); }, 30s));
  std::set<std::string> lines;
  {
    std::lock_guard lock(output_mu_);
    for (const auto& [r, line] : output_) {
      if (r == "ep/g/3" && line.starts_with("line ")) lines.insert(line);
    }
  }
  // Every line relayed, none lost, while what was read was freed on disk.
  EXPECT_EQ(lines.size(), 3000u);
  const std::string log = dir_ + "/ep.g.3.log";
  const auto size = static_cast<long long>(std::filesystem::file_size(log));
  EXPECT_GT(size, 60000);
  struct stat st {};
  ASSERT_EQ(::stat(log.c_str(), &st), 0);
  EXPECT_LE(static_cast<long long>(st.st_blocks) * 512 + 20000, size);
  stop(3);
}

TEST_F(LocalProvisionerTest, AReplicaWhoseHandleWasNeverRecordedIsFoundAndKilledAfterACrash) {
  options_.replica_log_dir = dir_;
  group_.provisioner.command = idle_script("exit 0");
  make();
  launch(5);
  ASSERT_TRUE(run_until(io_, [&] { return printed("ep/g/5", "armed"); }));
  const int pid = pid_of(5);
  ASSERT_GT(pid, 0);
  provisioner_.reset();  // tide "crashed" before the handle was committed
  ASSERT_FALSE(process_dead(pid));
  // Recorded replicas are left for adoption; another state's marker matches nothing.
  EXPECT_TRUE(LiveProvisioner::kill_unrecorded(dir_, {"ep/g/5"}).empty());
  EXPECT_TRUE(LiveProvisioner::kill_unrecorded(dir_ + "-other", {}).empty());
  EXPECT_FALSE(process_dead(pid));
  const std::vector<std::string> killed = LiveProvisioner::kill_unrecorded(dir_, {"ep/g/4"});
  ASSERT_EQ(killed.size(), 1u);
  EXPECT_TRUE(killed[0].starts_with("ep/g/5 (process group ")) << killed[0];
  EXPECT_TRUE(run_until(io_, [&] { return process_dead(pid); }));
}

TEST_F(LocalProvisionerTest, AdoptingAReplicaThatIsGoneOrABadHandleReportsItFailed) {
  make();
  const std::string other_process =
      "local pid=" + std::to_string(::getpid()) + " start=1 port=" + std::to_string(unused_port());
  ASSERT_TRUE(provisioner_->adopt(replica(1), group_, other_process, events_));
  ASSERT_TRUE(provisioner_->adopt(replica(2), group_, "local nonsense", events_));
  EXPECT_FALSE(provisioner_->adopt(replica(3), group_, "slurm job=4", events_));
  ASSERT_TRUE(run_until(io_, [&] { return settled(1) && settled(2); }));
  EXPECT_NE(events_.find(1, Kind::kFailed)->text.find("gone while tide was not running"),
            std::string::npos)
      << describe(events_.events);
  EXPECT_NE(events_.find(2, Kind::kFailed)->text.find("not a local replica's handle"),
            std::string::npos)
      << describe(events_.events);
}

TEST(LocalProvisionerDeathTest, ReplicaDiesWhenTideIsSigkilled) {
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  const pid_t helper = ::fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    ::close(report[0]);
    boost::asio::io_context io;
    SteadyClock clock;
    Recorder events;
    ProvisionOptions options;
    options.output = [](std::string_view, std::string_view) {};
    LiveProvisioner provisioner(io, clock, options);
    config::GroupSpec group;
    group.provisioner.command = {"sleep", "30"};
    provisioner.launch(replica(1), group, events);
    if (!run_until(io, [&] { return events.has(1, Event::Kind::kStarting); })) ::_exit(2);
    const int pid = provisioner.children().at(0).pid;
    if (::write(report[1], &pid, sizeof pid) != sizeof pid) ::_exit(3);
    for (;;) ::pause();
  }
  ::close(report[1]);
  pollfd p{report[0], POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1) << "the helper reported no replica";
  int pid = 0;
  ASSERT_EQ(::read(report[0], &pid, sizeof pid), static_cast<ssize_t>(sizeof pid));
  ::close(report[0]);
  ASSERT_GT(pid, 0);
  EXPECT_FALSE(process_dead(pid));

  ::kill(helper, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(helper, &status, 0), helper);
  SteadyClock clock;
  const Time deadline = clock.now() + 5s;
  while (!process_dead(pid) && clock.now() < deadline) ::usleep(5000);
  const bool dead = process_dead(pid);
  if (!dead) ::kill(pid, SIGKILL);
  EXPECT_TRUE(dead) << "replica " << pid << " outlived the SIGKILLed provisioner";
}

}  // namespace
}  // namespace tide::provision::testing
