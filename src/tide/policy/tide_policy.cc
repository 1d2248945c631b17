// The tide policy: size each group for its SLO on its measured load, keep warm headroom sized
// by replaying its own recent bursts when the SLO is shorter than a cold start, react to queued
// work at once, and hold spare capacity only as long as the traffic's own quiet spells say.
//
//  1. Offered load R (requests in service if nobody waited): arrival rate x mean service time
//     (Little's law). The rate is averaged over keep_window (or demand_window in a surge: more
//     arrivals than the steady rate explains at three standard deviations of the traffic's own
//     count spread, Poisson's times the dispersion of the last hour's counts); the service time
//     over the completions of the last service_window, since the request mix drifts.
//  2. Slots N: the fewest with P(wait > slo.max_wait) <= target_wait_probability in an M/M/N
//     queue (Erlang C, exponential tail): a square-root margin for Poisson-like traffic; where
//     the window's arrivals spread like Poisson's, service smoother than exponential shortens
//     the tail by Allen-Cunneen's factor 2 / (1 + scv). When the SLO allows a wait at least as long
//     as a cold start (on demand: a launch answers in time), sized only for the rate the arrivals
//     show beyond doubt (their count less three standard deviations), and never for a surge of the
//     short window: the queue launches the rest as it comes (4).
//  3. Warm headroom (only when slo.max_wait < the cold start: a longer wait lets a launch on
//     demand answer in time): the smallest fixed fleet that would have kept the share of late
//     arrivals under target_wait_probability over the last history_window, found by replaying
//     the group's arrivals (hindsight.h). It reads bursts at every time scale, and arrivals only:
//     the group's own start-up backlog is not demand. Where smooth traffic fell within the
//     window, only the arrivals since the fall are replayed: the older ones speak no more for now.
//  4. Backlog: queued requests that the ready slots cannot start within max_wait get replicas at
//     once. On demand, a free slot starts one at once, a busy one after its request's expected
//     residual service (longer than the mean for heavy-tailed service times), and each replica
//     launched takes what its slots start within the wait left after its cold start; otherwise
//     the queue is late already: replicas for what arrives beyond what the ready ones serve
//     (the rate's excess, or the queue's own growth where the averages lag a burst), and to
//     clear within one more cold start the queue as it will be when they are ready; but where
//     the window's arrivals spread like Poisson counts and the ready replicas' spare capacity
//     clears the queue within a cold start, it is chance that the slots of (2) and (3) budget
//     for, gone before a replica launched for it would be ready: no launch.
//  5. Hold: needs from a surge or a backlog are kept for keep_window (default: the mean cold
//     start; releasing sooner risks paying a cold start again within the time the idle replica's
//     cost would have covered: ski rental); the steady need, already an average over keep_window,
//     only for demand_window against the noise of the estimate.
//  6. Scale to zero after idle_timeout without any request (default: the mean cold start); with
//     warm headroom, only once the quiet spell is longer than any the group had between its
//     arrivals in the last day (at most history_window): bursts a few minutes apart find their
//     replicas warm, and a group that went quiet for longer than it ever did stops paying.
//     Through a spell it keeps only the replicas the head of the burst that ends it needs (the
//     arrivals a launch at its end is ready too late for): the launches serve the rest in time.
#include "tide/policy/tide_policy.h"

#include <fmt/format.h>
#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <vector>

#include "tide/metrics/window.h"
#include "tide/policy/hindsight.h"
#include "tide/policy/quiet_spells.h"

