// The tide policy: size each group for its SLO on a forecast of its load, with a margin learned
// from that forecast's own errors; pre-warm for rises that recur; react to queued work at once;
// hold spare capacity only as long as a cold start would cost.
//
//  1. Offered load R (requests in service if nobody waited): arrival rate x mean service time
//     (Little's law). The rate is averaged over keep_window (or demand_window in a surge); the
//     service time over the completions of the last service_window, since the request mix drifts.
//  2. Recurring rises: occupancy (in flight + queued) kept in 10 s bins. When, for some period P
//     of whole minutes up to prewarm_period, occupancy rose from this point of the period to a
//     point within the next cold start in each of the last prewarm_cycles periods, each time by
//     more than Poisson noise explains, the forecast is the current level plus the smallest rise:
//     replicas are launched one cold start before the rise is due.
//  3. Peakedness z: the errors of that forecast, made one cold start before, against the
//     occupancy that followed, each squared over the Poisson variance expected then (the mean of
//     forecast and outcome), averaged over the last hour. Poisson traffic forecast well gives 1;
//     bursts that the forecast misses give more.
//  4. Slots N: the fewest with P(wait > slo.max_wait) <= target_wait_probability in an M/M/N queue
//     (Erlang C, exponential tail) for traffic of peakedness z: N = z x slots(R / z) (Hayward).
//  5. Backlog: queued requests that the ready slots cannot start within max_wait get replicas at
//     once, enough to clear it within one cold start.
//  6. Hold: needs from a surge or a backlog are kept for keep_window (default: the mean cold
//     start; releasing sooner risks paying a cold start again within the time the idle replica's
//     cost would have covered: ski rental); the steady need, already an average over keep_window,
//     only for demand_window against the noise of the estimate.
//  7. Scale to zero after idle_timeout without any request (default: the mean cold start), unless
//     a recurring rise is due.
#include "tide/policy/tide_policy.h"

#include <fmt/format.h>
#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>

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

}  // namespace

RecurringRise::RecurringRise(Duration max_period, int cycles)
    : max_period_min_(std::chrono::duration_cast<std::chrono::minutes>(max_period).count()),
      cycles_(cycles) {}

void RecurringRise::add(Time now, Duration interval, double occupancy) {
  // The interval (start, now] in seconds, spread over the 10 s bins it covers.
  const double end = to_seconds(now.time_since_epoch());
  double start = end - to_seconds(interval);
  auto bin_of = [](double t) { return static_cast<int64_t>(std::floor(t / kBinSeconds)); };
  if (bins_.empty()) {
    first_bin_ = bin_of(start);
    bins_.push_back(0);
    sums_.assign(2, 0.0);
  }
  while (start < end) {
    const int64_t bin = bin_of(start);
    while (first_bin_ + static_cast<int64_t>(bins_.size()) - 1 < bin) {
      bins_.push_back(0);
      sums_.push_back(sums_.back());
    }
    const double until = std::min(end, static_cast<double>((bin + 1) * kBinSeconds));
    const auto i = static_cast<size_t>(bin - first_bin_);
    if (bin >= first_bin_ && i < bins_.size()) {
      bins_[i] += occupancy * (until - start) / kBinSeconds;
      // Only the last bins can change: fix their prefix sums.
      for (size_t k = i + 1; k < sums_.size(); ++k) sums_[k] = sums_[k - 1] + bins_[k - 1];
    }
    start = until;
  }
  const size_t keep = static_cast<size_t>((cycles_ + 1) * max_period_min_ * 60 / kBinSeconds + 64);
  while (bins_.size() > keep) {
    bins_.pop_front();
    sums_.pop_front();
    ++first_bin_;
  }
}

RecurringRise::Rise RecurringRise::expected(Duration horizon) const {
  // Whole bins only: the last one is still filling. The search only changes when a bin is
  // complete, so it runs once per bin.
  const auto n = static_cast<int64_t>(bins_.size()) - 1;
  const int64_t h_bins = std::max<int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(horizon).count() / kBinSeconds);
  if (first_bin_ + n != cached_at_ || h_bins != cached_h_bins_) {
    cached_at_ = first_bin_ + n;
    cached_h_bins_ = h_bins;
    cached_ = search(n, h_bins);
  }
  return cached_;
}

