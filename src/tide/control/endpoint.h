// The control plane of one endpoint: its dispatcher, and for each worker group the loop
// observe -> decide -> reconcile that keeps the group at the size its policy asks for.
//
// Written once for both worlds: the simulator drives it from a virtual clock, `tide serve` from
// the real one. Not thread-safe: call everything from one thread (production: one strand).
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tide/common/decision.h"
#include "tide/common/hash.h"
#include "tide/config/config.h"
#include "tide/control/provisioner.h"
#include "tide/control/replica.h"
#include "tide/control/rollout.h"
#include "tide/dispatch/dispatcher.h"
#include "tide/policy/decider.h"

namespace tide::control {

// What an endpoint tells the outside about its decisions and replicas (the simulator's report,
// the live system's log and state file).
class DecisionSink {
 public:
  virtual ~DecisionSink() = default;
  virtual void record(const DecisionRecord& decision) = 0;
  // A replica changed state (launched, starting, ready, draining, stopped, failed), or its
  // provisioner told where it runs (handle). After stopped or failed it is gone.
  virtual void replica_changed(const Replica& replica) { (void)replica; }
};

// Where request outcomes go: the simulator's event loop, or the gateway's waiting coroutines.
class RequestSink {
 public:
  virtual ~RequestSink() = default;
  virtual void on_start(dispatch::RequestId request, dispatch::ReplicaSlot slot, Time now) = 0;
  virtual void on_timeout(dispatch::RequestId request, Time deadline) = 0;
  // A replica failed. `waiting` were queued at it and never started; requests it had in service
  // are known to the sink from on_start.
  virtual void on_replica_lost(dispatch::ReplicaSlot slot,
                               const std::vector<dispatch::RequestId>& waiting, Time now) = 0;
};

// A group's state as the API, the simulator and tests see it.
struct GroupStatus {
  int desired = 0;
  int starting = 0;  // requested or starting
  int ready = 0;
  int draining = 0;
  int queued = 0;
  int in_flight = 0;
  uint64_t launches = 0;
  uint64_t failures = 0;
  std::string last_reason;
  std::string last_error;             // why the last replica failed, if one did
  int consecutive_failures = 0;       // since a replica last became ready
  uint64_t routed = 0;                // requests the endpoint's routing gave this group
  uint64_t spilled = 0;               // overflow: requests it could not serve in time, sent on
  uint64_t overflow_in = 0;           // overflow: requests it took for an earlier group
  uint64_t rerouted = 0;              // split: requests sent elsewhere as it had no capacity coming
  std::optional<Time> backoff_until;  // no launch before this (crash-loop backoff)
  // Two-step routing and agents.
  uint64_t direct_routes = 0;  // replicas handed out by route_direct (tokens issued)
  uint64_t direct_waits = 0;   // route_direct calls that found no ready replica
  int waiting_clients = 0;     // of those, still expected back (counted as queued)
  int reporting = 0;           // ready replicas whose agent reported recently
  double load = 0;             // the load signal of the last observation
  // The model servers' figures of the last observation (policy::Observation::engine_*).
  int engine_reporting = 0;
  double engine_waiting = 0;
  double engine_running = 0;
  std::optional<double> engine_kv_cache;
  RolloutStatus rollout;  // the replacement of replicas after a launch template changed
};

// The sticky key of a client's key (routing.sticky_header's value at the gateway, "key" of a
// two-step route): FNV-1a, never 0 (0 means "no key").
inline uint64_t sticky_key(std::string_view value) { return fnv1a(value) | 1; }

class Endpoint final : public dispatch::DispatchListener, public ReplicaEvents {
 public:
  Endpoint(const config::EndpointSpec& spec, Provisioner& provisioner, RequestSink& requests,
           DecisionSink* decisions, Time now);
  ~Endpoint() override;
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  const config::EndpointSpec& spec() const { return spec_; }
  int group_count() const { return static_cast<int>(groups_.size()); }

