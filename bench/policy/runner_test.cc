#include "runner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace tide::bench {
namespace {

sim::SimResult run(double attainment, double replica_hours, uint64_t timed_out = 0) {
  sim::SimResult r;
  r.outcomes.total = 10'000;
  r.outcomes.slo_met = static_cast<uint64_t>(std::llround(attainment * 10'000));
  r.outcomes.timed_out = timed_out;
  r.outcomes.ok = r.outcomes.total - timed_out;
  r.replica_seconds = replica_hours * 3600;
  return r;
}

WorkloadResult workload(sim::SimResult def, std::vector<sim::SimResult> presets) {
  WorkloadResult w;
  w.runs.push_back({"tide", true, std::move(def)});
  for (size_t i = 0; i < presets.size(); ++i)
    w.runs.push_back({"preset" + std::to_string(i), false, std::move(presets[i])});
  return w;
}

TEST(JudgeTest, PassesWhenCheapestAmongPresetsThatMeetTheTarget) {
  const Verdict v = judge(workload(run(0.995, 5), {run(0.999, 6), run(0.98, 2)}));
  EXPECT_TRUE(v.pass) << v.failed;
  EXPECT_EQ(v.cheapest_preset, "preset0");
  EXPECT_NEAR(v.vs_cheapest_preset, 5.0 / 6, 1e-12);
  EXPECT_TRUE(std::isnan(v.vs_fixed));
}

TEST(JudgeTest, FailsOnEachCriterion) {
  // Lost requests.
  Verdict v = judge(workload(run(0.995, 5, 3), {run(0.999, 6)}));
  EXPECT_FALSE(v.pass);
  EXPECT_NE(v.failed.find("lost 3"), std::string::npos);
  // Below the target while a preset reaches it.
  v = judge(workload(run(0.985, 5), {run(0.999, 6)}));
  EXPECT_FALSE(v.slo_ok);
  EXPECT_NE(v.failed.find("SLO 98.50%"), std::string::npos);
  // Dearer than a preset that reaches the target.
  v = judge(workload(run(0.995, 7), {run(0.999, 6)}));
  EXPECT_FALSE(v.cost_vs_presets);
  EXPECT_NE(v.failed.find("1.17x preset0"), std::string::npos);
  EXPECT_EQ(v.failed.find("after the end"), std::string::npos);  // none of it was
}

TEST(JudgeTest, ACostFailureSaysHowMuchWasBilledAfterTheWorkloadEnded) {
  sim::SimResult held = run(0.995, 7);
  held.after_end_replica_seconds = 0.5 * 3600;
  const Verdict v = judge(workload(held, {run(0.999, 6)}));
  EXPECT_FALSE(v.pass);
  EXPECT_NE(v.failed.find("1.17x preset0; 0.50 rep-h of it after the end"), std::string::npos)
      << v.failed;
  // Within the criteria it is only a figure of the run, no failure of its own.
  EXPECT_TRUE(judge(workload(held, {run(0.999, 8)})).pass);
}

TEST(JudgeTest, WhereNothingReachesTheTargetAsCloseAsTheBestPreset) {
  EXPECT_TRUE(judge(workload(run(0.95, 5), {run(0.94, 6), run(0.90, 1)})).pass);
  EXPECT_FALSE(judge(workload(run(0.93, 5), {run(0.94, 6)})).slo_ok);
}

TEST(JudgeTest, FixedFleetDecidesReachabilityAndBoundsTheCost) {
  WorkloadResult w = workload(run(0.995, 5), {run(0.999, 6)});
  w.fixed = run(0.999, 4.8);  // 5 <= 1.05 x 4.8
  w.fixed_met = true;
  Verdict v = judge(w);
  EXPECT_TRUE(v.pass) << v.failed;
  EXPECT_NEAR(v.vs_fixed, 5 / 4.8, 1e-12);
  w.fixed = run(0.999, 4.0);
  v = judge(w);
  EXPECT_FALSE(v.cost_vs_fixed);
  EXPECT_NE(v.failed.find("1.25x fixed"), std::string::npos);
  // No fixed fleet up to max reaches the target: as close as the best preset is enough.
  WorkloadResult none = workload(run(0.95, 5), {run(0.94, 6)});
  none.fixed = run(0.97, 9);
  none.fixed_met = false;
  EXPECT_TRUE(judge(none).pass);
}

TEST(CorpusTest, CoversTheIssuesRequirements) {
  const std::vector<Workload> all = corpus();
  EXPECT_GE(all.size(), 24u);
  std::set<std::string> names;
  std::map<std::string, std::set<Set>> sets_of_family;
  bool slo_below_cold = false, slo_above_cold = false, fast = false;
  int min_conc = 1000, max_conc = 0;
  Duration min_cold = std::chrono::hours(1), max_cold{0};
  for (const Workload& w : all) {
    EXPECT_TRUE(names.insert(w.name).second) << "duplicate " << w.name;
    sets_of_family[w.family].insert(w.set);
    const auto& ep = w.config.endpoints.front();
    const auto& g = ep.groups.front();
    (ep.slo.max_wait < g.mean_cold_start() ? slo_below_cold : slo_above_cold) = true;
    min_conc = std::min(min_conc, g.concurrency);
    max_conc = std::max(max_conc, g.concurrency);
    min_cold = std::min(min_cold, g.mean_cold_start());
    max_cold = std::max(max_cold, g.mean_cold_start());
    fast = fast || w.fast;
  }
  for (const auto& [family, sets] : sets_of_family)
    EXPECT_EQ(sets.size(), 2u) << family << " is not in both sets";
  EXPECT_TRUE(slo_below_cold && slo_above_cold);
  EXPECT_EQ(min_conc, 1);
  EXPECT_EQ(max_conc, 32);
  EXPECT_LE(min_cold, std::chrono::seconds(10));
  EXPECT_GE(max_cold, std::chrono::minutes(5));
  EXPECT_TRUE(fast);
}

TEST(TuneTest, TheWinnersScalingBlockIsKeptOnOneLine) {
  const std::vector<Workload> all = corpus();
  const auto w = std::find_if(all.begin(), all.end(),
                              [](const Workload& x) { return x.name == "demo-poisson"; });
  ASSERT_NE(w, all.end());
  std::vector<WorkloadResult> results(1);
  results[0].workload = &*w;
  tune_corpus(results, TraceFiles{}, 3, 2, {});
  ASSERT_TRUE(results[0].error.empty()) << results[0].error;
  ASSERT_TRUE(results[0].tuned.has_value());
  const std::string& s = results[0].tuned->scaling;
  EXPECT_EQ(s.rfind("preset: tide; ", 0), 0u) << s;
  EXPECT_NE(s.find("target_wait_probability: "), std::string::npos) << s;
  EXPECT_EQ(s.find('\n'), std::string::npos) << s;
  EXPECT_EQ(s.find("  "), std::string::npos) << s;
}

}  // namespace
}  // namespace tide::bench
