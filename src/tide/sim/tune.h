// `tide tune`: searches the parameters of one group's scaling policy for the lowest
// replica-seconds that keeps the SLO target with nothing lost, on the first part of a workload,
// and replays the winner and the starting point (the default) on the held-out last part, so a
// user sees whether the setting holds beyond the data it was fitted to.
//
// The search space is one small table per policy kind (search_space()): the parameter's key in
// a `scaling:` block, its range and scale. The search: the default, a Latin hypercube over the
// space (half the budget), then rounds of local refinement around the best so far with a
// shrinking step. Same seed and budget, same result, whatever the number of threads.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "tide/config/config.h"
#include "tide/sim/engine.h"
#include "tide/sim/reference.h"

namespace tide::sim {

// One searched parameter of a `scaling:` block.
struct TuneParam {
  std::string_view key;  // its key in a `scaling:` block
  enum class Unit { kSeconds, kReal, kInteger } unit;
  double lo, hi;  // the range; seconds for kSeconds
  bool log;       // searched on a log scale (else linear)
  bool per_slot;  // lo and hi are multiplied by the group's concurrency
  double step;    // values are rounded to a multiple of it (0: 3 significant digits)
  double (*get)(const config::ScalingSpec&);
  void (*set)(config::ScalingSpec&, double);
};

// The parameters searched for this spec's policy kind (and, for `target`, its metric).
std::span<const TuneParam> search_space(const config::ScalingSpec& spec);

struct TuneOptions {
  std::string group;   // "GROUP" or "ENDPOINT/GROUP"; "" = the config's only group
  std::string policy;  // a preset whose parameters to search; "" = the group's own scaling
  double check = 0.2;  // the share of the workload held out (the last part)
  int candidates = 200;
  size_t jobs = 0;  // threads; 0 = one per core
  double target = kDefaultSloTarget;
  SimOptions sim;  // seed and warm-up (the warm-up applies to the fitted part)
  std::function<void(size_t done, size_t total)> progress;  // from one thread at a time
};

struct TuneCandidate {
  config::ScalingSpec scaling;
  std::vector<double> values;  // per parameter of the space
  SimResult fit;               // on the fitted part
  bool feasible = false;       // meets the SLO target with nothing lost
};

struct TuneResult {
  std::string endpoint;
  std::string group;
  double target = kDefaultSloTarget;
  std::vector<TuneParam> params;
  Duration warmup{0};
  Duration split{0};    // the fitted part is [warmup, split), the check part [split, end)
  Duration horizon{0};  // the workload's end
  double check = 0.2;
  std::vector<TuneCandidate> explored;  // explored[0] is the default
  size_t best = 0;                      // index into explored
  std::vector<size_t> frontier;         // cheapest for each attainment reached, by cost ascending
  SimResult default_check;              // the default on the check part
  SimResult best_check;                 // the winner on the check part
  std::string yaml;                     // the winner's `scaling:` block
  bool yaml_complete = true;            // false: the block needs the group's other scaling keys too
  const TuneCandidate& winner() const { return explored[best]; }
};

// Throws std::invalid_argument for a bad option (unknown group or preset, a check share out of
// range, a part without requests) and SimError for a workload the config cannot run.
TuneResult tune(const config::Config& config, const SourceFactory& make_source,
                const TuneOptions& options);

// The `scaling:` block (its content, one `key: value` per line) that gives the winner: the
// preset or policy it started from and every searched parameter.
std::string scaling_yaml(const config::ScalingSpec& spec, std::span<const TuneParam> params);

// The terminal report: both parts for the default and the winner, the YAML, the frontier.
std::string format_tune(const TuneResult& result);

// report.html in `dir`: the same, with the cost/attainment frontier as a chart.
void write_tune_report(const std::string& dir, const TuneResult& result, const std::string& title);

}  // namespace tide::sim