RecurringRise::Rise RecurringRise::search(int64_t n, int64_t h_bins) const {
  Rise best;
  // Mean of bins [a, b).
  auto mean = [&](int64_t a, int64_t b) {
    return (sums_[static_cast<size_t>(b)] - sums_[static_cast<size_t>(a)]) /
           static_cast<double>(b - a);
  };
  for (int64_t minutes = 1; minutes <= max_period_min_; ++minutes) {
    const int64_t period = minutes * 60 / kBinSeconds;
    if (cycles_ * period + h_bins > n) break;
    // Bins from now to one cold start (plus a bin) ahead, as seen in each past cycle, and no
    // further than one period.
    for (int64_t ahead = 1; ahead <= std::min(h_bins + 1, period); ++ahead) {
      double rise = std::numeric_limits<double>::infinity();
      for (int k = 1; k <= cycles_ && rise > best.rise; ++k) {
        const int64_t then = n - k * period;  // this point of the period, k cycles ago
        const double before = mean(then - h_bins, then);
        const double r = bins_[static_cast<size_t>(then + ahead - 1)] - before;
        // Occupancy of Poisson traffic varies by the square root of its mean: a rise within
        // three standard deviations of it is noise, and does not recur.
        rise = r > 3 * std::sqrt(std::max(before, 1.0)) ? std::min(rise, r) : 0;
      }
      if (rise > best.rise) best = {rise, std::chrono::minutes(minutes)};
    }
  }
  return best;
}

namespace {

class TideDecider final : public Decider {
 public:
  explicit TideDecider(const config::GroupSpec& group)
      : params_(group.scaling.tide),
        short_rate_(params_.demand_window),
        long_rate_(params_.demand_window),
        load_(params_.demand_window),
        level_(params_.demand_window),
        recurring_(params_.prewarm_period, params_.prewarm_cycles) {}

