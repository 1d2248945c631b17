#include "tide/policy/tide_policy.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tide/common/random.h"
#include "tide/policy/policy_test_util.h"

namespace tide::policy {
namespace {

using namespace std::chrono_literals;

config::GroupSpec group(Duration history_window = 1h) {
  config::GroupSpec g;
  g.name = "gpu";
  g.max_replicas = 100;
  g.concurrency = 8;
  g.scaling.policy = config::PolicyKind::kTide;
  g.scaling.tide.history_window = history_window;
  return g;
}

// Drives the tide decider one second at a time with the given load.
struct Loop {
  explicit Loop(Duration history_window = 1h) : d(make_tide_policy(group(history_window))) {}
  std::unique_ptr<Decider> d;
  Time now{};
  int current = 0;
  int changes = 0;           // of the desired count
  double running_mean = -1;  // the dispatcher's mean over all completions (-1: service_s)
  std::optional<Time> last_activity;
  Duration max_wait = 2s;
  Duration cold_start = 60s;
  int concurrency = 8;
  double scv = 0;          // of the service times completed (their sum of squares follows)
  bool completing = true;  // false: nothing completes (before the first replica is ready)

  // As many completions as arrivals, with service time `service_s`.
  Decision step(uint64_t arrivals, int in_flight, int queued, double service_s, int ready = -1) {
    now += 1s;
    Observation o;
    o.now = now;
    o.interval = 1s;
    o.current = current;
    o.ready = ready < 0 ? current : ready;
    o.starting = o.current - o.ready;
    o.concurrency = concurrency;
    o.max_replicas = 100;
    o.queued = queued;
    o.in_flight = in_flight;
    o.avg_in_flight = in_flight;
    o.avg_queued = queued;
    o.arrivals = arrivals;
    o.completions = completing ? arrivals : 0;
    o.service_sum_s = static_cast<double>(arrivals) * service_s;
    o.service_sq_sum_s2 = static_cast<double>(arrivals) * service_s * service_s * (1 + scv);
    o.mean_service_s = running_mean >= 0 ? running_mean : service_s;
    o.cold_start = cold_start;
    o.max_wait = max_wait;
    if (arrivals > 0 || in_flight > 0 || queued > 0) last_activity = now;
    o.last_activity = last_activity;
    Decision dec = d->decide(o);
    if (dec.desired != current) ++changes;
    current = dec.desired;
    return dec;
  }
};

// Requests of a fixed service time: what is in flight is what arrived within the last
// service time.
struct InFlight {
  explicit InFlight(int service_s) : recent(static_cast<size_t>(service_s), 0) {}
  int add(uint64_t arrivals) {
    sum += static_cast<int>(arrivals) - recent[i];
    recent[i] = static_cast<int>(arrivals);
    i = (i + 1) % recent.size();
    return sum;
  }
  std::vector<int> recent;
  size_t i = 0;
  int sum = 0;
};

using testing::poisson;

// One second of Poisson arrivals at `rate`, each in service for the flight's service time.
Decision poisson_second(Loop& l, Random& rng, InFlight& flight, double rate, double service_s) {
  const uint64_t n = poisson(rng, rate);
  return l.step(n, flight.add(n), 0, service_s);
}

bool has(const Decision& d, std::string_view text) {
  return d.reason.find(text) != std::string::npos;
}

TEST(TidePolicy, QueuedWorkFromZeroGetsReplicasOnTheFirstTick) {
  Loop l;
  const Decision d = l.step(20, 0, 20, 0, 0);
  EXPECT_GE(d.desired, 3);  // at least ceil(20 / 8): nothing is ready to start them
  EXPECT_TRUE(has(d, "queued beyond")) << d.reason;
}

TEST(TidePolicy, SizesPoissonLoadWithASquareRootMarginNotAFixedUtilization) {
  Loop small, big;
  Random rng(5);
  for (int i = 0; i < 600; ++i) {
    small.step(static_cast<uint64_t>(rng.exponential(1.0) + 0.5), 4, 0, 4.0);  // ~4 in service
    big.step(400, 1600, 0, 4.0);                                               // 1,600 in service
  }
  // Small groups keep proportionally more headroom than big ones.
  const double small_util = 4.0 / (small.current * 8.0);
  const double big_util = 1600.0 / (big.current * 8.0);
  EXPECT_GE(small.current, 1);
  EXPECT_GT(big_util, 0.9);
  EXPECT_LT(small_util, big_util);
}

TEST(TidePolicy, HoldsCapacityForAColdStartAfterASurgeThenScalesDown) {
  Loop l(0s);  // no warm headroom: it would keep the surge's fleet for the history window
  for (int i = 0; i < 300; ++i) l.step(2, 8, 0, 4.0);  // steady 2/s
  const int before = l.current;
  Decision d;
  for (int i = 0; i < 15; ++i) d = l.step(12, 48, 0, 4.0);  // a surge the 60 s average lags
  EXPECT_TRUE(has(d, "surge rate")) << d.reason;
  const int at_peak = l.current;
  EXPECT_GT(at_peak, before);
  for (int i = 0; i < 30; ++i) d = l.step(2, 8, 0, 4.0);
  EXPECT_EQ(l.current, at_peak) << "released before a cold start's worth of time";
  EXPECT_TRUE(has(d, "holding")) << d.reason;
  for (int i = 0; i < 120; ++i) l.step(2, 8, 0, 4.0);
  EXPECT_LT(l.current, at_peak);
  EXPECT_GE(l.current, 1);
}

TEST(TidePolicy, ADeclineFollowsTheAverageRateWithoutHoldingItsPeakAgain) {
  // The steady need is already the keep window's average rate: it falls over one cold start by
  // itself, and holding its maximum for another would keep the peak for two.
  Loop l(0s);  // the steady need alone: warm headroom would keep the peak for an hour
  for (int i = 0; i < 300; ++i) l.step(10, 40, 0, 4.0);
  const int at_peak = l.current;
  Decision d;
  for (int i = 0; i < 61; ++i) d = l.step(1, 4, 0, 4.0);
  EXPECT_LT(l.current, at_peak) << d.reason;
  EXPECT_FALSE(has(d, "surge or backlog")) << d.reason;
}

TEST(TidePolicy, ALoadNearAReplicaBoundaryDoesNotFlapEverySecond) {
  // Poisson arrivals whose mean load sits where the SLO needs 4 replicas or 5: the estimate
  // crosses the boundary again and again; the steady need is held for the demand window.
  Loop l;
  Random rng(3);
  InFlight flight(4);
  for (int i = 0; i < 1200; ++i) poisson_second(l, rng, flight, 6.4, 4.0);
  EXPECT_LE(l.changes, 30) << "changes of the desired count in 20 minutes";
  EXPECT_GE(l.current, 4);
}

TEST(TidePolicy, ScalesToZeroAfterIdlingForTheColdStart) {
  Loop l;
  for (int i = 0; i < 30; ++i) l.step(1, 2, 0, 2.0);
  EXPECT_GE(l.current, 1);
  for (int i = 0; i < 59; ++i) l.step(0, 0, 0, 2.0);
  EXPECT_GE(l.current, 1);
  const Decision d = l.step(0, 0, 0, 2.0);
  EXPECT_EQ(d.desired, 0);
  EXPECT_TRUE(has(d, "idle timeout")) << d.reason;
}

TEST(TidePolicy, SizesWithRecentServiceTimesNotTheRunningMeanOfTheWholeRun) {
  Loop drifted, fresh;
  for (int i = 0; i < 1800; ++i) drifted.step(8, 48, 0, 6.0);  // half an hour of 6 s requests
  // Then requests take 3 s; ten minutes on, the mean over the whole run still says 5.25 s.
  Decision d;
  for (int i = 1; i <= 600; ++i) {
    drifted.running_mean = (1800 * 6.0 + i * 3.0) / (1800 + i);
    d = drifted.step(8, 24, 0, 3.0);
    fresh.step(8, 24, 0, 3.0);
  }
  EXPECT_TRUE(has(d, "x service 3.00s")) << d.reason;
  EXPECT_EQ(drifted.current, fresh.current);
}

TEST(TidePolicy, BurstsGetWarmHeadroomThatPoissonTrafficOfTheSameMeanRateDoesNot) {
  Loop smooth, bursty;
  Random rng(11), when(12);
  InFlight smooth_flight(4), bursty_flight(4);
  Decision p, b;
  bool bursty_burst = false;
  int smooth_top = 0;
  for (int i = 0; i < 3600; ++i) {
    // Same mean of 5/s: Poisson, or bursts of 50/s lasting 10 s at random (one in ten).
    if (i % 10 == 0) bursty_burst = when.uniform() < 0.1;
    const uint64_t bn = bursty_burst ? 50 : 0;
    p = poisson_second(smooth, rng, smooth_flight, 5, 4.0);
    b = bursty.step(bn, bursty_flight.add(bn), 0, 4.0);
    if (i >= 600) smooth_top = std::max(smooth_top, smooth.current);
  }
  // 5/s x 4 s = 20 in service on 8 slots a replica: 3 at the mean, a few more for the SLO. The
  // bursts need up to 200 in service at once: 25 replicas, a few less with 1% allowed to wait.
  EXPECT_LE(smooth_top, 6) << p.reason;
  EXPECT_GE(bursty.current, 20) << b.reason;
  EXPECT_TRUE(has(b, "warm headroom")) << b.reason;
}

// An hour of batches of 100 4 s jobs at random seconds (one in 15: 6.7/s).
void hour_of_batches(Loop& l, Random& when, InFlight& flight) {
  for (int i = 0; i < 3600; ++i) {
    const uint64_t n = when.uniform() < 1.0 / 15 ? 100 : 0;
    l.step(n, flight.add(n), 0, 4.0);
  }
}

TEST(TidePolicy, BatchesCloseTogetherAreNoSurgeWhereTheTrafficAlwaysComesInBatches) {
  // An hour of batches of 100 at random seconds (one in 15: 6.7/s), a lull of 55 s, then three
  // batches in three seconds. Counted as Poisson, 300 arrivals in the 20 s window against 100
  // expected at the rate of the last minute is a surge (beyond 100 + 3 sqrt(100)), sized by
  // Erlang at 15/s; counted against the batches' own spread (a count's variance about 100x its
  // mean), it is the traffic as it always was, which the replay sizes for.
  Loop l;
  l.max_wait = 20s;
  Random when(5);
  InFlight flight(4);
  hour_of_batches(l, when, flight);
  for (int i = 0; i < 55; ++i) l.step(0, flight.add(0), 0, 4.0);
  const int before = l.current;
  Decision d;
  for (int i = 0; i < 3; ++i) d = l.step(100, flight.add(100), 0, 4.0);
  EXPECT_FALSE(has(d, "surge rate")) << d.reason;
  EXPECT_TRUE(has(d, "within three standard deviations of the last hour's counts")) << d.reason;
  EXPECT_LE(l.current, before) << d.reason;
  // Twenty such batches in twenty seconds are beyond the spread: a surge.
  for (int i = 0; i < 17; ++i) d = l.step(100, flight.add(100), 0, 4.0);
  EXPECT_TRUE(has(d, "surge rate")) << d.reason;
  EXPECT_GT(l.current, before) << d.reason;
}

TEST(TidePolicy, ASurgeOfBatchesIsReadOverTheSpanOfTenBatches) {
  // An hour of batches of 100 at random seconds (one in 15: 6.7/s), SLO 150 s, cold start 5 min.
  // Then seven batches in seven seconds: 700 arrivals in the 20 s window is beyond three of the
  // hour's standard deviations there (about 480-600), and Erlang would size for 35/s as if it
  // lasted. Seven batches are seven events: read over the span that holds ten batches at the
  // steady rate (about two minutes), they are the traffic as it is. Thirty in thirty seconds
  // are not.
  Loop l;
  l.max_wait = 150s;
  l.cold_start = 300s;
  Random when(6);
  InFlight flight(4);
  hour_of_batches(l, when, flight);
  const int before = l.current;
  Decision d;
  for (int i = 0; i < 7; ++i) d = l.step(100, flight.add(100), 0, 4.0);
  EXPECT_FALSE(has(d, "surge rate")) << d.reason;
  EXPECT_TRUE(has(d, "no surge over the last")) << d.reason;
  // Sized for the steady rate (which the seven batches raise), not for 35/s (18 replicas).
  EXPECT_LT(l.current, before + 3) << d.reason;
  for (int i = 0; i < 23; ++i) d = l.step(100, flight.add(100), 0, 4.0);
  EXPECT_TRUE(has(d, "surge rate")) << d.reason;
  EXPECT_TRUE(has(d, "surge read over the last")) << d.reason;
  EXPECT_GT(l.current, before + 10) << d.reason;
}

TEST(TidePolicy, WithoutAHistoryWindowASurgeIsReadOverTheDemandWindow) {
  // history_window 0 keeps no arrivals per tick, so a thin stream's surge span (ten arrivals at
  // 0.3/s: 33 s) cannot be read from them. Thirty requests at once after 20 minutes at 0.2/s
  // must still be a surge, read over the 20 s window.
  Loop l(0s);
  l.cold_start = 300s;
  Random rng(9);
  InFlight flight(2);
  for (int i = 0; i < 1200; ++i) poisson_second(l, rng, flight, 0.2, 2.0);
  const Decision d = l.step(30, flight.add(30), 0, 2.0);
  EXPECT_TRUE(has(d, "surge rate")) << d.reason;
}

TEST(TidePolicy, AChanceQueueOfPoissonTrafficLaunchesNothingThatOfBurstsDoes) {
  // The same mean of 2/s of 2 s jobs for 20 minutes: Poisson, or bursts of 20/s lasting 10 s at
  // random (one in ten). Then two requests more are queued than the ready slots start within the
  // 2 s allowed. Under Poisson traffic that is chance that the slots sized for the SLO budget
  // for, and the ready replicas' spare capacity clears it long before a replica launched for it
  // (a 60 s cold start) would be ready; after bursts, it may be the next burst's first second.
  Loop smooth, bursty;
  Random rng(7), when(8);
  InFlight smooth_flight(2), bursty_flight(2);
  bool burst = false;
  for (int i = 0; i < 1200; ++i) {
    if (i % 10 == 0) burst = when.uniform() < 0.1;
    const uint64_t bn = burst ? 20 : 0;
    poisson_second(smooth, rng, smooth_flight, 2, 2.0);
    bursty.step(bn, bursty_flight.add(bn), 0, 2.0);
  }
  const int smooth_ready = smooth.current, bursty_ready = bursty.current;
  const Decision s = smooth.step(2, smooth_flight.add(2), 8 * smooth_ready + 2, 2.0);
  const Decision b = bursty.step(2, bursty_flight.add(2), 8 * bursty_ready + 2, 2.0);
  EXPECT_EQ(s.desired, smooth_ready) << s.reason;
  EXPECT_TRUE(has(s, "spare capacity clears that queue")) << s.reason;
  EXPECT_GT(b.desired, bursty_ready) << b.reason;
  EXPECT_FALSE(has(b, "spare capacity")) << b.reason;
}

TEST(TidePolicy, AStartUpBacklogIsNotDemand) {
  // Two minutes of 300 requests waiting for the first replicas, then Poisson traffic: ten
  // minutes on, the same fleet as for the same traffic without that start.
  Loop started, steady;
  Random rng(5), same(5);
  InFlight flight(4), steady_flight(4);
  for (int i = 0; i < 120; ++i) started.step(5, 0, 300, 4.0, 0);
  for (int i = 0; i < 600; ++i) {
    poisson_second(started, rng, flight, 5, 4.0);
    poisson_second(steady, same, steady_flight, 5, 4.0);
  }
  EXPECT_LE(started.current, steady.current + 1);
}

TEST(TidePolicy, AQueueGrowingInABurstGetsReplicasForWhatArrivesUntilTheyAreReady) {
  // Ten minutes of 10/s at 4 s (40 in service: 5 to 7 replicas of 8), then 30/s. For the cold
  // start to come, the ready replicas serve 2/s each and the queue grows by the rest; the rate
  // averages still hold the quiet minutes before the burst.
  Loop l;
  Random rng(3);
  InFlight flight(4);
  for (int i = 0; i < 600; ++i) poisson_second(l, rng, flight, 10, 4.0);
  const int ready = l.current;
  ASSERT_LE(ready, 8);
  int queued = 0;
  Decision d;
  for (int i = 0; i < 10; ++i) {
    queued += 30 - 2 * ready;
    d = l.step(30, 8 * ready, queued, 4.0, ready);
  }
  // 30/s x 4 s fill 15 replicas of 8: the rate alone needs them, and the queue built meanwhile
  // (and growing until they are ready) more. Sized on the queue alone: 12.
  EXPECT_GE(l.current, 16) << d.reason;
  EXPECT_LE(l.current, 30) << d.reason;
}

// A batch of 40 requests within one second every three minutes, 4 s each.
uint64_t batch(int second) { return second % 180 == 0 ? 40 : 0; }
int batch_in_flight(int second) { return second % 180 < 4 ? 40 : 0; }

TEST(TidePolicy, KeepsBatchesAFewMinutesApartWarmInsteadOfScalingToZero) {
  Loop l;
  for (int i = 0; i < 3 * 180; ++i) l.step(batch(i), batch_in_flight(i), 0, 4.0);
  Decision d;
  int below = 0;
  for (int i = 3 * 180; i < 10 * 180; ++i) {
    d = l.step(batch(i), batch_in_flight(i), 0, 4.0);
    below += l.current < 40 / 8;
  }
  EXPECT_EQ(below, 0) << "every batch finds its 5 replicas warm; last: " << d.reason;
  EXPECT_TRUE(has(d, "warm headroom")) << d.reason;
  EXPECT_TRUE(has(d, "held through quiet spells for")) << d.reason;
}

TEST(TidePolicy, ScalesToZeroOnceQuietForLongerThanAnyQuietSpellBetweenArrivals) {
  Loop l;
  for (int i = 0; i <= 4 * 180; ++i) l.step(batch(i), batch_in_flight(i), 0, 4.0);
  // The batches stop: every arrival came right after a quiet spell, so replicas are kept through
  // a spell as long as one of the 4 spells' mean (179 s, taken at its upper bound: x 2) exceeds
  // with probability 0.01 / 0.8 (the share of arrivals after a spell), and no longer.
  Decision d;
  int held = 0;
  for (int i = 0; i < 3600 && l.current > 0; ++i, ++held) d = l.step(0, 0, 0, 4.0);
  EXPECT_EQ(l.current, 0) << d.reason;
  EXPECT_NEAR(held, 179 * 2 * std::log(0.8 / 0.01), 3);  // the spells: 179 s without an arrival
  EXPECT_TRUE(has(d, "longer than the hold through quiet spells")) << d.reason;
}

// Bursts every 10 minutes that start thin (one request every 5 s for a minute) and then rise to
// 10 a second for 30 s, 4 s each; quiet for the rest.
uint64_t thin_head_burst(int second) {
  const int t = second % 600;
  if (t < 60) return t % 5 == 0 ? 1 : 0;
  return t < 90 ? 10 : 0;
}

TEST(TidePolicy, ThroughAQuietSpellKeepsOnlyWhatTheHeadOfTheNextBurstNeeds) {
  // A launch when a burst begins is ready a cold start (60 s) later, in time for the rise: only
  // the head's 12 arrivals in the first 58 s need replicas kept warm, not the rise's 5.
  Loop l;
  InFlight flight(4);
  Decision d;
  for (int i = 0; i < 6 * 600; ++i)
    d = l.step(thin_head_burst(i), flight.add(thin_head_burst(i)), 0, 4.0);
  // The end of the sixth burst's quiet part.
  EXPECT_EQ(l.current, 2) << d.reason;
  EXPECT_TRUE(has(d, "through a quiet spell only 2")) << d.reason;
  int peak = 0;
  for (int i = 6 * 600; i < 6 * 600 + 120; ++i) {
    d = l.step(thin_head_burst(i), flight.add(thin_head_burst(i)), 0, 4.0);
    if (i == 6 * 600) {
      EXPECT_GE(l.current, 5) << "the first arrival brings the rest: " << d.reason;
    }
    peak = std::max(peak, l.current);
  }
  EXPECT_GE(peak, 5);
}

TEST(TidePolicy, AnSloLongerThanAColdStartReactsWithoutWarmHeadroom) {
  // 90 s allowed against a 60 s cold start: a launch on demand is in time for every batch.
  Loop l;
  l.max_wait = 90s;
  Decision d;
  int zero = 0;
  for (int i = 0; i < 10 * 180; ++i) {
    d = l.step(batch(i), batch_in_flight(i), 0, 4.0);
    EXPECT_FALSE(has(d, "warm headroom")) << d.reason;
    zero += l.current == 0;
  }
  EXPECT_GT(zero, 9 * 60) << "idle replicas stop after the idle timeout between batches";
}

TEST(TidePolicy, ALoadBeyondAnyFleetAsksForMaxReplicasAndCountsNoFurther) {
  // 100,000 requests a second of an hour each: 360 million in service, far beyond the 100
  // replicas of 8 slots the group may run. The answer is the group's maximum, found without
  // counting Erlang's slots up to the load (seconds a tick) or overflowing an int on the way.
  Loop l;
  Decision d;
  for (int i = 0; i < 5; ++i) d = l.step(100'000, 800, 1'000'000, 3600.0);
  EXPECT_EQ(d.desired, 100) << d.reason;
  EXPECT_TRUE(has(d, "800 slots for P(wait > 2s) <= 0.01: 100 replicas")) << d.reason;
  // A trillion arrivals in one tick: the replay takes the latest 50,000 of them, not all.
  d = l.step(1'000'000'000'000, 800, 1'000'000, 3600.0);
  EXPECT_EQ(d.desired, 100) << d.reason;
  EXPECT_TRUE(has(d, "the 1000000500000 arrivals of the last 1h replayed")) << d.reason;
}

TEST(TidePolicy, TheReplaySizesSteadyTrafficWithoutFlappingAtAReplicaBoundary) {
  // Poisson arrivals where Erlang's bound crosses between 3 and 4 replicas again and again: the
  // replayed fleet, once an hour's arrivals resolve the 1% allowed to wait, holds one count.
  Loop l;
  Random rng(3);
  InFlight flight(3);
  int changes_before = 0;
  Decision d;
  for (int i = 0; i < 3600; ++i) {
    d = poisson_second(l, rng, flight, 6.0, 3.0);
    if (i == 1800) changes_before = l.changes;
  }
  EXPECT_LE(l.changes - changes_before, 2) << d.reason;
  EXPECT_TRUE(has(d, "warm headroom")) << d.reason;
}

TEST(TidePolicy, ARisingLoadIsSizedOnItsRateNowNotOnTheLastHoursReplay) {
  // An hour of Poisson 5/s, then a rise to 12/s over 20 minutes, too slow for a surge; 4 s
  // each. At the top, 48 in service need at least 7 replicas of 8 (Erlang's M/M/n: 8; for
  // Poisson-like arrivals and this fixed service, Allen-Cunneen's 7); the hour's replay, mostly
  // the lower traffic, says 6.
  Loop l;
  Random rng(9);
  InFlight flight(4);
  Decision d;
  for (int i = 0; i < 4800; ++i) {
    const double rate = i < 3600 ? 5 : 5 + 7.0 * (i - 3600) / 1200;
    d = poisson_second(l, rng, flight, rate, 4.0);
  }
  EXPECT_GE(l.current, 7) << d.reason;
  EXPECT_TRUE(has(d, "Poisson-like arrivals")) << d.reason;
}

TEST(TidePolicy, BurstyArrivalsKeepErlangsMarginForSmoothService) {
  // The same mean rate and fixed service as Poisson arrivals, but in batches of 40 every 8 s:
  // their counts spread far beyond Poisson's, so Erlang's tail is not shortened for the smooth
  // service.
  Loop l;
  InFlight flight(4);
  Decision d;
  for (int i = 0; i < 1800; ++i) {
    const uint64_t n = i % 8 == 0 ? 40 : 0;
    d = l.step(n, flight.add(n), 0, 4.0);
  }
  EXPECT_FALSE(has(d, "Poisson-like arrivals")) << d.reason;
}

TEST(TidePolicy, OnDemandPoissonArrivalsWithFixedServiceGetAllenCunneensShorterTail) {
  // Ten minutes allowed against a 5-minute cold start, so replicas launch on demand; Poisson
  // 0.3/s of 10 s jobs, one at a time per replica. Erlang's M/M/n margin is for exponential
  // service: fixed service, on the same arrivals, is sized on fewer slots now and then (a replica
  // less, held a cold start), so the same half hour costs less.
  Loop fixed, exponential;
  for (Loop* l : {&fixed, &exponential}) {
    l->max_wait = 10min;
    l->cold_start = 5min;
    l->concurrency = 1;
  }
  exponential.scv = 1;
  Random a(5), b(5);
  InFlight fixed_flight(10), exponential_flight(10);
  Decision f, e;
  int fixed_seconds = 0, exponential_seconds = 0;
  for (int i = 0; i < 1800; ++i) {
    f = poisson_second(fixed, a, fixed_flight, 0.3, 10.0);
    e = poisson_second(exponential, b, exponential_flight, 0.3, 10.0);
    fixed_seconds += fixed.current;
    exponential_seconds += exponential.current;
  }
  EXPECT_TRUE(has(f, "Poisson-like arrivals, service scv 0.00")) << f.reason;
  EXPECT_FALSE(has(e, "Poisson-like arrivals")) << e.reason;
  EXPECT_LT(fixed_seconds, exponential_seconds);
}

TEST(TidePolicy, AFallingLoadIsSizedOnTheTrafficSinceTheFallNotTheWholeHour) {
  // Poisson 12/s for half an hour, then 3/s (4 s each). Within minutes of the fall the group
  // needs what 12 in service need, not the hour's replay that holds the 48 before it.
  Loop l;
  Random rng(4);
  InFlight flight(4);
  Decision d;
  for (int i = 0; i < 1800; ++i) d = poisson_second(l, rng, flight, 12, 4.0);
  const int before = l.current;
  for (int i = 0; i < 900; ++i) d = poisson_second(l, rng, flight, 3, 4.0);
  EXPECT_GE(before, 7) << d.reason;
  EXPECT_LE(l.current, 3) << d.reason;
  EXPECT_TRUE(has(d, "since the rate fell")) << d.reason;
}

TEST(TidePolicy, RequestsQueuedAfterABurstKeepTheReplicasThatServeThem) {
  // SLO 10 min, longer than the 5 min cold start: a burst (20 s each) fills 20 replicas of 8
  // slots and leaves 169 queued when arrivals stop. The ready replicas could start them
  // within 10 min, but releasing them would make the queue wait a cold start (seen on
  // idle-week-long-jobs: 14 -> 0 with 169 queued, 65 requests timed out).
  Loop l;
  l.max_wait = 10min;
  l.cold_start = 5min;
  l.current = 20;
  for (int i = 0; i < 600; ++i) l.step(1, 160, 100, 20.0);
  Decision d;
  for (int i = 0; i < 60; ++i) d = l.step(0, 160, 169, 20.0);
  EXPECT_GE(l.current, 20) << d.reason;
  EXPECT_TRUE(has(d, "160 in service keep 20 in use")) << d.reason;
}

// One replica of one slot (30 s jobs), a 60 s cold start and 90 s allowed: a launch on demand
// starts a lone request in time.
Loop on_demand_loop() {
  Loop l;
  l.concurrency = 1;
  l.cold_start = 60s;
  l.max_wait = 90s;
  return l;
}

// A lone request every ten minutes: it waits for its replica's cold start, is served, and the
// group goes idle again.
int most_for_lone_requests(Loop& l, int requests) {
  int most = 0;
  for (int r = 0; r < requests; ++r) {
    l.step(1, 0, 1, 30.0, 0);
    most = std::max(most, l.current);
    for (int i = 0; i < 60; ++i) l.step(0, 0, 1, 30.0, 0);
    for (int i = 0; i < 30; ++i) l.step(0, 1, 0, 30.0);
    for (int i = 0; i < 510; ++i) l.step(0, 0, 0, 30.0);
  }
  return most;
}

TEST(TidePolicy, OnDemandAQueueGrowingThroughTheFirstColdStartGetsASlotForEachRequest) {
  // Before any request has completed, service time is unknown. Where the SLO is shorter than a
  // cold start, the queue growing while the first replicas start is late whatever is launched:
  // one launch, then wait for them. On demand it is what launches are for: a slot for each
  // queued request starts them all when the replicas are ready (idle-week-long-jobs: its first
  // burst waited for two replicas, and 1.2% of the week's requests were late).
  Loop late, on_demand = on_demand_loop();
  late.completing = on_demand.completing = false;
  for (int queued = 2; queued <= 60; queued += 2) {
    late.step(2, 0, queued, 0.0, 0);
    on_demand.step(2, 0, queued, 0.0, 0);
  }
  EXPECT_LE(late.current, 2);
  EXPECT_GE(on_demand.current, 60);
}

TEST(TidePolicy, OnDemandALoneRequestGetsOneReplicaNotTheErlangMarginOfItsRate) {
  // One arrival in the keep window reads as a rate of 1/min: Erlang's margin for it asked for two
  // replicas, and every lone request of diffusion-bursts paid a second cold start for nothing.
  Loop l = on_demand_loop();
  EXPECT_EQ(most_for_lone_requests(l, 10), 1);
}

TEST(TidePolicy, OnDemandAQueueGetsTheReplicasThatStartItWithinTheWaitLeftAfterAColdStart) {
  // Six requests at once: a replica ready after 60 s starts two of them within the 90 s allowed
  // (one when ready, one 30 s later), so three replicas, not two (a third request each would
  // start at 120 s) and not the five of Erlang's margin for a rate of 6 a minute.
  Loop l = on_demand_loop();
  most_for_lone_requests(l, 1);  // the service time is known
  ASSERT_EQ(l.current, 0);
  const Decision d = l.step(6, 0, 6, 30.0, 0);
  EXPECT_EQ(d.desired, 3) << d.reason;
}

TEST(TidePolicy, ABusySlotOfHeavyTailedRequestsStartsTheQueueOnlyAfterItsResidualService) {
  // Service times of mean 4 s and squared coefficient of variation 25: a busy slot is expected
  // to stay busy s (1 + scv) / 2 = 52 s more, not 4 s. 16 requests queued behind one replica's 4
  // busy slots: within the 60 s allowed they start 2 each, so 8 need a second replica (counting
  // 60 / 4 = 15 starts per slot saw room for 60 and launched none).
  Loop l;
  l.concurrency = 4;
  l.cold_start = 30s;
  l.max_wait = 60s;
  l.scv = 25;
  l.current = 1;
  for (int i = 0; i < 1000; ++i) l.step(i % 10 == 0 ? 1 : 0, 1, 0, 4.0);
  ASSERT_EQ(l.current, 1);
  const Decision d = l.step(20, 4, 16, 4.0);
  EXPECT_GE(d.desired, 2) << d.reason;
  EXPECT_TRUE(has(d, "queued beyond")) << d.reason;
}

// The mean service time in a decision's reason ("x service 12.34s").
double service_in(const Decision& d) {
  const size_t at = d.reason.find("x service ");
  return at == std::string::npos ? -1 : std::stod(d.reason.substr(at + 10));
}

TEST(TidePolicy, ServiceTimeCountsTheRequestsStillInServiceNotOnlyTheFirstToFinish) {
  // 32 requests start at once on 4 replicas; after 6 s one has finished, in 5 s. The mean of
  // completions says 5 s; the 31 still running have taken 6 s each so far. Total time in
  // service over completions (the estimate of a mean with unfinished ones censored) says more.
  auto d = make_tide_policy(group());
  Observation o;
  o.interval = 1s;
  o.concurrency = 8;
  o.max_replicas = 100;
  o.cold_start = 60s;
  o.max_wait = 2s;
  o.current = o.ready = 4;
  Decision dec;
  for (int i = 1; i <= 6; ++i) {
    o.now = Time{} + std::chrono::seconds(i);
    o.arrivals = i == 1 ? 32 : 0;
    o.in_flight = i == 6 ? 31 : 32;
    o.avg_in_flight = 32;
    o.completions = i == 6 ? 1 : 0;
    o.service_sum_s = i == 6 ? 5.0 : 0;
    o.service_sq_sum_s2 = i == 6 ? 25.0 : 0;
    o.last_activity = o.now;
    dec = d->decide(o);
  }
  EXPECT_GE(service_in(dec), 6 * 31.0) << dec.reason;
}

TEST(RecurringRise, FindsTheShortestPeriodOfARiseAndItsSize) {
  RecurringRise r(1h, 3);
  Time now{};
  for (int i = 0; i < 4 * 420; ++i) {
    now += 1s;
    r.add(now, 1s, 10 + (i % 420 >= 400 ? 30 : 0));  // +30 for 20 s every 7 minutes
  }
  // 20 s before the next rise: due within a cold start.
  for (int i = 0; i < 400 - 20; ++i) {
    now += 1s;
    r.add(now, 1s, 10);
  }
  const RecurringRise::Rise rise = r.expected(60s);
  EXPECT_EQ(rise.period, 7min);
  EXPECT_NEAR(rise.rise, 30, 1e-9);
  // Farther ahead than the horizon: not yet.
  EXPECT_EQ(r.expected(10s).rise, 0);
}

TEST(RecurringRise, IgnoresNoiseAndRisesThatStoppedRecurring) {
  RecurringRise noise(1h, 3), stopped(1h, 3);
  Random rng(7);
  Time now{};
  for (int i = 0; i < 4 * 3600; ++i) {
    now += 1s;
    noise.add(now, 1s, static_cast<double>(poisson(rng, 25)));  // Poisson occupancy: no pattern
    // A rise every 5 minutes for two hours, then no more.
    stopped.add(now, 1s, 10 + (i < 7200 && i % 300 >= 280 ? 30 : 0));
    if (i % 10 == 0) {
      EXPECT_EQ(noise.expected(60s).rise, 0) << "at " << i << " s";
      // Once the longest period no longer fits in the two hours it recurred (a rise every
      // 5 minutes also recurs every 55), it is forgotten.
      if (i > 7200 + 3600) {
        EXPECT_EQ(stopped.expected(60s).rise, 0) << "at " << i << " s";
      }
    }
  }
}

// Occupancy of batches at random: `size` more requests for 8 s, at exponential gaps of mean
// `gap_s`, over a base of 10.
struct RandomBatches {
  Random rng{11};
  double next_at = 0, until = 0;
  double at(double t, double size, double gap_s) {
    if (t >= next_at) {
      until = t + 8;
      next_at = t + rng.exponential(gap_s);
    }
    return 10 + (t < until ? size : 0);
  }
};

TEST(RecurringRise, BatchesAtRandomAreNoRiseButOneThatRecursStillIs) {
  // Batches of 60 every ~20 s: far beyond Poisson noise at a base of 10, and at random. With a
  // cold start of 5 minutes, some batch falls at the same point of some period in each of the
  // last cycles by chance; their bins' own spread says it is noise. A rise of 300 every 7
  // minutes over the same batches recurs.
  RecurringRise batches(1h, 3), recurring(1h, 3);
  RandomBatches a, b;
  Time now{};
  int found = 0, checks = 0;
  for (int i = 0; i < 4 * 3600; ++i) {
    now += 1s;
    batches.add(now, 1s, a.at(i, 60, 20));
    recurring.add(now, 1s, b.at(i, 60, 20) + (i % 420 >= 400 ? 300 : 0));
    if (i % 10 == 0 && i > 3 * 3600) {
      EXPECT_EQ(batches.expected(5min).rise, 0) << "at " << i << " s";
      const RecurringRise::Rise rise = recurring.expected(5min);
      // Also found at its multiples (35, 49 minutes, ...), where the batches added more.
      found += rise.rise >= 200 && rise.period % 7min == 0s;
      ++checks;
    }
  }
  EXPECT_GE(found, checks / 2) << "the 7-minute rise is due within 5 minutes most of the time";
}

TEST(RecurringRise, AStepUpThatStaysIsNoRecurringRise) {
  // Nothing in service for 5 minutes (a first cold start), then a steady 60 from then on. The
  // means over a cold start before the last cycles of a 1 or 2 minute period straddle the step,
  // and the level after it reads as a rise in each; the level over one period before each point
  // does not.
  RecurringRise r(1h, 3);
  Time now{};
  for (int i = 0; i < 3600; ++i) {
    now += 1s;
    r.add(now, 1s, i < 300 ? 0.0 : 60.0);
    if (i % 10 == 0) {
      EXPECT_EQ(r.expected(5min).rise, 0) << "at " << i << " s";
    }
  }
}

TEST(RecurringRise, SpreadsLongTicksOverTheBinsTheyCover) {
  // A 25 s control tick covers parts of three 10 s bins: a steady load must not read as a
  // rise at every tick.
  RecurringRise r(1h, 3);
  Time now{};
  for (int i = 0; i < 4 * 3600 / 25; ++i) {
    now += 25s;
    r.add(now, 25s, 20);
    EXPECT_EQ(r.expected(60s).rise, 0) << "at " << to_seconds(now) << " s";
  }
}

}  // namespace
}  // namespace tide::policy
