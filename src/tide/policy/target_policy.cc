// target: the Kubernetes HPA algorithm (pkg/controller/podautoscaler/horizontal.go and
// replica_calculator.go) on any per-replica metric.
//
// Every sync_period: recommendation = ceil(ready x metric / target) unless the ratio is within the
// tolerance; stabilized by the up/down windows (the result is the current count brought within
// [min of up-window recommendations, max of down-window recommendations]); then limited by the
// rate rules, computed from the replica changes this policy made within each rule's period.
// With no ready replica and some demand it activates (KEDA-like), which HPA alone cannot do; it
// never scales below one replica itself (scale to zero is the idle_timeout modifier, like KEDA's
// cooldownPeriod).
#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <deque>
#include <optional>

#include "tide/metrics/window.h"
#include "tide/policy/policies.h"

namespace tide::policy {
namespace {

using config::Metric;
using config::RateLimit;
using config::ScalingRules;

// ceil that ignores float noise such as 4.0000000000000009 (HPA's own float ceil does not).
int ceil_int(double x) { return whole_replicas(x - 1e-9, INT_MAX); }

std::string rules_text(const ScalingRules& rules) {
  if (rules.select == ScalingRules::Select::kDisabled) return "disabled";
  std::string out;
  for (const RateLimit& r : rules.policies) {
    if (!out.empty()) out += ", ";
    out += fmt::format("{} {:g} per {}", r.type == RateLimit::Type::kPods ? "pods" : "percent",
                       r.value, format_duration(r.period));
  }
  return fmt::format("{} (select {})", out,
                     rules.select == ScalingRules::Select::kMax ? "max" : "min");
}

class TargetDecider final : public Decider {
 public:
  explicit TargetDecider(const config::TargetPolicy& params)
      : params_(params), metric_(params.metric_window) {}

  Decision decide(const Observation& obs) override {
    if (obs.interval > Duration{0}) {
      metric_.add(obs.now, obs.interval, obs.per_replica(params_.metric));
    }
    // Activation from zero does not wait for the sync: the request that finds no replica
    // triggers the launch (HF, KEDA's activator), or it would go unseen until a sync tick.
    const bool activation_due = obs.current == 0 && has_demand(obs);
    if (!activation_due && last_sync_ && obs.now - *last_sync_ < params_.sync_period) {
      return {last_desired_, fmt::format("waiting for sync ({} of {}): keep {}",
                                         format_duration(obs.now - *last_sync_),
                                         format_duration(params_.sync_period), last_desired_)};
    }
    last_sync_ = obs.now;
    Decision d = evaluate(obs);
    last_desired_ = d.desired;
    return d;
  }

 private:
  struct Recommendation {
    Time at;
    int replicas;
  };
  struct ScaleEvent {
    Time at;
    int change;  // replicas added (up list) or removed (down list), > 0
  };

  Decision evaluate(const Observation& obs) {
    const int cur = obs.current;
    const std::string name(config::metric_name(params_.metric));
    if (obs.ready == 0) return activate(obs, name);

    double target = params_.target;
    std::string target_text = fmt::format("{:.2f}", target);
    if (params_.metric == Metric::kRps && target <= 0) {
      if (obs.mean_service_s <= 0) {
        return {cur,
                fmt::format("no change: auto {} target needs a mean service time, none yet", name)};
      }
      target = obs.concurrency / obs.mean_service_s * 0.7;
      target_text = fmt::format("{:.2f} (auto: {} / {:.2f}s x 0.7)", target, obs.concurrency,
                                obs.mean_service_s);
    }
    if (target <= 0) return {cur, fmt::format("no change: {} target is not positive", name)};

    const double value =
        metric_.has_data(obs.now) ? metric_.average(obs.now) : obs.per_replica(params_.metric);
    const auto [raw, calc] = replica_count(obs, value / target);
    std::string reason = fmt::format("{} {:.2f} vs target {}{}", name, value, target_text, calc);

    const int stabilized = stabilize(obs.now, cur, raw);
    if (stabilized != raw) {
      reason += stabilized > raw
                    ? fmt::format("; stabilized at {} (max recommendation within {})", stabilized,
                                  format_duration(params_.scale_down.stabilization))
                    : fmt::format("; stabilized at {} (min recommendation within {})", stabilized,
                                  format_duration(params_.scale_up.stabilization));
    }
    const int desired = limit_rate(obs, stabilized, reason);
    record_change(obs.now, cur, desired);
    if (desired == cur) return {desired, "no change: " + reason};
    return {desired, fmt::format("{}: {} -> {}", reason, cur, desired)};
  }

