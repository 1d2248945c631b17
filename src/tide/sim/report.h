// Output of simulation runs: the terminal table, the JSON summary, timeline / decision CSVs and
// a self-contained HTML report (inline SVG, no scripts, no network).
#pragma once

#include <string>
#include <vector>

#include "tide/config/config.h"
#include "tide/sim/engine.h"

namespace tide::sim {

// One row per run: outcomes, latency, SLO attainment, replica-seconds, cost, churn.
std::string format_table(const std::vector<SimResult>& runs);

// The summary object of one run (`tide sim --json`), or an array for several.
std::string summary_json(const SimResult& run);
std::string summary_json(const std::vector<SimResult>& runs);

// Writes timeline.csv and decisions.csv of one run into `dir` (created if missing).
void write_csvs(const std::string& dir, const SimResult& run, const config::Config& config);

// Writes report.html into `dir`: the comparison table and, per run, charts of replicas, queue and
// waiting time over time.
void write_report_html(const std::string& dir, const std::vector<SimResult>& runs,
                       const config::Config& config, const std::string& title);

}  // namespace tide::sim
