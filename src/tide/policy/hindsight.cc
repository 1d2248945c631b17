#include "tide/policy/hindsight.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "tide/common/random.h"

namespace tide::policy {
namespace {

struct Replay {
  std::vector<double> arrive;   // seconds, ascending
  std::vector<double> service;  // seconds, one per arrival
  double span = 0;              // from the first replayed interval's start to the last's end
};

// The most recent arrivals (up to kMaxReplayed), spread evenly over their intervals, each with a
// service time drawn from a fixed seed: the same draws for every fleet tried. Of the oldest
// interval taken, only its latest arrivals within the limit (one interval may hold millions).
template <typename Intervals>
Replay draw(const Intervals& intervals, Time now, HindsightFleet::Service s,
            uint64_t limit = HindsightFleet::kMaxReplayed) {
  Replay r;
  uint64_t n = 0;
  auto first = intervals.end();
  while (first != intervals.begin() && n < limit) {
    --first;
    n += first->arrivals;
  }
  uint64_t skip = n > limit ? n - limit : 0;
  r.arrive.reserve(n - skip);
  if (first != intervals.end()) r.span = to_seconds(now - (first->end - first->length));
  for (auto it = first; it != intervals.end(); ++it) {
    const double end = to_seconds(it->end.time_since_epoch());
    const double length = to_seconds(it->length);
    for (uint64_t k = std::exchange(skip, 0); k < it->arrivals; ++k)
      r.arrive.push_back(end - length +
                         length * (static_cast<double>(k) + 0.5) /
                             static_cast<double>(it->arrivals));
  }
  const double scv = std::clamp(s.scv, 0.0, HindsightFleet::kMaxScv);
  const double sigma = std::sqrt(std::log1p(scv));
  const double median = s.mean_s / std::sqrt(1 + scv);
  Random rng(0x68696e64);
  r.service.reserve(r.arrive.size());
  for (size_t k = 0; k < r.arrive.size(); ++k) r.service.push_back(rng.lognormal(median, sigma));
  return r;
}

// The most slots a replay can use: two per arrival (one for each pass of late_in). More are never
// waited for, so they change nothing.
size_t slots_used(const Replay& r) { return 2 * r.arrive.size(); }

// Replaces the least of `heap` (a min-heap in an array) with `value`: one sift-down, where a pop
// and a push would take two.
void replace_least(std::vector<double>& heap, double value) {
  const size_t n = heap.size();
  size_t i = 0;
  for (;;) {
    size_t least = 2 * i + 1;
    if (least >= n) break;
    if (least + 1 < n && heap[least + 1] < heap[least]) ++least;
    if (!(heap[least] < value)) break;
    heap[i] = heap[least];
    i = least;
  }
  heap[i] = value;
}

// The share of the replay's arrivals that `slots` servers, first come first served, start
// later than max_wait after they arrived. The window is replayed twice and only the second pass
// counts: the first leaves the servers as busy and the queue as long as the traffic keeps them
// (a burn-in), so a fleet that the traffic keeps near full does not look better than it is
// because the replay started empty.
//
// No arrival starts later with more slots (each takes the slot free first, and the times the
// slots come free only move earlier), so the share never grows with `slots`.
double late_in(const Replay& r, int64_t slots, double max_wait) {
  if (r.arrive.empty()) return 0;
  const auto used = std::min(static_cast<size_t>(std::max<int64_t>(slots, 1)), slots_used(r));
  std::vector<double> free_at(used, r.arrive.front());  // all equal: already a heap
  const double span = r.span;
  uint64_t late = 0;
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t k = 0; k < r.arrive.size(); ++k) {
      const double arrive = r.arrive[k] + pass * span;
      const double start = std::max(arrive, free_at.front());
      late += pass == 1 && start - arrive > max_wait;
      replace_least(free_at, start + r.service[k]);
    }
  }
  return static_cast<double>(late) / static_cast<double>(r.arrive.size());
}

// The smallest fleet, up to max_replicas, whose late share meets the target; max_replicas where
// none does. The late share never grows with the fleet, so the answer is one whatever the order
// the fleets are tried in: the search starts at `guess` (the last answer, which the next one is
// usually at or near) and doubles its step away from it until it brackets the answer, then
// bisects.
int smallest(const Replay& r, int concurrency, HindsightFleet::Target target, int max_replicas,
             int guess) {
  const double wait = to_seconds(target.max_wait);
  const int64_t c = std::max(1, concurrency);
  // Beyond the fleet with all the slots the replay can use, none waits (max_replicas may be
  // billions).
  const auto none_wait =
      static_cast<int64_t>((slots_used(r) + static_cast<size_t>(c) - 1) / static_cast<size_t>(c));
  const int top = static_cast<int>(std::clamp<int64_t>(none_wait, 1, max_replicas));
  auto meets = [&](int n) { return late_in(r, n * c, wait) <= target.late_share; };
  // The answer lies in (lo, hi]: lo fails (or is 0), hi meets (or is top).
  int lo = 0, hi = top;
  const int start = std::clamp(guess, 1, top);
  const bool down = meets(start);  // the answer is at or below start
  (down ? hi : lo) = start;
  // Away from start by doubling steps, until a probe's answer differs from start's.
  for (int step = 1;; step *= 2) {
    const int probe = down ? hi - step : lo + step;
    if (probe <= lo || probe >= hi) break;
    const bool m = meets(probe);
    (m ? hi : lo) = probe;
    if (m != down) break;
  }
  while (hi - lo > 1) {
    const int mid = lo + (hi - lo) / 2;
    (meets(mid) ? hi : lo) = mid;
  }
  return hi;
}

