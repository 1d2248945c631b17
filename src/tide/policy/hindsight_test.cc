#include "tide/policy/hindsight.h"

#include <gtest/gtest.h>

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

TEST(HindsightFleet, RecentReplaysTheLongestRunBackFromNowThatSpeaksForNow) {
  // 40 minutes at 1/s, then 10 at 6/s: the runs back from now whose rate is 6/s are those
  // within the last 10 minutes, and the longest of them is all of it.
  HindsightFleet h(1h), since_rise(1h);
  Time now{};
  for (int i = 0; i < 3000; ++i) {
    now += 1s;
    h.add(now, 1s, i < 2400 ? 1 : 6);
    if (i >= 2400) since_rise.add(now, 1s, 6);
  }
  const HindsightFleet::Service service{4.0, 0.5};
  const HindsightFleet::Target target{2s, 0.01};
  const auto fast = [](uint64_t n, double seconds) {
    return static_cast<double>(n) >= 6 * seconds;
  };
  const HindsightFleet::Recent r = h.recent(now, fast, 1000, 8, service, target, 100);
  EXPECT_EQ(r.arrivals, 3600u);
  EXPECT_DOUBLE_EQ(r.span_s, 600);
  EXPECT_EQ(r.fleet, since_rise.fleet(now, 8, service, target, 100));
  EXPECT_GT(r.fleet, 1);
}

TEST(HindsightFleet, RecentIsNoneWhereNoRunOfEnoughArrivalsSpeaksForNow) {
  HindsightFleet few(1h), slow(1h);
  Time now{};
  for (int i = 0; i < 600; ++i) {
    now += 1s;
    few.add(now, 1s, 1);  // 600 arrivals: fewer than the 1,000 asked for
    slow.add(now, 1s, 2);
  }
  const auto any = [](uint64_t, double) { return true; };
  const auto never = [](uint64_t, double) { return false; };
  EXPECT_EQ(few.recent(now, any, 1000, 8, {4.0, 0}, {2s, 0.01}, 100).fleet, 0);
  EXPECT_EQ(slow.recent(now, never, 1000, 8, {4.0, 0}, {2s, 0.01}, 100).fleet, 0);
  EXPECT_GT(slow.recent(now + 31s, any, 1000, 8, {4.0, 0}, {2s, 0.01}, 100).fleet, 0);
}

}  // namespace
}  // namespace tide::policy
