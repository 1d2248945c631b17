// The dispatcher of one endpoint: holds requests no replica can take yet, picks a replica for
// each request, and integrates the load signals (in flight, queued, busy replicas) over time.
//
// Pure logic: no sockets, no clock (`now` is an argument of every call), no threads. The
// simulator and the gateway both drive it; the gateway does so from one strand. Outcomes are
// delivered synchronously through a DispatchListener.
//
// Worker choice: among the group's accepting replicas with a free slot, the one with the fewest
// outstanding requests (ties: the one most recently freed). O(concurrency) worst case, O(1)
// typical, whatever the number of replicas.
//
// Two admission modes per group:
//  - hold (tide): a request no replica can start now waits in the group's FIFO hold queue,
//    bounded (with every other group's) by the endpoint's max queue length, until a slot frees,
//    a replica becomes ready, or its deadline passes (then it times out).
//  - passthrough (peers without a gateway queue): with no ready replica the request is rejected
//    at once; otherwise it goes to the least-loaded ready replica even if that replica is full,
//    and waits in that replica's own local queue (what a model server does by itself).
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <vector>

#include "tide/common/time.h"

namespace tide::dispatch {

using RequestId = uint64_t;
using ReplicaSlot = uint32_t;  // a dense handle for a replica, reused after release
constexpr ReplicaSlot kNoSlot = std::numeric_limits<ReplicaSlot>::max();

enum class Admit : uint8_t {
  kStarted,            // started on a replica now (on_start was called)
  kQueued,             // held (hold mode) or waiting in a replica's local queue (passthrough)
  kRejectedQueueFull,  // hold queue full: 429
  kRejectedNoReplica,  // passthrough and no replica ready: the peer's 502 / 503
};

class DispatchListener {
 public:
  virtual ~DispatchListener() = default;
  // `request` begins service on `slot`.
  virtual void on_start(RequestId request, ReplicaSlot slot, Time now) = 0;
  // `request` was held past its deadline and has left the queue.
  virtual void on_timeout(RequestId request, Time deadline) = 0;
  // A draining replica has no work left. The slot is released when this returns.
  virtual void on_drained(ReplicaSlot slot, Time now) = 0;
};

// Load of one group: the current values and time-weighted averages over an interval.
struct GroupLoad {
  Duration interval{0};
  int queued = 0;     // held + waiting in replicas' local queues
  int in_flight = 0;  // in service
  int ready = 0;      // replicas taking work (not draining)
  double avg_in_flight = 0;
  double avg_queued = 0;
  double avg_ready = 0;          // ready + draining replicas (they still run)
  double avg_busy_replicas = 0;  // replicas with >= 1 request in service
  double peak_demand = 0;        // max of in_flight + queued within the interval
  uint64_t arrivals = 0;
  uint64_t completions = 0;
  uint64_t started = 0;  // requests that started service (hold mode) in the interval
  uint64_t late = 0;     // of those, waited > late_after; plus held ones that timed out
  // First and second moments of the service times of the interval's `completions`: sums of S
  // and S^2 (seconds, seconds^2), so that a policy can pool any recent window of intervals.
  double service_sum_s = 0;
  double service_sq_sum_s2 = 0;
  double mean_service_s = 0;  // over all completions so far
  std::optional<Time> last_activity;
};

class Dispatcher {
 public:
  struct Options {
    int max_queue = 10000;  // held requests over all groups; beyond: kRejectedQueueFull
    Duration queue_timeout = std::chrono::seconds(300);
    // A held request that waited longer than this before starting (or timed out) counts as late:
    // the SLO's max_wait, fed back to policies that track attainment.
    Duration late_after = Duration::max();
  };

  Dispatcher(Options options, DispatchListener& listener);
  // New limits from now on; requests already held keep their deadline.
  void set_options(Options options) { options_ = options; }

  // Adds a worker group; returns its index. `hold` selects the admission mode.
  int add_group(int concurrency, bool hold, Time now);

