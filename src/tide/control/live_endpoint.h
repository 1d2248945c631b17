// LiveEndpoint: an Endpoint made safe for `tide serve`, where requests arrive on several gateway
// threads, replica events on the provisioner's thread and control ticks on a timer.
//
// One mutex guards the Endpoint; every call takes it briefly (submit and finish are O(1) under
// it). Held requests are woken through a Waiter, called with the lock held: a Waiter must only
// hand the outcome to its own thread (post) and return. No Asio here: the gateway supplies the
// Waiter, the clock is injected, so tests drive it on a ManualClock.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tide/common/histogram.h"
#include "tide/common/time.h"
#include "tide/config/config.h"
#include "tide/control/endpoint.h"

namespace tide::control {

// What became of a request the gateway submitted.
struct Dispatch {
  enum class Kind : uint8_t {
    kStarted,    // send it to `address`; call finish() when done
    kQueued,     // held: the Waiter will be told
    kQueueFull,  // 429
    kNoReplica,  // admission without a hold queue and nothing ready (hf: 502, skyserve: 503)
    kTimedOut,   // held past queue.timeout: 503
    kLost,       // it waited at a replica that failed before starting it: submit again
    kShutdown,   // the server is stopping: 503
    kFailing,    // held while the group's replicas keep failing to start: 503 with `error`
  };
  Kind kind = Kind::kQueued;
  int group = 0;
  uint64_t replica_id = 0;
  dispatch::ReplicaSlot slot = dispatch::kNoSlot;
  std::string address;  // host:port of the replica
  // For a replica with an agent: the value of the Tide-Replica-Secret header, by which its
  // agent admits the gateway's requests without route tokens.
  std::string upstream_secret;
  Time submitted_at{};
  Time started_at{};
  std::string error;  // kFailing: the group's last replica error
};

// A streamed answer's timing as the gateway measured it (gateway/stream_timer.h).
struct StreamTimes {
  Duration ttft{0};              // arrival at the gateway to the first byte of the answer's body
  std::optional<Duration> tpot;  // server-sent events: mean time between events after the first
};

// A group whose replicas failed this many times in a row, with no replica of the endpoint ready,
// is crash-looping: each further failure answers its held requests (kFailing) at once.
inline constexpr int kCrashLoopFailures = 3;

class Waiter {
 public:
  virtual ~Waiter() = default;
  // Called once, with the endpoint's lock held, from any thread. Must not call back into the
  // LiveEndpoint.
  virtual void wake(const Dispatch& outcome) = 0;
};

// How a request given to a group ended, as its client saw it.
enum class Outcome : uint8_t {
  kOk,           // answered by a replica (whatever status it chose)
  kQueueFull,    // 429: the hold queue was full
  kBadGateway,   // 502: its replicas failed (before answering, or midway), or no replica (hf)
  kUnavailable,  // 503: held past queue.timeout, no replica (skyserve), or shutting down
  kTimeout,      // 504: no complete answer within server.upstream_timeout
  kClientGone,   // the client left before its answer was complete
};
inline constexpr size_t kOutcomeCount = 6;
// "ok", "429", "502", "503", "504", "client_gone": the `outcome` label of /metrics.
std::string_view outcome_label(Outcome outcome);

// A group's cumulative figures since start, for /metrics, the comparison of groups and the
// history (whose sampler differences two copies: LogLinearHistogram::subtract).
struct GroupStats {
  // Histograms of seconds, resolved from 100 us to ~1.9 h.
  static LogLinearHistogram seconds_histogram() { return LogLinearHistogram(1e-4, 26); }
  std::array<uint64_t, kOutcomeCount> outcomes{};
  LogLinearHistogram latency = seconds_histogram();     // submitted to answered (kOk only)
  LogLinearHistogram queue_wait = seconds_histogram();  // submitted to started on a replica
  LogLinearHistogram cold_start = seconds_histogram();  // launch requested to ready
  LogLinearHistogram ttft = seconds_histogram();        // streamed answers (kOk): StreamTimes
  LogLinearHistogram tpot = seconds_histogram();        // of those, SSE with >= 2 events
  uint64_t scale_ups = 0;                               // decisions raising the desired count
  uint64_t scale_downs = 0;
  uint64_t count(Outcome o) const { return outcomes[static_cast<size_t>(o)]; }
  uint64_t requests() const;  // ended, any outcome
};

// A consistent copy of an endpoint's state for the API.
struct ReplicaView {
  uint64_t id = 0;
  std::string name;
  std::string state;
  int generation = 1;  // of the group's launch template it runs (rollout.h)
  std::string address;
  int in_flight = 0;          // in service + waiting at it
  double age_s = 0;           // since launch was requested
  double ready_after_s = -1;  // cold start, once ready
  std::string error;
  uint64_t routes = 0;                  // requests routed straight to it (two-step)
  std::optional<ReplicaReport> report;  // its agent's latest report
  double report_age_s = 0;
  std::optional<metrics::EngineSignals> engine;  // its model server's figures, as last read
  double engine_age_s = 0;
};
struct GroupView {
  std::string name;
  GroupStatus status;
  double replica_seconds = 0;
  std::vector<ReplicaView> replicas;
  GroupStats stats;
};
struct EndpointView {
  std::string name;
  int queued = 0;  // held over all groups
  std::vector<GroupView> groups;
  std::vector<DecisionRecord> decisions;  // most recent last
  uint64_t decisions_total = 0;           // recorded since start (the last are in `decisions`)
  uint64_t requests = 0;
  uint64_t rejected_queue_full = 0;
  uint64_t rejected_no_replica = 0;
  uint64_t timed_out = 0;
};

// The outcome of a two-step route (POST /v1/route).
struct DirectRoute {
  enum class Kind : uint8_t {
    kRouted,     // send the request to `address`
    kNoReplica,  // none ready: come back after retry_after_s (`status` says what is coming)
    kNoAgent,    // no group of the endpoint runs agents: it can only be used through the gateway
    kShutdown,   // the server is stopping
  };
  Kind kind = Kind::kNoReplica;
  int group = 0;
  std::string group_name;
  uint64_t replica_id = 0;
  std::string replica_name;
  std::string address;
  GroupStatus status;
  int retry_after_s = 0;
};

class LiveEndpoint final : public RequestSink, public ReplicaEvents, public DecisionSink {
 public:
  // One line per thing worth telling an operator (decisions, replicas ready or failed). Called
  // with the lock held: keep it quick.
  using Log = std::function<void(const std::string& line)>;

