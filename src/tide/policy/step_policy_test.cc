#include <gtest/gtest.h>

#include "tide/policy/policies.h"
#include "tide/policy/policy_test_util.h"

namespace tide::policy {
namespace {

using namespace std::chrono_literals;
using Adjustment = config::StepPolicy::Adjustment;
using testing::Driver;
using testing::GroupState;

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

// Concurrency per replica; a window of one tick keeps the arithmetic exact.
config::StepPolicy bands() {
  config::StepPolicy p;
  p.metric = config::Metric::kConcurrency;
  p.adjustment = Adjustment::kChange;
  p.steps = {{std::nullopt, 0.3, -1}, {0.3, 0.8, 0}, {0.8, 1.5, 1}, {1.5, std::nullopt, 3}};
  p.window = 1s;
  return p;
}

// `ready` replicas with `per_replica` requests each on average.
GroupState at(int ready, double per_replica) {
  return {.ready = ready,
          .in_flight = static_cast<int>(per_replica * ready + 0.5),
          .max_replicas = 100};
}

int decide_once(const config::StepPolicy& p, const GroupState& g) {
  auto decider = make_step_policy(p);
  Driver drive(*decider);
  return drive.tick(g).desired;
}

TEST(StepPolicy, BandsLowerInclusiveUpperExclusive) {
  EXPECT_EQ(decide_once(bands(), at(10, 0.2)), 9);
  EXPECT_EQ(decide_once(bands(), at(10, 0.3)), 10);  // 0.3 opens the no-change band
  EXPECT_EQ(decide_once(bands(), at(10, 0.7)), 10);
  EXPECT_EQ(decide_once(bands(), at(10, 0.8)), 11);  // 0.8 opens the +1 band
  EXPECT_EQ(decide_once(bands(), at(10, 1.5)), 13);
  EXPECT_EQ(decide_once(bands(), at(10, 4.0)), 13);
}

TEST(StepPolicy, ReasonShowsBand) {
  auto decider = make_step_policy(bands());
  Driver drive(*decider);
  const Decision d = drive.tick(at(10, 0.8));
  EXPECT_TRUE(contains(d.reason, "0.80 over 1s in [0.8, 1.5): change +1: 10 -> 11")) << d.reason;
}

TEST(StepPolicy, NoBandNoChange) {
  config::StepPolicy p = bands();
  p.steps = {{1.0, 2.0, 1}};
  const int desired = decide_once(p, at(10, 0.5));
  EXPECT_EQ(desired, 10);
}

TEST(StepPolicy, PercentRoundsAwayFromZeroAtLeastOne) {
  config::StepPolicy p = bands();
  p.adjustment = Adjustment::kPercent;
  p.steps = {{std::nullopt, 0.3, -10}, {1.0, std::nullopt, 25}};
  EXPECT_EQ(decide_once(p, at(10, 2.0)), 13);                        // 25% of 10 = 2.5 -> 3
  EXPECT_EQ(decide_once(p, at(2, 2.0)), 3);                          // 0.5 -> 1
  EXPECT_EQ(decide_once(p, at(5, 0.0)), 4);                          // -10% of 5 = -0.5 -> -1
  EXPECT_EQ(decide_once(p, {.queued = 2, .max_replicas = 100}), 1);  // from zero: at least one
}

TEST(StepPolicy, ExactSetsTheCount) {
  config::StepPolicy p = bands();
  p.adjustment = Adjustment::kExact;
  p.steps = {{1.0, std::nullopt, 7}, {std::nullopt, 1.0, 2}};
  EXPECT_EQ(decide_once(p, at(3, 2.0)), 7);
  EXPECT_EQ(decide_once(p, at(3, 0.0)), 2);
}

TEST(StepPolicy, MetricAveragedOverWindow) {
  config::StepPolicy p = bands();
  p.window = 10s;
  auto decider = make_step_policy(p);
  Driver drive(*decider);
  drive.run(9s, at(10, 0.0));
  // One second at 4.0 after nine at 0: the average is 0.4, in the no-change band.
  EXPECT_EQ(drive.tick(at(10, 4.0)).desired, 10);
}

TEST(StepPolicy, CooldownBlocksSameDirectionOnly) {
  config::StepPolicy p = bands();  // cooldown_up 60s, cooldown_down 300s
  auto decider = make_step_policy(p);
  Driver drive(*decider);
  EXPECT_EQ(drive.tick(at(10, 1.0)).desired, 11);  // t=1: up
  Decision d = drive.run(30s, at(11, 1.0));        // t=31
  EXPECT_EQ(d.desired, 11);
  EXPECT_TRUE(contains(d.reason, "held by cooldown_up (30s of 1m)")) << d.reason;
  EXPECT_EQ(drive.tick(at(11, 0.0)).desired, 10);       // t=32: down is not blocked by the up
  EXPECT_EQ(drive.run(28s, at(11, 1.0)).desired, 11);   // t=60: 59 s after the up
  EXPECT_EQ(drive.tick(at(11, 1.0)).desired, 12);       // t=61
  EXPECT_EQ(drive.run(270s, at(10, 0.0)).desired, 10);  // t=331: 299 s after the down
  EXPECT_EQ(drive.tick(at(10, 0.0)).desired, 9);        // t=332
}

}  // namespace
}  // namespace tide::policy
