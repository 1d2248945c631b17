#include <gtest/gtest.h>

#include "tide/policy/decider.h"
#include "tide/policy/policy_test_util.h"

namespace tide::policy {
namespace {

using namespace std::chrono_literals;
using config::Metric;
using testing::Driver;
using testing::GroupState;

Observation averaged() {
  Observation o;
  o.now = kTimeZero + 10s;
  o.interval = 2s;
  o.ready = 3;
  o.avg_ready = 2.0;
  o.avg_in_flight = 3.0;
  o.avg_queued = 1.0;
  o.avg_busy_replicas = 1.5;
  o.arrivals = 8;
  // Instantaneous values differ on purpose: with an interval the averages are used.
  o.in_flight = 9;
  o.queued = 9;
  return o;
}

TEST(Observation, PerReplicaUsesIntervalAverages) {
  const Observation o = averaged();
  EXPECT_DOUBLE_EQ(o.per_replica(Metric::kUtilization), 0.75);
  EXPECT_DOUBLE_EQ(o.per_replica(Metric::kInFlight), 1.5);
  EXPECT_DOUBLE_EQ(o.per_replica(Metric::kQueue), 0.5);
  EXPECT_DOUBLE_EQ(o.per_replica(Metric::kConcurrency), 2.0);
  EXPECT_DOUBLE_EQ(o.per_replica(Metric::kRps), 2.0);  // 8 / 2 s / 2 replicas
}

TEST(Observation, PerReplicaDividesByAtLeastOneReplica) {
  Observation o;
  o.interval = 1s;
  o.avg_queued = 5;
  EXPECT_DOUBLE_EQ(o.per_replica(Metric::kQueue), 5.0);
  EXPECT_DOUBLE_EQ(o.per_replica(Metric::kUtilization), 0.0);
}

TEST(Observation, FirstObservationUsesInstantaneousValues) {
  Observation o;
  o.ready = 4;
  o.in_flight = 2;
  o.queued = 6;
  EXPECT_DOUBLE_EQ(o.per_replica(Metric::kConcurrency), 2.0);
  EXPECT_DOUBLE_EQ(o.per_replica(Metric::kUtilization), 0.5);
  EXPECT_DOUBLE_EQ(o.per_replica(Metric::kRps), 0.0);
}

TEST(Observation, EngineMetricsAreMeansOverTheReplicasRead) {
  Observation o = averaged();  // 2 ready on average, 1 held per interval, 3 in service
  o.concurrency = 4;
  o.engine_reporting = 2;
  o.engine_waiting = 6;  // 3 per engine
  o.engine_running = 10;
  o.engine_kv_reporting = 2;
  o.engine_kv_cache = 0.8;
  EXPECT_DOUBLE_EQ(o.per_replica(Metric::kEngineWaiting), 3.5);  // 3 inside + 1 held / 2
  EXPECT_DOUBLE_EQ(o.per_replica(Metric::kEngineRunning), 5.0);
  EXPECT_DOUBLE_EQ(o.per_replica(Metric::kEngineKvCache), 0.8);
}

TEST(Observation, EngineMetricsWithoutAnEngineReadFallBackOnTheGatewaysFigures) {
  Observation o = averaged();
  o.concurrency = 4;
  EXPECT_DOUBLE_EQ(o.per_replica(Metric::kEngineWaiting), 0.5);    // as kQueue
  EXPECT_DOUBLE_EQ(o.per_replica(Metric::kEngineRunning), 1.5);    // as kInFlight
  EXPECT_DOUBLE_EQ(o.per_replica(Metric::kEngineKvCache), 0.375);  // 3 of 2 x 4 slots
  Observation none;  // no replica: held requests alone read as waiting
  none.queued = 2;
  EXPECT_DOUBLE_EQ(none.per_replica(Metric::kEngineWaiting), 2.0);
}

config::GroupSpec group(config::PolicyKind kind) {
  config::GroupSpec g;
  g.name = "g";
  g.max_replicas = 8;
  g.scaling.policy = kind;
  return g;
}

// Every policy kind builds, scales up under load and stays within max.
TEST(MakeDecider, EveryPolicyScalesUpUnderLoadWithinBounds) {
  for (auto kind :
       {config::PolicyKind::kQueue, config::PolicyKind::kTarget, config::PolicyKind::kConcurrency,
        config::PolicyKind::kStep, config::PolicyKind::kTide}) {
    config::GroupSpec spec = group(kind);
    spec.scaling.step.steps = {{1.0, std::nullopt, 2}};
    spec.scaling.step.window = 1s;
    auto decider = make_decider(spec);
    Driver drive(*decider);
    drive.first({.ready = 1, .max_replicas = 8});
    Decision d;
    for (int i = 0; i < 20 && d.desired <= 1; ++i) {
      d = drive.tick({.ready = 1, .queued = 50, .in_flight = 1, .max_replicas = 8, .busy = 1.0});
    }
    EXPECT_GT(d.desired, 1) << config::policy_name(kind) << ": " << d.reason;
    EXPECT_LE(d.desired, 8) << d.reason;
    EXPECT_FALSE(d.reason.empty());
  }
}

// Readings far beyond any fleet (a hostile trace: a trillion arrivals a tick, requests of
// months) get an answer within the group's bounds from every policy kind, with no int overflowed
// on the way (the sanitizer build checks float-to-int conversions).
TEST(MakeDecider, EveryPolicyAnswersReadingsBeyondAnyFleetWithinItsBounds) {
  for (auto kind :
       {config::PolicyKind::kQueue, config::PolicyKind::kTarget, config::PolicyKind::kConcurrency,
        config::PolicyKind::kStep, config::PolicyKind::kTide}) {
    for (auto metric : {Metric::kRps, Metric::kQueue, Metric::kConcurrency}) {
      config::GroupSpec spec = group(kind);
      spec.scaling.step.steps = {{1.0, std::nullopt, 2}};
      spec.scaling.step.window = 1s;
      spec.scaling.step.metric = metric;
      spec.scaling.target.metric = metric;
      auto decider = make_decider(spec);
      Driver drive(*decider);
      drive.first({.ready = 1, .max_replicas = 8});
      const GroupState huge{.ready = 8,
                            .queued = 1'000'000'000,
                            .in_flight = 1'000'000'000,
                            .concurrency = 1'000'000,
                            .max_replicas = 8,
                            .arrivals = 1'000'000'000'000,
                            .mean_service_s = 1e7};
      for (int i = 0; i < 5; ++i) {
        const Decision d = drive.tick(huge);
        EXPECT_GE(d.desired, 0) << config::policy_name(kind) << ": " << d.reason;
        EXPECT_LE(d.desired, 8) << config::policy_name(kind) << ": " << d.reason;
      }
    }
  }
}

TEST(MakeDecider, MinOneKeepsOneReplica) {
  config::GroupSpec spec = group(config::PolicyKind::kQueue);
  spec.scaling.min_one = true;
  auto decider = make_decider(spec);
  Driver drive(*decider);
  GroupState g{.ready = 1, .max_replicas = 8};
  g.idle_for = {10min};
  EXPECT_EQ(drive.first(g).desired, 1);
}

TEST(MakeDecider, ModifiersWrapThePolicy) {
  config::GroupSpec spec = group(config::PolicyKind::kQueue);
  spec.scaling.modifiers.up_delay = 10s;
  auto decider = make_decider(spec);
  Driver drive(*decider);
  const Decision d = drive.first({.queued = 3, .max_replicas = 8});
  EXPECT_EQ(d.desired, 0);
  EXPECT_NE(d.reason.find("held by up_delay (0s of 10s)"), std::string::npos) << d.reason;
}

}  // namespace
}  // namespace tide::policy