  // Applies a changed configuration at run time without dropping a request or a replica. Every
  // current group must still be there, in the same order, with the same concurrency and
  // admission mode (replicas were started for them); new groups may follow. Limits, scaling
  // (a changed policy starts from a fresh state), cold start, price, routing, queue and SLO may
  // change. A changed launch template (config::same_launch_template) starts a new generation:
  // new replicas use it, and running ones are replaced by a rolling update (rollout.h). Returns
  // what prevents it, empty once applied.
  std::string reconfigure(const config::EndpointSpec& next, Time now);

  // Which group serves the next request, by the endpoint's routing (`routing` in the config):
  //  - split: by weight, smooth weighted round robin; with a sticky key (a hash of the client's
  //    sticky header value, 0 for none) always the same group for the same key. A group with no
  //    replica and none coming (failing launches) is routed around.
  //  - overflow: the first group in `order` expected to start the request within
  //    slo.max_wait (a free slot, a short enough queue, a replica ready soon enough); when none
  //    can, the last group that may still grow takes it (and scales on it), else the group
  //    expected to start it soonest. A spilled request counts as demand for the first group,
  //    so that group still grows toward its max.
  // Via::kDirect routes a two-step request (POST /v1/route): only groups with agents take part
  // (weights and order among them), a free slot is judged by the agents' reports plus what was
  // routed since, and waiting clients count as queued. Returns -1 when no group has agents.
  enum class Via : uint8_t { kGateway, kDirect };
  int route(uint64_t sticky, Time now, Via via = Via::kGateway);

  // Requests.
  dispatch::Admit submit(dispatch::RequestId request, int group, Time now) {
    return dispatcher_.submit(request, group, now);
  }
  void complete(dispatch::ReplicaSlot slot, Time now, Duration service) {
    dispatcher_.complete(slot, now, service);
  }
  bool cancel(dispatch::RequestId request, Time now) { return dispatcher_.cancel(request, now); }

  // A started request's prefill as served: the time from its start at a replica to its first
  // token. Their running mean is the expected prefill that a ttft SLO's wait budget leaves out.
  void observe_prefill(Duration prefill);
  // The longest a request may wait before it starts (the deciders' max_wait, the late count,
  // overflow routing): config::wait_budget of the SLO with the prefill observed so far (0 before
  // any). Changes only with a ttft SLO.
  Duration wait_budget() const { return config::wait_budget(spec_.slo, expected_prefill_); }

  // An agent's report for one of this endpoint's replicas (already authenticated). Its load
  // replaces the dispatcher's figures for the group while reports keep coming (see observe()).
  // Returns false for a replica that is not live (stopped, failed, unknown).
  bool on_report(uint64_t replica_id, const ReplicaReport& report, Time now);
  // Two-step routing: a ready replica of `group` for one request the client sends straight to
  // it: the least loaded by its reports plus what was routed to it since, or nullptr when none
  // is ready. `work` is the client's estimate in work units (0: one request's worth).
  const Replica* route_direct(int group, double work, Time now);
  // route_direct found no replica: the client was told to come back. Until `until`, or until a
  // route_direct succeeds, it counts as a queued request of the group (so that a group at zero
  // starts a replica).
  void wait_for_route(int group, Time now, Time until);

  // One control tick of a group: time out overdue held requests, observe, decide, reconcile.
  // Returns the observation it decided on (for timelines).
  const policy::Observation& tick(int group, Time now);

