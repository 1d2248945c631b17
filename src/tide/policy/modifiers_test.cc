#include <gtest/gtest.h>

#include "tide/policy/policies.h"
#include "tide/policy/policy_test_util.h"

namespace tide::policy {
namespace {

using namespace std::chrono_literals;
using testing::Driver;
using testing::GroupState;

// An inner policy that recommends whatever the test sets.
class Scripted final : public Decider {
 public:
  Decision decide(const Observation&) override { return {desired, "inner"}; }
  int desired = 0;
};

// A modifiers wrapper around a Scripted inner policy, driven on virtual time.
struct Wrapped {
  explicit Wrapped(const config::Modifiers& m, bool min_one = false) {
    auto inner = std::make_unique<Scripted>();
    script = inner.get();
    decider = wrap_with_modifiers(std::move(inner), m, min_one);
    drive = std::make_unique<Driver>(*decider);
  }
  // One tick with `current` ready replicas while the inner policy recommends `wanted`.
  Decision tick(int current, int wanted, GroupState g = {.max_replicas = 10}) {
    script->desired = wanted;
    g.ready = current;
    return drive->tick(g);
  }
  Decision run(Duration d, int current, int wanted) {
    Decision last;
    for (Duration t{0}; t < d; t += 1s) last = tick(current, wanted);
    return last;
  }

  Scripted* script;
  std::unique_ptr<Decider> decider;
  std::unique_ptr<Driver> drive;
};

TEST(Modifiers, BoundsFromObservation) {
  Wrapped w({});
  Decision d = w.tick(2, 12, {.min_replicas = 1, .max_replicas = 4});
  EXPECT_EQ(d.desired, 4);
  EXPECT_EQ(d.reason, "inner; capped at max 4");
  d = w.tick(2, 0, {.min_replicas = 1, .max_replicas = 4});
  EXPECT_EQ(d.desired, 1);
  EXPECT_EQ(d.reason, "inner; raised to min 1");
}

TEST(Modifiers, MinOneForcesAtLeastOne) {
  Wrapped w({}, /*min_one=*/true);
  EXPECT_EQ(w.tick(2, 0).desired, 1);
}

TEST(Modifiers, IdleTimeoutScalesToZeroFromLastActivity) {
  config::Modifiers m;
  m.idle_timeout = 60s;
  Wrapped w(m);
  GroupState g{.max_replicas = 10, .last_activity = kTimeZero + 5s};
  EXPECT_EQ(w.tick(2, 2, g).desired, 2);  // t=1
  w.script->desired = 2;
  g.ready = 2;
  w.drive->run(63s, g);                   // t=64: idle 59 s
  EXPECT_EQ(w.tick(2, 2, g).desired, 0);  // t=65: idle 60 s
  const Decision d = w.tick(2, 2, g);
  EXPECT_EQ(d.reason, "inner; group idle 61s >= idle_timeout 1m: 2 -> 0");
}

TEST(Modifiers, IdleTimeoutCountsFromFirstObservationWithoutActivity) {
  config::Modifiers m;
  m.idle_timeout = 30s;
  Wrapped w(m);
  EXPECT_EQ(w.tick(1, 1).desired, 1);      // t=1: first observation
  EXPECT_EQ(w.run(29s, 1, 1).desired, 1);  // t=30
  EXPECT_EQ(w.tick(1, 1).desired, 0);      // t=31
}

TEST(Modifiers, IdleTimeoutNeedsMinZeroAndNoWork) {
  config::Modifiers m;
  m.idle_timeout = 30s;
  Wrapped w(m);
  w.tick(1, 1);
  w.run(60s, 1, 1);
  // A request in service for longer than the timeout keeps the group.
  EXPECT_EQ(w.tick(1, 1, {.in_flight = 1, .max_replicas = 10}).desired, 1);
  EXPECT_EQ(w.tick(1, 1, {.queued = 1, .max_replicas = 10}).desired, 1);
  EXPECT_EQ(w.tick(1, 1, {.min_replicas = 1, .max_replicas = 10}).desired, 1);
  EXPECT_EQ(w.tick(1, 1).desired, 0);
}

TEST(Modifiers, HysteresisIgnoresSmallScaleDowns) {
  config::Modifiers m;
  m.hysteresis = 0.25;
  Wrapped w(m);
  Decision d = w.tick(4, 3);  // 3 is not below 4 x 0.75 = 3
  EXPECT_EQ(d.desired, 4);
  EXPECT_EQ(d.reason, "inner; held by hysteresis (3 >= 4 x 0.75 = 3)");
  EXPECT_EQ(w.tick(4, 2).desired, 2);
  EXPECT_EQ(w.tick(4, 5).desired, 5);  // scale-ups are not affected
}

TEST(Modifiers, UpIntervalAllowsOneScaleUpPerInterval) {
  config::Modifiers m;
  m.up_interval = 180s;
  Wrapped w(m);
  EXPECT_EQ(w.tick(1, 2).desired, 2);  // t=1: the first is allowed at once
  Decision d = w.tick(2, 3);           // t=2
  EXPECT_EQ(d.desired, 2);
  EXPECT_EQ(d.reason, "inner; held by up_interval (1s of 3m)");
  EXPECT_EQ(w.tick(2, 1).desired, 1);       // t=3: down has its own interval (0 here)
  EXPECT_EQ(w.run(177s, 1, 3).desired, 1);  // t=180
  EXPECT_EQ(w.tick(1, 3).desired, 3);       // t=181
}

TEST(Modifiers, DownIntervalAllowsOneScaleDownPerInterval) {
  config::Modifiers m;
  m.down_interval = 300s;
  Wrapped w(m);
  EXPECT_EQ(w.tick(4, 3).desired, 3);
  EXPECT_EQ(w.run(299s, 3, 2).desired, 3);
  EXPECT_EQ(w.tick(3, 2).desired, 2);
}

TEST(Modifiers, DownDelayNeedsContinuousRecommendation) {
  config::Modifiers m;
  m.down_delay = 600s;
  Wrapped w(m);
  EXPECT_EQ(w.tick(4, 2).desired, 4);  // t=1: streak starts
  Decision d = w.run(12s, 4, 2);       // t=13
  EXPECT_EQ(d.desired, 4);
  EXPECT_EQ(d.reason, "inner; held by down_delay (12s of 10m)");
  // An interruption restarts the streak.
  EXPECT_EQ(w.run(300s, 4, 2).desired, 4);  // t=313
  EXPECT_EQ(w.tick(4, 4).desired, 4);       // t=314: no scale-down recommended
  EXPECT_EQ(w.run(600s, 4, 2).desired, 4);  // t=914: 599 s into the new streak (from t=315)
  EXPECT_EQ(w.tick(4, 1).desired, 1);       // t=915: 600 s; the latest recommendation applies
}

TEST(Modifiers, UpDelay) {
  config::Modifiers m;
  m.up_delay = 30s;
  Wrapped w(m);
  EXPECT_EQ(w.run(30s, 1, 3).desired, 1);  // t=1..30
  EXPECT_EQ(w.tick(1, 3).desired, 3);      // t=31
}

TEST(Modifiers, HeldDecisionStillRespectsNewBounds) {
  config::Modifiers m;
  m.down_delay = 600s;
  Wrapped w(m);
  // max_replicas lowered below the current count: the bound wins over the delay.
  EXPECT_EQ(w.tick(4, 2, {.max_replicas = 3}).desired, 3);
}

}  // namespace
}  // namespace tide::policy
