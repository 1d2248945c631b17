#include "tide/sim/reference.h"

#include <gtest/gtest.h>

#include "tide/sim/sim_test_util.h"

namespace tide::sim {
namespace {

// One request a second, each 3 s on a one-slot replica: exactly 3 in service from t = 3 s on.
SyntheticSource every_second(Duration duration) {
  return SyntheticSource(SyntheticSource::Shape::kPeriodic, 1.0, duration, 0s, 1);
}

TEST(Reference, FixedFleetIsTheSmallestThatKeepsUpWithNothingLost) {
  const auto c = one_group(queue_policy(1), 8, 1, 20s, 3s);
  auto source = every_second(10min);
  const FixedFleet f = fixed_hindsight(c, source, SimOptions{});
  EXPECT_TRUE(f.met);
  EXPECT_EQ(f.replicas, 3);
  EXPECT_EQ(f.result.policy, kFixedLabel);
  EXPECT_EQ(f.result.outcomes.total, 599u);
  EXPECT_EQ(f.result.outcomes.slo_met, 599u);
  EXPECT_EQ(f.result.peak_replicas, 3);
  // Three replicas from 0 until the last request ends (arrived at 599 s, done at 602 s).
  EXPECT_DOUBLE_EQ(f.result.replica_seconds, 3 * 602.0);
  EXPECT_NE(f.result.note.find("3 replicas"), std::string::npos) << f.result.note;
  // Two replicas fall behind by a request every 3 s: the queue grows and waits pass the SLO.
  source.rewind();
  EXPECT_FALSE(meets_slo(simulate(fixed_fleet_config(c, 2), source, SimOptions{}), 0.99));
}

TEST(Reference, FixedFleetRespectsTheWarmUp) {
  const auto c = one_group(queue_policy(1), 8, 1, 20s, 3s);
  auto source = every_second(10min);
  SimOptions o;
  o.warmup = 100s;
  const FixedFleet f = fixed_hindsight(c, source, o);
  EXPECT_EQ(f.replicas, 3);
  EXPECT_EQ(f.result.outcomes.total, 500u);  // arrivals at 100..599 s
  EXPECT_DOUBLE_EQ(f.result.replica_seconds, 3 * 502.0);
}

TEST(Reference, NoFixedFleetUpToMaxReplicasSaysSoAndShowsTheLargest) {
  const auto c = one_group(queue_policy(1), 2, 1, 20s, 3s);
  auto source = every_second(10min);
  const FixedFleet f = fixed_hindsight(c, source, SimOptions{});
  EXPECT_FALSE(f.met);
  EXPECT_EQ(f.replicas, 2);
  EXPECT_EQ(f.result.peak_replicas, 2);
  EXPECT_NE(f.result.note.find("no fixed fleet up to max_replicas (2)"), std::string::npos)
      << f.result.note;
}

// Concurrency 2, cold start 10 s, 10 s jobs: three at 0 (levels 1 and 2 for [0, 10)), one at 15
// (level 1 again after a 5 s gap: kept), one at 60 (a 35 s gap: a new span and cold start).
Trace gaps_workload() { return arrivals({0, 0, 0, 15, 60}); }

TEST(Reference, ClairvoyantBillsSpansPerLevelKeepingShortGaps) {
  const auto c = one_group(queue_policy(1), 8, 2, 10s, 10s);
  const Trace t = gaps_workload();
  TraceSource source(t);
  const SimResult r = clairvoyant(c, source, SimOptions{});
  EXPECT_EQ(r.policy, kClairvoyantLabel);
  // Level 1: [0, 25) + a cold start, [60, 70) + a cold start; level 2: [0, 10) + a cold start.
  EXPECT_DOUBLE_EQ(r.replica_seconds, (25 + 10) + (10 + 10) + (10 + 10));
  EXPECT_DOUBLE_EQ(r.zero_wait_replica_seconds, (10 + 10 + 10) + 10);  // busy levels only
  EXPECT_EQ(r.launches, 3u);
  EXPECT_EQ(r.peak_replicas, 2);
  EXPECT_EQ(r.outcomes.total, 5u);
  EXPECT_EQ(r.outcomes.ok, 5u);
  EXPECT_DOUBLE_EQ(r.attainment(), 1.0);
}

TEST(Reference, ClairvoyantLeavesOutTheWarmUp) {
  const auto c = one_group(queue_policy(1), 8, 2, 10s, 10s);
  const Trace t = gaps_workload();
  TraceSource source(t);
  SimOptions o;
  o.warmup = 5s;
  const SimResult r = clairvoyant(c, source, o);
  // Level 1: [5, 25), then the cold start [50, 60) and [60, 70); level 2: [5, 10).
  EXPECT_DOUBLE_EQ(r.replica_seconds, 20 + 10 + 10 + 5);
  EXPECT_EQ(r.launches, 1u);  // only the span opened at 60 s
  EXPECT_EQ(r.outcomes.total, 2u);
}

TEST(Reference, ClairvoyantDrawsTheSimulatorsServiceTimes) {
  // Lognormal service times: the level integral matches the simulator's own zero-wait bound for
  // the same seed only if every request got the very same service time.
  auto c = one_group(queue_policy(1), 50, 4, 30s, 1s);
  auto& g = c.endpoints[0].groups[0];
  g.service_time.kind = config::ServiceTimeModel::Kind::kLognormal;
  g.service_time.median = 3s;
  g.service_time.sigma = 1.0;
  SyntheticSource source(SyntheticSource::Shape::kBursts, 4, 30min, 10min, 5);
  SimOptions o;
  o.seed = 5;
  o.warmup = 2min;
  const SimResult sim = simulate(c, source, o);
  const SimResult best = clairvoyant(c, source, o);
  EXPECT_EQ(best.outcomes.total, sim.outcomes.total);
  EXPECT_NEAR(best.zero_wait_replica_seconds, sim.zero_wait_replica_seconds,
              1e-9 * sim.zero_wait_replica_seconds);
  EXPECT_NEAR(best.work_bound_replica_seconds, sim.work_bound_replica_seconds,
              1e-9 * sim.work_bound_replica_seconds);
  EXPECT_GT(best.replica_seconds, best.zero_wait_replica_seconds);
}

}  // namespace
}  // namespace tide::sim
