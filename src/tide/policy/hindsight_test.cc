#include "tide/policy/hindsight.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "tide/common/random.h"
#include "tide/policy/policy_test_util.h"

namespace tide::policy {
namespace {

using namespace std::chrono_literals;

// A batch of `size` requests within one second every `every`, for `batches` batches.
Time add_batches(HindsightFleet& h, int size, Duration every, int batches) {
  Time now{};
  for (int b = 0; b < batches; ++b) {
    for (Duration t{0}; t < every; t += 1s) {
      now += 1s;
      h.add(now, 1s, t.count() == 0 ? static_cast<uint64_t>(size) : 0);
    }
  }
  return now;
}

// `seconds` of `per_s` arrivals every second.
Time add_steady(HindsightFleet& h, Time now, int seconds, uint64_t per_s) {
  for (int i = 0; i < seconds; ++i) h.add(now += 1s, 1s, per_s);
  return now;
}

TEST(HindsightFleet, ABatchNeedsSlotsForAllOfItWhenTheSloIsShorterThanAService) {
  HindsightFleet h(1h);
  const Time now = add_batches(h, 40, 3min, 10);
  // 40 requests of 4 s that may wait 2 s: all of them start at once on 5 replicas of 8 slots;
  // on 4, a fifth of them waits 4 s.
  EXPECT_EQ(h.fleet(now, 8, {4.0, 0}, {2s, 0.01}, 100), 5);
  EXPECT_NEAR(h.late_share(4, 8, {4.0, 0}, 2s), 0.2, 1e-9);
  EXPECT_EQ(h.late_share(5, 8, {4.0, 0}, 2s), 0);
  // Waiting up to 5 s, the second round fits: 3 replicas (24 slots, 16 wait 4 s).
  EXPECT_EQ(h.fleet(now + 30s, 8, {4.0, 0}, {5s, 0.01}, 100), 3);
}

TEST(HindsightFleet, AMaxOfBillionsOfReplicasReplaysOnlyTheSlotsItsArrivalsCanUse) {
  HindsightFleet h(1h);
  const Time now = add_batches(h, 40, 3min, 10);
  // Two billion replicas of 8 slots would be 16 billion slots (128 GB) if each were kept.
  EXPECT_EQ(h.fleet(now, 8, {4.0, 0}, {2s, 0.01}, 2'000'000'000), 5);
  EXPECT_EQ(h.late_share(2'000'000'000, 8, {4.0, 0}, 2s), 0);
}

TEST(HindsightFleet, HeavierTailsNeedMoreReplicasAtTheSameMeanService) {
  HindsightFleet h(1h);
  Time now{};
  for (int i = 0; i < 3600; ++i) h.add(now += 1s, 1s, 2);  // 2/s of 4 s: 8 in service
  const int light = h.fleet(now, 1, {4.0, 0}, {1s, 0.01}, 100);
  const int heavy = h.fleet(now + 31s, 1, {4.0, 4.0}, {1s, 0.01}, 100);
  EXPECT_GE(light, 8);
  EXPECT_GT(heavy, light);
}

TEST(HindsightFleet, ForgetsArrivalsOlderThanItsWindowAndCapsAtMaxReplicas) {
  HindsightFleet h(10min);
  Time now = add_batches(h, 400, 1min, 2);
  EXPECT_EQ(h.fleet(now, 8, {4.0, 0}, {2s, 0.01}, 20), 20) << "50 needed, 20 allowed";
  EXPECT_EQ(h.arrivals(), 800u);
  now += 10min;
  EXPECT_EQ(h.fleet(now, 8, {4.0, 0}, {2s, 0.01}, 20), 0);
  EXPECT_EQ(h.arrivals(), 0u);
}

TEST(HindsightFleet, TheFleetFoundIsTheSmallestMeetingTheTargetWhereverTheLastOneWas) {
  // The search starts at the last answer: batches that grow and shrink tenfold move it far both
  // ways, and each answer must still be the smallest fleet whose late share meets the target.
  HindsightFleet h(2min);
  const HindsightFleet::Service service{4.0, 1.0};
  Time now{};
  int rises = 0, falls = 0, last = 0;
  for (const uint64_t batch : {10, 400, 40, 1200, 5, 300, 2, 800, 60}) {
    now = add_steady(h, now, 119, 1);
    h.add(now += 1s, 1s, batch);
    const int n = h.fleet(now, 4, service, {2s, 0.01}, 1000);
    ASSERT_GT(n, 0);
    EXPECT_LE(h.late_share(n, 4, service, 2s), 0.01) << "batch " << batch;
    if (n > 1) {
      EXPECT_GT(h.late_share(n - 1, 4, service, 2s), 0.01) << "batch " << batch;
    }
    rises += n > last;
    falls += n < last;
    last = n;
  }
  EXPECT_GE(rises, 4);
  EXPECT_GE(falls, 4);
}

TEST(HindsightFleet, ReplaysAtMostTheMostRecentArrivals) {
  // Ten times the cap in the window: the replay's work stays bounded, the answer is the same as
  // for the cap's worth of the same steady traffic.
  HindsightFleet many(1h), few(1h);
  Time now{};
  const uint64_t per_s = HindsightFleet::kMaxReplayed * 10 / 3600;
  for (int i = 0; i < 3600; ++i) {
    now += 1s;
    many.add(now, 1s, per_s);
    if (i >= 3600 - 360) few.add(now, 1s, per_s);
  }
  EXPECT_EQ(many.arrivals(), per_s * 3600);
  EXPECT_EQ(many.fleet(now, 8, {1.0, 1.0}, {1s, 0.01}, 1000),
            few.fleet(now, 8, {1.0, 1.0}, {1s, 0.01}, 1000));
}

TEST(HindsightFleet, SmoothTrafficThatFellIsReplayedOnlyFromTheFallOn) {
  // Half an hour at 10/s, then half an hour at 2/s (4 s each): what the hour's first half
  // needed speaks no more for the traffic now.
  HindsightFleet h(1h), after(1h);
  Time now = add_steady(h, Time{}, 1800, 10);
  now = add_steady(h, now, 1800, 2);
  add_steady(after, Time{} + 1800s, 1800, 2);
  const int fleet = h.fleet(now, 8, {4.0, 0}, {2s, 0.01}, 100);
  const auto fall_bin = static_cast<uint64_t>(HindsightFleet::kFallBin / 1s) * 2;
  EXPECT_EQ(h.replayed(), 3600u - fall_bin) << "the fall's own bin is left out";
  EXPECT_EQ(fleet, after.fleet(now, 8, {4.0, 0}, {2s, 0.01}, 100));
  EXPECT_LT(fleet, 5) << "40 in service before the fall need 5 replicas or more";
}

TEST(HindsightFleet, AFallKeepsTheArrivalsThatResolveTheShareAllowedToWait) {
  // Six minutes at 1/s after the fall: 360 arrivals cannot show 1% waiting; the replay reaches
  // back before the fall for the 1,000 that can.
  HindsightFleet h(1h);
  Time now = add_steady(h, Time{}, 1800, 10);
  now = add_steady(h, now, 360, 1);
  h.fleet(now, 8, {4.0, 0}, {2s, 0.01}, 100);
  EXPECT_EQ(h.replayed(), 1000u);
}

TEST(HindsightFleet, BurstsThatStoppedAreStillReplayed) {
  // Batches of 200 every 3 minutes for half an hour, then 1/s: the lull after bursts is no
  // fall (the counts spread far beyond Poisson's), and the bursts may come back.
  HindsightFleet h(1h);
  Time now = add_batches(h, 200, 3min, 10);
  now = add_steady(h, now, 1800, 1);
  const int fleet = h.fleet(now, 8, {4.0, 0}, {2s, 0.01}, 100);
  EXPECT_EQ(h.replayed(), h.arrivals());
  EXPECT_GE(fleet, 20) << "a batch of 200 needs 25 replicas to start within 2 s";
}

TEST(HindsightFleet, TellsPoissonLikeArrivalsFromBursts) {
  HindsightFleet steady(1h), batches(1h);
  Time now = add_steady(steady, Time{}, 1200, 5);
  EXPECT_TRUE(steady.smooth_traffic(now));
  now = add_batches(batches, 200, 3min, 7);
  EXPECT_FALSE(batches.smooth_traffic(now));
}

// An hour, second by second, from time 0: batches of 100 at random seconds (one in 15) into
// `batches`, and Poisson counts at rate(second) into `poisson`. Returns the end.
Time batches_beside_poisson(HindsightFleet& batches, HindsightFleet& poisson, Random& rng,
                            const std::function<double(int)>& rate) {
  Time now{};
  for (int i = 0; i < 3600; ++i) {
    now += 1s;
    batches.add(now, 1s, rng.uniform() < 1.0 / 15 ? 100 : 0);
    poisson.add(now, 1s, testing::poisson(rng, rate(i)));
  }
  return now;
}

TEST(HindsightFleet, DispersionIsTheBatchSizeForBatchesAndOneForPoissonCountsOfAMovingRate) {
  // Batches of 100 at random seconds (one in 15), and Poisson arrivals whose rate climbs from 2/s
  // to 12/s over the hour: the climb's counts vary far more than their mean around the hour's
  // mean, yet each bin spreads like a Poisson count around its own rate.
  HindsightFleet batches(1h), climbing(1h);
  Random rng(3);
  const Time now = batches_beside_poisson(batches, climbing, rng,
                                          [](int second) { return 2 + 10.0 * second / 3600; });
  EXPECT_GT(batches.dispersion(now), 50);
  EXPECT_LT(batches.dispersion(now), 200);
  EXPECT_LT(climbing.dispersion(now), 1.5);
  HindsightFleet young(1h);
  EXPECT_EQ(young.dispersion(add_batches(young, 100, 1min, 5)), 1) << "five minutes of counts";
}

TEST(HindsightFleet, TickDispersionIsTheBatchSizeForBatchesAndOneForOnOffPoisson) {
  // Batches of 100 at random seconds (one in 15), and Poisson arrivals that switch between 10/s
  // and 0.5/s every minute. Per 30 s bin both spread far beyond Poisson counts; per tick only the
  // batches do: the on/off traffic's neighbouring seconds are Poisson counts of the same rate.
  HindsightFleet batches(1h), onoff(1h);
  Random rng(4);
  const Time now = batches_beside_poisson(
      batches, onoff, rng, [](int second) { return (second / 60) % 2 == 0 ? 10 : 0.5; });
  EXPECT_GT(batches.tick_dispersion(now), 50);
  EXPECT_LT(batches.tick_dispersion(now), 200);
  EXPECT_GT(onoff.dispersion(now), 10) << "per 30 s bin, the phases are spread";
  EXPECT_LT(onoff.tick_dispersion(now), 1.5);
  EXPECT_EQ(batches.arrivals_within(now, 1h), batches.arrivals());
  EXPECT_LE(batches.arrivals_within(now, 10s), 1000U);
  HindsightFleet young(1h);
  EXPECT_EQ(young.tick_dispersion(add_batches(young, 100, 1min, 5)), 1) << "five minutes of ticks";
}

TEST(HindsightFleet, ARiseIsNoFall) {
  HindsightFleet h(1h);
  Time now = add_steady(h, Time{}, 1800, 2);
  now = add_steady(h, now, 1800, 10);
  h.fleet(now, 8, {4.0, 0}, {2s, 0.01}, 100);
  EXPECT_EQ(h.replayed(), h.arrivals());
}

}  // namespace
}  // namespace tide::policy