  Decision decide(const Observation& o) override {
    const Duration cold = o.cold_start;
    keep_window_ = params_.keep_window.count() > 0 ? params_.keep_window : cold;
    if (keep_window_ < params_.demand_window) keep_window_ = params_.demand_window;
    idle_timeout_ = params_.idle_timeout.count() > 0
                        ? params_.idle_timeout
                        : std::max<Duration>(cold, std::chrono::seconds(1));
    long_rate_.set_window(keep_window_);
    level_.set_window(keep_window_);
    if (!first_.has_value()) first_ = o.now;
    const double occupancy = o.avg_in_flight + o.avg_queued;
    if (o.interval.count() > 0) {
      const double rate = o.arrival_rate();
      short_rate_.add(o.now, o.interval, rate);
      long_rate_.add(o.now, o.interval, rate);
      load_.add(o.now, o.interval, occupancy);
      level_.add(o.now, o.interval, occupancy);
      if (params_.prewarm_period.count() > 0) recurring_.add(o.now, o.interval, occupancy);
    }
    const double c = std::max(1, o.concurrency);
    // The arrival rate over the keep window is steady; the short window catches a surge: more
    // arrivals than the steady rate explains at three standard deviations of a Poisson count.
    const double steady = long_rate_.average(o.now);
    const double recent = short_rate_.average(o.now);
    const double w = std::min(to_seconds(params_.demand_window), to_seconds(o.now - *first_));
    const bool surge = recent * w > steady * w + 3 * std::sqrt(steady * w) + 1;
    const double lambda = surge ? recent : steady;
    // Mean service time of recent completions; before the first completion, at least as long as
    // replicas have been ready without finishing anything.
    if (o.ready > 0 && !first_ready_) first_ready_ = o.now;
    note_service(o);
    double s = service_n_ > 0 ? service_sum_ / service_n_ : o.mean_service_s;
    if (s <= 0 && first_ready_)
      s = std::max(to_seconds(o.interval), to_seconds(o.now - *first_ready_));
    // Offered load by Little's law once service times are known; until then what is in flight.
    const double load = s > 0 ? lambda * s : load_.average(o.now);
    const double t_over_s = s > 0 ? to_seconds(o.max_wait) / s : 0.0;
    // Queued work that the ready slots cannot start within max_wait is a backlog.
    const double ready_slots = o.ready * c;
    const double startable =
        s > 0 ? ready_slots * to_seconds(o.max_wait) / s : (o.ready > 0 ? ready_slots : 0.0);
    const double excess = o.queued - startable;
    // Capacity launched now serves from one cold start on: the horizon of the forecast.
    const Duration lead = std::max<Duration>(o.cold_start, std::chrono::seconds(1));
    // A rise that recurred in each of the last cycles of some period is due again.
    const double level = level_.average(o.now);
    const RecurringRise::Rise rise =
        params_.prewarm_period.count() > 0 ? recurring_.expected(lead) : RecurringRise::Rise{};
    const bool prewarm = rise.rise > 0 && level + rise.rise > load;
    const double forecast = prewarm ? level + rise.rise : load;
    // Bursty traffic (peakedness z > 1) behaves like Poisson traffic of load R/z on N/z slots
    // (Hayward's approximation), so the margin grows with the forecast errors actually seen.
    const double z = peakedness(o, lead, s > 0 && excess <= 0, occupancy, forecast);
    const double slots = z * slots_for(forecast / z, t_over_s, params_.target_wait_probability);
    const int for_slo = static_cast<int>(std::ceil(slots / c));
    // A backlog needs replicas now, beyond those already starting (they will take it when
    // ready). Replicas launched now are ready after a cold start; from then on each clears c / s
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

    // A surge or a backlog is held for the keep window: it may come back before an idle
    // replica's cost would have paid for a new cold start. The steady need already averages the
    // keep window; holding it again would keep a peak twice as long, so it is held only for the
    // demand window, against the noise of the estimate near a replica boundary.
    const bool hold_long = surge || backlog > for_slo;
    const int held_long = surge_holds_.add(o.now, hold_long ? needed : 0, keep_window_);
    const int held_short = steady_holds_.add(o.now, needed, params_.demand_window);
    const int held = std::max(held_long, held_short);

    const Time last = o.last_activity.value_or(*first_);
    const bool idle = o.in_flight == 0 && o.queued == 0 && o.now - last >= idle_timeout_;

    Decision d;
    if (idle && !prewarm) {
      d.desired = 0;
      d.reason =
          fmt::format("no request for {} (idle timeout {}): {} -> 0", format_duration(o.now - last),
                      format_duration(idle_timeout_), o.current);
      return d;
    }
    d.desired = std::max(needed, held);
    std::string why = fmt::format("load {:.1f} ({} rate {:.2f}/s x service {:.2f}s)", load,
                                  surge ? "surge" : "steady", lambda, s);
    if (prewarm) {
      why += fmt::format(
          "; recurring rise: occupancy rose by {:.1f} within a cold start at this point of each of "
          "the last {} periods of {}: pre-warm for load {:.1f}",
          rise.rise, params_.prewarm_cycles, format_duration(rise.period), forecast);
    }
    why += fmt::format(
        ", peakedness {:.2f}: {:.0f} slots for P(wait > {}) <= {:g}: {} replicas; {} queued "
        "beyond what ready replicas start within {}: {}",
        z, std::ceil(slots), format_duration(o.max_wait), params_.target_wait_probability, for_slo,
        std::max(0.0, std::ceil(excess)), format_duration(o.max_wait), backlog);
    if (d.desired > needed) {
      d.reason = fmt::format(
          "{}; holding {} ({} within {}): {} -> {}", why, held,
          held_long > held_short ? "surge or backlog" : "steady need",
          format_duration(held_long > held_short ? keep_window_ : params_.demand_window), o.current,
          d.desired);
    } else {
      d.reason = fmt::format("{}: {} -> {}", why, o.current, d.desired);
    }
    return d;
  }