  // `provisioner` must outlive this object; its events come back through this object.
  LiveEndpoint(const config::EndpointSpec& spec, Provisioner& provisioner, const Clock& clock,
               Log log = nullptr);
  ~LiveEndpoint() override;
  LiveEndpoint(const LiveEndpoint&) = delete;
  LiveEndpoint& operator=(const LiveEndpoint&) = delete;

  // Where decisions and replica changes go besides the log (the state file). Called with the
  // lock held: queue the data and return. Set before the endpoint is used.
  struct Journal {
    std::function<void(const DecisionRecord&)> decision;
    std::function<void(const Replica&)> replica;
  };
  void set_journal(Journal journal) { journal_ = std::move(journal); }

  // The configuration in force. A reference stays valid for the endpoint's life (each version
  // is kept), so a request may go on using the version it started with.
  const config::EndpointSpec& spec() const { return *current_.load(std::memory_order_acquire); }
  // Applies a changed configuration (see Endpoint::reconfigure); empty when applied, else why not.
  std::string reconfigure(const config::EndpointSpec& next);
  const Clock& clock() const { return clock_; }

  // Admits a request to `group`. kStarted: it may be sent at once. kQueued: `waiter` (which must
  // stay valid until it is woken or cancel() returns true) gets the outcome later.
  Dispatch submit(dispatch::RequestId request, int group, Waiter* waiter);
  // The same, to the group the endpoint's routing picks (`sticky`: a hash of the client's sticky
  // key, 0 for none); the result names the group.
  Dispatch submit_routed(dispatch::RequestId request, uint64_t sticky, Waiter* waiter);
  // Withdraws a held request (deadline passed: kUnavailable, or client gone). False if it is no
  // longer held: its waiter has been or is being woken.
  bool cancel(dispatch::RequestId request, Outcome why = Outcome::kClientGone);
  // A started request is done (answered, or abandoned by its client, or cut by the deadline).
  // Its latency counts from `started.submitted_at`. `stream`: a streamed answer's timing, counted
  // for kOk (the ttft and tpot histograms; its ttft less its wait is the prefill a ttft SLO's
  // wait budget leaves out: Endpoint::observe_prefill).
  void finish(const Dispatch& started, Outcome outcome = Outcome::kOk,
              const StreamTimes* stream = nullptr);
  // A started request could not open a connection to its replica (nothing was sent): its slot is
  // freed, and the replica is failed (and replaced by the control loop) after
  // Endpoint::kConnectFailuresToFail such failures in a row. The caller may submit it again.
  // A request the replica took and then dropped ends with finish(kBadGateway): a replica is
  // failed by its health (probes, process, agent), never by one request's fate.
  void unreachable(const Dispatch& started, std::string error);
  // Counts an ending no other call reports: 502 after the replicas given a request failed.
  void count(int group, Outcome outcome);
  // Wakes every held request with kShutdown and refuses new ones the same way.
  void shut_down();

