// Provisioners for the live system (`tide serve`): they run the replicas the control plane asks
// for and report their state back.
//
//   local   Each replica is a child process started from `provisioner.command` (argv with {port}
//           and {replica_id} substituted; environment TIDE_REPLICA_ID, TIDE_REPLICA_NAME,
//           TIDE_PORT and, from the group's GPU pool, CUDA_VISIBLE_DEVICES). Its port is a free
//           one found by binding 127.0.0.1:0 and closing it again; a clash shows as a failed
//           replica, which the endpoint replaces. Ready when GET 127.0.0.1:PORT<ready.path>
//           answers 2xx. Stop is SIGTERM to its process group, a grace period, then SIGKILL.
//           No replica outlives tide, even a SIGKILLed tide: each child runs in its own process
//           group with PR_SET_PDEATHSIG=SIGKILL, and is forked by a spawner thread the provisioner
//           owns for its whole life (PDEATHSIG follows the forking thread, not the process).
//           Children's stdout and stderr go to one pipe per child: each line goes to
//           ProvisionOptions::output (default: tide's stderr, prefixed "[endpoint/group/id] ")
//           and the last few KiB are kept to explain a failure.
//   static  `provisioner.urls` are servers that already run. A launch takes the first URL no
//           replica holds, probes it like local, and reports it ready as "host:port"; stop
//           releases the URL and kills nothing. Scaling is advisory: it only chooses how many of
//           the URLs receive traffic. Only http:// URLs can be probed; a URL's path is ignored.
//
//   slurm   Each replica is a Slurm batch job submitted with sbatch (partition, gres, cpus, mem,
//           time_limit, sbatch_args) running `provisioner.command` on the node Slurm picks; the
//           job's script picks a free port there and reports it through the job's comment. A
//           pending job is starting; it fails "no capacity" after pending_timeout. Ready
//           when running and its probe on NodeAddr:port answers 2xx; failed with Slurm's state
//           when the job ends (CANCELLED, FAILED, TIMEOUT, NODE_FAIL, PREEMPTED...) or vanishes.
//           Stop is scancel. Jobs outlive tide: shutdown() cancels them, but the destructor
//           alone (tide killed) leaves them for adopt() by the next run ("slurm job=42").
//           CUDA_VISIBLE_DEVICES comes from Slurm's GRES. See docs/slurm.md.
//
//   kubernetes  Each replica is a pod created through the API server from `provisioner.template`
//           in `provisioner.namespace`; ready once it runs and GET <pod IP>:<port><ready.path>
//           answers 2xx; failed when the pod fails, is evicted, deleted or cannot start, or stays
//           unscheduled longer than `pending_timeout` ("no capacity: ..."); stop deletes the pod.
//           Adoptable after a restart of tide from its handle "kubernetes pod=NS/NAME uid=UID".
//           See docs/kubernetes.md and kubernetes.h.
//
// Each probes readiness every `ready.interval` (each probe bounded by `ready.timeout`), then
// liveness every ProvisionOptions::liveness_interval; `liveness_failures` failed probes in a row
// fail the replica. A local replica whose process exits, before or after ready, fails with what
// happened ("exited with status 1 before ready: <last lines of its output>", "killed by signal 9
// (SIGKILL) after ready").
//
// Threading: launch(), stop(), shutdown() and children() may be called from any thread; the first
// three only post work to the provisioner's io_context and return. ReplicaEvents and shutdown's
// `done` are invoked on a thread running that io_context, one at a time (a strand), never from
// inside launch() or stop(). After stop() (or shutdown()) nothing more is reported for that
// replica; stop() of an unknown or already failed replica does nothing.
//
// Requirements on the rest of the process: nobody reaps children with waitpid(-1, ...) and SIGCHLD
// is not ignored (the provisioner reaps its own children by pid). The io_context must outlive the
// provisioner. Beast/Asio stay inside the .cc files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tide/common/time.h"
#include "tide/config/config.h"
#include "tide/control/provisioner.h"
#include "tide/control/replica.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace tide::provision {

using namespace std::chrono_literals;

// Receives each line a local replica writes to stdout or stderr (without its newline), on the
// provisioner's strand. `replica` is the replica's name.
using OutputSink = std::function<void(std::string_view replica, std::string_view line)>;

// How the local provisioner starts `tide agent` in front of each replica of a group with
// agent.enabled. It runs
//   <program> agent --listen 127.0.0.1:<A> --upstream 127.0.0.1:<P> --health <ready.path>
//       --slots <concurrency> --report-interval <agent.report_interval> --work <agent.work>
//       <args...> -- <the group's command, {port} = P>
// with `env` added to the environment. The agent runs the model server as its child (one
// process group: stopping the replica stops both). The replica's address is the agent's
// (127.0.0.1:<A>) and readiness is probed at the agent (/tide/health), which answers for the
// model server.
struct AgentLaunch {
  std::string program;            // the tide binary
  std::vector<std::string> args;  // e.g. --control URL --endpoint NAME --replica-id ID
  std::vector<std::string> env;   // e.g. TIDE_AGENT_SECRET=...
};
using AgentLauncher =
    std::function<AgentLaunch(const control::Replica& replica, const config::GroupSpec& group)>;