// Arrivals per bin, with prefix sums for the tests below: of the counts and their squares, and
// of the squared steps between neighbouring bins and of the pairs' counts.
struct Bins {
  explicit Bins(const std::vector<double>& count) : sums(count.size() + 1, 0.0) {
    sq_sums = steps = pairs = sums;
    for (size_t i = 0; i < count.size(); ++i) {
      sums[i + 1] = sums[i] + count[i];
      sq_sums[i + 1] = sq_sums[i] + count[i] * count[i];
      const double step = i + 1 < count.size() ? count[i + 1] - count[i] : 0;
      steps[i + 1] = steps[i] + step * step;
      pairs[i + 1] = pairs[i] + (i + 1 < count.size() ? count[i] + count[i + 1] : 0);
    }
  }
  std::vector<double> sums, sq_sums, steps, pairs;
};

// How many standard errors of the difference (Welch) bins [a, k) held more arrivals per bin than
// bins [k, b), each part's variance taken at least Poisson's (its mean).
double fall(const Bins& s, size_t a, size_t k, size_t b) {
  auto moments = [&](size_t from, size_t to) {
    const double n = static_cast<double>(to - from);
    const double mean = (s.sums[to] - s.sums[from]) / n;
    const double var = (s.sq_sums[to] - s.sq_sums[from] - n * mean * mean) / (n - 1);
    return std::pair{mean, std::max(var, mean) / n};
  };
  const auto [older, older_se2] = moments(a, k);
  const auto [newer, newer_se2] = moments(k, b);
  const double se = std::sqrt(older_se2 + newer_se2);
  return se > 0 ? (older - newer) / se : 0;
}

// Whether counts spread no more than Poisson counts do around a rate that moves slowly. For
// Poisson counts, a step between neighbours x, y has E[(y - x)^2] = E[x + y], whatever the rate,
// and a slow trend barely adds to it: the sum of `n` squared steps is within three standard
// errors of the sum of their pairs' counts (the ratio's relative standard error is about
// sqrt(3 / n)). Bursty traffic spreads far beyond it.
bool poisson_spread(double steps, double pairs, double n) {
  return pairs > 0 && steps <= pairs * (1 + 3 * std::sqrt(3 / n));
}

// Whether bins [a, b) spread like Poisson counts.
bool smooth(const Bins& s, size_t a, size_t b) {
  return poisson_spread(s.steps[b - 1] - s.steps[a], s.pairs[b - 1] - s.pairs[a],
                        static_cast<double>(b - a - 1));
}

// Whether bins [a, k) and [k, b) each spread like Poisson counts. The steps into and out of bin
// k are left out: a fall within bin k splits it over both.
bool smooth(const Bins& s, size_t a, size_t k, size_t b) {
  // Steps from bin i to i + 1 for i in [a, b - 1), less those for i = k - 1 and k.
  return poisson_spread(s.steps[b - 1] - s.steps[a] - (s.steps[k + 1] - s.steps[k - 1]),
                        s.pairs[b - 1] - s.pairs[a] - (s.pairs[k + 1] - s.pairs[k - 1]),
                        static_cast<double>(b - a - 3));
}

}  // namespace

std::vector<double> HindsightFleet::counts(Time now) const {
  const auto bins = static_cast<size_t>(std::min(window_, now - began_) / kFallBin);
  if (bins < 2 * kFallMinBins) return {};
  std::vector<double> count(bins, 0.0);
  for (const Interval& it : intervals_) {
    const auto ago = static_cast<size_t>((now - it.end) / kFallBin);
    if (ago < bins) count[bins - 1 - ago] += static_cast<double>(it.arrivals);
  }
  return count;
}

bool HindsightFleet::smooth_traffic(Time now) {
  if (now - smooth_at_ >= kRecompute) {
    expire(now);
    count_smoothness(now, counts(now));
  }
  return smooth_;
}

double HindsightFleet::dispersion(Time now) {
  smooth_traffic(now);
  return dispersion_;
}

double HindsightFleet::tick_dispersion(Time now) {
  smooth_traffic(now);
  return tick_dispersion_;
}

