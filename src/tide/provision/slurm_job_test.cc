// The text side of the slurm provisioner, without a cluster: sbatch options, what squeue, sinfo
// and sbatch print, and the batch script run by bash with a stand-in scontrol.
#include "tide/provision/slurm_job.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tide/provision/test_util.h"

namespace tide::provision::detail {
namespace {

using namespace std::chrono_literals;

TEST(SlurmJob, SbatchArgvHasOnlyWhatIsSet) {
  config::SlurmSpec spec;
  EXPECT_EQ(sbatch_argv(spec, "tide:ep/g/1"),
            (std::vector<std::string>{"sbatch", "--parsable", "--no-requeue",
                                      "--job-name=tide:ep/g/1", "--output=/dev/null"}));
  spec.partition = "gpu";
  spec.gres = "gpu:h100:1";
  spec.cpus = 8;
  spec.mem = "64G";
  spec.time_limit = 26h + 30s + 1ms;
  spec.output = "/logs/%j.out";
  spec.sbatch_args = {"--account=ml", "--qos=high"};
  EXPECT_EQ(sbatch_argv(spec, "x"),
            (std::vector<std::string>{"sbatch", "--parsable", "--no-requeue", "--job-name=x",
                                      "--output=/logs/%j.out", "--partition=gpu",
                                      "--gres=gpu:h100:1", "--cpus-per-task=8", "--mem=64G",
                                      "--time=1-02:00:31", "--account=ml", "--qos=high"}));
}

TEST(SlurmJob, TimeLimitIsDaysHoursMinutesSeconds) {
  EXPECT_EQ(slurm_time(90s), "0-00:01:30");
  EXPECT_EQ(slurm_time(48h), "2-00:00:00");
  EXPECT_EQ(slurm_time(1ms), "0-00:00:01");  // rounded up: 0 would mean no limit
}

TEST(SlurmJob, SbatchOutputAndHandles) {
  EXPECT_EQ(parse_sbatch_output("42\n"), 42u);
  EXPECT_EQ(parse_sbatch_output("43;cluster\n"), 43u);
  EXPECT_EQ(parse_sbatch_output("sbatch: warning: something\n44\n"), 44u);
  EXPECT_EQ(parse_sbatch_output("Submitted batch job 45\n"), std::nullopt);
  EXPECT_EQ(parse_sbatch_output(""), std::nullopt);
  EXPECT_EQ(slurm_handle(42), "slurm job=42");
  EXPECT_EQ(parse_slurm_handle("slurm job=42"), 42u);
  EXPECT_EQ(parse_slurm_handle("slurm job=0"), std::nullopt);
  EXPECT_EQ(parse_slurm_handle("slurm job=4x"), std::nullopt);
  EXPECT_EQ(parse_slurm_handle("local pid=12 start=3 port=4"), std::nullopt);
}

TEST(SlurmJob, SqueueRows) {
  const auto rows = parse_squeue(
      "7|PENDING|Resources|n/a|(null)\n"
      "8|RUNNING|None|node-3|(null)\n"
      "9|RUNNING|None|node-3|tide:port=20123\n"
      "10|CANCELLED|None|node-1|tide:port=99999\n"
      "11_[1-3]|PENDING|Priority|n/a|(null)\n"
      "garbage\n"
      "12|TIMEOUT|TimeLimit|node-2|a|b\n");
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0].job, 7u);
  EXPECT_EQ(rows[0].state, "PENDING");
  EXPECT_EQ(rows[0].reason, "Resources");
  EXPECT_EQ(rows[0].node, "");
  EXPECT_FALSE(rows[0].port);
  EXPECT_EQ(rows[1].node, "node-3");
  EXPECT_FALSE(rows[1].port);
  EXPECT_EQ(rows[2].port, 20123);
  EXPECT_FALSE(rows[3].port);  // out of range
  EXPECT_EQ(rows[4].job, 12u);
  EXPECT_EQ(rows[4].reason, "TimeLimit");
}

TEST(SlurmJob, Phases) {
  for (const char* s : {"PENDING", "REQUEUED", "REQUEUE_HOLD"})
    EXPECT_EQ(job_phase(s), JobPhase::kQueued) << s;
  for (const char* s : {"RUNNING", "CONFIGURING", "SUSPENDED"})
    EXPECT_EQ(job_phase(s), JobPhase::kStarted) << s;
  for (const char* s : {"COMPLETING", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL",
                        "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY"})
    EXPECT_EQ(job_phase(s), JobPhase::kEnded) << s;
}

TEST(SlurmJob, SinfoNodesAndScancelErrors) {
  const auto nodes = parse_sinfo_nodes("node-1|10.0.0.1\nnode-2|fe80::1\nbad\n");
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[1], (std::pair<std::string, std::string>{"node-2", "fe80::1"}));
  EXPECT_TRUE(scancel_found_nothing("scancel: error: Invalid job id specified"));
  EXPECT_TRUE(scancel_found_nothing(
      "scancel: error: Kill job error on job id 5: Job/step already completing or completed"));
  EXPECT_FALSE(scancel_found_nothing("scancel: error: Unable to contact slurm controller"));
}

// The script as sbatch would run it, with bash and a stand-in scontrol that records its
// arguments: it publishes a port in the range, and runs the command with {port} and
// {replica_id} substituted and quotes kept.
TEST(SlurmJob, BatchScriptPublishesItsPortAndRunsTheCommand) {
  namespace fs = std::filesystem;
  const fs::path dir = testing::make_temp_dir();
  std::ofstream(dir / "scontrol") << "#!/bin/sh\necho \"$@\" > \""
                                  << (dir / "scontrol.args").string() << "\"\n";
  fs::permissions(dir / "scontrol", fs::perms::owner_all);
  const std::string script = slurm_batch_script(
      7, "ep/g/7",
      {"sh", "-c", "echo \"$0|$1|$TIDE_PORT|$TIDE_REPLICA_ID|$TIDE_REPLICA_NAME\" > \"$2\"",
       "{port}", "it's {replica_id}", (dir / "out").string()});
  std::ofstream(dir / "job.sh") << script;
  const std::string cmd = "cd '" + dir.string() + "' && SLURM_JOB_ID=42 PATH='" + dir.string() +
                          ":/usr/bin:/bin' bash job.sh";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << script;
  const std::string args = testing::read_file((dir / "scontrol.args").string());
  const std::string out = testing::read_file((dir / "out").string());
  ASSERT_TRUE(args.starts_with("update JobId=42 Comment=tide:port=")) << args;
  const int port = std::stoi(args.substr(args.find("tide:port=") + 10));
  EXPECT_GE(port, kSlurmPortMin);
  EXPECT_LE(port, kSlurmPortMax);
  EXPECT_EQ(out, fmt::format("{0}|it's 7|{0}|7|ep/g/7\n", port));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tide::provision::detail
