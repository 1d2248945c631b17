// The fleet that would have met the SLO over a recent window, found by replaying the group's own
// arrivals through fixed fleets. Used by the tide policy (tide_policy.cc) as warm headroom when
// the SLO is shorter than a cold start. Time is passed in; owned by one decider.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "tide/common/time.h"

namespace tide::policy {

// Arrivals kept per observation interval over `window`; `fleet` replays them (spread evenly
// within each interval, twice: the first pass a burn-in) through N replicas of `concurrency` slots,
// first come first served, with service times drawn lognormal of the measured mean and squared
// coefficient of variation, the same draws for every N. The answer is the smallest N whose share of
// arrivals waiting longer than max_wait is at most the target. Where smooth traffic has fallen
// within the window, only the arrivals since the fall are replayed (since_fall). It reads bursts at
// every time scale the window holds, and counts arrivals only: a backlog the group built itself
// while its replicas were starting is not demand.
class HindsightFleet {
 public:
  static constexpr uint64_t kMaxReplayed = 50'000;  // the most recent arrivals replayed
  static constexpr double kMaxScv = 25;             // service spread taken at most this
  // A window resolves the late share allowed once it holds this many late arrivals at it.
  static constexpr double kResolved = 10;
  // Falls of the rate (since_fall) are sought in arrivals counted per kFallBin.
  static constexpr Duration kFallBin = std::chrono::seconds(30);
  static constexpr size_t kFallMinBins = 10;  // on each side of a fall

  struct Service {
    double mean_s = 0;
    double scv = 0;  // variance / mean^2
  };
  struct Target {
    Duration max_wait{0};
    double late_share = 0.01;  // of arrivals allowed to wait longer than max_wait
  };

  explicit HindsightFleet(Duration window) : window_(window) {}

  // `arrivals` arrived during (now - interval, now].
  void add(Time now, Duration interval, uint64_t arrivals);
  // The smallest fleet, up to max_replicas, that would have met the target over the window;
  // 0 when the window holds no arrival or the service time is unknown. The replay runs again
  // once kRecompute has passed or the window's arrivals have doubled since the last one.
  int fleet(Time now, int concurrency, Service service, Target target, int max_replicas);
  // The share of the window's arrivals (up to kMaxReplayed) that `replicas` would have kept
  // waiting longer than max_wait.
  double late_share(int replicas, int concurrency, Service service, Duration max_wait) const;
  uint64_t arrivals() const { return total_; }
  // The arrivals the last fleet() replayed: the window's since its last fall (see since_fall).
  uint64_t replayed() const { return replayed_; }
  // Whether the last fleet() replayed only the arrivals since a fall.
  bool since_a_fall() const { return replayed_ < computed_total_; }
  // Whether the window's counts (at least 10 minutes of them) spread no more than Poisson counts
  // around a slowly moving rate: arrivals that Erlang's Poisson assumption fits. Counted again
  // once kRecompute has passed, and at each replay.
  bool smooth_traffic(Time now);
  // How much more the window's counts spread than Poisson counts: the variance of a count over
  // its mean (1 for Poisson arrivals; about the batch size for arrivals in batches), from the
  // steps between neighbouring bins, so that a slowly moving rate barely adds to it. At least 1;
  // 1 until the window holds 2 * kFallMinBins bins. Counted with smooth_traffic.
  double dispersion(Time now);
  // The same at the scale of one observation interval (a tick): a tick's count's variance over its
  // mean, from the steps between neighbouring ticks (a tick without arrivals counts 0). About the
  // batch size where requests come in batches (one batch is one clump of that many), and 1 for
  // Poisson arrivals however their rate moves between phases of seconds or more (on/off), which
  // the 30 s bins of dispersion() read as spread. At least 1; 1 until the window holds
  // 2 * kFallMinBins bins. Counted with smooth_traffic.
  double tick_dispersion(Time now);
  // Arrivals within the last `span` (at most the window).
  uint64_t arrivals_within(Time now, Duration span) const;
  Duration window() const { return window_; }

 private:
  static constexpr Duration kRecompute = std::chrono::seconds(30);
  struct Interval {
    Time end;
    Duration length;
    uint64_t arrivals;
  };
  void expire(Time now);
  // Arrivals per kFallBin of the time the group has been seen in the window, the last bin ending
  // now; empty where that is shorter than 2 * kFallMinBins bins.
  std::vector<double> counts(Time now) const;
  // Sets smooth_ and dispersion_ from the window's `count` (counts(now)) and smooth_at_ to now.
  void count_smoothness(Time now, const std::vector<double>& count);
  // tick_dispersion() from the window's intervals.
  double count_tick_dispersion() const;
  // Of the window's `count` (counts(now)), the arrivals since its last fall of smooth traffic (a
  // diurnal's fall, not the lull after a burst). Counted per kFallBin, a fall is a point where the
  // bins before it held more arrivals than those after it by more than three standard errors (at
  // least kFallMinBins, five minutes, on each side), and both sides spread no more than Poisson
  // counts do around a slowly moving rate. The clearest fall is taken, then the clearest after it,
  // until none is left; the replay starts after the last one's bin, with at least `fewest` arrivals
  // (reaching back past the fall). All of the window where no fall is found.
  uint64_t since_fall(const std::vector<double>& count, uint64_t fewest) const;

  Duration window_;
  Time last_{};   // the end of the last interval added
  Time began_{};  // the start of the first interval added
  std::deque<Interval> intervals_;
  uint64_t total_ = 0;
  Time computed_at_{};
  uint64_t computed_total_ = 0;
  int computed_ = 0;
  bool arrived_ = false;   // an arrival was added since the last replay
  Service service_;        // of the last replay
  uint64_t replayed_ = 0;  // arrivals the last replay held
  bool smooth_ = false;    // the window's counts spread like Poisson's, as counted at smooth_at_
  double dispersion_ = 1;  // the counts' variance over their mean, as counted at smooth_at_
  double tick_dispersion_ = 1;  // the same per tick, as counted at smooth_at_
  Time smooth_at_{};
};

}  // namespace tide::policy