namespace tide::policy {
namespace {

// The smallest number of slots n > load such that an M/M/n queue with offered load `load` has
// P(wait > t) <= eps, where t is max_wait in units of the mean service time; counted up to `most`
// (the slots of max_replicas: more are never launched). Beyond kCountedSlots the count would
// cost milliseconds a tick: square-root staffing stands in, load + beta sqrt(load) with beta the
// normal tail's sqrt(2 ln(1 / eps)), at which even P(wait > 0) is below eps (Halfin-Whitt).
double slots_for(double load, double t_over_s, double eps, double most) {
  constexpr double kCountedSlots = 1e6;
  if (!(load > 0)) return 0;
  if (load > kCountedSlots) {
    const double beta = std::sqrt(2 * std::log(1 / std::clamp(eps, 1e-12, 0.5)));
    return std::min(std::floor(most), std::ceil(load + beta * std::sqrt(load)));
  }
  // Erlang B by recurrence up to n, then Erlang C; P(W > t) = C * exp(-(n - load) * t/S).
  double b = 1.0;
  double n = 0;
  const double limit = std::floor(std::min(most, load + 50 * std::sqrt(load) + 50));
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
  const double spread = bin_spread(n);
  for (int64_t minutes = 1; minutes <= max_period_min_; ++minutes) {
    const int64_t period = minutes * 60 / kBinSeconds;
    if (cycles_ * period + h_bins > n) break;
    // The level a rise is measured from: the mean over the cold start before it, and no more
    // than one period, which is a periodic load's mean already. Over more, a step up that stays
    // would read as a rise at every short period for a cold start after it (the start-up's first
    // cold start, with nothing in service, did).
    const int64_t back = std::min(h_bins, period);
    // Bins from now to one cold start (plus a bin) ahead, as seen in each past cycle, and no
    // further than one period.
    for (int64_t ahead = 1; ahead <= std::min(h_bins + 1, period); ++ahead) {
      double rise = std::numeric_limits<double>::infinity();
      for (int k = 1; k <= cycles_ && rise > best.rise; ++k) {
        const int64_t then = n - k * period;  // this point of the period, k cycles ago
        const double before = mean(then - back, then);
        const double r = bins_[static_cast<size_t>(then + ahead - 1)] - before;
        // Occupancy of Poisson traffic varies by the square root of its mean, and bursty
        // traffic's by its bins' own spread: a rise within three standard deviations of the
        // larger is noise, and does not recur.
        const double noise = std::max(std::sqrt(std::max(before, 1.0)), spread);
        rise = r > 3 * noise ? std::min(rise, r) : 0;
      }
      if (rise > best.rise) best = {rise, std::chrono::minutes(minutes)};
    }
  }
  return best;
}

double RecurringRise::bin_spread(int64_t n) const {
  // From the steps between neighbouring bins: a slow trend barely adds to them, and where bins
  // vary independently, a step's variance is twice a bin's. Their median, not their mean square:
  // a rise that recurs is a few large steps each period, and must not hide itself.
  std::vector<double> steps;
  for (int64_t i = 1; i < n; ++i)
    steps.push_back(std::abs(bins_[static_cast<size_t>(i)] - bins_[static_cast<size_t>(i - 1)]));
  if (steps.empty()) return 0;
  const auto mid = steps.begin() + static_cast<std::ptrdiff_t>(steps.size() / 2);
  std::nth_element(steps.begin(), mid, steps.end());
  // A normal step's median absolute value is 0.6745 of its standard deviation.
  return *mid / 0.6745 / std::sqrt(2.0);
}

namespace {

// The largest value added within the last `window` (a monotonic deque of decreasing values).
class MaxHold {
 public:
  int add(Time now, int value, Duration window) {
    while (!values_.empty() && values_.back().second <= value) values_.pop_back();
    values_.emplace_back(now, value);
    return peek(now, window);
  }
  int peek(Time now, Duration window) {
    while (!values_.empty() && values_.front().first <= now - window) values_.pop_front();
    return values_.empty() ? 0 : values_.front().second;
  }

 private:
  std::deque<std::pair<Time, int>> values_;
};

// What one tick's decision is made of, for the reason it gives.
struct Sizing {
  bool surge = false, prewarm = false, replay_sizes = false;
  RecurringRise::Rise rise;
  double scv = 0;
  double dispersion = 1;       // the last hour's counts' variance over their mean
  double clump = 1;            // a tick's count's variance over its mean (the batch size)
  double surge_span = 0;       // seconds a surge is read over
  bool within_spread = false;  // a surge for Poisson counts, not for the traffic's own spread
  bool poisson = false;        // the window's arrivals spread like Poisson counts
  bool chance_queue = false;   // a late queue that the ready replicas' spare capacity clears
  double smoother = 1;         // Allen-Cunneen's factor on Erlang's tail exponent
  double lambda = 0, recent = 0, growth = 0, s = 0, load = 0, level = 0, forecast = 0, slots = 0,
         excess = 0;
  int for_slo = 0, in_use = 0, backlog = 0, warm = 0, present = 0, needed = 0;
  int head = 0;  // the replicas kept through a quiet spell for the head of the burst ending it
};

class TideDecider final : public Decider {
 public:
  explicit TideDecider(const config::GroupSpec& group)
      : params_(group.scaling.tide),
        short_rate_(params_.demand_window),
        long_rate_(params_.demand_window),
        load_(params_.demand_window),
        level_(params_.demand_window),
        queue_growth_(params_.demand_window),
        recurring_(params_.prewarm_period, params_.prewarm_cycles),
        hindsight_(params_.history_window) {}

