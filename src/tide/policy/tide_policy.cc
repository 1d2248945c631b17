// The tide policy: size each group for its SLO, react to queued work at once, and hold spare
// capacity only as long as a cold start would cost.
//
//  1. Offered load R (requests in service if nobody waited): the larger of arrival rate x mean
//     service time (Little's law) and the observed in-flight + queued, both over demand_window.
//  2. Slots N: the fewest with P(wait > slo.max_wait) <= target_wait_probability for an M/M/N
//     queue with that load (Erlang C with an exponential tail). This is square-root staffing: a
//     margin that grows with sqrt(R), not a fixed utilization target, so big groups run hot and
//     small ones keep the headroom Poisson bursts need.
//  3. Replicas needed = max(ceil(N / concurrency), ceil((in flight + queued) / concurrency)):
//     a backlog gets replicas on the next tick, whatever the averages say.
//  4. Scale down only to the largest need seen over keep_window (default: the group's mean cold
//     start). Releasing capacity sooner risks paying a cold start again within the time its
//     idle cost would have covered: the ski-rental break-even.
//  5. Scale to zero after idle_timeout without any request (default: the mean cold start).
#include "tide/policy/tide_policy.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <fmt/format.h>

#include "tide/metrics/window.h"

namespace tide::policy {
namespace {

// The smallest number of slots n > load such that an M/M/n queue with offered load `load` has
// P(wait > t) <= eps, where t is max_wait in units of the mean service time.
double slots_for(double load, double t_over_s, double eps) {
  if (load <= 0) return 0;
  // Erlang B by recurrence up to n, then Erlang C; P(W > t) = C * exp(-(n - load) * t/S).
  double b = 1.0;
  int n = 0;
  const int limit = static_cast<int>(load + 50 * std::sqrt(load) + 50);
  while (n < limit) {
    ++n;
    b = load * b / (n + load * b);
    if (n <= load) continue;
    const double c = n * b / (n - load * (1 - b));
    const double tail = c * std::exp(-(n - load) * t_over_s);
    if (tail <= eps) return n;
  }
  return limit;
}

class TideDecider final : public Decider {
 public:
  explicit TideDecider(const config::GroupSpec& group)
      : params_(group.scaling.tide),
        rate_(params_.demand_window),
        load_(params_.demand_window) {}

  Decision decide(const Observation& o) override {
    const Duration cold = o.cold_start;
    keep_window_ = params_.keep_window.count() > 0 ? params_.keep_window : cold;
    idle_timeout_ = params_.idle_timeout.count() > 0 ? params_.idle_timeout
                                                     : std::max<Duration>(cold, std::chrono::seconds(1));
    if (!first_.has_value()) first_ = o.now;
    if (o.interval.count() > 0) {
      rate_.add(o.now, o.interval, o.arrival_rate());
      load_.add(o.now, o.interval, o.avg_in_flight + o.avg_queued);
    }
    const double c = std::max(1, o.concurrency);
    const double lambda = rate_.average(o.now);
    const double s = o.mean_service_s;
    const double little = lambda * s;
    const double observed = load_.average(o.now);
    const double load = std::max(little, observed);
    const double t_over_s = s > 0 ? to_seconds(o.max_wait) / s : 0.0;
    const double slots = slots_for(load, t_over_s, params_.target_wait_probability);
    const int for_slo = static_cast<int>(std::ceil(slots / c));
    const int backlog = static_cast<int>(std::ceil((o.in_flight + o.queued) / c));
    const int needed = std::max(for_slo, backlog);

    // Needs kept as a monotonic deque (decreasing values): the max over any recent window is
    // the first entry inside it. The window follows the cold start, learned as replicas start.
    while (!needs_.empty() && needs_.back().second <= needed) needs_.pop_back();
    needs_.emplace_back(o.now, needed);
    while (needs_.front().first <= o.now - std::chrono::hours(1)) needs_.pop_front();
    int held = needed;
    for (const auto& [t, v] : needs_) {
      if (t > o.now - keep_window_) {
        held = v;
        break;
      }
    }

    const Time last = o.last_activity.value_or(*first_);
    const bool idle = o.in_flight == 0 && o.queued == 0 && o.now - last >= idle_timeout_;

    Decision d;
    if (idle) {
      d.desired = 0;
      d.reason = fmt::format("no request for {} (idle timeout {}): {} -> 0",
                             format_duration(o.now - last), format_duration(idle_timeout_),
                             o.current);
      return d;
    }
    d.desired = std::max(needed, held);
    const std::string why = fmt::format(
        "load {:.1f} (rate {:.2f}/s x {:.2f}s, observed {:.1f}), {} slots for P(wait > {}) <= "
        "{:g}: {} replicas; backlog {} needs {}",
        load, lambda, s, observed, slots, format_duration(o.max_wait),
        params_.target_wait_probability, for_slo, o.in_flight + o.queued, backlog);
    if (d.desired > needed) {
      d.reason = fmt::format("{}; holding {} (peak within keep window {}): {} -> {}", why, held,
                             format_duration(keep_window_), o.current, d.desired);
    } else {
      d.reason = fmt::format("{}: {} -> {}", why, o.current, d.desired);
    }
    return d;
  }

 private:
  config::TidePolicy params_;
  metrics::AverageWindow rate_;
  metrics::AverageWindow load_;
  std::deque<std::pair<Time, int>> needs_;
  Duration keep_window_{60'000'000'000};
  Duration idle_timeout_{0};
  std::optional<Time> first_;
};

}  // namespace

std::unique_ptr<Decider> make_tide_policy(const config::GroupSpec& group) {
  return std::make_unique<TideDecider>(group);
}

}  // namespace tide::policy
