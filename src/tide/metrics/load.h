// Work-based load: how much of a replica's capacity the work asked of it takes, with the
// capacity learned from what the replica has served (not from a benchmark, not from nvidia-smi).
//
// Written once for every place that measures requests: the agent beside a model server (one
// replica, real time), and the dispatcher in the gateway and the simulator (a group of alike
// replicas). The same numbers in give the same load out, so a policy on `load` behaves the same
// in `tide sim` and in `tide serve`. Time is an argument; nothing here reads a clock.
//
//   slot rate  r = work completed / its seconds in service   (learned; fades with a half-life)
//   capacity   C = r x slots                               (work units per second)
//   demand     D = max(arrival rate x work per request,    (what keeps arriving)
//                      (in service + queued) x r)          (what is there now)
//   load       D / C; before the first completion, (in service + queued) / slots
//
// A work unit is what the measurer counts per request: tokens in + out when the answer reports
// them, else 1 per request. Load is a ratio, so the unit cancels out.
//
// Not thread-safe: one estimator per replica (or group), fed from one thread.
#pragma once

#include <cstdint>

#include "tide/common/time.h"

namespace tide::metrics {

// What one replica (or a group of alike replicas) did over one interval.
struct LoadInterval {
  double seconds = 0;         // length of the interval
  double slots = 1;           // requests served at once (a group: ready replicas x concurrency)
  double avg_in_service = 0;  // time-averaged requests in service
  double avg_queued = 0;      // time-averaged requests waiting for a slot
  uint64_t arrivals = 0;      // requests that arrived in the interval
  uint64_t completions = 0;   // requests that finished in the interval
  double work = 0;            // work units of those completions
  double service_s = 0;       // their seconds in service (not waiting), summed
};

struct LoadSample {
  double demand = 0;      // work units per second asked
  double capacity = 0;    // work units per second the slots can serve; 0 = not learned yet
  double throughput = 0;  // work units per second completed in the interval
  double load = 0;        // demand / capacity: 1 = at capacity
  bool learned = false;   // capacity comes from served work (else load is slot occupancy)
};

class LoadEstimator {
 public:
  // `half_life`: how fast old intervals fade from the learned rates (a request of several
  // seconds must fit well inside it).
  explicit LoadEstimator(Duration half_life = std::chrono::seconds(60));

  // Takes one interval; returns the load over it. Intervals of length <= 0 change nothing.
  LoadSample update(const LoadInterval& interval);

  // Learned work units per second a request spends in service (0: nothing completed yet).
  double slot_rate() const;
  // Learned work units per request (1 before any completion).
  double work_per_request() const;
  // Learned requests arriving per second.
  double arrival_rate() const;

 private:
  double half_life_s_;
  // Sums fading with the half-life.
  double work_ = 0;         // work completed
  double service_s_ = 0;    // their seconds in service
  double completions_ = 0;  // requests completed
  double arrivals_ = 0;     // requests arrived
  double span_s_ = 0;       // time covered
  LoadSample last_;
};

}  // namespace tide::metrics
