// Test helpers: drive a Decider on virtual time with a group's load held constant per tick.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include "tide/common/random.h"
#include "tide/common/time.h"
#include "tide/policy/decider.h"

namespace tide::policy::testing {

using namespace std::chrono_literals;

// A Poisson count (Knuth's product of uniforms; fine for the small means used here).
inline uint64_t poisson(Random& rng, double mean) {
  const double limit = std::exp(-mean);
  uint64_t n = 0;
  for (double p = rng.uniform(); p > limit; p *= rng.uniform()) ++n;
  return n;
}

// What a group looks like during one tick. Averages over the tick equal these values.
struct GroupState {
  int ready = 0;
  int starting = 0;
  int queued = 0;
  int in_flight = 0;
  int concurrency = 1;
  int min_replicas = 0;
  int max_replicas = 10;
  std::optional<double> busy{};  // busy replicas; default min(in_flight, ready)
  uint64_t arrivals = 0;         // per tick
  double mean_service_s = 0;
  std::vector<Duration> idle_for{};  // per idle ready replica: how long it has been idle
  std::optional<Time> last_activity{};
};

// Walks time forward by value: each call to `tick` is one control tick of `step`.
class Driver {
 public:
  explicit Driver(Decider& decider, Duration step = 1s) : decider_(decider), step_(step) {}

  Time now() const { return now_; }
  // Seconds since the start, for readable assertions.
  double seconds() const { return to_seconds(now_); }

  // The very first observation: no interval to average over.
  Decision first(const GroupState& g) { return decide(g, Duration{0}); }

  // Advances time by one step and observes `g` as it was over that step.
  Decision tick(const GroupState& g) {
    now_ += step_;
    return decide(g, step_);
  }

  // Ticks for `d` (a multiple of the step) and returns the last decision.
  Decision run(Duration d, const GroupState& g) {
    Decision last;
    for (Duration t{0}; t < d; t += step_) last = tick(g);
    return last;
  }

  // Ticks until the decision differs from `g`'s current count, at most `limit`. Returns it.
  Decision run_until_change(const GroupState& g, Duration limit) {
    Decision last;
    for (Duration t{0}; t < limit; t += step_) {
      last = tick(g);
      if (last.desired != g.ready + g.starting) return last;
    }
    return last;
  }

  Observation observation(const GroupState& g, Duration interval) {
    idle_.clear();
    for (Duration d : g.idle_for) idle_.push_back(now_ - d);
    std::sort(idle_.begin(), idle_.end());  // oldest first, as the Observation promises
    Observation o;
    o.now = now_;
    o.interval = interval;
    o.current = g.ready + g.starting;
    o.ready = g.ready;
    o.starting = g.starting;
    o.concurrency = g.concurrency;
    o.min_replicas = g.min_replicas;
    o.max_replicas = g.max_replicas;
    o.queued = g.queued;
    o.in_flight = g.in_flight;
    if (interval > Duration{0}) {
      o.avg_in_flight = g.in_flight;
      o.avg_queued = g.queued;
      o.avg_ready = g.ready;
      o.avg_busy_replicas = g.busy.value_or(std::min(g.in_flight, g.ready));
      o.peak_demand = g.in_flight + g.queued;
      o.arrivals = g.arrivals;
    }
    o.mean_service_s = g.mean_service_s;
    o.last_activity = g.last_activity;
    o.idle_since = idle_;
    return o;
  }

 private:
  Decision decide(const GroupState& g, Duration interval) {
    return decider_.decide(observation(g, interval));
  }

  Decider& decider_;
  Duration step_;
  Time now_ = kTimeZero;
  std::vector<Time> idle_;
};

}  // namespace tide::policy::testing