 private:
  // The largest value added within the last `window` (a monotonic deque of decreasing values).
  class MaxHold {
   public:
    int add(Time now, int value, Duration window) {
      while (!values_.empty() && values_.back().second <= value) values_.pop_back();
      values_.emplace_back(now, value);
      while (values_.front().first <= now - window) values_.pop_front();
      return values_.front().second;
    }

   private:
    std::deque<std::pair<Time, int>> values_;
  };

  // Completed service times over the last service_window: count and sum, kept as per-tick
  // samples with running totals.
  void note_service(const Observation& o) {
    if (o.completions > 0) {
      service_.push_back({o.now, static_cast<double>(o.completions), o.service_sum_s});
      service_n_ += static_cast<double>(o.completions);
      service_sum_ += o.service_sum_s;
    }
    while (!service_.empty() && service_.front().t <= o.now - params_.service_window) {
      service_n_ -= service_.front().n;
      service_sum_ -= service_.front().sum;
      service_.pop_front();
    }
    if (service_.empty()) service_n_ = service_sum_ = 0;  // no rounding drift
  }

  // Dispersion of the forecast errors: the occupancy now against the forecast made one cold
  // start (`lead`) ago, when capacity for now had to be launched. Each squared error is taken
  // against the spread Poisson traffic would have had (its occupancy varies by its mean: the
  // mean of forecast and outcome, so that a rise from zero and a fall to zero count alike) and
  // averaged over the last hour: 1 for Poisson traffic forecast well, more for bursts the
  // forecast missed, whatever the load's level did meanwhile. Errors count from one cold start
  // after the group first caught up with its demand (service times known, no backlog): before
  // that, occupancy measures the start-up backlog, not the traffic.
  double peakedness(const Observation& o, Duration lead, bool caught_up, double occupancy,
                    double forecast) {
    if (!errors_from_ && caught_up) errors_from_ = o.now + lead;
    forecasts_.emplace_back(o.now, forecast);
    while (forecasts_.size() > 1 && forecasts_[1].first <= o.now - lead) forecasts_.pop_front();
    if (!errors_from_ || o.now < *errors_from_ || o.interval.count() <= 0) return z_;
    if (forecasts_.front().first > o.now - lead) return z_;
    const double then = forecasts_.front().second;
    const double e = occupancy - then;
    dispersion_.add(o.now, o.interval, e * e / std::max(1.0, (then + occupancy) / 2));
    // Until an hour of errors has been seen, the rest of the hour counts as Poisson (1).
    const double hour = to_seconds(dispersion_.window());
    const double seen = std::min(hour, to_seconds(o.now - *errors_from_));
    z_ = std::max(1.0, (dispersion_.average(o.now) * seen + (hour - seen)) / hour);
    return z_;
  }

  struct ServiceSample {
    Time t;
    double n, sum;
  };

  config::TidePolicy params_;
  std::deque<ServiceSample> service_;
  double service_n_ = 0, service_sum_ = 0;
  std::optional<Time> first_ready_;
  metrics::AverageWindow short_rate_;
  metrics::AverageWindow long_rate_;
  metrics::AverageWindow load_;
  metrics::AverageWindow level_;
  RecurringRise recurring_;
  std::deque<std::pair<Time, double>> forecasts_;
  std::optional<Time> errors_from_;
  metrics::AverageWindow dispersion_{std::chrono::hours(1)};
  double z_ = 1.0;
  MaxHold surge_holds_;
  MaxHold steady_holds_;
  Duration keep_window_{60'000'000'000};
  Duration idle_timeout_{0};
  std::optional<Time> first_;
};

}  // namespace

std::unique_ptr<Decider> make_tide_policy(const config::GroupSpec& group) {
  return std::make_unique<TideDecider>(group);
}

}  // namespace tide::policy
