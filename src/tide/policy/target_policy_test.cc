#include <gtest/gtest.h>

#include "tide/policy/policies.h"
#include "tide/policy/policy_test_util.h"

namespace tide::policy {
namespace {

using namespace std::chrono_literals;
using config::RateLimit;
using config::ScalingRules;
using testing::Driver;
using testing::GroupState;

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

// HPA on utilization. A metric window of one tick keeps the arithmetic exact.
config::TargetPolicy hpa(double target, Duration window = 1s) {
  config::TargetPolicy p;
  p.metric = config::Metric::kUtilization;
  p.target = target;
  p.metric_window = window;
  return p;
}

GroupState busy(int ready, double busy_replicas, int max_replicas = 100) {
  return {.ready = ready, .max_replicas = max_replicas, .busy = busy_replicas};
}

TEST(TargetPolicy, NoChangeWithinTolerance) {
  auto decider = make_target_policy(hpa(0.8));
  Driver drive(*decider);
  const Decision d = drive.tick(busy(10, 8.5));  // 0.85 / 0.8 = 1.06
  EXPECT_EQ(d.desired, 10);
  EXPECT_TRUE(contains(d.reason, "(ratio 1.06 within tolerance 0.10): keep 10")) << d.reason;

  auto low = make_target_policy(hpa(0.8));
  Driver drive_low(*low);
  EXPECT_EQ(drive_low.tick(busy(10, 7.3)).desired, 10);  // 0.9125: within 10% below
}

TEST(TargetPolicy, ScalesUpOutsideTolerance) {
  auto decider = make_target_policy(hpa(0.8));
  Driver drive(*decider);
  const Decision d = drive.tick(busy(3, 2.79));  // utilization 0.93
  EXPECT_EQ(d.desired, 4);
  EXPECT_TRUE(contains(d.reason,
                       "0.93 vs target 0.80 (ratio 1.16 > tolerance 0.10): "
                       "ceil(3 x 1.16) = 4: 3 -> 4"))
      << d.reason;
}

TEST(TargetPolicy, ScalesOnRequestsWaitingInsideTheEngines) {
  config::TargetPolicy p;
  p.metric = config::Metric::kEngineWaiting;
  p.target = 2;
  p.metric_window = 1s;
  auto decider = make_target_policy(p);
  Observation o;
  o.now = kTimeZero + 1s;
  o.interval = 1s;
  o.current = o.ready = 2;
  o.avg_ready = 2;
  o.max_replicas = 10;
  o.engine_reporting = 2;
  o.engine_waiting = 12;  // 6 per engine: 3 x the target
  const Decision d = decider->decide(o);
  EXPECT_EQ(d.desired, 6);
  EXPECT_TRUE(contains(d.reason, "engine_waiting 6.00 vs target 2.00")) << d.reason;
}

TEST(TargetPolicy, EvaluatesOnlyEverySyncPeriod) {
  auto decider = make_target_policy(hpa(0.5));  // sync_period 15s
  Driver drive(*decider);
  EXPECT_EQ(drive.tick(busy(2, 1)).desired, 2);        // t=1: evaluated, ratio 1
  const Decision waiting = drive.run(5s, busy(2, 2));  // t=6: ratio 2, but no sync yet
  EXPECT_EQ(waiting.desired, 2);
  EXPECT_EQ(waiting.reason, "waiting for sync (5s of 15s): keep 2");
  EXPECT_EQ(drive.run(9s, busy(2, 2)).desired, 2);  // t=15
  EXPECT_EQ(drive.tick(busy(2, 2)).desired, 4);     // t=16: 15 s after the last sync
}

// Scale down waits out the 300 s window and then uses the highest recommendation within it.
TEST(TargetPolicy, ScaleDownStabilizationUsesMaxRecommendationOver300s) {
  config::TargetPolicy p = hpa(0.8, 15s);
  auto decider = make_target_policy(p);
  Driver drive(*decider, 15s);  // one tick per sync period
  for (int i = 0; i < 4; ++i) EXPECT_EQ(drive.tick(busy(4, 3.2)).desired, 4);  // t=15..60: 4
  Decision d = drive.tick(busy(4, 0.8));                                       // t=75: 1
  EXPECT_EQ(d.desired, 4);
  EXPECT_TRUE(contains(d.reason, "ceil(4 x 0.25) = 1; stabilized at 4")) << d.reason;
  EXPECT_EQ(drive.tick(busy(4, 1.6)).desired, 4);  // t=90: recommends 2
  while (drive.seconds() < 345) EXPECT_EQ(drive.tick(busy(4, 0.8)).desired, 4);
  // t=360: the recommendation of 4 made at t=60 has left the window; 2 (t=90) is the max.
  d = drive.tick(busy(4, 0.8));
  EXPECT_EQ(drive.seconds(), 360);
  EXPECT_EQ(d.desired, 2);
  EXPECT_EQ(drive.tick(busy(4, 0.8)).desired, 2);  // t=375
  EXPECT_EQ(drive.tick(busy(4, 0.8)).desired, 1);  // t=390
}

TEST(TargetPolicy, ScaleUpStabilizationUsesMinRecommendation) {
  config::TargetPolicy p = hpa(0.5, 15s);
  p.scale_up.stabilization = 30s;
  auto decider = make_target_policy(p);
  Driver drive(*decider, 15s);
  EXPECT_EQ(drive.tick(busy(2, 1)).desired, 2);  // t=15: 2
  EXPECT_EQ(drive.tick(busy(2, 2)).desired, 2);  // t=30: 4, but 2 is within 30 s
  EXPECT_EQ(drive.tick(busy(2, 2)).desired, 4);  // t=45: 4 and 4
}

// Drives a policy that wants far more replicas, applying each decision at once.
std::vector<int> scale_up_path(const config::TargetPolicy& p, Duration step, int start, int n) {
  auto decider = make_target_policy(p);
  Driver drive(*decider, step);
  std::vector<int> path;
  int ready = start;
  for (int i = 0; i < n; ++i) {
    ready = drive.tick(busy(ready, ready, 1000)).desired;  // utilization 1.0
    path.push_back(ready);
  }
  return path;
}

TEST(TargetPolicy, RateLimitPodsVersusPercentSelectMax) {
  config::TargetPolicy p = hpa(0.01, 15s);  // wants 100 x current
  // Default scale_up: pods 4 / 15s and percent 100 / 15s, select max.
  EXPECT_EQ(scale_up_path(p, 15s, 2, 4), (std::vector<int>{6, 12, 24, 48}));
}

TEST(TargetPolicy, RateLimitPodsVersusPercentSelectMin) {
  config::TargetPolicy p = hpa(0.01, 15s);
  p.scale_up.select = ScalingRules::Select::kMin;
  EXPECT_EQ(scale_up_path(p, 15s, 2, 4), (std::vector<int>{4, 8, 12, 16}));
}

TEST(TargetPolicy, RateLimitCountsChangesWithinThePeriod) {
  config::TargetPolicy p = hpa(0.01, 5s);
  p.sync_period = 5s;
  // t=5: 2 -> 6. t=10, t=15: the +4 at t=5 is still within 15 s. t=20: it has left.
  EXPECT_EQ(scale_up_path(p, 5s, 2, 4), (std::vector<int>{6, 6, 6, 12}));
}

TEST(TargetPolicy, RateLimitReasonNamesTheRules) {
  auto decider = make_target_policy(hpa(0.01, 15s));
  Driver drive(*decider, 15s);
  const Decision d = drive.tick(busy(2, 2, 1000));
  EXPECT_TRUE(contains(d.reason,
                       "scale-up limited to 6 by pods 4 per 15s, percent 100 per 15s "
                       "(select max): 2 -> 6"))
      << d.reason;
}

TEST(TargetPolicy, ScaleDownRateLimit) {
  config::TargetPolicy p = hpa(0.8, 15s);
  p.scale_down = {0s, {{RateLimit::Type::kPods, 1, 60s}}, ScalingRules::Select::kMax};
  auto decider = make_target_policy(p);
  Driver drive(*decider, 15s);
  EXPECT_EQ(drive.tick(busy(5, 0.5)).desired, 4);  // t=15: wants 1, 1 pod per 60 s
  EXPECT_EQ(drive.tick(busy(4, 0.4)).desired, 4);  // t=30
  EXPECT_EQ(drive.tick(busy(4, 0.4)).desired, 4);  // t=45
  EXPECT_EQ(drive.tick(busy(4, 0.4)).desired, 4);  // t=60
  EXPECT_EQ(drive.tick(busy(4, 0.4)).desired, 3);  // t=75: the t=15 removal left the period
}

TEST(TargetPolicy, DisabledSelectBlocksThatDirection) {
  config::TargetPolicy p = hpa(0.5, 15s);
  p.scale_up.select = ScalingRules::Select::kDisabled;
  auto decider = make_target_policy(p);
  Driver drive(*decider, 15s);
  EXPECT_EQ(drive.tick(busy(2, 2)).desired, 2);
}

TEST(TargetPolicy, EmptyPoliciesMeanUnlimited) {
  config::TargetPolicy p = hpa(0.01, 15s);
  p.scale_up.policies.clear();
  auto decider = make_target_policy(p);
  Driver drive(*decider, 15s);
  EXPECT_EQ(drive.tick(busy(2, 2, 1000)).desired, 200);
}

TEST(TargetPolicy, StartingReplicasCountAsIdleOnScaleUp) {
  auto decider = make_target_policy(hpa(0.8));
  Driver drive(*decider);
  // 2 ready at 100%: ratio 1.25, but over 4 replicas it is 0.625: keep 4.
  const Decision d = drive.tick({.ready = 2, .starting = 2, .max_replicas = 100, .busy = 2.0});
  EXPECT_EQ(d.desired, 4);
  auto hot = make_target_policy(hpa(0.25));
  Driver drive_hot(*hot);
  // ratio 4 over 2 ready; 2 over all 4: ceil(4 x 2) = 8.
  EXPECT_EQ(drive_hot.tick({.ready = 2, .starting = 2, .max_replicas = 100, .busy = 2.0}).desired,
            8);
}

TEST(TargetPolicy, ActivationFromZeroSizesByDemand) {
  config::TargetPolicy p;
  p.metric = config::Metric::kConcurrency;
  p.target = 2;
  auto decider = make_target_policy(p);
  Driver drive(*decider);
  const Decision d = drive.tick({.queued = 5, .max_replicas = 10});
  EXPECT_EQ(d.desired, 3);
  EXPECT_TRUE(contains(d.reason, "activation")) << d.reason;
}

TEST(TargetPolicy, ActivationFromZeroDoesNotWaitForSync) {
  auto decider = make_target_policy(hpa(0.7));  // sync_period 15s
  Driver drive(*decider);
  EXPECT_EQ(drive.tick({.max_replicas = 10}).desired, 0);  // t=1: synced, nothing to do
  EXPECT_EQ(drive.run(3s, {.max_replicas = 10}).desired, 0);
  // t=5: a request arrived (and, without a hold queue, was turned away).
  const Decision d = drive.tick({.max_replicas = 10, .arrivals = 1});
  EXPECT_EQ(d.desired, 1);
  EXPECT_TRUE(contains(d.reason, "activation")) << d.reason;
  // Starting: back on the sync schedule.
  EXPECT_EQ(drive.tick({.starting = 1, .max_replicas = 10}).reason,
            "waiting for sync (1s of 15s): keep 1");
}

TEST(TargetPolicy, NeverScalesBelowOneOnItsOwn) {
  config::TargetPolicy p = hpa(0.7);
  p.scale_down.stabilization = 0s;
  auto decider = make_target_policy(p);
  Driver drive(*decider);
  const Decision d = drive.tick(busy(3, 0));
  EXPECT_EQ(d.desired, 1);  // ceil(3 x 0) = 0, but zero is the idle_timeout modifier's call
}

TEST(TargetPolicy, ActivationIsOneReplicaForOtherMetrics) {
  auto decider = make_target_policy(hpa(0.7));
  Driver drive(*decider);
  EXPECT_EQ(drive.tick({.queued = 5, .max_replicas = 10}).desired, 1);
}

TEST(TargetPolicy, StaysAtZeroWithoutDemand) {
  auto decider = make_target_policy(hpa(0.7));
  Driver drive(*decider);
  const Decision d = drive.tick({.max_replicas = 10});
  EXPECT_EQ(d.desired, 0);
}

TEST(TargetPolicy, AutoRpsTargetNeedsServiceTime) {
  config::TargetPolicy p;
  p.metric = config::Metric::kRps;
  p.target = 0;
  p.metric_window = 15s;
  auto decider = make_target_policy(p);
  Driver drive(*decider, 15s);
  // 21 arrivals in 15 s on 2 replicas: 0.7 rps each.
  Decision d = drive.tick({.ready = 2, .max_replicas = 100, .arrivals = 21});
  EXPECT_EQ(d.desired, 2);
  EXPECT_TRUE(contains(d.reason, "no change: auto")) << d.reason;
  // 1 slot / 2 s x 0.7 = 0.35 rps per replica; ratio 2.
  d = drive.tick({.ready = 2, .max_replicas = 100, .arrivals = 21, .mean_service_s = 2.0});
  EXPECT_EQ(d.desired, 4);
}

}  // namespace
}  // namespace tide::policy
