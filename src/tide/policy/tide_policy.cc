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

#include <fmt/format.h>
#include <algorithm>
#include <cmath>
#include <deque>

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
        short_rate_(params_.demand_window),
        long_rate_(params_.demand_window),
        load_(params_.demand_window) {}

  Decision decide(const Observation& o) override {
    const Duration cold = o.cold_start;
    keep_window_ = params_.keep_window.count() > 0 ? params_.keep_window : cold;
    if (keep_window_ < params_.demand_window) keep_window_ = params_.demand_window;
    idle_timeout_ = params_.idle_timeout.count() > 0
                        ? params_.idle_timeout
                        : std::max<Duration>(cold, std::chrono::seconds(1));
    long_rate_.set_window(keep_window_);
    if (!first_.has_value()) first_ = o.now;
    if (o.interval.count() > 0) {
      const double rate = o.arrival_rate();
      short_rate_.add(o.now, o.interval, rate);
      long_rate_.add(o.now, o.interval, rate);
      load_.add(o.now, o.interval, o.avg_in_flight + o.avg_queued);
    }
    const double c = std::max(1, o.concurrency);
    // The arrival rate over the keep window is steady; the short window catches a surge: more
    // arrivals than the steady rate explains at three standard deviations of a Poisson count.
    const double steady = long_rate_.average(o.now);
    const double recent = short_rate_.average(o.now);
    const double w = std::min(to_seconds(params_.demand_window), to_seconds(o.now - *first_));
    const bool surge = recent * w > steady * w + 3 * std::sqrt(steady * w) + 1;
    const double lambda = surge ? recent : steady;
    // Mean service time; before the first completion, at least as long as replicas have been
    // ready without finishing anything.
    if (o.ready > 0 && !first_ready_) first_ready_ = o.now;
    double s = o.mean_service_s;
    if (s <= 0 && first_ready_)
      s = std::max(to_seconds(o.interval), to_seconds(o.now - *first_ready_));
    // Offered load by Little's law once service times are known; until then what is in flight.
    const double load = s > 0 ? lambda * s : load_.average(o.now);
    const double t_over_s = s > 0 ? to_seconds(o.max_wait) / s : 0.0;
    // Bursty traffic (peakedness z > 1) behaves like Poisson traffic of load R/z on N/z slots
    // (Hayward's approximation), so the margin grows with the burstiness actually seen.
    note_arrivals(o);
    const double z = peakedness();
    const double slots = z * slots_for(load / z, t_over_s, params_.target_wait_probability);
    const int for_slo = static_cast<int>(std::ceil(slots / c));
    // Queued work that the ready slots cannot start within max_wait needs replicas now, beyond
    // those already starting (they will take it when ready).
    const double ready_slots = o.ready * c;
    const double startable =
        s > 0 ? ready_slots * to_seconds(o.max_wait) / s : (o.ready > 0 ? ready_slots : 0.0);
    const double excess = o.queued - startable;
    // Replicas launched now are ready after a cold start; from then on each clears c / s
    // requests a second, so the backlog needs enough of them to clear it within one more cold
    // start, not one slot per queued request.
    const double per_replica =
        s > 0 ? c * std::max(1.0, to_seconds(std::max(o.cold_start, o.max_wait)) / s) : c;
    const int backlog =
        excess > 0
            ? o.ready + std::max(o.starting, static_cast<int>(std::ceil(excess / per_replica)))
            : 0;
    int needed = std::max(for_slo, backlog);
    // Until a request has completed, service time is unknown and a queue growing through the
    // first cold start says nothing new: launch for it once, then wait for the first replicas.
    const bool blind = s <= 0 && o.ready == 0 && o.starting > 0;
    if (blind) needed = std::min(needed, o.current);

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
      d.reason =
          fmt::format("no request for {} (idle timeout {}): {} -> 0", format_duration(o.now - last),
                      format_duration(idle_timeout_), o.current);
      return d;
    }
    d.desired = std::max(needed, held);
    const std::string why = fmt::format(
        "load {:.1f} ({} rate {:.2f}/s x service {:.2f}s), {} slots for P(wait > {}) <= {:g}: {} "
        "replicas; {} queued beyond what ready replicas start within {}: {}",
        load, surge ? "surge" : "steady", lambda, s, slots, format_duration(o.max_wait),
        params_.target_wait_probability, for_slo, std::max(0.0, std::ceil(excess)),
        format_duration(o.max_wait), backlog);
    if (d.desired > needed) {
      d.reason = fmt::format("{}; holding {} (peak within keep window {}): {} -> {}", why, held,
                             format_duration(keep_window_), o.current, d.desired);
    } else {
      d.reason = fmt::format("{}: {} -> {}", why, o.current, d.desired);
    }
    return d;
  }

 private:
  // Arrival counts in consecutive windows of one cold start (the fluctuations the group cannot
  // react to in time), over the last hour.
  void note_arrivals(const Observation& o) {
    const Duration w = std::max<Duration>(keep_window_, std::chrono::seconds(1));
    if (!bucket_start_) bucket_start_ = o.now - o.interval;
    bucket_count_ += static_cast<double>(o.arrivals);
    if (o.now - *bucket_start_ < w) return;
    counts_.push_back(bucket_count_);
    if (counts_.size() > static_cast<size_t>(std::chrono::hours(1) / w) + 1) counts_.pop_front();
    bucket_count_ = 0;
    bucket_start_ = o.now;
  }
  // Index of dispersion of those counts, 1 for Poisson arrivals and more when bursty. Taken
  // from differences of consecutive windows (the Allan variance) so that a slow trend over the
  // hour, which the rate estimate follows anyway, does not read as burstiness.
  double peakedness() const {
    if (counts_.size() < 10) return 1.0;
    double mean = 0, allan = 0;
    for (double n : counts_) mean += n;
    mean /= static_cast<double>(counts_.size());
    for (size_t i = 1; i < counts_.size(); ++i) {
      const double d = counts_[i] - counts_[i - 1];
      allan += d * d;
    }
    allan /= 2.0 * static_cast<double>(counts_.size() - 1);
    // Arrivals with index of dispersion I load exponential servers with peakedness about
    // 1 + (I - 1) / 2 (Whitt's approximation for GI/M/infinity).
    return mean > 0 ? std::max(1.0, 1.0 + (allan / mean - 1.0) / 2.0) : 1.0;
  }

  config::TidePolicy params_;
  std::deque<double> counts_;
  double bucket_count_ = 0;
  std::optional<Time> bucket_start_;
  std::optional<Time> first_ready_;
  metrics::AverageWindow short_rate_;
  metrics::AverageWindow long_rate_;
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
