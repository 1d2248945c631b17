#include "tide/sim/tune.h"

#include <gtest/gtest.h>

#include "tide/sim/sim_test_util.h"

namespace tide::sim {
namespace {

// One 1 s request a minute for 2 h, a 30 s cold start and a 2 s SLO: a replica must stay up
// through the 59 s between requests, and every second it idles after the last one is billed,
// so the cheapest setting that meets the SLO is the queue policy's idle_timeout at ~59 s.
config::Config minute_config() {
  return one_group(*config::preset_spec("viewcomfy"), 4, 1, 30s, 1s);
}
SourceFactory every_minute() {
  return [] {
    return std::make_unique<SyntheticSource>(SyntheticSource::Shape::kPeriodic, 1.0 / 60, 2h, 0s,
                                             1);
  };
}
TuneOptions small(int candidates) {
  TuneOptions o;
  o.candidates = candidates;
  o.jobs = 2;
  o.sim.warmup = 5min;  // the first request waits a cold start whatever the setting
  return o;
}

TEST(Tune, FindsTheShortestIdleTimeoutThatKeepsAReplicaBetweenRequests) {
  const TuneResult r = tune(minute_config(), every_minute(), small(60));
  ASSERT_EQ(r.params.size(), 2u);
  EXPECT_EQ(r.params[1].key, "idle_timeout");
  const TuneCandidate& w = r.winner();
  EXPECT_TRUE(w.feasible);
  EXPECT_FALSE(r.explored[0].feasible);  // the preset's 30 s stops it between requests
  EXPECT_GE(w.values[1], 59.0);
  EXPECT_LE(w.values[1], 66.0);
  // Billed from the warm-up's end (5 min) to the last fitted request's end (95 min + 1 s) and
  // the idle timeout after it; nothing feasible was cheaper.
  EXPECT_DOUBLE_EQ(w.fit.replica_seconds, 5401 + w.values[1]);
  for (const TuneCandidate& c : r.explored) {
    if (c.feasible) {
      EXPECT_GE(c.fit.replica_seconds, w.fit.replica_seconds);
    }
  }
  // The block to paste gives the winner back exactly.
  EXPECT_TRUE(r.yaml_complete);
  EXPECT_EQ(config::parse_scaling(r.yaml, minute_config().endpoints[0].groups[0]), w.scaling);
  EXPECT_NE(r.yaml.find("preset: viewcomfy\n"), std::string::npos) << r.yaml;
  const std::string text = format_tune(r);
  EXPECT_NE(text.find("scaling:\n  preset: viewcomfy\n"), std::string::npos) << text;
}

TEST(Tune, FitsOnTheFirstPartAndChecksOnTheLast) {
  const TuneResult r = tune(minute_config(), every_minute(), small(8));
  EXPECT_EQ(r.split, 96min);  // 80% of 2 h
  // Arrivals every minute from 1 min: 5 .. 95 min fitted (from the 5 min warm-up on), 96 .. 119
  // min held out.
  EXPECT_EQ(r.explored[0].fit.outcomes.total, 91u);
  EXPECT_EQ(r.winner().fit.outcomes.total, 91u);
  EXPECT_EQ(r.default_check.outcomes.total, 24u);
  EXPECT_EQ(r.best_check.outcomes.total, 24u);
  EXPECT_LE(r.explored.size(), 8u);
}

TEST(Tune, SameResultWhateverTheNumberOfThreads) {
  TuneOptions one = small(20), four = small(20);
  one.jobs = 1;
  four.jobs = 4;
  const TuneResult a = tune(minute_config(), every_minute(), one);
  const TuneResult b = tune(minute_config(), every_minute(), four);
  EXPECT_EQ(a.winner().values, b.winner().values);
  EXPECT_EQ(a.explored.size(), b.explored.size());
}

TEST(Tune, SearchesAPresetsParametersWhenAsked) {
  TuneOptions o = small(4);
  o.policy = "knative";
  const TuneResult r = tune(minute_config(), every_minute(), o);
  EXPECT_EQ(r.params.front().key, "target");
  EXPECT_EQ(r.winner().scaling.policy, config::PolicyKind::kConcurrency);
  EXPECT_NE(r.yaml.find("preset: knative\n"), std::string::npos);
}

void expect_refused(const TuneOptions& o, const std::string& words,
                    const SourceFactory& source = every_minute()) {
  try {
    tune(minute_config(), source, o);
    FAIL() << "expected a refusal naming: " << words;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

TEST(Tune, RefusesBadOptionsWithTheirReason) {
  TuneOptions o = small(4);
  o.check = 0.95;
  expect_refused(o, "--check: the held-out share must be between 1% and 90%");
  o = small(4);
  o.group = "cpu";
  expect_refused(o, "--group: no group \"cpu\" in the config (groups: chat/gpu)");
  o = small(4);
  o.policy = "kubernetes";
  expect_refused(o, "--policy: unknown preset \"kubernetes\"");
  o = small(4);
  o.sim.warmup = 2h;
  expect_refused(o, "--warmup: 2h leaves nothing of the fitted part");
  // Requests only in the first minute: the last 20% of the workload has none.
  const Trace early = arrivals({0, 10, 20});
  o = small(4);
  o.sim.warmup = 0s;
  expect_refused(o, "the held-out part (48s to 1m) has no requests",
                 [&early] { return std::make_unique<TraceSource>(early); });
}

}  // namespace
}  // namespace tide::sim