  // ReplicaEvents (from the provisioner).
  void on_replica_starting(uint64_t replica_id, Time now) override;
  void on_replica_ready(uint64_t replica_id, Time now, std::string address) override;
  void on_replica_failed(uint64_t replica_id, Time now, std::string error) override;
  void on_replica_handle(uint64_t replica_id, std::string handle) override;
  // Its model server's figures, read by the probe (an agent's come with its report).
  void on_replica_engine(uint64_t replica_id, Time now,
                         const metrics::EngineSignals& signals) override;
  // Takes over a replica a previous run launched (after a restart of tide): it is starting (it
  // counts toward the group's size, so no duplicate is launched) until its provisioner reports
  // it ready or gone. `requested_at` is when it was first launched (billing goes on from there);
  // `ready_at`, when it first became ready (its cold start; Time{}: it had not).
  // Returns false, and forgets it, if the provisioner cannot adopt at all.
  // `template_id`: the fingerprint of the launch template it was started from, as the state file
  // kept it ("": unknown, taken as the current one); another template's replica is of an earlier
  // generation, replaced by a rollout as after a change by PUT.
  bool adopt(int group, uint64_t id, const std::string& handle, Time requested_at,
             Time ready_at = Time{}, const std::string& template_id = {});
  // Replica ids from here on start at `next` (a restarted tide never reuses an old id).
  void reserve_ids(uint64_t next) { next_id_ = std::max(next_id_, next); }
  // Failed by the data plane (an agent reporting its server unhealthy): treated as failed, and
  // its provisioner is told to stop whatever is left of it.
  void fail_replica(uint64_t replica_id, Time now, std::string error) {
    on_replica_failed(replica_id, now, std::move(error));
  }
  // The gateway could not open a connection to a ready replica (refused, unreachable, timed out).
  // One request's fate says little: the replica is failed only after kConnectFailuresToFail in a
  // row, across requests; returns whether it was. connected() ends the run.
  static constexpr int kConnectFailuresToFail = 3;
  bool connect_failed(uint64_t replica_id, Time now, std::string error);
  void connected(uint64_t replica_id);

  // Where provisioners report this endpoint's replicas: the endpoint itself by default; a
  // wrapper that must take its lock first (LiveEndpoint) puts itself in between.
  void set_replica_events(ReplicaEvents* events) { replica_events_ = events; }

  GroupStatus status(int group) const;
  const Replica* replica_at(dispatch::ReplicaSlot slot) const;
  // A replica not yet stopped or failed, by id; nullptr otherwise.
  const Replica* replica(uint64_t id) const;
  // The latest observed cold start of the group (launch to ready), or the configured mean
  // before the first.
  Duration last_cold_start(int group) const;
  std::vector<const Replica*> replicas(int group) const;
  const dispatch::Dispatcher& dispatcher() const { return dispatcher_; }
  // Replica-seconds billed so far, counting live replicas up to `now`.
  double replica_seconds(int group, Time now) const;
  // Cold starts observed (launch to ready), seconds.
  const std::vector<double>& cold_starts(int group) const { return groups_[group].cold_starts; }

 private:
  struct Group {
    const config::GroupSpec* spec = nullptr;
    std::string template_id;  // config::launch_template_fingerprint(*spec)
    std::unique_ptr<policy::Decider> decider;
    int desired = 0;
    bool decided = false;
    uint64_t launches = 0;
    uint64_t failures = 0;
    double closed_replica_seconds = 0;
    std::vector<uint64_t> live;  // ids of replicas not yet stopped, in launch order
    std::vector<Time> idle_buffer;
    std::vector<double> cold_starts;
    policy::Observation last_observation;
    std::string last_reason;
    std::string last_error;
    int consecutive_failures = 0;
    Time backoff_until = kTimeMin;
    double weight = 1;
    double swrr_current = 0;  // smooth weighted round robin state (gateway)
    double swrr_direct = 0;   // the same for two-step routing
    uint64_t routed = 0;
    uint64_t spilled = 0;
    uint64_t spilled_in_interval = 0;  // demand it could not take since the last observation
    uint64_t overflow_in = 0;
    uint64_t rerouted = 0;
    metrics::LoadEstimator gateway_load;  // the load signal from the dispatcher's figures
    std::deque<Time> route_waits;         // clients told to come back, until when
    uint64_t direct_routes = 0;
    uint64_t direct_waits = 0;
    uint64_t direct_in_interval = 0;  // route_direct calls since the last observation
    std::optional<Time> last_direct;
    RolloutStatus rollout;
  };

