#include "tide/policy/tide_policy.h"

#include <gtest/gtest.h>

#include "tide/common/random.h"

namespace tide::policy {
namespace {

using namespace std::chrono_literals;

config::GroupSpec group() {
  config::GroupSpec g;
  g.name = "gpu";
  g.max_replicas = 100;
  g.concurrency = 8;
  g.scaling.policy = config::PolicyKind::kTide;
  return g;
}

// Drives the tide decider one second at a time with the given load.
struct Loop {
  std::unique_ptr<Decider> d = make_tide_policy(group());
  Time now{};
  int current = 0;
  Decision step(uint64_t arrivals, int in_flight, int queued, double service_s, int ready = -1) {
    now += 1s;
    Observation o;
    o.now = now;
    o.interval = 1s;
    o.current = current;
    o.ready = ready < 0 ? current : ready;
    o.starting = o.current - o.ready;
    o.concurrency = 8;
    o.max_replicas = 100;
    o.queued = queued;
    o.in_flight = in_flight;
    o.avg_in_flight = in_flight;
    o.avg_queued = queued;
    o.arrivals = arrivals;
    o.mean_service_s = service_s;
    o.cold_start = 60s;
    o.max_wait = 2s;
    if (arrivals > 0 || in_flight > 0 || queued > 0) o.last_activity = now;
    last_activity = o.last_activity ? o.last_activity : last_activity;
    o.last_activity = last_activity;
    Decision dec = d->decide(o);
    current = dec.desired;
    return dec;
  }
  std::optional<Time> last_activity;
};

TEST(TidePolicy, QueuedWorkFromZeroGetsReplicasOnTheFirstTick) {
  Loop l;
  const Decision d = l.step(20, 0, 20, 0, 0);
  EXPECT_GE(d.desired, 3);  // at least ceil(20 / 8): nothing is ready to start them
  EXPECT_NE(d.reason.find("queued beyond"), std::string::npos) << d.reason;
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

TEST(TidePolicy, HoldsCapacityForAColdStartAfterThePeakThenScalesDown) {
  Loop l;
  for (int i = 0; i < 120; ++i) l.step(10, 40, 0, 4.0);  // 40 in service
  const int at_peak = l.current;
  EXPECT_GE(at_peak, 6);
  for (int i = 0; i < 30; ++i) l.step(1, 4, 0, 4.0);
  EXPECT_EQ(l.current, at_peak) << "released before a cold start's worth of time";
  for (int i = 0; i < 120; ++i) l.step(1, 4, 0, 4.0);
  EXPECT_LT(l.current, at_peak);
  EXPECT_GE(l.current, 1);
}

TEST(TidePolicy, ScalesToZeroAfterIdlingForTheColdStart) {
  Loop l;
  for (int i = 0; i < 30; ++i) l.step(1, 2, 0, 2.0);
  EXPECT_GE(l.current, 1);
  for (int i = 0; i < 59; ++i) l.step(0, 0, 0, 2.0);
  EXPECT_GE(l.current, 1);
  const Decision d = l.step(0, 0, 0, 2.0);
  EXPECT_EQ(d.desired, 0);
  EXPECT_NE(d.reason.find("idle timeout"), std::string::npos) << d.reason;
}

TEST(TidePolicy, BurstyArrivalsGetMoreHeadroomThanPoissonAtTheSameMeanRate) {
  Loop poisson, bursty;
  Random rng(11);
  for (int i = 0; i < 3600; ++i) {
    // Same mean of 5/s: Poisson-like counts vs all of a minute's requests in its first 5 s.
    const auto p = static_cast<uint64_t>(5 + (rng.uniform() - 0.5) * 4);
    const uint64_t b = (i % 60) < 5 ? 60 : 0;
    poisson.step(p, 20, 0, 4.0);
    bursty.step(b, 20, 0, 4.0);
  }
  EXPECT_GT(bursty.current, poisson.current);
}

}  // namespace
}  // namespace tide::policy
