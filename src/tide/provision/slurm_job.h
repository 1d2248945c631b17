// The text side of the slurm provisioner: the batch script and sbatch options of a replica, and
// what squeue, sinfo and sbatch print. Plain functions with no I/O, internal to
// src/tide/provision (tested in slurm_job_test.cc without a cluster).
//
// How a job tells tide where it listens: the batch script picks a free port on its node, exports
// it as TIDE_PORT, writes "tide:port=N" into the job's Comment (`scontrol update`), then execs
// the replica's command. tide reads the comment and the batch host with squeue, and the host's
// address (NodeAddr) with sinfo. No shared file system is needed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tide/common/time.h"
#include "tide/config/config.h"

namespace tide::provision::detail {

// Ports a batch script picks from: below Linux's ephemeral range (32768-60999), so that outgoing
// connections on the node do not take them.
inline constexpr int kSlurmPortMin = 20000;
inline constexpr int kSlurmPortMax = 32767;

// The batch script of a replica (given to sbatch on its standard input). `command` is the
// replica's argv: {port} becomes the port the script picked, {replica_id} the id.
std::string slurm_batch_script(uint64_t replica_id, std::string_view replica_name,
                               const std::vector<std::string>& command);

// sbatch's arguments (without the script, which goes to its standard input).
std::vector<std::string> sbatch_argv(const config::SlurmSpec& spec, std::string_view job_name);

// sbatch --time: "D-HH:MM:SS", rounded up to whole seconds.
std::string slurm_time(Duration d);

// `sbatch --parsable` prints "42" or "42;cluster".
std::optional<uint64_t> parse_sbatch_output(std::string_view out);

// The handle a replica is reported with ("slurm job=42") and read back on adopt().
std::string slurm_handle(uint64_t job);
std::optional<uint64_t> parse_slurm_handle(std::string_view handle);

// The format squeue is asked for, and one line of its answer.
inline constexpr std::string_view kSqueueFormat = "%i|%T|%r|%B|%k";
struct SqueueRow {
  uint64_t job = 0;
  std::string state;   // PENDING, RUNNING, CANCELLED, ...
  std::string reason;  // why it is pending or ended: Resources, Priority, NonZeroExitCode...
  std::string node;    // the batch host, empty until it runs
  std::optional<uint16_t> port;  // from the comment the batch script wrote
};
// Lines that do not parse (a job array's "42_[1-3]", stray warnings) are skipped.
std::vector<SqueueRow> parse_squeue(std::string_view out);

// Where a job is in its life, by its squeue state.
enum class JobPhase {
  kQueued,   // waiting for resources: PENDING, REQUEUED, held
  kStarted,  // has its resources: RUNNING, CONFIGURING (nodes booting), SUSPENDED
  kEnded,    // anything else: COMPLETING, COMPLETED, CANCELLED, FAILED, TIMEOUT, NODE_FAIL,
             // PREEMPTED, BOOT_FAIL, DEADLINE, OUT_OF_MEMORY, ...
};
JobPhase job_phase(std::string_view state);

// `sinfo -h -N -o %N|%o`: node name -> its address (NodeAddr).
inline constexpr std::string_view kSinfoFormat = "%N|%o";
std::vector<std::pair<std::string, std::string>> parse_sinfo_nodes(std::string_view out);

// Whether scancel's error says the job is gone already (nothing left to cancel).
bool scancel_found_nothing(std::string_view err);

}  // namespace tide::provision::detail
