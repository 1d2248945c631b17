// The default tide policy (see docs/policies.md). Built by make_decider for PolicyKind::kTide.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>

#include "tide/common/time.h"
#include "tide/config/config.h"
#include "tide/policy/decider.h"

namespace tide::policy {

std::unique_ptr<Decider> make_tide_policy(const config::GroupSpec& group);

// Learns rises of a group's occupancy (requests in flight + queued) that recur with a period:
// timers, cron jobs, batch clients. Occupancy is kept in 10 s bins over `cycles` + 1 periods of
// the longest period. A rise is expected when, for some period P of whole minutes up to
// `max_period`, occupancy rose from this point of the period to a point within the horizon in
// each of the last `cycles` periods; the expected rise is the smallest of those. Time is passed
// in; owned by one decider.
class RecurringRise {
 public:
  static constexpr int64_t kBinSeconds = 10;
  struct Rise {
    double rise = 0;  // requests in flight above the current level (0: none expected)
    Duration period{0};
  };

  RecurringRise(Duration max_period, int cycles);
  // The group's mean occupancy during (now - interval, now].
  void add(Time now, Duration interval, double occupancy);
  // The largest rise expected within `horizon` (a cold start) of now. Each past rise must exceed
  // three standard deviations of the noise: Poisson's at the occupancy it rose from, or the
  // bins' own spread where that is larger (bursty traffic).
  Rise expected(Duration horizon) const;

 private:
  Rise search(int64_t complete_bins, int64_t h_bins) const;
  // The standard deviation of one bin about the level around it, from the median step between
  // neighbours of the first `complete_bins` bins.
  double bin_spread(int64_t complete_bins) const;

  int64_t max_period_min_;
  int cycles_;
  int64_t first_bin_ = 0;           // bin number (time / 10 s) of bins_[0]
  std::deque<double> bins_;         // mean occupancy per bin; the last one is still filling
  std::deque<double> sums_;         // prefix sums: sums_[i] = bins_[0] + ... + bins_[i - 1]
  mutable int64_t cached_at_ = -1;  // the last search, at this many bins since time 0
  mutable int64_t cached_h_bins_ = 0;
  mutable Rise cached_;
};

}  // namespace tide::policy
