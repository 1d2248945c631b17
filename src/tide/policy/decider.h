// Deciders: pure scaling policies. A decider turns what a group looks like now into a desired
// replica count and a human-readable reason.
//
// A decider never blocks, never reads a clock (time is `Observation::now`), never does I/O. It
// keeps its own small state (windows, last scale times) between calls, so one instance serves one
// worker group. The controller calls `decide` once per control tick of that group, from one
// thread; the simulator and production call the very same code.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "tide/common/time.h"
#include "tide/config/config.h"

namespace tide::policy {

// What a group looks like at `now`, plus averages over the interval since the last observation.
struct Observation {
  Time now;
  Duration interval{0};  // since the previous observation (0 on the first)

  // Replica counts. `current` is what the controller holds now: requested + starting + ready
  // (draining replicas are on their way out and not counted). It is the base for "from -> to".
  int current = 0;
  int ready = 0;
  int starting = 0;     // requested or starting (cold)
  int concurrency = 1;  // slots per replica
  int min_replicas = 0;
  int max_replicas = 1;

  // Load right now.
  int queued = 0;        // held requests waiting for this group (+ those spilled to later groups)
  uint64_t spilled = 0;  // overflow: requests sent on to a later group since the last tick
  int in_flight = 0;     // requests in service on this group's replicas

  // Averages over the last interval (time-weighted).
  double avg_in_flight = 0;
  double avg_queued = 0;
  double avg_ready = 0;          // ready replicas, time-averaged
  double avg_busy_replicas = 0;  // replicas with >= 1 request in service, time-averaged
  double peak_demand = 0;        // max of (in_flight + queued) within the interval
  uint64_t arrivals = 0;         // requests that arrived for this group in the interval
  uint64_t completions = 0;
  uint64_t started = 0;  // held requests that started service in the interval
  uint64_t late = 0;     // of those, waited longer than max_wait (or timed out)

  // Service times of the interval's `completions`: their sum (s) and sum of squares (s^2). The
  // first two moments, from which a policy pools a recent mean and squared coefficient of
  // variation over the intervals it keeps.
  double service_sum_s = 0;
  double service_sq_sum_s2 = 0;
  double mean_service_s = 0;          // running mean of completed service times (0: none yet)
  Duration cold_start{0};             // expected launch-to-ready time of a replica
  Duration max_wait{0};               // the endpoint's SLO: longest acceptable wait before service
  std::optional<Time> last_activity;  // last arrival or completion for this group, if any

  // Work-based load per replica (metrics/load.h): work asked over capacity learned from served
  // work, 1 = at capacity. From the replicas' agents when they report, else as the dispatcher
  // measured it (the gateway's traffic; the simulator's).
  double load = 0;
  int reporting = 0;  // ready replicas whose agent reported recently (0: the dispatcher's figure)

  // What the model servers said of themselves (GroupSpec::engine_metrics), over the ready
  // replicas whose engine figures are recent: their number, the sums of requests waiting and
  // running inside the engines, and the mean share of KV cache in use (over those that export
  // it: `engine_kv_reporting`). Instantaneous, as last read.
  int engine_reporting = 0;
  double engine_waiting = 0;
  double engine_running = 0;
  int engine_kv_reporting = 0;
  double engine_kv_cache = 0;

  // For each ready replica with nothing in service: since when it has been idle. Sorted oldest
  // first. Policies with per-replica idle timeouts count how many have expired.
  std::span<const Time> idle_since;

  // Derived per-replica signals (0 when there are no ready replicas).
  double utilization() const {  // nvidia-smi style
    return avg_ready > 0 ? avg_busy_replicas / avg_ready : 0.0;
  }
  double arrival_rate() const {  // requests per second
    const double s = to_seconds(interval);
    return s > 0 ? static_cast<double>(arrivals) / s : 0.0;
  }
  // The value of `metric` per replica over this interval. Divides by ready replicas (at least 1)
  // so that demand with no replica reads as a large per-replica value.
  double per_replica(config::Metric metric) const;

 private:
  double engine_per_replica(config::Metric metric, double in_service, double waiting,
                            double replicas) const;
};

// A fractional count of replicas rounded up to a whole one, bounded to [0, most] before it
// becomes an int: a reading however large (a hostile trace, a request held open for days) neither
// overflows the int nor asks for more than the group may run.
int whole_replicas(double count, int most);

struct Decision {
  int desired = 0;
  std::string reason;
};

class Decider {
 public:
  virtual ~Decider() = default;
  virtual Decision decide(const Observation& obs) = 0;
};

// Builds the decider a group's ScalingSpec asks for, wrapped in the shared modifiers and the
// group's min/max bounds.
std::unique_ptr<Decider> make_decider(const config::GroupSpec& group);

}  // namespace tide::policy