  // Two-step routing: a ready replica (of a group with agents) for one request the client sends
  // straight to it. The group comes from the endpoint's routing among the groups with agents
  // (split by weight, or by `sticky`, a sticky_key() of the client's key, when not 0; overflow
  // by the agents' reported load). With none ready, the client counts as a queued request of the
  // group until it is told to come back (Retry-After) plus `linger`, so that a group at zero scales
  // up.
  DirectRoute route_direct(double work, uint64_t sticky, Duration linger);

  // An agent's report (authenticated by the caller). kReady makes a starting replica ready at
  // `address` at once (pushed readiness); kUnhealthy fails a ready one with `detail`.
  enum class ReportResult : uint8_t { kAccepted, kUnknownReplica, kNoAgent };
  ReportResult agent_report(uint64_t replica_id, const ReplicaReport& report, AgentState state,
                            const std::string& address, const std::string& detail);

  // For groups with agents: the secret the gateway sends each replica's agent (by replica id).
  // Called with the lock held; must be quick and thread-safe. Set before serving.
  using AgentSecret = std::function<std::string(uint64_t replica_id)>;
  void set_agent_secret(AgentSecret secret) { agent_secret_ = std::move(secret); }

  // The longest a request may wait before it starts, as the deciders take it now
  // (Endpoint::wait_budget: a ttft SLO less the prefill observed).
  Duration wait_budget();
  // One control tick of a group.
  void tick(int group);
  EndpointView view(size_t max_decisions = 50);
  // Replicas that are not stopped (any group).
  int live_replicas();
  // Seconds until a retry may succeed, for Retry-After: the expected cold start when nothing is
  // ready, else 1.
  int retry_after_s(int group);

  // Restart: replica ids from `next` on; replicas of a previous run taken over (see
  // Endpoint::adopt). `group` by name; false if there is no such group or it cannot be adopted.
  void reserve_ids(uint64_t next);
  bool adopt(const std::string& group, uint64_t id, const std::string& handle, Time requested_at,
             Time ready_at = Time{}, const std::string& template_id = {});

  // ReplicaEvents (provisioner thread).
  void on_replica_starting(uint64_t replica_id, Time now) override;
  void on_replica_ready(uint64_t replica_id, Time now, std::string address) override;
  void on_replica_failed(uint64_t replica_id, Time now, std::string error) override;
  void on_replica_handle(uint64_t replica_id, std::string handle) override;
  void on_replica_engine(uint64_t replica_id, Time now,
                         const metrics::EngineSignals& signals) override;

 private:
  // RequestSink and DecisionSink (called by the Endpoint with the lock held).
  void on_start(dispatch::RequestId request, dispatch::ReplicaSlot slot, Time now) override;
  void on_timeout(dispatch::RequestId request, Time deadline) override;
  void on_replica_lost(dispatch::ReplicaSlot slot, const std::vector<dispatch::RequestId>& waiting,
                       Time now) override;
  void record(const DecisionRecord& decision) override;
  void replica_changed(const Replica& replica) override;

  struct Held {
    Waiter* waiter;
    int group;
    Time submitted_at;
  };
  void wake(dispatch::RequestId request, Dispatch outcome);
  // After a failure of a replica of `group`: its held requests fail at once if it crash-loops.
  void fail_held_if_crash_looping(int group, Time now);
  // Completes requests that started after their client had gone (see cancel()).
  void settle(Time now);
  Dispatch submit_locked(dispatch::RequestId request, int group, Waiter* waiter, Time now);
  void count_locked(int group, Outcome outcome) {
    ++stats_[static_cast<size_t>(group)].outcomes[static_cast<size_t>(outcome)];
  }

  std::deque<config::EndpointSpec> versions_;  // every configuration applied; guarded by mu_
  std::atomic<const config::EndpointSpec*> current_;
  const Clock& clock_;
  Log log_;
  Journal journal_;
  std::mutex mu_;
  Endpoint endpoint_;  // guarded by mu_
  std::unordered_map<dispatch::RequestId, Held> held_;
  std::unordered_set<dispatch::RequestId> abandoned_;  // cancelled while waiting at a replica
  std::vector<dispatch::ReplicaSlot> to_complete_;
  // The request being submitted: on_start for it fills `submitting_result_` synchronously.
  dispatch::RequestId submitting_ = 0;
  bool submitting_started_ = false;
  Dispatch submitting_result_;
  std::deque<DecisionRecord> decisions_;
  uint64_t decisions_total_ = 0;
  std::vector<GroupStats> stats_;  // per group
  AgentSecret agent_secret_;
  bool shut_down_ = false;
  uint64_t requests_ = 0;
  uint64_t rejected_queue_full_ = 0;
  uint64_t rejected_no_replica_ = 0;
  uint64_t timed_out_ = 0;
};

}  // namespace tide::control
