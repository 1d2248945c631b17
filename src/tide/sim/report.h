// Output of simulation runs: the terminal table, the JSON summary, timeline / decision CSVs and
// a self-contained HTML report (inline SVG, no scripts, no network).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tide/config/config.h"
#include "tide/sim/engine.h"

namespace tide::sim {

// One row per run: outcomes, latency, SLO attainment, replica-seconds, cost, churn; then each
// run's note (reference rows say what they mean).
std::string format_table(const std::vector<SimResult>& runs);

// The same figures as CSV (summary.csv of --out), one row per run.
std::string summary_csv(const std::vector<SimResult>& runs);

// The summary object of one run (`tide sim --json`), or an array for several.
std::string summary_json(const SimResult& run);
std::string summary_json(const std::vector<SimResult>& runs);

// The folder of a run under --out: its label with every run of characters other than letters,
// digits, '.', '_' and '-' made one '-' ("fixed (hindsight)" -> "fixed-hindsight").
std::string run_dir_name(const std::string& label);

// Writes timeline.csv and decisions.csv of one run into `dir` (created if missing).
void write_csvs(const std::string& dir, const SimResult& run, const config::Config& config);

// Pieces of the HTML reports (also `tide tune`'s): the page's head and style up to its <h1>; the
// comparison table of runs with their notes; text escaped for HTML.
std::string html_page_start(const std::string& title);
std::string comparison_table_html(const std::vector<SimResult>& runs);
std::string html_escape(const std::string& s);

// A chart as inline SVG: lines (or steps) through points, or dots. Lines with more than 1200
// points are reduced to the maximum per bucket, so a day at one-second ticks stays small.
struct ChartSeries {
  std::string name;
  std::string color;
  std::vector<std::pair<double, double>> points;
  bool step = false;
  bool dots = false;
  double dot_radius = 2.5;
};
struct ChartAxes {
  std::function<std::string(double)> x_label;  // null: x is time in seconds ("1h20m")
  double y_min = 0;
  bool integer_y = false;  // ticks at whole numbers only (replicas)
  double warmup_s = 0;     // > 0: [0, warmup_s) shaded as the warm-up, left out of the figures
};
// x runs from 0 to x_end.
std::string svg_chart(const std::string& title, const std::string& unit,
                      std::vector<ChartSeries> series, double x_end, const ChartAxes& axes = {});

// Writes report.html into `dir`: the comparison table, two charts overlaying the runs on one
// scale (replicas, and the longest wait), and, per run, charts of replicas, queue, waiting time
// and GPU utilization over time; the warm-up is shaded on every chart over time.
void write_report_html(const std::string& dir, const std::vector<SimResult>& runs,
                       const config::Config& config, const std::string& title);

}  // namespace tide::sim