  static double demand_of(const Observation& obs) {
    return std::max(static_cast<double>(obs.in_flight + obs.queued), obs.peak_demand);
  }
  static bool has_demand(const Observation& obs) { return demand_of(obs) > 0 || obs.arrivals > 0; }

  // KEDA-like activation: HPA cannot measure anything without a ready replica.
  Decision activate(const Observation& obs, const std::string& name) {
    const int cur = obs.current;
    const double demand = demand_of(obs);
    if (!has_demand(obs)) {
      if (cur == 0) return {0, "no change: 0 replicas and no demand"};
      return {cur, fmt::format("no change: no ready replica to measure {} on yet ({} starting)",
                               name, obs.starting)};
    }
    int wanted = 1;
    std::string how = "1";
    const bool demand_metric = params_.metric == Metric::kConcurrency ||
                               params_.metric == Metric::kInFlight ||
                               params_.metric == Metric::kQueue;
    if (demand_metric && params_.target > 0) {
      wanted = std::max(1, ceil_int(demand / params_.target));
      how = fmt::format("max(1, ceil({:g} / {:g})) = {}", demand, params_.target, wanted);
    }
    const int desired = std::clamp(std::max(cur, wanted), obs.min_replicas,
                                   std::max(obs.min_replicas, obs.max_replicas));
    // Counted like an HPA recommendation and scale, so stabilization and rate limits see it.
    stabilize(obs.now, cur, desired);
    record_change(obs.now, cur, desired);
    const std::string reason =
        fmt::format("activation: demand {:g} with 0 ready, {} wanted {}", demand, name, how);
    if (desired == cur) return {desired, "no change: " + reason};
    return {desired, fmt::format("{}: {} -> {}", reason, cur, desired)};
  }

  // HPA's calcPlainMetricReplicas. `ratio` is over ready replicas; starting replicas count as
  // using nothing when that would dampen a scale up (HPA's unready pods).
  std::pair<int, std::string> replica_count(const Observation& obs, double ratio) const {
    const int cur = obs.current;
    const double tol = params_.tolerance;
    if (obs.starting == 0 || ratio <= 1.0) {
      if (std::abs(ratio - 1.0) <= tol) {
        return {cur,
                fmt::format(" (ratio {:.2f} within tolerance {:.2f}): keep {}", ratio, tol, cur)};
      }
      const int n = ceil_int(ratio * obs.ready);
      return {n, fmt::format(" (ratio {:.2f} > tolerance {:.2f}): ceil({} x {:.2f}) = {}", ratio,
                             tol, obs.ready, ratio, n)};
    }
    const int all = obs.ready + obs.starting;
    const double rebalanced = ratio * obs.ready / all;
    if (std::abs(rebalanced - 1.0) <= tol || rebalanced < 1.0) {
      return {cur, fmt::format(" (ratio {:.2f}, {:.2f} counting {} starting as idle): keep {}",
                               ratio, rebalanced, obs.starting, cur)};
    }
    const int n = std::max(cur, ceil_int(rebalanced * all));
    return {n, fmt::format(" (ratio {:.2f}, {:.2f} counting {} starting as idle): ceil({} x "
                           "{:.2f}) = {}",
                           ratio, rebalanced, obs.starting, all, rebalanced, n)};
  }

  // HPA's stabilizeRecommendationWithBehaviors: keep the current count unless every
  // recommendation within the up window is above it (then their min) or every one within the
  // down window is below it (then their max). Records `raw`.
  int stabilize(Time now, int cur, int raw) {
    const Duration up = params_.scale_up.stabilization;
    const Duration down = params_.scale_down.stabilization;
    int up_rec = raw;
    int down_rec = raw;
    for (const Recommendation& r : recommendations_) {
      if (r.at > now - up) up_rec = std::min(up_rec, r.replicas);
      if (r.at > now - down) down_rec = std::max(down_rec, r.replicas);
    }
    int out = cur;
    if (out < up_rec) out = up_rec;
    if (out > down_rec) out = down_rec;
    const Duration keep = std::max(up, down);
    while (!recommendations_.empty() && recommendations_.front().at <= now - keep) {
      recommendations_.pop_front();
    }
    recommendations_.push_back({now, raw});
    return out;
  }