  // A replica of `group` is ready: it takes held work at once (on_start may fire before this
  // returns, for the slot next_slot() named).
  ReplicaSlot add_replica(int group, Time now);
  // The slot the next add_replica will use, so a caller can map it before work starts on it.
  ReplicaSlot next_slot() const {
    return free_slots_.empty() ? static_cast<ReplicaSlot>(replicas_.size()) : free_slots_.back();
  }
  // Stops giving work to the replica; on_drained fires once it is empty (maybe before return).
  void drain(ReplicaSlot slot, Time now);
  // A draining replica takes work again (demand came back before it stopped).
  void undrain(ReplicaSlot slot, Time now);
  // The replica is gone (crashed, failed its probe). Returns the requests it had in service or
  // in its local queue, for the caller to retry or fail; the slot is released.
  std::vector<RequestId> remove(ReplicaSlot slot, Time now);

  Admit submit(RequestId request, int group, Time now);
  // A request finished on `slot` after `service` in service; the slot takes the next one.
  void complete(ReplicaSlot slot, Time now, Duration service);
  // Withdraws a held request (client went away, or the caller's own deadline timer fired).
  // Returns false if it was not held (already started or unknown).
  bool cancel(RequestId request, Time now);
  // Times out held requests whose deadline is at or before `now`.
  void expire(Time now);

  // Snapshot of a group's load; averages cover the time since the previous take_interval.
  GroupLoad take_interval(int group, Time now);

  int outstanding(ReplicaSlot slot) const { return replicas_[slot].outstanding; }
  int in_service(ReplicaSlot slot) const { return replicas_[slot].in_service; }
  bool draining(ReplicaSlot slot) const { return replicas_[slot].draining; }
  // When the replica last had nothing to do; nullopt while it has work.
  std::optional<Time> idle_since(ReplicaSlot slot) const;
  int queued(int group) const;
  // Whether a request submitted to `group` now would start at once.
  bool can_start_now(int group) const;
  // Mean service time of the group's completed requests so far (0: none yet).
  double mean_service_s(int group) const;
  int in_flight(int group) const { return groups_[group].in_flight; }
  int total_held() const { return total_held_; }
  int group_count() const { return static_cast<int>(groups_.size()); }

 private:
  struct Held {
    RequestId request;
    Time deadline;
  };
  struct Replica {
    int group = -1;
    int outstanding = 0;  // in service + local queue
    int in_service = 0;
    bool draining = false;
    bool live = false;
    Time idle_since{};
    std::deque<RequestId> local;  // passthrough only
    ReplicaSlot prev = kNoSlot;   // intrusive list of the bucket for `outstanding`
    ReplicaSlot next = kNoSlot;
  };
  struct Group {
    int concurrency = 1;
    bool hold = true;
    std::deque<Held> held;
    std::vector<ReplicaSlot> bucket_head;  // per outstanding count < concurrency
    size_t lowest_hint = 0;
    std::vector<ReplicaSlot> members;  // accepting + draining replicas
    int accepting = 0;
    int in_flight = 0;
    int local_waiting = 0;
    int busy = 0;  // replicas with in_service > 0
    // Integrals since the last take_interval.
    Time last_change{};
    Time interval_start{};
    double in_flight_integral = 0;
    double queued_integral = 0;
    double ready_integral = 0;
    double busy_integral = 0;
    double peak_demand = 0;
    uint64_t arrivals = 0;
    uint64_t completions = 0;
    uint64_t started = 0;
    uint64_t late = 0;
    double service_sum_s = 0;  // of this interval's completions
    double service_sq_sum_s2 = 0;
    uint64_t completions_total = 0;
    double service_total_s = 0;
    std::optional<Time> last_activity;
  };

  void advance(Group& g, Time now);
  void note_peak(Group& g);
  void bucket_insert(Group& g, ReplicaSlot slot);
  void bucket_remove(Group& g, ReplicaSlot slot);
  ReplicaSlot pick(Group& g);
  ReplicaSlot pick_any_least_loaded(const Group& g) const;
  void start_on(Group& g, ReplicaSlot slot, RequestId request, Time now);
  void feed_from_queue(Group& g, ReplicaSlot slot, Time now);
  void time_out_overdue(Group& g, Time now);  // held requests past their deadline leave (late)
  void check_drained(ReplicaSlot slot, Time now);
  void release(ReplicaSlot slot);
  int group_queued(const Group& g) const {
    return static_cast<int>(g.held.size()) + g.local_waiting;
  }

  Options options_;
  DispatchListener& listener_;
  std::vector<Group> groups_;
  std::vector<Replica> replicas_;
  std::vector<ReplicaSlot> free_slots_;
  int total_held_ = 0;
};

}  // namespace tide::dispatch