  Decision decide(const Observation& o) override {
    observe(o);
    const Sizing z = size(o);
    // The replayed fleet moves by a replica with the noise of its sample; like a surge, what it
    // asked for is kept for the keep window (a replica released sooner costs a cold start).
    const bool hold_long = z.surge || z.backlog > z.for_slo;
    const int held_long = surge_holds_.add(o.now, hold_long ? z.needed : 0, keep_window_);
    const int held_short = steady_holds_.add(o.now, z.needed, params_.demand_window);
    const int held = std::max(held_long, held_short);

    Decision d;
    if (idle(o) && !z.prewarm) {
      d.desired = 0;
      d.reason = released_ == last_arrival_.value_or(*first_)
                     ? fmt::format("quiet since the release: {} -> 0", o.current)
                     : idle_reason(o);
      released_ = last_arrival_.value_or(*first_);
      return d;
    }
    d.desired = std::max({z.needed, held, z.warm});
    std::string why = explain(o, z);
    if (d.desired > z.needed && held >= z.warm) {
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
  bool warm_headroom(const Observation& o) const {
    return params_.history_window.count() > 0 && o.max_wait < o.cold_start;
  }

  // Windows, service times and quiet spells: everything learned from the observation.
  void observe(const Observation& o) {
    keep_window_ = params_.keep_window.count() > 0 ? params_.keep_window : o.cold_start;
    if (keep_window_ < params_.demand_window) keep_window_ = params_.demand_window;
    idle_timeout_ = params_.idle_timeout.count() > 0
                        ? params_.idle_timeout
                        : std::max<Duration>(o.cold_start, std::chrono::seconds(1));
    long_rate_.set_window(keep_window_);
    level_.set_window(keep_window_);
    if (!first_.has_value()) first_ = o.now;
    if (o.interval.count() > 0) {
      const double rate = o.arrival_rate();
      short_rate_.add(o.now, o.interval, rate);
      long_rate_.add(o.now, o.interval, rate);
      load_.add(o.now, o.interval, o.avg_in_flight + o.avg_queued);
      // Requests in service only: a queue the group built itself while its replicas started is
      // not a rise of demand (and what is in service is bounded by what was running).
      level_.add(o.now, o.interval, o.avg_in_flight);
      queue_growth_.add(o.now, o.interval, (o.queued - last_queued_) / to_seconds(o.interval));
      if (params_.prewarm_period.count() > 0) recurring_.add(o.now, o.interval, o.avg_in_flight);
      if (params_.history_window.count() > 0) hindsight_.add(o.now, o.interval, o.arrivals);
    }
    if (o.arrivals > 0) {
      // A quiet spell ends: the time since the previous arrival (or since the group began: its
      // first requests wait for a cold start as well), learned for a day.
      const Time since = last_arrival_.value_or(*first_);
      if (o.now - o.interval - since >= idle_timeout_)
        quiet_.end_spell(o.now - o.interval, o.now - o.interval - since, last_warm_);
      last_arrival_ = o.now;
    }
    quiet_.count(o.now, o.interval, o.arrivals, o.cold_start - o.max_wait);
    last_queued_ = o.queued;
    if (o.ready > 0 && !first_ready_) first_ready_ = o.now;
    note_service(o);
  }

  Sizing size(const Observation& o) {
    Sizing z;
    estimate_load(o, z);
    size_slots(o, z);
    z.scv = std::min(service_.scv, HindsightFleet::kMaxScv);
    size_backlog(o, z);
    size_warm(o, z);
    // The replayed fleet sizes for the SLO on the traffic actually seen, once the window holds
    // enough arrivals to resolve the share allowed to wait (kResolved late ones at the target);
    // Erlang's Poisson sizing stands in before that, and for a surge or a recurring rise newer
    // than the replay.
    const bool resolved =
        static_cast<double>(hindsight_.arrivals()) * params_.target_wait_probability >=
        HindsightFleet::kResolved;
    z.replay_sizes = z.warm > 0 && resolved && replay_covers(o, z) && !z.surge && !z.prewarm;
    z.needed = std::max(z.replay_sizes ? z.warm : std::max(z.for_slo, z.warm), z.backlog);
    // A queue is served where it is: while requests wait, the replicas running are kept as long
    // as the requests in service and queued fill them (a queue counted as startable within
    // max_wait by replicas about to be released waits a cold start instead; the rate alone
    // reads 0 after a burst). Without a queue, draining never cuts a request short.
    const double c = std::max(1, o.concurrency);
    const double waiting = static_cast<double>(o.in_flight) + o.queued;
    z.present = o.queued > 0 ? std::min(o.current, whole_replicas(waiting / c, o.max_replicas)) : 0;
    z.needed = std::max(z.needed, z.present);
    // Until a request has completed, service time is unknown and, where the SLO is shorter
    // than a cold start, a queue growing through the first cold start is late whatever is
    // launched for it: launch for it once, then wait for the first replicas. On demand, the
    // queue is what the launches are for: a slot for each queued request (its service time
    // unknown) starts them all when the replicas are ready, within the wait allowed.
    const bool blind = z.s <= 0 && o.ready == 0 && o.starting > 0 && !on_demand(o);
    if (blind) z.needed = std::min(z.needed, o.current);
    return z;
  }

  // The arrival rate (steady, or a surge's), the mean service time, the offered load, and a
  // recurring rise due within a cold start.
  void estimate_load(const Observation& o, Sizing& z) {
    // The arrival rate over the keep window is steady; a shorter window catches a surge: more
    // arrivals than the steady rate explains at three standard deviations of a count, whose
    // variance is the traffic's own: its mean (Poisson's) times the dispersion the last hour's
    // counts showed. Where requests come in batches, a few batches close together are the
    // traffic as it always is (the replay sizes for them), not a change of rate.
    const double steady = long_rate_.average(o.now);
    const double recent = short_rate_.average(o.now);
    const double w = std::min(to_seconds(params_.demand_window), to_seconds(o.now - *first_));
    z.dispersion = hindsight_.dispersion(o.now);
    z.clump = hindsight_.tick_dispersion(o.now);
    z.surge_span = surge_span(o, steady, z.clump, w);
    const double surge_rate =
        z.surge_span > w
            ? static_cast<double>(hindsight_.arrivals_within(o.now, from_seconds(z.surge_span))) /
                  z.surge_span
            : recent;
    // On demand (a wait allowed as long as a cold start), a surge's requests wait for the
    // replicas their queue launches: nothing is sized ahead on the short window.
    // More arrivals at `rate` over `span` than the steady rate explains at three standard
    // deviations of a count whose variance is `spread` times its mean.
    const auto beyond = [&](double rate, double span, double spread) {
      return rate * span > steady * span + 3 * std::sqrt(spread * steady * span) + 1;
    };
    z.surge = !on_demand(o) && beyond(surge_rate, z.surge_span, z.dispersion);
    z.within_spread = !on_demand(o) && beyond(recent, w, 1) && !z.surge;
    z.lambda = z.surge ? surge_rate : steady;
    z.recent = recent;
    z.growth = queue_growth_.average(o.now);
    // Mean service time of recent completions; before the first completion, at least as long as
    // replicas have been ready without finishing anything.
    z.s = service_n_ > 0 ? service_.mean_s : o.mean_service_s;
    if (z.s <= 0 && first_ready_)
      z.s = std::max(to_seconds(o.interval), to_seconds(o.now - *first_ready_));
    // Offered load by Little's law once service times are known; until then what is in flight.
    z.load = z.s > 0 ? z.lambda * z.s : load_.average(o.now);
    // A rise of requests in service that recurred in each of the last cycles of some period is
    // due again within a cold start: size for it now.
    const Duration lead = std::max<Duration>(o.cold_start, std::chrono::seconds(1));
    z.rise = params_.prewarm_period.count() > 0 ? recurring_.expected(lead) : RecurringRise::Rise{};
    z.level = level_.average(o.now);
    z.prewarm = z.rise.rise > 0 && z.level + z.rise.rise > z.load;
    z.forecast = z.prewarm ? z.level + z.rise.rise : z.load;
  }

  // The span a surge is read over: `demand_window`, or where requests come in clumps (a tick's
  // count spreads `clump` times as much as a Poisson count: batches of about that many) or
  // arrive thinly, the span that holds kResolved clumps at the steady rate, at most the keep
  // window (the steady rate's) and the history window (the arrivals kept per tick). A count of a
  // few clumps tells no rate: batches of 100 every 18 s on average came four or five within 20 s
  // every 10-20 minutes by chance, and each time Erlang sized for 20-25/s as if it would last
  // (drawn-12: 385 launches in 6 h where 7 replicas met the SLO).
  double surge_span(const Observation& o, double steady, double clump, double w) const {
    const double shortest = to_seconds(params_.demand_window);
    const double longest = std::min(to_seconds(keep_window_), to_seconds(hindsight_.window()));
    if (steady <= 0 || longest <= shortest) return w;
    const double span = std::clamp(HindsightFleet::kResolved * clump / steady, shortest, longest);
    return std::max(w, std::min(span, to_seconds(o.now - *first_)));
  }

  // Erlang's slots for the SLO and the replicas they fill; on demand, for the evident rate, and
  // at least the replicas in use.
  void size_slots(const Observation& o, Sizing& z) {
    const double c = std::max(1, o.concurrency);
    // Erlang's tail assumes exponential service. Where the window's arrivals are Poisson-like
    // (ca^2 = 1), smoother service shortens the tail by Allen-Cunneen's factor (ca^2 + cs^2) / 2;
    // bursty arrivals keep M/M/n's margin.
    z.poisson = hindsight_.smooth_traffic(o.now);
    z.smoother = service_.scv < 1 && z.poisson ? 2 / (1 + service_.scv) : 1;
    const double t_over_s = z.s > 0 ? z.smoother * to_seconds(o.max_wait) / z.s : 0.0;
    z.slots = slots_for(on_demand(o) && z.s > 0 && !z.prewarm ? evident_load(o, z) : z.forecast,
                        t_over_s, params_.target_wait_probability, o.max_replicas * c);
    z.for_slo = whole_replicas(z.slots / c, o.max_replicas);
    // On demand, what is in use is kept (the requests in service fill replicas; the steady hold
    // keeps them a while after): a stream too thin to show its rate beyond doubt is no reason to
    // stop the replica that serves it and pay a cold start for the next request.
    if (on_demand(o)) z.in_use = whole_replicas(o.in_flight / c, o.max_replicas);
    z.for_slo = std::max(z.for_slo, z.in_use);
  }

  // The warm fleet (only with warm headroom): the replay's, held through quiet spells.
  void size_warm(const Observation& o, Sizing& z) {
    if (!warm_headroom(o) || service_.mean_s <= 0) return;
    z.warm = hindsight_.fleet(o.now, o.concurrency, service_,
                              {o.max_wait, params_.target_wait_probability}, o.max_replicas);
    // Held through a quiet spell longer than the history window: the fleet found at the last
    // arrival (when the window held all of the latest traffic), and the largest found before
    // the spells of the last day (the bursts a spell may end in).
    if (o.arrivals > 0) last_warm_ = z.warm;
    if (hindsight_.arrivals() == 0) z.warm = std::max(last_warm_, quiet_.fleet());
    // Kept through a quiet spell, only what the head of the burst that ends it needs: launches
    // when it ends serve the rest in time. Not once released: the first arrival then launches the
    // whole fleet again.
    const Time last = last_arrival_.value_or(*first_);
    if (o.now - last < idle_timeout_ || released_ == last) return;
    if (const double head = quiet_.largest_head(); head > 0) {
      z.head = head_fleet(o, head);
      z.warm = std::min(z.warm, z.head);
    }
  }

  // The replicas that start `head` arrivals (the largest head of the kept spells,
  // QuietSpells::largest_head), and three Poisson standard deviations more, within max_wait when
  // they arrive at once: each slot one at once, then one per mean service time.
  int head_fleet(const Observation& o, double head) const {
    const double per_replica =
        std::max(1, o.concurrency) * (1 + to_seconds(o.max_wait) / service_.mean_s);
    return std::max(1, whole_replicas((head + 3 * std::sqrt(head)) / per_replica, o.max_replicas));
  }

  // Whether the replayed window speaks for the traffic now: all of it was replayed (at most
  // kMaxReplayed arrivals: a short replay cannot show a fleet running near full drifting into a
  // queue), and the steady rate is not above the window's mean by more than Poisson noise
  // (three standard deviations over the keep window): on a rise, the last hour's fleet is too
  // small for the traffic of the next cold start.
  bool replay_covers(const Observation& o, const Sizing& z) const {
    const uint64_t n = hindsight_.arrivals();
    if (n > HindsightFleet::kMaxReplayed) return false;
    const double seen = std::min(to_seconds(params_.history_window), to_seconds(o.now - *first_));
    if (seen <= 0) return false;
    const double w = to_seconds(keep_window_);
    const double expected = static_cast<double>(n) / seen * w;
    return z.lambda * w <= expected + 3 * std::sqrt(expected);
  }

  // Whether a launch on demand is in time: the SLO allows a wait at least as long as a cold
  // start. Then replicas are sized ahead only for the rate the arrivals show beyond doubt, and
  // the queue launches the rest as it comes.
  static bool on_demand(const Observation& o) { return o.max_wait >= o.cold_start; }

  // The offered load of the rate the keep window's arrivals show beyond doubt: their count less
  // three standard deviations of a Poisson count (one request is no evidence of a rate that
  // needs a second replica; a thousand are).
  double evident_load(const Observation& o, const Sizing& z) const {
    const double seen = std::min(to_seconds(keep_window_), to_seconds(o.now - *first_));
    if (seen <= 0) return 0;
    const double k = z.lambda * seen;
    return std::max(0.0, k - 3 * std::sqrt(k)) / seen * z.s;
  }

  // Queued work that the ready slots cannot start within max_wait needs replicas now, beyond
  // those already starting (they will take it when ready). See startable(), late_queue() and
  // per_launched_replica().
  static void size_backlog(const Observation& o, Sizing& z) {
    z.excess = o.queued - startable(o, z);
    if (z.excess <= 0) {
      z.backlog = 0;
    } else if (on_demand(o) || z.s <= 0) {
      z.backlog =
          o.ready + std::max(o.starting, whole_replicas(z.excess / per_launched_replica(o, z),
                                                        o.max_replicas - o.ready));
    } else if (chance_queue(o, z)) {
      z.chance_queue = true;
      z.backlog = o.ready + o.starting;
    } else {
      z.backlog = std::max(o.ready + o.starting, late_queue(o, z));
    }
  }

  // Whether a late queue is Poisson-like traffic's chance: the window's arrivals spread like
  // Poisson counts, and the ready replicas' spare capacity (their service rate beyond the
  // arrival rate, steady or recent, and the queue's own growth) clears it within a cold start.
  // The slots sized for the SLO (Erlang, or the replay) already budget for such queues; a
  // replica launched for one is ready after it has gone, and is billed a cold start for nothing.
  static bool chance_queue(const Observation& o, const Sizing& z) {
    if (!z.poisson) return false;
    const double spare = o.ready * per_replica_rate(o, z) - std::max({z.lambda, z.recent, 0.0}) -
                         std::max(0.0, z.growth);
    return spare > 0 && z.excess <= spare * to_seconds(o.cold_start);
  }

  // Where the queue is late already (the SLO is shorter than a cold start): the ready replicas
  // and launches for what arrives beyond what they serve, and to clear within one more cold
  // start the queue as it will be when the replicas launched now are ready: it grows meanwhile
  // by what arrives beyond what the ready replicas serve. That excess is the larger of the
  // arrival rate (steady or recent) over the ready replicas' service rate and the queue's own
  // growth over the demand window (in the first seconds of a burst, the rate averages still
  // hold the time before it; the queue does not). Sized on the queue alone, the rate's own
  // requests queue behind the backlog and the queue grows through every launch.
  static int late_queue(const Observation& o, const Sizing& z) {
    const double rate = per_replica_rate(o, z);
    const double t = to_seconds(std::max(o.cold_start, o.max_wait));
    const double beyond = std::max({0.0, std::max(z.lambda, z.recent) - o.ready * rate, z.growth});
    const double launches = (beyond + (z.excess + beyond * t) / t) / rate;
    return o.ready + whole_replicas(launches, o.max_replicas - o.ready);
  }

  // Requests per second one replica serves: its slots over the mean service time (known: z.s > 0).
  static double per_replica_rate(const Observation& o, const Sizing& z) {
    return std::max(1, o.concurrency) / z.s;
  }

  // Queued requests the ready slots start within max_wait. On demand (where a replica launched
  // now is ready within max_wait, so this decides whether to launch one): a free slot one at
  // once and then one per mean service time; a busy slot only after its request's residual
  // service, which for service times of mean s and squared coefficient of variation scv is
  // s (1 + scv) / 2 in expectation (renewal theory: a heavy tail keeps a busy slot busy far
  // longer than s). Otherwise a launch is late for these requests anyway: max_wait / s each.
  static double startable(const Observation& o, const Sizing& z) {
    const double slots = static_cast<double>(o.ready) * std::max(1, o.concurrency);
    if (z.s <= 0) return slots;
    const double w = to_seconds(o.max_wait);
    if (!on_demand(o)) return slots * w / z.s;
    const double busy = std::min<double>(o.in_flight, slots);
    const double residual = z.s * (1 + z.scv) / 2;
    return (slots - busy) * (1 + w / z.s) + busy * std::max(0.0, w - residual) / z.s;
  }

  // Queued requests one replica launched now takes on demand: what its slots start within the
  // wait left after its cold start (one each when ready, then one per service time).
  static double per_launched_replica(const Observation& o, const Sizing& z) {
    const double c = std::max(1, o.concurrency);
    if (z.s <= 0) return c;
    return c * (1 + std::floor(to_seconds(o.max_wait - o.cold_start) / z.s));
  }

  // How long a quiet spell is held through (QuietSpells: as long as the SLO's share of late
  // arrivals needs), and only with warm headroom (otherwise a launch on demand is in time).
  Duration quiet_hold(const Observation& o) {
    if (!warm_headroom(o)) return Duration{0};
    return quiet_.hold(o.now, params_.target_wait_probability);
  }

  // What scaling to zero after every quiet spell of the last day would have made late.
  std::string spells_said() const {
    const QuietSpells::Budget b = quiet_.budget();
    return fmt::format(
        "scaling to zero after each of the last day's {} quiet spells makes the {:.0f} arrivals "
        "within a cold start after them wait: {:.2g}% of its {:.0f} against {:g}%",
        b.spells, b.heads, b.arrivals > 0 ? 100 * b.heads / b.arrivals : 0.0, b.arrivals,
        100 * params_.target_wait_probability);
  }

  bool idle(const Observation& o) {
    const Time last = o.last_activity.value_or(*first_);
    if (o.in_flight > 0 || o.queued > 0 || o.now - last < idle_timeout_) return false;
    // Released in this spell already: the hold, reckoned from a day that keeps moving, does not
    // bring the replicas back without a request.
    if (released_ == last_arrival_.value_or(*first_)) return true;
    return o.now - last_arrival_.value_or(*first_) > quiet_hold(o);
  }

  std::string idle_reason(const Observation& o) {
    const Time last = o.last_activity.value_or(*first_);
    const Duration hold = quiet_hold(o);
    if (hold <= idle_timeout_)
      return fmt::format("no request for {} (idle timeout {}{}): {} -> 0",
                         format_duration(o.now - last), format_duration(idle_timeout_),
                         warm_headroom(o) ? "; " + spells_said() : "", o.current);
    return fmt::format(
        "no request for {}, longer than the hold through quiet spells ({}: the longest whose "
        "arrivals after it do not fit in the SLO's share, or the spells' mean's exponential tail "
        "at {:g}; {}): {} -> 0",
        format_duration(o.now - last), format_duration(hold), params_.target_wait_probability,
        spells_said(), o.current);
  }

  std::string explain(const Observation& o, const Sizing& z) {
    std::string why = fmt::format(
        "load {:.1f} ({} rate {:.2f}/s x service {:.2f}s): {:.0f} slots for P(wait > {}) <= {:g}: "
        "{} replicas; {} queued beyond what ready replicas start within {}: {}",
        z.load, z.surge ? "surge" : "steady", z.lambda, z.s, std::ceil(z.slots),
        format_duration(o.max_wait), params_.target_wait_probability, z.for_slo,
        std::max(0.0, std::ceil(z.excess)), format_duration(o.max_wait), z.backlog);
    // Where a surge is read over more than demand_window: the span, and why.
    const std::string span =
        z.surge_span > to_seconds(params_.demand_window)
            ? fmt::format(" over the last {} ({:g} clumps of {:.0f} arrivals at the steady rate)",
                          format_duration(from_seconds(z.surge_span)), HindsightFleet::kResolved,
                          z.clump)
            : "";
    if (z.surge && !span.empty()) why += " (surge read" + span + ")";
    if (z.within_spread)
      why += fmt::format(
          " (recent rate {:.2f}/s: no surge{}, within three standard deviations of the last hour's "
          "counts, which spread {:.1f}x as much as Poisson's)",
          z.recent, span, z.dispersion);
    if (z.smoother > 1)
      why += fmt::format(
          " (Poisson-like arrivals, service scv {:.2f}: Erlang's tail x 2 / (1 + scv) = {:.2f})",
          service_.scv, z.smoother);
    if (z.chance_queue)
      why +=
          " (Poisson-like arrivals: the ready replicas' spare capacity clears that queue "
          "within a cold start, before a replica launched for it would be ready)";
    if (z.in_use > 0 && z.in_use * std::max(1, o.concurrency) >= z.slots)
      why += fmt::format("; on demand: {} in service keep {} in use", o.in_flight, z.in_use);
    if (z.present > std::max(z.for_slo, z.backlog))
      why += fmt::format("; {} in service and queued keep {} of {} running",
                         int64_t{o.in_flight} + o.queued, z.present, o.current);
    if (z.prewarm) {
      why += fmt::format(
          "; recurring rise: requests in service rose by {:.1f} within a cold start at this point "
          "of each of the last {} periods of {}: pre-warm for load {:.1f}",
          z.rise.rise, params_.prewarm_cycles, format_duration(z.rise.period), z.forecast);
    }
    if (z.warm > 0) {
      why += fmt::format(
          "; warm headroom: the {} arrivals of the last {}{} replayed through fixed fleets: {} "
          "replicas would have kept P(wait > {}) <= {:g}",
          hindsight_.arrivals(), format_duration(params_.history_window),
          hindsight_.since_a_fall()
              ? fmt::format(" (the {} since the rate fell)", hindsight_.replayed())
              : "",
          z.warm, format_duration(o.max_wait), params_.target_wait_probability);
      const Time last = last_arrival_.value_or(*first_);
      if (o.now - last >= idle_timeout_)
        why += fmt::format(" (quiet for {}, held through quiet spells for {}: {})",
                           format_duration(o.now - last), format_duration(quiet_hold(o)),
                           spells_said());
      if (z.head > 0 && z.head == z.warm)
        why += fmt::format(
            "; through a quiet spell only {}: they start the largest head of the kept spells "
            "({:.0f} arrivals within a cold start less {} after one ended) within {}",
            z.head, quiet_.largest_head(), format_duration(o.max_wait),
            format_duration(o.max_wait));
    }
    return why;
  }

  // Service over the last service_window: completions (count, sum and sum of squares of their
  // service times) and busy time (requests in service x seconds), per-tick samples with running
  // totals. The mean service time is the completions' mean, and at a start the larger of it and
  // busy time over completions (total time in service over completions: the estimate of a mean
  // with unfinished ones censored).
  void note_service(const Observation& o) {
    const double busy = o.avg_in_flight * to_seconds(o.interval);
    if (o.completions > 0 || busy > 0) {
      samples_.push_back(
          {o.now, static_cast<double>(o.completions), o.service_sum_s, o.service_sq_sum_s2, busy});
      service_n_ += static_cast<double>(o.completions);
      service_sum_ += o.service_sum_s;
      service_sq_sum_ += o.service_sq_sum_s2;
      busy_ += busy;
    }
    // Older samples go once out of the window, but the window keeps at least as many
    // completions as resolve the share allowed to wait (kResolved / target): in the tail of a
    // burst, the last completions are the long requests, not the mix.
    const double keep = HindsightFleet::kResolved / params_.target_wait_probability;
    while (!samples_.empty() && samples_.front().t <= o.now - params_.service_window &&
           service_n_ - samples_.front().n >= keep) {
      service_n_ -= samples_.front().n;
      service_sum_ -= samples_.front().sum;
      service_sq_sum_ -= samples_.front().sq_sum;
      busy_ -= samples_.front().busy;
      samples_.pop_front();
    }
    if (samples_.empty()) service_n_ = service_sum_ = service_sq_sum_ = busy_ = 0;  // no drift
    if (service_n_ > 0) {
      const double completed = service_sum_ / service_n_;
      const double variance = std::max(0.0, service_sq_sum_ / service_n_ - completed * completed);
      // While fewer have completed than are in service (a start), the completions are the
      // short ones: the time the others have taken so far counts too. Not later: in the tail of
      // a burst the few still running are the long ones, and the estimate would run away.
      const bool starting = service_n_ < o.in_flight;
      service_.mean_s = starting ? std::max(completed, busy_ / service_n_) : completed;
      service_.scv = variance / (completed * completed);
    }
  }

  struct ServiceSample {
    Time t;
    double n, sum, sq_sum, busy;
  };

  config::TidePolicy params_;
  std::deque<ServiceSample> samples_;
  HindsightFleet::Service service_;  // mean and spread of the last known service times
  double service_n_ = 0, service_sum_ = 0, service_sq_sum_ = 0, busy_ = 0;
  std::optional<Time> first_ready_;
  metrics::AverageWindow short_rate_;
  metrics::AverageWindow long_rate_;
  metrics::AverageWindow load_;
  metrics::AverageWindow level_;         // requests in service, over the keep window
  metrics::AverageWindow queue_growth_;  // requests queued per second, over the demand window
  int last_queued_ = 0;
  RecurringRise recurring_;
  HindsightFleet hindsight_;
  QuietSpells quiet_;
  int last_warm_ = 0;  // the fleet the replay found at the last arrival
  std::optional<Time> last_arrival_;
  std::optional<Time> released_;  // the last arrival before the group was last released to zero
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
