// Runs the policy corpus: every workload through sim::simulate() for every preset and the
// default, plus the reference rows; judges the default against the criteria of issue 14; prints
// the tables and writes the CSV.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "corpus.h"
#include "tide/sim/engine.h"
#include "tide/sim/reference.h"

namespace tide::bench {

inline constexpr double kSloTarget = sim::kDefaultSloTarget;
inline constexpr double kFixedSlack = 1.05;  // the default may cost this much over fixed

struct PolicyRun {
  std::string policy;  // a preset name, or "default" when the default is no preset
  bool is_default = false;
  sim::SimResult result;
};

// The default's verdict on one workload ("done when" of issue 14).
struct Verdict {
  bool nothing_lost = false;
  bool slo_ok = false;  // >= target, or as close as the best preset where none can reach it
  bool cost_vs_presets = false;  // <= every preset that reaches the target
  bool cost_vs_fixed = true;     // <= 1.05 x fixed (hindsight) where a fixed fleet meets it
  bool pass = false;
  std::string failed;             // the criteria that failed, in words
  std::string cheapest_preset;    // the cheapest preset reaching the target ("" if none)
  double vs_cheapest_preset = 0;  // replica-seconds ratios; NaN when there is no reference
  double vs_fixed = 0;
  double vs_clairvoyant = 0;
};

// The default against `tide tune`'s optimum for the workload (bench_policy --tune N): both on the
// part the search was fitted to (the first 80% after the warm-up).
struct TuneRatio {
  double default_rs = 0;  // replica-seconds of the default on the fitted part
  double tuned_rs = 0;    // of the cheapest candidate meeting the target (or the best one)
  bool default_met = false, tuned_met = false;
  std::string scaling;  // the winner's `scaling:` block on one line ("key: value; ...")
  double ratio() const { return tuned_rs > 0 ? default_rs / tuned_rs : 0; }
};

struct WorkloadResult {
  const Workload* workload = nullptr;
  std::vector<PolicyRun> runs;  // presets in preset_names() order (and "default" if separate)
  std::optional<sim::SimResult> fixed;  // fixed (hindsight)
  int fixed_replicas = 0;
  bool fixed_met = false;
  std::optional<sim::SimResult> clairvoyant;
  std::string error;  // the workload could not be built or simulated
  Verdict verdict;
  std::optional<TuneRatio> tuned;  // only with --tune
  const PolicyRun* default_run() const;
};

// lost = rejected + timed out.
uint64_t lost(const sim::SimResult& r);
bool meets_target(const sim::SimResult& r);

// Runs the workloads on `jobs` threads (0: one per core). `progress` (may be empty) is called
// after each run with (done, total), from one thread at a time.
// `out_dir` (may be empty): the default's timeline.csv and decisions.csv per workload go to
// out_dir/WORKLOAD/ (for reading why it decided what it did).
// `default_only`: only the default's run, without the presets and the references (to iterate
// on the default; compare against a whole run's CSV).
std::vector<WorkloadResult> run_corpus(const std::vector<const Workload*>& workloads,
                                       const TraceFiles& files, size_t jobs,
                                       const std::function<void(size_t, size_t)>& progress,
                                       const std::string& out_dir = "", bool default_only = false);

Verdict judge(const WorkloadResult& w);

// Runs `tide tune` (sim::tune, the default policy's search space, `candidates` candidates on
// `jobs` threads) on each workload that ran without error and records the ratio.
void tune_corpus(std::vector<WorkloadResult>& results, const TraceFiles& files, int candidates,
                 size_t jobs, const std::function<void(const std::string&)>& progress);

// One table per set: the default per workload with its references and verdict, then every
// policy's attainment and replica-hours; and the summary of the set.
void print_tables(std::FILE* out, const std::vector<WorkloadResult>& results);
// One row per workload x policy (and reference rows); the per-workload columns on the default's.
void write_csv(const std::string& path, const std::vector<WorkloadResult>& results);

}  // namespace tide::bench