  static int changes_within(const std::deque<ScaleEvent>& events, Time now, Duration period) {
    int sum = 0;
    for (const ScaleEvent& e : events) {
      if (e.at > now - period) sum += e.change;
    }
    return sum;
  }

  // Replicas at the start of `period`: undo the changes made within it.
  int period_start(Time now, int cur, Duration period) const {
    return cur - changes_within(up_events_, now, period) +
           changes_within(down_events_, now, period);
  }

  // HPA's calculateScaleUpLimitWithScalingRules; INT_MAX when there are no rules.
  int scale_up_limit(Time now, int cur) const {
    const ScalingRules& rules = params_.scale_up;
    if (rules.select == ScalingRules::Select::kDisabled) return cur;
    if (rules.policies.empty()) return INT_MAX;
    const bool pick_min = rules.select == ScalingRules::Select::kMin;
    int result = pick_min ? INT_MAX : INT_MIN;
    for (const RateLimit& r : rules.policies) {
      const int start = period_start(now, cur, r.period);
      // Percent rounds up so that a small group can always grow by one.
      const int proposed = r.type == RateLimit::Type::kPods
                               ? start + static_cast<int>(std::lround(r.value))
                               : ceil_int(start * (1 + r.value / 100));
      result = pick_min ? std::min(result, proposed) : std::max(result, proposed);
    }
    return result;
  }

  // HPA's calculateScaleDownLimitWithBehaviors; INT_MIN when there are no rules.
  int scale_down_limit(Time now, int cur) const {
    const ScalingRules& rules = params_.scale_down;
    if (rules.select == ScalingRules::Select::kDisabled) return cur;
    if (rules.policies.empty()) return INT_MIN;
    // "min" selects the smallest change, which for a scale down is the largest count.
    const bool pick_smallest_change = rules.select == ScalingRules::Select::kMin;
    int result = pick_smallest_change ? INT_MIN : INT_MAX;
    for (const RateLimit& r : rules.policies) {
      const int start = period_start(now, cur, r.period);
      const int proposed = r.type == RateLimit::Type::kPods
                               ? start - static_cast<int>(std::lround(r.value))
                               : static_cast<int>(std::floor(start * (1 - r.value / 100) + 1e-9));
      result = pick_smallest_change ? std::max(result, proposed) : std::min(result, proposed);
    }
    return result;
  }

  // HPA's convertDesiredReplicasWithBehaviorRate: rate limits, then min/max.
  int limit_rate(const Observation& obs, int wanted, std::string& reason) const {
    const int cur = obs.current;
    // Like HPA under KEDA: never below one replica; going to zero is KEDA's cooldown, which is
    // the idle_timeout modifier here.
    const int lo = std::max(obs.min_replicas, 1);
    const int hi = std::max(lo, obs.max_replicas);
    if (wanted > cur) {
      const int limit = std::max(cur, scale_up_limit(obs.now, cur));
      if (limit < hi && wanted > limit) {
        reason +=
            fmt::format("; scale-up limited to {} by {}", limit, rules_text(params_.scale_up));
        return limit;
      }
      return std::min(wanted, hi);
    }
    if (wanted < cur) {
      const int limit = std::min(cur, scale_down_limit(obs.now, cur));
      if (limit > lo && wanted < limit) {
        reason +=
            fmt::format("; scale-down limited to {} by {}", limit, rules_text(params_.scale_down));
        return limit;
      }
      return std::max(wanted, lo);
    }
    return wanted;
  }

  void record_change(Time now, int from, int to) {
    auto prune = [&](std::deque<ScaleEvent>& events, const ScalingRules& rules) {
      Duration longest{0};
      for (const RateLimit& r : rules.policies) longest = std::max(longest, r.period);
      while (!events.empty() && events.front().at <= now - longest) events.pop_front();
    };
    prune(up_events_, params_.scale_up);
    prune(down_events_, params_.scale_down);
    if (to > from) up_events_.push_back({now, to - from});
    if (to < from) down_events_.push_back({now, from - to});
  }

  config::TargetPolicy params_;
  metrics::AverageWindow metric_;
  std::optional<Time> last_sync_;
  int last_desired_ = 0;
  std::deque<Recommendation> recommendations_;
  std::deque<ScaleEvent> up_events_;
  std::deque<ScaleEvent> down_events_;
};

}  // namespace

std::unique_ptr<Decider> make_target_policy(const config::TargetPolicy& params) {
  return std::make_unique<TargetDecider>(params);
}

}  // namespace tide::policy