uint64_t HindsightFleet::arrivals_within(Time now, Duration span) const {
  uint64_t n = 0;
  for (auto it = intervals_.rbegin(); it != intervals_.rend() && it->end > now - span; ++it)
    n += it->arrivals;
  return n;
}

double HindsightFleet::count_tick_dispersion() const {
  // Only ticks with arrivals are kept: a kept tick whose neighbour is not kept steps from or to 0.
  double steps = 0, pairs = 0;
  const auto step = [&](double x, double y) {
    steps += (x - y) * (x - y);
    pairs += x + y;
  };
  for (size_t i = 0; i < intervals_.size(); ++i) {
    const Interval& it = intervals_[i];
    const auto x = static_cast<double>(it.arrivals);
    const bool after_kept = i > 0 && intervals_[i - 1].end == it.end - it.length;
    step(x, after_kept ? static_cast<double>(intervals_[i - 1].arrivals) : 0.0);
    const bool before_kept =
        i + 1 < intervals_.size() && intervals_[i + 1].end - intervals_[i + 1].length == it.end;
    if (!before_kept) step(x, 0);
  }
  return pairs > 0 ? std::max(1.0, steps / pairs) : 1.0;
}

void HindsightFleet::count_smoothness(Time now, const std::vector<double>& count) {
  smooth_at_ = now;
  smooth_ = false;
  dispersion_ = 1;
  tick_dispersion_ = 1;
  if (count.empty()) return;
  tick_dispersion_ = count_tick_dispersion();
  const Bins s(count);
  smooth_ = smooth(s, 0, count.size());
  // As in poisson_spread: E[(y - x)^2] = E[x + y] for Poisson counts x, y of neighbouring bins.
  const double steps = s.steps[count.size() - 1], pairs = s.pairs[count.size() - 1];
  if (pairs > 0) dispersion_ = std::max(1.0, steps / pairs);
}

uint64_t HindsightFleet::since_fall(const std::vector<double>& count, uint64_t fewest) const {
  if (count.empty()) return total_;
  const size_t bins = count.size();
  const Bins s(count);
  // Binary segmentation: the clearest fall of the part left (if beyond three standard errors),
  // then the clearest in the part after it, until the part left holds none.
  size_t start = 0;
  for (;;) {
    size_t cut = 0;
    double clearest = 3;
    for (size_t k = start + kFallMinBins; k + kFallMinBins <= bins; ++k) {
      const double t = fall(s, start, k, bins);
      if (t > clearest && smooth(s, start, k, bins)) {
        clearest = t;
        cut = k;
      }
    }
    if (cut == 0) break;
    start = cut;
  }
  if (start == 0) return total_;
  // The fall's own bin is left out: a fall within it leaves it partly before the fall.
  const auto since = static_cast<uint64_t>(s.sums[bins] - s.sums[start + 1]);
  return std::min(total_, std::max(since, fewest));
}

void HindsightFleet::add(Time now, Duration interval, uint64_t arrivals) {
  last_ = std::max(last_, now);
  if (began_ == Time{}) began_ = now - interval;
  if (arrivals > 0) {
    intervals_.push_back({now, interval, arrivals});
    total_ += arrivals;
    arrived_ = true;
  }
  expire(now);
}

void HindsightFleet::expire(Time now) {
  while (!intervals_.empty() && intervals_.front().end <= now - window_) {
    total_ -= intervals_.front().arrivals;
    intervals_.pop_front();
  }
}

double HindsightFleet::late_share(int replicas, int concurrency, Service service,
                                  Duration max_wait) const {
  const Replay r = draw(intervals_, last_, service);
  return late_in(r, int64_t{replicas} * concurrency, to_seconds(max_wait));
}

int HindsightFleet::fleet(Time now, int concurrency, Service service, Target target,
                          int max_replicas) {
  expire(now);
  if (total_ == 0 || service.mean_s <= 0 || max_replicas <= 0) return computed_ = 0;
  if (now - computed_at_ < kRecompute && total_ <= 2 * computed_total_ && computed_ > 0)
    return computed_;
  computed_at_ = now;
  computed_total_ = total_;
  // Traffic older than a fall of the rate speaks no more for the traffic now: the replay starts
  // after it, with at least the arrivals that resolve the late share allowed.
  const std::vector<double> count = counts(now);
  replayed_ = since_fall(count, static_cast<uint64_t>(std::ceil(kResolved / target.late_share)));
  count_smoothness(now, count);
  int n = smallest(draw(intervals_, now, service, std::min(replayed_, kMaxReplayed)), concurrency,
                   target, max_replicas, computed_);
  // Without a new arrival or a new service estimate, only old arrivals left the window: no
  // evidence of more demand (a burst leaving makes the later ones a larger share), so the fleet
  // found does not grow.
  const bool same_service = service.mean_s == service_.mean_s && service.scv == service_.scv;
  if (!arrived_ && same_service && computed_ > 0) n = std::min(n, computed_);
  arrived_ = false;
  service_ = service;
  return computed_ = n;
}

}  // namespace tide::policy
