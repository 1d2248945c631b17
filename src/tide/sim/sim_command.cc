#include "tide/sim/sim_command.h"

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "tide/sim/parallel.h"
#include "tide/sim/reference.h"
#include "tide/sim/report.h"

namespace tide::sim {
namespace {

std::string label_of(const config::Config& c) {
  const auto& s = c.endpoints.front().groups.front().scaling;
  return s.preset.empty() ? std::string(config::policy_name(s.policy)) : s.preset;
}

config::Config with_preset(config::Config c, const std::string& preset) {
  auto spec = config::preset_spec(preset);
  if (!spec) {
    throw std::runtime_error(
        fmt::format("unknown preset \"{}\" (presets: {})", preset, preset_list()));
  }
  for (auto& ep : c.endpoints)
    for (auto& g : ep.groups) g.scaling = *spec;
  return c;
}

// Every run of `c`, then the reference rows when asked for (each with `c.base` in `configs`,
// for the names of endpoints and groups).
std::vector<SimResult> simulate(SimCommand& c, const SourceFactory& make_source) {
  auto& configs = c.configs;
  SimOptions o;
  o.seed = c.seed;
  o.warmup = c.warmup;
  o.record_timeline = configs.size() == 1 || !c.out_dir.empty();
  if (c.progress && configs.size() == 1) o.progress = draw_progress;
  std::vector<SimResult> results = simulate_each(configs, make_source, o, 0, [&](size_t done) {
    if (c.progress && configs.size() > 1)
      std::fprintf(stderr, "\rsimulated %zu/%zu policies", done, configs.size());
  });
  if (c.progress && configs.size() > 1) std::fprintf(stderr, "\r%40s\r", "");
  if (c.reference) {
    o.progress = nullptr;
    for (SimResult& r : reference_rows(c.base, make_source, o, c.slo_target)) {
      configs.emplace_back(r.policy, c.base);
      results.push_back(std::move(r));
    }
  }
  return results;
}

void write_files(const SimCommand& c, const std::vector<SimResult>& results,
                 const std::string& summary) {
  std::filesystem::create_directories(c.out_dir);
  std::ofstream(c.out_dir + "/summary.json") << summary << "\n";
  std::ofstream(c.out_dir + "/summary.csv") << summary_csv(results);
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].timeline.empty() && results[i].decisions.empty()) continue;
    const std::string dir =
        results.size() == 1 ? c.out_dir : c.out_dir + "/" + run_dir_name(results[i].policy);
    write_csvs(dir, results[i], c.configs[i].second);
  }
  write_report_html(c.out_dir, results, c.base, "tide sim: " + c.title);
}

}  // namespace

SourceFactory load_workload(const WorkloadSpec& w) {
  if (w.trace) {
    auto trace = std::make_shared<const Trace>(load_trace(*w.trace));
    if (trace->unordered_rows > 0) {
      std::fprintf(stderr,
                   "warning: %s: %llu rows are earlier than a row above them (the first "
                   "at line %llu); sorted by time\n",
                   w.trace->path.c_str(), static_cast<unsigned long long>(trace->unordered_rows),
                   static_cast<unsigned long long>(trace->first_unordered_line));
    }
    return [trace] { return std::make_unique<TraceSource>(*trace); };
  }
  return [shape = w.shape, rate = w.rate, duration = w.duration, period = w.period, seed = w.seed] {
    return std::make_unique<SyntheticSource>(shape, rate, duration, period, seed);
  };
}

std::string preset_list() {
  std::string names;
  for (const auto& n : config::preset_names()) names += (names.empty() ? "" : ", ") + n;
  return names;
}

std::vector<std::pair<std::string, config::Config>> policy_configs(
    const config::Config& base, const std::optional<std::vector<std::string>>& compare,
    const std::string& preset) {
  std::vector<std::pair<std::string, config::Config>> configs;
  if (compare) {
    for (const auto& n : *compare) configs.emplace_back(n, with_preset(base, n));
  } else if (!preset.empty()) {
    configs.emplace_back(preset, with_preset(base, preset));
  } else {
    configs.emplace_back(label_of(base), base);
  }
  return configs;
}

int run_sim_command(SimCommand c, const SourceFactory& make_source, std::ostream& out) {
  const std::vector<SimResult> results = simulate(c, make_source);
  const std::string summary =
      results.size() == 1 ? summary_json(results[0]) : summary_json(results);
  out << (c.json ? summary + "\n" : format_table(results));
  if (!c.out_dir.empty()) {
    write_files(c, results, summary);
    if (!c.json) out << "report: " << c.out_dir << "/report.html\n";
  }
  return 0;
}

void draw_progress(double f) {
  const int width = 40;
  const int filled = static_cast<int>(f * width);
  std::fprintf(stderr, "\r[%s%s] %3.0f%%", std::string(static_cast<size_t>(filled), '#').c_str(),
               std::string(static_cast<size_t>(width - filled), ' ').c_str(), f * 100);
  if (f >= 1.0) std::fprintf(stderr, "\r%*s\r", width + 8, "");
}

}  // namespace tide::sim
