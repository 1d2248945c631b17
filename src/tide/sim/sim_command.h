// `tide sim` and the workload it shares with `tide tune`: the policies to compare, their runs on
// one workload, the reference rows, and the output (a table or JSON, and the files of --out).
// The command line itself is parsed in src/app/main.cc.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "tide/config/config.h"
#include "tide/sim/engine.h"
#include "tide/sim/trace.h"

namespace tide::sim {

// A workload: a trace, or else a synthetic shape.
struct WorkloadSpec {
  std::optional<TraceOptions> trace;
  SyntheticSource::Shape shape = SyntheticSource::Shape::kPoisson;
  double rate = 0;
  Duration duration{};
  Duration period{};
  uint64_t seed = 1;
};

// A fresh source of the workload per call (a loaded trace is shared read-only). A trace with rows
// out of time order is sorted, with a warning on stderr.
SourceFactory load_workload(const WorkloadSpec& workload);

// The names of the presets, comma-separated (for help and error texts).
std::string preset_list();

// Named configurations to simulate: each preset of `compare` when given, else `preset` for every
// group when given, else `base` under its own policy. Throws std::runtime_error naming an
// unknown preset.
std::vector<std::pair<std::string, config::Config>> policy_configs(
    const config::Config& base, const std::optional<std::vector<std::string>>& compare,
    const std::string& preset);

struct SimCommand {
  config::Config base;
  std::vector<std::pair<std::string, config::Config>> configs;  // from policy_configs
  bool reference = false;  // add the fixed (hindsight) and clairvoyant rows
  double slo_target = 0.99;
  uint64_t seed = 1;
  Duration warmup{};
  bool json = false;      // print the summary as JSON instead of a table
  std::string out_dir;    // empty: no files
  bool progress = false;  // a progress bar on stderr
  std::string title;      // of the workload, for the report
};

// Runs, prints to `out` and writes the files. Returns the exit status.
int run_sim_command(SimCommand command, const SourceFactory& make_source, std::ostream& out);

// A progress bar on stderr at `f` (0 to 1); 1 clears it.
void draw_progress(double f);

}  // namespace tide::sim