  // Whether `group` takes requests routed `via` (two-step routing needs its agent).
  bool takes_part(int group, Via via) const;
  // The steps of route() with several groups taking part, `first` the first in order.
  int route_overflow(int first, Time now, Via via);
  int route_split(int first, uint64_t sticky, Via via);
  int route_round_robin(int first, double total, Via via);
  int reroute(int chosen, Via via);
  // How long a request given to `group` now is expected to wait before it starts: 0 with a free
  // slot; else the queue ahead over the ready slots, a replica on its way, or a cold start if
  // the group may grow; Duration::max() when it can promise nothing.
  Duration expected_start_delay(int group, Time now, Via via = Via::kGateway) const;
  // A ready replica's load for two-step routing, in slots: what its agent (or the dispatcher)
  // says is in service or queued, plus what was routed to it since its last report.
  double direct_load(const Replica& r, Time now) const;
  // Whether `group` is below its max and not backing off after failed launches.
  bool may_grow(int group, Time now) const;
  // Replicas of the group that count toward its size (requested, starting, ready).
  int active_count(const Group& g) const;
  // Whether `group` has no replica and none coming while launches fail.
  bool unavailable(int group) const;
  // Whether the replica's latest agent report is recent enough to go by.
  static bool fresh_report(const Replica& r, Time now);
  // Since when a ready replica has had nothing to do (by the dispatcher and its agent's
  // reports); nullopt while it has work.
  std::optional<Time> idle_since(const Replica& r, Time now) const;
  // Folds the agents' reports of a group's ready replicas into `o` (in flight, queue, busy,
  // load); returns how many reported.
  int apply_reports(Group& g, policy::Observation& o, Time now);
  // Sums the recent engine figures of a group's ready replicas into `o` (engine_*).
  void apply_engines(const Group& g, policy::Observation& o, Time now) const;

  // DispatchListener.
  void on_start(dispatch::RequestId request, dispatch::ReplicaSlot slot, Time now) override;
  void on_timeout(dispatch::RequestId request, Time deadline) override;
  void on_drained(dispatch::ReplicaSlot slot, Time now) override;

  policy::Observation observe(int group, Time now);
  // The steps of observe().
  void follow_wait_budget(Duration max_wait);
  void count_replicas(Group& g, policy::Observation& o, Time now);
  static void apply_load(Group& g, const dispatch::GroupLoad& load, policy::Observation& o);
  void apply_direct(Group& g, policy::Observation& o, Time now);
  static Duration recent_cold_start(const Group& g);
  void reconcile(int group, Time now);
  // The launch template changed: a new generation, and a rollout if replicas run the old one.
  void start_rollout(int group);
  // An adopted replica was started from another template (changed while tide was stopped): it
  // is of an earlier generation, and a rollout replaces it.
  void adopt_earlier_template(int group, Replica& r);
  // One step of a rollout in progress; false once no old replica is left to replace.
  bool step_rollout(int group, Time now);
  RolloutCounts count_generations(const Group& g) const;
  // Whether an adopted replica that was ready before the restart is still to be found ready.
  bool refinding_adopted(const Group& g) const;
  // A new-template launch failed before it was ready: the rollout stops after enough in a row.
  void rollout_launch_failed(Group& g, const std::string& error);
  // Ready replicas in the order they should be drained: idle ones (longest idle first), then the
  // least loaded.
  void sort_for_drain(std::vector<Replica*>& ready, Time now) const;
  void drain(Replica& r, Time now);
  void launch(int group, Time now);
  void apply_routing();
  // A replica of `group` in `state`, named "endpoint/group/id".
  Replica new_replica(int group, uint64_t id, ReplicaState state, Time requested_at) const;
  void changed(const Replica& replica) {
    if (decisions_ != nullptr) decisions_->replica_changed(replica);
  }
  void retire(Replica& replica, Time now, ReplicaState final_state);
  Replica* find(uint64_t id);

  config::EndpointSpec spec_;
  Provisioner& provisioner_;
  RequestSink& requests_;
  DecisionSink* decisions_;
  dispatch::Dispatcher dispatcher_;
  std::vector<Group> groups_;
  std::vector<int> order_;  // overflow order (as listed when not configured)
  std::unordered_map<uint64_t, Replica> replicas_;  // live (not stopped/failed) replicas
  std::vector<uint64_t> slot_owner_;                // slot -> replica id
  uint64_t next_id_ = 1;
  ReplicaEvents* replica_events_ = this;
  Duration expected_prefill_{0};  // running mean of observe_prefill (kPrefillWeight)
  bool prefill_observed_ = false;
  Duration late_after_{0};  // the dispatcher's late_after: wait_budget() at the last tick
};

}  // namespace tide::control
