// The slurm backend behind LiveProvisioner: each replica is a batch job. Internal to
// src/tide/provision.
//
// Slurm is driven through its command line (sbatch, squeue, scancel, sinfo), never from the
// control thread: a CommandRunner thread runs one command at a time and posts its result back to
// the strand. One squeue every poll_interval follows all of the backend's jobs:
//   PENDING (queued)              starting; failed "no capacity" after pending_timeout
//   RUNNING with its port known   HTTP readiness probe on NodeAddr:port, then liveness
//   ended, or gone from squeue    failed with Slurm's state and reason
// stop() is scancel (Slurm sends SIGTERM, then SIGKILL after its KillWait).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tide/provision/internal.h"
#include "tide/provision/slurm_job.h"

namespace tide::provision::detail {

struct CommandResult {
  int status = -1;    // exit status; -1 when it could not run, was killed or timed out
  std::string out;    // its standard output
  std::string err;    // its standard error
  std::string error;  // why it did not run to an exit status ("timed out after 30s", ...)
  uint64_t seq = 0;   // its sequence number (CommandRunner::submit)
  // "sbatch: exit 1: <stderr>": what went wrong, for messages.
  std::string describe(std::string_view program) const;
};

// Runs short commands one at a time on a thread of its own, in the order submitted, with tide's
// environment, a standard input and a timeout (then SIGKILL). `done` runs on that thread.
class CommandRunner {
 public:
  CommandRunner(const Clock& clock, Duration timeout);
  ~CommandRunner();
  CommandRunner(const CommandRunner&) = delete;
  CommandRunner& operator=(const CommandRunner&) = delete;
  // Returns the command's sequence number: commands start in this order, each after the
  // previous one has ended.
  uint64_t submit(std::vector<std::string> argv, std::string input,
                  std::function<void(CommandResult)> done);
  // Kills the running command, drops the queued ones and joins the thread. Any thread.
  void close();

 private:
  struct Command {
    std::vector<std::string> argv;
    std::string input;
    std::function<void(CommandResult)> done;
    uint64_t seq = 0;
  };
  void loop();
  // Starts it, then exchange() then reap().
  CommandResult run(const Command& c);
  // Writes `input` to the command's stdin and collects its stdout and stderr into `r` until
  // both close or the timeout passes (then SIGKILL). `pipes`: stdin write, stdout and stderr
  // read ends, all closed on return.
  void exchange(int pid, const int (&pipes)[3], const std::string& input, CommandResult& r);
  // Waits for its exit and reaps it (under the lock close() signals under); its status into `r`.
  void reap(int pid, CommandResult& r);
  void set_running(int pid);

  const Clock& clock_;
  Duration timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Command> queue_;
  uint64_t next_seq_ = 1;
  int running_pid_ = -1;
  bool closing_ = false;
  std::thread thread_;
};

class SlurmBackend : public std::enable_shared_from_this<SlurmBackend> {
 public:
  explicit SlurmBackend(std::shared_ptr<Core> core);
  ~SlurmBackend();
  void launch(Launch launch);
  // Follows job `job` of an earlier run of tide as the replica of `launch`.
  void adopt(Launch launch, uint64_t job);
  void stop(const std::string& key);
  // Cancels every job; `done` once every scancel (and sbatch in flight) has returned.
  void shutdown(std::function<void()> done);
  // Any thread (LiveProvisioner's destructor): stops the command runner. The jobs stay in Slurm,
  // as they would if tide were killed: a restarted tide adopts them.
  void close();

 private:
  struct Job;
  // Posts `f(self, result)` to the strand when the command is done.
  template <class F>
  uint64_t run(std::vector<std::string> argv, std::string input, F f);
  void on_submitted(const std::shared_ptr<Job>& job, CommandResult result);
  void schedule_poll();
  void poll();
  void on_squeue(CommandResult result);
  void follow(const std::shared_ptr<Job>& job, const SqueueRow& row);
  void lookup_node(const std::string& node);
  void start_probe(const std::shared_ptr<Job>& job);
  // Reports the job failed, forgets it and cancels what is left of it in Slurm.
  void fail(const std::shared_ptr<Job>& job, std::string error, bool cancel);
  void cancel(uint64_t job, int attempt = 1);
  void forget(const std::shared_ptr<Job>& job);
  void command_done();
  std::string output_tail(const Job& job) const;
  void log_once(std::string message);

  std::shared_ptr<Core> core_;
  CommandRunner runner_;
  asio::steady_timer poll_timer_;
  bool poll_scheduled_ = false;
  bool poll_running_ = false;
  std::unordered_map<std::string, std::shared_ptr<Job>> jobs_;  // by key
  std::map<std::string, std::string> node_addr_;                // node name -> NodeAddr
  std::map<std::string, bool> node_lookups_;                    // in flight
  int commands_in_flight_ = 0;  // sbatch and scancel, which shutdown waits for
  bool shutting_down_ = false;
  std::vector<std::function<void()>> shutdown_done_;
  std::string last_log_;  // log_once: the same trouble is told once, not every poll
};

}  // namespace tide::provision::detail
