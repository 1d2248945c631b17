// LiveEndpoint: an Endpoint made safe for `tide serve`, where requests arrive on several gateway
// threads, replica events on the provisioner's thread and control ticks on a timer.
//
// One mutex guards the Endpoint; every call takes it briefly (submit and finish are O(1) under
// it). Held requests are woken through a Waiter, called with the lock held: a Waiter must only
// hand the outcome to its own thread (post) and return. No Asio here: the gateway supplies the
// Waiter, the clock is injected, so tests drive it on a ManualClock.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

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
};

class Waiter {
 public:
  virtual ~Waiter() = default;
  // Called once, with the endpoint's lock held, from any thread. Must not call back into the
  // LiveEndpoint.
  virtual void wake(const Dispatch& outcome) = 0;
};

// A consistent copy of an endpoint's state for the API.
struct ReplicaView {
  uint64_t id = 0;
  std::string name;
  std::string state;
  std::string address;
  int in_flight = 0;          // in service + waiting at it
  double age_s = 0;           // since launch was requested
  double ready_after_s = -1;  // cold start, once ready
  std::string error;
  uint64_t routes = 0;                  // requests routed straight to it (two-step)
  std::optional<ReplicaReport> report;  // its agent's latest report
  double report_age_s = 0;
};
struct GroupView {
  std::string name;
  GroupStatus status;
  double replica_seconds = 0;
  std::vector<ReplicaView> replicas;
};
struct EndpointView {
  std::string name;
  int queued = 0;  // held over all groups
  std::vector<GroupView> groups;
  std::vector<DecisionRecord> decisions;  // most recent last
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

  const config::EndpointSpec& spec() const { return spec_; }
  const Clock& clock() const { return clock_; }

  // Admits a request to `group`. kStarted: it may be sent at once. kQueued: `waiter` (which must
  // stay valid until it is woken or cancel() returns true) gets the outcome later.
  Dispatch submit(dispatch::RequestId request, int group, Waiter* waiter);
  // The same, to the group the endpoint's routing picks (`sticky`: a hash of the client's sticky
  // key, 0 for none); the result names the group.
  Dispatch submit_routed(dispatch::RequestId request, uint64_t sticky, Waiter* waiter);
  // Withdraws a held request (deadline passed, client gone). False if it is no longer held: its
  // waiter has been or is being woken.
  bool cancel(dispatch::RequestId request);
  // A started request is done (answered, or abandoned by its client).
  void finish(const Dispatch& started);
  // A started request found its replica unreachable before any response byte: the replica is
  // failed (and replaced by the control loop); the caller may submit the request again.
  void unreachable(const Dispatch& started, std::string error);
  // Wakes every held request with kShutdown and refuses new ones the same way.
  void shut_down();

  // Two-step routing: a ready replica (of a group with agents) for one request the client sends
  // straight to it. With none ready, the client counts as a queued request of the group until
  // it is told to come back (Retry-After) plus `linger`, so that a group at zero scales up.
  DirectRoute route_direct(double work, Duration linger);

  // An agent's report (authenticated by the caller). kReady makes a starting replica ready at
  // `address` at once (pushed readiness); kUnhealthy fails a ready one with `detail`.
  enum class ReportResult : uint8_t { kAccepted, kUnknownReplica, kNoAgent };
  ReportResult agent_report(uint64_t replica_id, const ReplicaReport& report, AgentState state,
                            const std::string& address, const std::string& detail);

  // For groups with agents: the secret the gateway sends each replica's agent (by replica id).
  // Called with the lock held; must be quick and thread-safe. Set before serving.
  using AgentSecret = std::function<std::string(uint64_t replica_id)>;
  void set_agent_secret(AgentSecret secret) { agent_secret_ = std::move(secret); }

  // One control tick of a group.
  void tick(int group);
  EndpointView view(size_t max_decisions = 50);
  // Replicas that are not stopped (any group).
  int live_replicas();
  // Seconds until a retry may succeed, for Retry-After: the expected cold start when nothing is
  // ready, else 1.
  int retry_after_s(int group);

  // ReplicaEvents (provisioner thread).
  void on_replica_starting(uint64_t replica_id, Time now) override;
  void on_replica_ready(uint64_t replica_id, Time now, std::string address) override;
  void on_replica_failed(uint64_t replica_id, Time now, std::string error) override;

 private:
  // RequestSink and DecisionSink (called by the Endpoint with the lock held).
  void on_start(dispatch::RequestId request, dispatch::ReplicaSlot slot, Time now) override;
  void on_timeout(dispatch::RequestId request, Time deadline) override;
  void on_replica_lost(dispatch::ReplicaSlot slot, const std::vector<dispatch::RequestId>& waiting,
                       Time now) override;
  void record(const DecisionRecord& decision) override;

  struct Held {
    Waiter* waiter;
    int group;
    Time submitted_at;
  };
  void wake(dispatch::RequestId request, Dispatch outcome);
  // Completes requests that started after their client had gone (see cancel()).
  void settle(Time now);
  Dispatch submit_locked(dispatch::RequestId request, int group, Waiter* waiter, Time now);

  const config::EndpointSpec spec_;
  const Clock& clock_;
  Log log_;
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
  AgentSecret agent_secret_;
  bool shut_down_ = false;
  uint64_t requests_ = 0;
  uint64_t rejected_queue_full_ = 0;
  uint64_t rejected_no_replica_ = 0;
  uint64_t timed_out_ = 0;
};

}  // namespace tide::control
