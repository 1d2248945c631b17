#include <gtest/gtest.h>

#include "tide/policy/policies.h"
#include "tide/policy/policy_test_util.h"

namespace tide::policy {
namespace {

using namespace std::chrono_literals;
using testing::Driver;
using testing::GroupState;

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

// Knative defaults (60 s stable, 6 s panic, threshold 200%, tick 2 s) with target 1 request.
config::ConcurrencyPolicy kpa() {
  config::ConcurrencyPolicy p;
  p.target = 1;
  return p;
}

GroupState load(int ready, int concurrency) {
  return {.ready = ready, .in_flight = concurrency, .max_replicas = 100};
}

TEST(ConcurrencyPolicy, StableModeFollowsStableAverage) {
  auto decider = make_concurrency_policy(kpa());
  Driver drive(*decider);
  EXPECT_EQ(drive.first(load(1, 1)).desired, 1);  // t=0: no data yet
  drive.tick(load(3, 3));
  const Decision d = drive.tick(load(3, 3));  // t=2: evaluated
  EXPECT_EQ(d.desired, 3);
  EXPECT_EQ(d.reason,
            "no change: knative stable: observed 3.0 over 1m window / target 1.00 = 3 pods");
}

TEST(ConcurrencyPolicy, EvaluatesEveryTick) {
  auto decider = make_concurrency_policy(kpa());
  Driver drive(*decider);
  drive.first(load(1, 1));
  const Decision d = drive.tick(load(1, 1));  // t=1
  EXPECT_EQ(d.reason, "waiting for knative tick (1s of 2s): keep 1");
}

// A burst: panic entry, no scale-down while panicking, exit a stable window after the last
// crossing.
TEST(ConcurrencyPolicy, PanicEntryHoldAndExit) {
  auto decider = make_concurrency_policy(kpa());
  Driver drive(*decider);
  drive.first(load(1, 1));
  EXPECT_EQ(drive.run(60s, load(3, 3)).desired, 3);

  // t=61, 62: 41 requests. Panic window (56, 62]: (4 x 3 + 2 x 41) / 6 = 15.7 -> 16 pods, which
  // is >= 2 x 3 ready. Stable window: (58 x 3 + 2 x 41) / 60 = 4.3 -> 5 pods.
  drive.tick(load(3, 41));
  Decision d = drive.tick(load(3, 41));
  EXPECT_EQ(d.desired, 16);
  EXPECT_EQ(d.reason,
            "knative panic entered: observed 15.7 over 6s window / target 1.00 = 16 pods >= 2 x 3 "
            "ready: 3 -> 16");

  // The burst is over; 16 replicas serve 3 requests. Still panicking: no scale-down.
  d = drive.run(38s, load(16, 3));  // t=100
  EXPECT_EQ(d.desired, 16);
  EXPECT_TRUE(contains(d.reason, "no scale-down while panicking, keep 16")) << d.reason;
  d = drive.run(22s, load(16, 3));  // t=122: 62 + 60 is not yet before now
  EXPECT_EQ(d.desired, 16);
  EXPECT_TRUE(contains(d.reason, "knative panic")) << d.reason;

  // t=124: out of panic; stable wants 3 but may only halve: floor(16 / 2) = 8.
  d = drive.run(2s, load(16, 3));
  EXPECT_EQ(d.desired, 8);
  EXPECT_EQ(d.reason,
            "knative stable (panic over): observed 3.0 over 1m window / target 1.00 = 3 pods "
            "(rate-limited to 8): 16 -> 8");
}

TEST(ConcurrencyPolicy, PanicExtendsWhileOverThreshold) {
  auto decider = make_concurrency_policy(kpa());
  Driver drive(*decider);
  drive.first(load(1, 1));
  drive.run(10s, load(2, 2));
  EXPECT_EQ(drive.run(2s, load(2, 20)).desired, 8);      // t=12: panic, (4 x 2 + 2 x 20) / 6
  EXPECT_EQ(drive.run(100s, load(20, 60)).desired, 60);  // still over 2 x 20 at t=112
  // Over until t=112; at t=172 the panic still holds the 60 replicas.
  EXPECT_EQ(drive.run(60s, load(60, 1)).desired, 60);
  EXPECT_LT(drive.run(2s, load(60, 1)).desired, 60);  // t=174
}

TEST(ConcurrencyPolicy, ScaleUpRateLimit) {
  config::ConcurrencyPolicy p = kpa();
  p.max_scale_up_rate = 2;
  auto decider = make_concurrency_policy(p);
  Driver drive(*decider);
  drive.first(load(1, 1));
  drive.tick(load(2, 20));
  const Decision d = drive.tick(load(2, 20));  // wants 20, may reach ceil(2 x 2) = 4
  EXPECT_EQ(d.desired, 4);
  EXPECT_TRUE(contains(d.reason, "= 20 pods (rate-limited to 4)")) << d.reason;
}

// Knative starts in panic over more than one pod; then scale-down halves per evaluation, and the
// last replica waits for the scale-to-zero grace.
TEST(ConcurrencyPolicy, StartsInPanicThenScaleDownRate) {
  auto decider = make_concurrency_policy(kpa());
  Driver drive(*decider);
  drive.first(load(10, 0));
  EXPECT_EQ(drive.run(60s, load(10, 0)).desired, 10);  // t=60: panic since t=0
  EXPECT_EQ(drive.run(2s, load(10, 0)).desired, 5);    // t=62: floor(10 / 2)
  EXPECT_EQ(drive.run(2s, load(5, 0)).desired, 2);
  EXPECT_EQ(drive.run(2s, load(2, 0)).desired, 1);
  const Decision d = drive.run(2s, load(1, 0));  // t=68: wants 0; no traffic ever, since t=0
  EXPECT_EQ(d.desired, 1);
  EXPECT_TRUE(contains(d.reason, "no traffic for 68s of 1m + 30s grace, keep 1")) << d.reason;
  EXPECT_EQ(drive.run_until_change(load(1, 0), 60s).desired, 0);
  EXPECT_EQ(drive.seconds(), 90);
}

TEST(ConcurrencyPolicy, ScaleToZeroAfterStableWindowPlusGrace) {
  auto decider = make_concurrency_policy(kpa());
  Driver drive(*decider);
  drive.first(load(1, 1));
  drive.run(20s, load(1, 1));  // last traffic at t=20
  EXPECT_EQ(drive.run_until_change(load(1, 0), 200s).desired, 0);
  EXPECT_EQ(drive.seconds(), 110);  // 20 + 60 stable + 30 grace
}

TEST(ConcurrencyPolicy, ScaleDownDelayKeepsMaxRecommendation) {
  config::ConcurrencyPolicy p = kpa();
  p.stable_window = 10s;  // panic window 1 s
  p.scale_down_delay = 30s;
  auto decider = make_concurrency_policy(p);
  Driver drive(*decider);
  drive.first(load(1, 1));
  EXPECT_EQ(drive.run(20s, load(4, 4)).desired, 4);
  // From t=21 the load is 2. Stable recommendations: t=22: 4, t=24: 4, t=26: 3, t=28: 3,
  // t=30: 2. The last 4 (t=24) leaves the 30 s delay window at t=54.
  const Decision d = drive.run_until_change(load(4, 2), 60s);
  EXPECT_EQ(drive.seconds(), 54);
  EXPECT_EQ(d.desired, 3);
  EXPECT_EQ(drive.run(4s, load(4, 2)).desired, 2);  // t=58: the t=28 recommendation left too
}

TEST(ConcurrencyPolicy, DefaultTargetIsSeventyPercentOfConcurrency) {
  auto decider = make_concurrency_policy(config::ConcurrencyPolicy{});
  Driver drive(*decider);
  GroupState g = load(1, 1);
  g.concurrency = 10;
  drive.first(g);
  g = load(2, 14);
  g.concurrency = 10;
  drive.tick(g);
  const Decision d = drive.tick(g);
  EXPECT_EQ(d.desired, 2);
  EXPECT_TRUE(contains(d.reason, "target 7.00 = 2 pods")) << d.reason;
}

TEST(ConcurrencyPolicy, RequestAtZeroIsEvaluatedWithoutWaitingForTick) {
  auto decider = make_concurrency_policy(kpa());
  Driver drive(*decider);
  drive.first({.max_replicas = 100});
  // t=1: odd second, not an evaluation tick, but the group is at zero and a request waits.
  // 0 ready counts as 1: 1 pod, not a panic (1 / 1 < 2).
  const Decision d = drive.tick({.queued = 1, .max_replicas = 100});
  EXPECT_EQ(d.desired, 1);
  EXPECT_EQ(d.reason, "knative stable: observed 1.0 over 1m window / target 1.00 = 1 pods: 0 -> 1");
}

}  // namespace
}  // namespace tide::policy
