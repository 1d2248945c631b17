#include "tide/policy/decider.h"

#include <algorithm>
#include <cmath>

#include "tide/policy/policies.h"
#include "tide/policy/tide_policy.h"

namespace tide::policy {

int whole_replicas(double count, int most) {
  if (!(count > 0) || most <= 0) return 0;  // NaN reads as none
  return count >= most ? most : static_cast<int>(std::ceil(count));
}

double Observation::engine_per_replica(config::Metric metric, double in_service, double waiting,
                                       double replicas) const {
  const double engines = engine_reporting;
  switch (metric) {
    case config::Metric::kEngineWaiting:
      // Inside the engines (a mean over those read) and held before them (the gateway's queue,
      // the agents'): with no replica ready, held requests alone start one.
      return (engines > 0 ? engine_waiting / engines : 0.0) + waiting / replicas;
    case config::Metric::kEngineRunning:
      return engines > 0 ? engine_running / engines : in_service / replicas;
    case config::Metric::kEngineKvCache:
      if (engine_kv_reporting > 0) return engine_kv_cache;
      // No engine exports it: the share of slots in service, as a stand-in.
      return std::min(1.0, in_service / (replicas * std::max(1, concurrency)));
    default:
      return 0.0;
  }
}

double Observation::per_replica(config::Metric metric) const {
  // The first observation has no interval to average over: read the instantaneous values.
  const bool averaged = interval > Duration{0};
  const double in_service = averaged ? avg_in_flight : in_flight;
  const double waiting = averaged ? avg_queued : queued;
  const double replicas = std::max(1.0, averaged ? avg_ready : static_cast<double>(ready));
  switch (metric) {
    case config::Metric::kUtilization:
      if (averaged) return utilization();
      // Without an interval, assume requests spread over replicas (least-outstanding dispatch).
      return ready > 0 ? std::min(in_flight, ready) / static_cast<double>(ready) : 0.0;
    case config::Metric::kInFlight:
      return in_service / replicas;
    case config::Metric::kQueue:
      return waiting / replicas;
    case config::Metric::kConcurrency:
      return (in_service + waiting) / replicas;
    case config::Metric::kRps:
      return arrival_rate() / replicas;
    case config::Metric::kLoad:
      return load;
    case config::Metric::kEngineWaiting:
    case config::Metric::kEngineRunning:
    case config::Metric::kEngineKvCache:
      return engine_per_replica(metric, in_service, waiting, replicas);
  }
  return 0.0;
}

std::unique_ptr<Decider> make_decider(const config::GroupSpec& group) {
  const config::ScalingSpec& s = group.scaling;
  std::unique_ptr<Decider> inner;
  switch (s.policy) {
    case config::PolicyKind::kQueue:
      inner = make_queue_policy(s.queue);
      break;
    case config::PolicyKind::kTarget:
      inner = make_target_policy(s.target);
      break;
    case config::PolicyKind::kConcurrency:
      inner = make_concurrency_policy(s.concurrency);
      break;
    case config::PolicyKind::kStep:
      inner = make_step_policy(s.step);
      break;
    case config::PolicyKind::kTide:
      inner = make_tide_policy(group);
      break;
  }
  return wrap_with_modifiers(std::move(inner), s.modifiers, s.min_one);
}

}  // namespace tide::policy
