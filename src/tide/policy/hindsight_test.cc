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

}  // namespace
}  // namespace tide::policy