struct ProvisionOptions {
  Duration stop_grace = 10s;        // local: SIGTERM, then SIGKILL after this long
  Duration liveness_interval = 1s;  // between health probes once a replica is ready
  int liveness_failures = 3;        // failed probes in a row that fail a ready replica
  size_t output_tail_bytes = 4096;  // local: output kept per child to explain its failure
  OutputSink output;                // local: empty = tide's stderr, "[replica] line"
  // local: empty = replicas die with tide (PR_SET_PDEATHSIG) and their output comes through a
  // pipe. Set (`tide serve` with a state file): replicas outlive a crash of tide so that the
  // next run adopts them; each one's output goes to DIR/<name>.log (read back by tide), and
  // its handle ("local pid=.. start=.. port=.. gpus=.. log=..") identifies it after a restart.
  std::string replica_log_dir;
  // local, with replica_log_dir: once tide has read this much of a log file past what it freed
  // last, it frees the part it has read (a hole punched in the file: nothing the replica writes
  // meanwhile is lost; the file's length grows on, the disk it takes does not).
  uint64_t replica_log_max_bytes = 16u << 20;
  AgentLauncher agent;  // local, groups with agent.enabled (called from launch())
};

// A live child process of the local provisioner.
struct ChildProcess {
  uint64_t replica_id = 0;
  std::string replica;  // its name
  int pid = 0;          // also its process group id
};

// Runs each replica with the provisioner its group names (`provisioner.kind`: local, static or
// slurm; anything else, e.g. simulated, fails the launch with a clear error). One instance serves
// any number of endpoints and groups; replicas are told apart by Replica::name. GPUs of the local
// pools are shared by id across groups: a GPU is given to one replica at a time, from the launch
// until its process has exited.
class LiveProvisioner final : public control::Provisioner {
 public:
  // `clock` stamps the events (SteadyClock in production) and must outlive the provisioner.
  LiveProvisioner(boost::asio::io_context& io, const Clock& clock, ProvisionOptions options = {});
  // SIGKILLs and reaps whatever child is still running (call shutdown() first for a clean exit)
  // and reports nothing more. Call it from a thread running the io_context or while none runs it.
  ~LiveProvisioner() override;
  LiveProvisioner(const LiveProvisioner&) = delete;
  LiveProvisioner& operator=(const LiveProvisioner&) = delete;

  void launch(const control::Replica& replica, const config::GroupSpec& group,
              control::ReplicaEvents& events) override;
  void stop(const control::Replica& replica) override;
  // local: the process of the handle, if it is still the same process (pid and start time),
  // watched for exit (pidfd) and probed like a new one; static: its URL probed again; slurm:
  // the job of the handle ("slurm job=42"), followed like a new one (failed if it is gone).
  // kubernetes: the pod of the handle, looked up in its namespace's list.
  bool adopt(const control::Replica& replica, const config::GroupSpec& group,
             const std::string& handle, control::ReplicaEvents& events) override;

  // Stops every replica (SIGTERM, grace, SIGKILL; scancel for Slurm jobs; no events for them) and
  // calls `done` once all of their processes have exited and every scancel has returned. Launches
  // after it fail ("provisioner is shutting down").
  void shutdown(std::function<void()> done);

  // The local replicas' processes that have not been reaped yet. Thread-safe.
  std::vector<ChildProcess> children() const;

  // After a crash of tide: kills (SIGKILL, whole process group) every process a local replica
  // launched with this `replica_log_dir` left running whose replica name is not in `recorded`
  // (replicas forked in the moment before their handle reached the state file). Such processes
  // are recognised by their environment (TIDE_REPLICAS=<replica_log_dir>, TIDE_REPLICA_NAME).
  // Returns one line per replica killed ("chat/gpu/7 (process 4242)"). Call before launching.
  static std::vector<std::string> kill_unrecorded(const std::string& replica_log_dir,
                                                  const std::vector<std::string>& recorded);

  // Whether `kind` (a ProvisionerSpec::kind) can run live replicas: local, static, slurm,
  // kubernetes.
  static bool supports(std::string_view kind);
  // What keeps `spec` from working that can be seen before serving (kubernetes: no cluster
  // access, an unreadable kubeconfig or service account file), or "" when nothing does.
  static std::string check(const config::ProvisionerSpec& spec);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace tide::provision
