#include "tide/sim/report.h"

#include <fmt/format.h>
#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace tide::sim {
namespace {

using nlohmann::ordered_json;

std::string pct(double x) { return fmt::format("{:.2f}%", 100.0 * x); }

std::string seconds(double s) {
  if (s < 1) return fmt::format("{:.0f}ms", s * 1000);
  if (s < 100) return fmt::format("{:.2f}s", s);
  return fmt::format("{:.0f}s", s);
}

void add_outcomes(ordered_json& j, const Outcomes& o, const SimResult& r) {
  j["requests"] = {
      {"total", o.total}, {"ok", o.ok}, {"rejected", o.rejected}, {"timed_out", o.timed_out}};
  j["latency_s"] = {{"wait_p50", o.wait_s.quantile(0.5)}, {"wait_p99", o.wait_s.quantile(0.99)},
                    {"wait_max", o.wait_s.max()},         {"e2e_p50", o.e2e_s.quantile(0.5)},
                    {"e2e_p99", o.e2e_s.quantile(0.99)},  {"ttft_p50", o.ttft_s.quantile(0.5)},
                    {"ttft_p99", o.ttft_s.quantile(0.99)}};
  if (r.ttft_s > 0) {
    j["slo"] = {{"ttft_s", r.ttft_s}, {"attainment", o.attainment()}};
  } else {
    j["slo"] = {{"max_wait_s", r.max_wait_s}, {"attainment", o.attainment()}};
  }
}

// Resource figures, named alike in a whole run and in one group.
template <typename Figures>
void add_usage(ordered_json& j, const Figures& f) {
  j["replica_seconds"] = f.replica_seconds;
  j["zero_wait_replica_seconds"] = f.zero_wait_replica_seconds;
  j["work_bound_replica_seconds"] = f.work_bound_replica_seconds;
  if (f.priced) j["cost"] = f.cost;
  j["launches"] = f.launches;
  j["peak_replicas"] = f.peak_replicas;
  j["scale_reversals"] = f.scale_reversals;
}

ordered_json run_json(const SimResult& r) {
  ordered_json j;
  j["policy"] = r.policy;
  add_outcomes(j, r.outcomes, r);
  add_usage(j, r);
  j["span_s"] = r.span_s;
  ordered_json groups = ordered_json::array();
  for (const GroupResult& g : r.groups) {
    ordered_json gj;
    gj["endpoint"] = g.endpoint;
    gj["group"] = g.group;
    add_outcomes(gj, g.outcomes, r);
    add_usage(gj, g);
    gj["cold_start_mean_s"] = g.cold_start_mean_s;
    groups.push_back(std::move(gj));
  }
  j["groups"] = std::move(groups);
  j["sim"] = {{"wall_s", r.wall_s}, {"requests_per_s", r.requests_per_s}};
  return j;
}

std::string csv_escape(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

// Lines of more than 1200 points reduced to the maximum per bucket of t_end / 1200.
void reduce_points(ChartSeries& s, double t_end) {
  if (s.points.size() <= 1200) return;
  const double bucket = t_end / 1200.0;
  std::vector<std::pair<double, double>> reduced;
  for (const auto& [t, v] : s.points) {
    const double b = std::floor(t / bucket) * bucket;
    if (!reduced.empty() && reduced.back().first == b) {
      reduced.back().second = std::max(reduced.back().second, v);
    } else {
      reduced.emplace_back(b, v);
    }
  }
  s.points = std::move(reduced);
}

// The y axis: ticks from y_min up to at least the largest value, whole numbers when asked.
struct YScale {
  std::vector<double> ticks;
  double max = 1;  // the top of the plot, a little above the last tick
};
// About four steps of 1, 2 or 5 times a power of ten: 0, 50, 100, 150 rather than 43.9, 87.8;
// whole numbers up to 10 as they are (0, 3, 6, 9 replicas).
double tick_step(double span, bool integer) {
  const double raw = span / 4;
  if (integer && raw <= 10) return std::max(1.0, std::ceil(raw));
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / power;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
}

YScale y_scale(double ymin, double ymax, bool integer) {
  if (ymax <= ymin) ymax = ymin + 1;
  const double step = tick_step(ymax - ymin, integer);
  const int n = static_cast<int>(std::ceil((ymax - ymin) / step - 1e-9));
  YScale s;
  for (int i = 0; i <= n; ++i) s.ticks.push_back(ymin + step * i);
  s.max = ymin + step * n * 1.08;
  return s;
}

// Where each series' legend entry goes: one row right-aligned beside the title when it fits,
// else left to right in rows under the title.
struct LegendSlot {
  double x;
  int row;
};
double legend_width(const ChartSeries& s) { return 7.0 * static_cast<double>(s.name.size()) + 24; }
std::vector<LegendSlot> legend_layout(const std::vector<ChartSeries>& series, double left,
                                      double title_end, double right_edge) {
  double total = 0;
  for (const ChartSeries& s : series) total += legend_width(s);
  std::vector<LegendSlot> slots;
  double x = right_edge - total;
  int row = 0;
  if (x < title_end) {
    x = left;
    row = 1;
  }
  for (const ChartSeries& s : series) {
    if (row > 0 && x > left && x + legend_width(s) > right_edge) {
      x = left;
      ++row;
    }
    slots.push_back({x, row});
    x += legend_width(s);
  }
  return slots;
}

std::string series_svg(const ChartSeries& s, const std::function<double(double)>& x,
                       const std::function<double(double)>& y) {
  std::string out, d;
  double prev_v = 0;
  bool first = true;
  for (const auto& [t, v] : s.points) {
    if (s.dots) {
      out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\" fill=\"{}\"/>", x(t), y(v),
                         s.dot_radius, s.color);
      continue;
    }
    if (first) {
      d += fmt::format("M{:.1f},{:.1f}", x(t), y(v));
      first = false;
    } else if (s.step) {
      d += fmt::format("L{:.1f},{:.1f}L{:.1f},{:.1f}", x(t), y(prev_v), x(t), y(v));
    } else {
      d += fmt::format("L{:.1f},{:.1f}", x(t), y(v));
    }
    prev_v = v;
  }
  if (!d.empty())
    out += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.4\"/>", d,
                       s.color);
  return out;
}

}  // namespace

std::string svg_chart(const std::string& title, const std::string& unit,
                      std::vector<ChartSeries> series, double t_end, const ChartAxes& axes) {
  const double w = 900, left = 50, right = 10, bottom = 24;
  double ymax = axes.y_min;
  for (ChartSeries& s : series) {
    reduce_points(s, t_end);
    for (const auto& p : s.points) ymax = std::max(ymax, p.second);
  }
  const std::vector<LegendSlot> legend =
      legend_layout(series, left, left + 7.0 * static_cast<double>(title.size()) + 20, w - right);
  const int rows = legend.empty() ? 1 : legend.back().row + 1;
  const double top = 24 + 14.0 * (rows - 1), h = 176 + top;
  const YScale ys = y_scale(axes.y_min, ymax, axes.integer_y);
  const double ymin = axes.y_min;
  auto x = [&](double t) { return left + (w - left - right) * (t_end > 0 ? t / t_end : 0); };
  auto y = [&](double v) { return top + (h - top - bottom) * (1 - (v - ymin) / (ys.max - ymin)); };
  std::string svg = fmt::format(
      "<svg viewBox=\"0 0 {} {}\" class=\"chart\"><text x=\"{}\" y=\"15\" "
      "class=\"title\">{}</text>",
      w, h, left, html_escape(title));
  if (axes.warmup_s > 0 && t_end > 0) {
    const double end = x(std::min(axes.warmup_s, t_end));
    svg += fmt::format(
        "<rect class=\"warmup\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\">"
        "<title>warm-up: left out of the figures</title></rect><text x=\"{:.1f}\" y=\"{:.1f}\" "
        "class=\"axis\">warm-up</text>",
        x(0), top, end - x(0), h - top - bottom, x(0) + 3, top + 11);
  }
  for (double v : ys.ticks) {
    const std::string label =
        axes.integer_y ? fmt::format("{:.0f}", v) : fmt::format("{:.3g}{}", v, unit);
    svg += fmt::format(
        "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"grid\"/>"
        "<text x=\"{}\" y=\"{:.1f}\" class=\"axis ytick\" text-anchor=\"end\">{}</text>",
        left, w - right, y(v), y(v), left - 4, y(v) + 4, label);
  }
  for (int i = 0; i <= 6; ++i) {
    // Labels on whole minutes (whole seconds for short runs) so they read "1h20m", not "4801s".
    const double step = axes.x_label ? 0.0 : t_end >= 600 ? 60.0 : 1.0;
    const double t = step > 0 ? std::round(t_end * i / 6 / step) * step : t_end * i / 6;
    const char* anchor = i == 0 ? "start" : i == 6 ? "end" : "middle";
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" class=\"axis\" text-anchor=\"{}\">{}</text>",
                       x(t), h - 6, anchor,
                       axes.x_label ? axes.x_label(t) : format_duration(from_seconds(t)));
  }
  for (size_t i = series.size(); i-- > 0;) {
    const ChartSeries& s = series[i];
    svg += series_svg(s, x, y);
    const double ly = 6 + 14.0 * legend[i].row;
    svg += fmt::format(
        "<rect x=\"{:.0f}\" y=\"{:.0f}\" width=\"10\" height=\"10\" fill=\"{}\"/><text "
        "x=\"{:.0f}\" "
        "y=\"{:.0f}\" class=\"legend\">{}</text>",
        legend[i].x, ly, s.color, legend[i].x + 14, ly + 9, html_escape(s.name));
  }
  return svg + "</svg>";
}

namespace {

// The columns of the comparison, in the terminal and in the HTML report alike; "ttft p99" only
// under a ttft SLO.
std::vector<std::string> table_header(bool ttft) {
  std::vector<std::string> header = {"policy",    "requests", "ok",       "rejected", "timed out",
                                     "wait p50",  "wait p99", "e2e p99",  "SLO met",  "replica-h",
                                     "req/rep-h", "cost",     "launches", "peak",     "reversals"};
  if (ttft) header.insert(header.begin() + 8, "ttft p99");
  return header;
}

// Whether the runs' SLO is on time to first token.
bool ttft_slo(const std::vector<SimResult>& runs) {
  return !runs.empty() && runs.front().ttft_s > 0;
}

// What the SLO line under the table says: "wait <= 2.00s" or "ttft (wait + prefill) <= 1.50s".
std::string slo_text(const SimResult& r, std::string_view le) {
  if (r.ttft_s > 0) return fmt::format("ttft (wait + prefill) {} {}", le, seconds(r.ttft_s));
  return fmt::format("wait {} {}", le, seconds(r.max_wait_s));
}

// One row of figures; `name` first. Throughput per replica: requests answered per replica-hour,
// the "which hardware serves this model best per dollar" figure with the cost.
std::vector<std::string> table_cells(const std::string& name, const Outcomes& o,
                                     double replica_seconds, bool priced, double cost,
                                     uint64_t launches, int peak, int reversals, bool ttft) {
  const double hours = replica_seconds / 3600.0;
  std::vector<std::string> cells = {
      name,
      fmt::format("{}", o.total),
      fmt::format("{}", o.ok),
      fmt::format("{}", o.rejected),
      fmt::format("{}", o.timed_out),
      seconds(o.wait_s.quantile(0.5)),
      seconds(o.wait_s.quantile(0.99)),
      seconds(o.e2e_s.quantile(0.99)),
      pct(o.attainment()),
      fmt::format("{:.2f}", hours),
      hours > 0 ? fmt::format("{:.0f}", static_cast<double>(o.ok) / hours) : "-",
      priced ? fmt::format("${:.2f}", cost) : "-",
      fmt::format("{}", launches),
      fmt::format("{}", peak),
      fmt::format("{}", reversals)};
  if (ttft) cells.insert(cells.begin() + 8, seconds(o.ttft_s.quantile(0.99)));
  return cells;
}

}  // namespace

std::string format_table(const std::vector<SimResult>& runs) {
  const bool ttft = ttft_slo(runs);
  const std::vector<std::string> header = table_header(ttft);
  std::vector<std::vector<std::string>> rows;
  for (const SimResult& r : runs) {
    rows.push_back(table_cells(r.policy, r.outcomes, r.replica_seconds, r.priced, r.cost,
                               r.launches, r.peak_replicas, r.scale_reversals, ttft));
    if (r.groups.size() < 2) continue;
    // Several groups: each on its own line under the run.
    for (const GroupResult& g : r.groups) {
      rows.push_back(table_cells("  " + g.endpoint + "/" + g.group, g.outcomes, g.replica_seconds,
                                 g.priced, g.cost, g.launches, g.peak_replicas, g.scale_reversals,
                                 ttft));
    }
  }
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& row : rows) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t c = 0; c < cells.size(); ++c) {
      out += c == 0 ? fmt::format("{:<{}}", cells[c], width[c])
                    : fmt::format("  {:>{}}", cells[c], width[c]);
    }
    out += '\n';
  };
  line(header);
  size_t total = 0;
  for (size_t c = 0; c < width.size(); ++c) total += width[c] + (c == 0 ? 0 : 2);
  out += std::string(total, '-') + '\n';
  for (const auto& row : rows) line(row);
  if (!runs.empty()) {
    const SimResult& r = runs.front();
    out += fmt::format(
        "SLO: {}. Lower bounds on replica-hours: {:.2f} if every request started on "
        "arrival with instant scaling, {:.2f} of pure work.\n",
        slo_text(r, "<="), r.zero_wait_replica_seconds / 3600.0,
        r.work_bound_replica_seconds / 3600.0);
  }
  for (const SimResult& r : runs)
    if (!r.note.empty()) out += r.note + ".\n";
  return out;
}

std::string summary_csv(const std::vector<SimResult>& runs) {
  std::string out =
      "policy,requests,ok,rejected,timed_out,wait_p50_s,wait_p99_s,e2e_p99_s,slo_attainment,"
      "replica_seconds,cost,launches,peak_replicas,scale_reversals,ttft_p50_s,ttft_p99_s\n";
  for (const SimResult& r : runs) {
    const Outcomes& o = r.outcomes;
    out += fmt::format(
        "{},{},{},{},{},{:.6g},{:.6g},{:.6g},{:.6f},{:.3f},{},{},{},{},{:.6g},{:.6g}\n",
        csv_escape(r.policy), o.total, o.ok, o.rejected, o.timed_out, o.wait_s.quantile(0.5),
        o.wait_s.quantile(0.99), o.e2e_s.quantile(0.99), o.attainment(), r.replica_seconds,
        r.priced ? fmt::format("{:.4f}", r.cost) : "", r.launches, r.peak_replicas,
        r.scale_reversals, o.ttft_s.quantile(0.5), o.ttft_s.quantile(0.99));
  }
  return out;
}

std::string summary_json(const SimResult& run) { return run_json(run).dump(2); }

std::string summary_json(const std::vector<SimResult>& runs) {
  ordered_json a = ordered_json::array();
  for (const SimResult& r : runs) a.push_back(run_json(r));
  return a.dump(2);
}

std::string run_dir_name(const std::string& label) {
  std::string out;
  for (char c : label) {
    const bool keep =
        std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    if (keep) {
      out += c;
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "run" : out;
}

void write_csvs(const std::string& dir, const SimResult& run, const config::Config& config) {
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir + "/timeline.csv");
    f << "time_s,endpoint,group,desired,starting,ready,draining,queued,in_service,gpu_util,"
         "wait_mean_s,wait_max_s,load,late\n";
    for (const TimelineRow& t : run.timeline) {
      const auto& ep = config.endpoints[t.endpoint];
      f << fmt::format("{:.3f},{},{},{},{},{},{},{},{},{:.4f},{:.4f},{:.4f},{:.4f},{}\n", t.t_s,
                       ep.name, ep.groups[t.group].name, t.desired, t.starting, t.ready, t.draining,
                       t.queued, t.in_service, t.gpu_util, t.wait_mean_s, t.wait_max_s, t.load,
                       t.late);
    }
  }
  std::ofstream f(dir + "/decisions.csv");
  f << "time_s,endpoint,group,from,to,reason\n";
  for (const DecisionRecord& d : run.decisions) {
    f << fmt::format("{:.3f},{},{},{},{},{}\n", to_seconds(d.time), d.endpoint, d.group, d.from,
                     d.to, csv_escape(d.reason));
  }
}

std::string html_page_start(const std::string& title) {
  return fmt::format(R"(<!doctype html><html><head><meta charset="utf-8">
<title>{0}</title><style>
body{{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}}
table{{border-collapse:collapse;font-variant-numeric:tabular-nums}}
td,th{{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}}
td:first-child,th:first-child{{text-align:left}}
.chart{{width:100%;height:auto;margin:6px 0}} .grid{{stroke:#eee}}
.axis{{font-size:10px;fill:#666}} .title{{font-size:12px;font-weight:600}}
.legend{{font-size:11px}} pre{{white-space:pre-wrap;font-size:12px}}
.warmup{{fill:#e5e7eb;fill-opacity:.6}}
</style></head><body><h1>{0}</h1>
)",
                     html_escape(title));
}

std::string comparison_table_html(const std::vector<SimResult>& runs) {
  std::string html = "<table class=\"comparison\"><tr>";
  const bool ttft = ttft_slo(runs);
  for (const std::string& h : table_header(ttft)) html += "<th>" + html_escape(h) + "</th>";
  html += "</tr>";
  for (const SimResult& r : runs) {
    std::vector<std::string> cells =
        table_cells(r.policy, r.outcomes, r.replica_seconds, r.priced, r.cost, r.launches,
                    r.peak_replicas, r.scale_reversals, ttft);
    html += fmt::format("<tr><td><a href=\"#{0}\">{0}</a></td>", html_escape(cells[0]));
    for (size_t c = 1; c < cells.size(); ++c) html += "<td>" + html_escape(cells[c]) + "</td>";
    html += "</tr>";
  }
  html += "</table>";
  for (const SimResult& r : runs)
    if (!r.note.empty()) html += "<p>" + html_escape(r.note) + ".</p>";
  return html;
}

namespace {

// Colors of runs overlaid on one chart (Tableau 10), repeated past ten runs.
const std::string& run_color(size_t i) {
  static const std::vector<std::string> colors = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                                  "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                                  "#bcbd22", "#17becf"};
  return colors[i % colors.size()];
}

// Per tick over every group: the replicas running (starting, ready or draining: what is paid
// for) summed, and the longest wait of a request started.
void add_overlay_points(const SimResult& r, ChartSeries& replicas, ChartSeries& wait) {
  for (const TimelineRow& t : r.timeline) {
    const double running = t.starting + t.ready + t.draining;
    if (!replicas.points.empty() && replicas.points.back().first == t.t_s) {
      replicas.points.back().second += running;
      wait.points.back().second = std::max(wait.points.back().second, t.wait_max_s);
    } else {
      replicas.points.emplace_back(t.t_s, running);
      wait.points.emplace_back(t.t_s, t.wait_max_s);
    }
  }
}

// Every run with a timeline on one scale: replicas, then the longest wait.
std::string overlay_charts_html(const std::vector<SimResult>& runs) {
  std::vector<ChartSeries> replicas, wait;
  double span = 0, warmup = 0;
  for (const SimResult& r : runs) {
    if (r.timeline.empty()) continue;  // e.g. the clairvoyant reference
    const std::string& color = run_color(replicas.size());
    replicas.push_back({r.policy, color, {}, true});
    wait.push_back({r.policy, color, {}});
    add_overlay_points(r, replicas.back(), wait.back());
    span = std::max(span, r.span_s);
    warmup = std::max(warmup, r.warmup_s);
  }
  if (replicas.empty()) return "";
  ChartAxes replica_axes{.x_label = {}, .y_min = 0, .integer_y = true, .warmup_s = warmup};
  ChartAxes wait_axes{.x_label = {}, .y_min = 0, .integer_y = false, .warmup_s = warmup};
  return "<h2 id=\"overlay\">All runs on one scale</h2><div class=\"overlay\" "
         "id=\"overlay-replicas\">" +
         svg_chart("Replicas running (starting, ready or draining), all groups", "",
                   std::move(replicas), span, replica_axes) +
         "</div><div class=\"overlay\" id=\"overlay-wait\">" +
         svg_chart("Longest wait of a request started", "s", std::move(wait), span, wait_axes) +
         "</div>";
}

// The four charts of one group of one run.
std::string group_charts_html(const SimResult& r, const std::string& label, size_t e, size_t g) {
  ChartSeries desired{"desired", "#999", {}, true}, ready{"ready", "#1f77b4", {}, true},
      starting{"starting", "#ff7f0e", {}, true}, queued{"queued", "#d62728", {}},
      in_service{"in service", "#2ca02c", {}}, wait_max{"max wait", "#d62728", {}},
      wait_mean{"mean wait", "#1f77b4", {}}, util{"gpu util (nvidia-smi)", "#9467bd", {}};
  for (const TimelineRow& t : r.timeline) {
    if (t.endpoint != e || t.group != g) continue;
    desired.points.emplace_back(t.t_s, t.desired);
    ready.points.emplace_back(t.t_s, t.ready);
    starting.points.emplace_back(t.t_s, t.starting);
    queued.points.emplace_back(t.t_s, t.queued);
    in_service.points.emplace_back(t.t_s, t.in_service);
    wait_max.points.emplace_back(t.t_s, t.wait_max_s);
    wait_mean.points.emplace_back(t.t_s, t.wait_mean_s);
    util.points.emplace_back(t.t_s, t.gpu_util);
  }
  const ChartAxes counts{.x_label = {}, .y_min = 0, .integer_y = true, .warmup_s = r.warmup_s};
  const ChartAxes plain{.x_label = {}, .y_min = 0, .integer_y = false, .warmup_s = r.warmup_s};
  return svg_chart(label + ": replicas", "", {desired, ready, starting}, r.span_s, counts) +
         svg_chart(label + ": requests", "", {queued, in_service}, r.span_s, counts) +
         svg_chart(label + ": waiting time of requests started", "s", {wait_max, wait_mean},
                   r.span_s, plain) +
         svg_chart(label + ": GPU utilization as nvidia-smi reads it", "", {util}, r.span_s, plain);
}

// One run: its charts per group and its first 200 decisions.
std::string run_html(const SimResult& r, const config::Config& config) {
  std::string html = fmt::format("<h2 id=\"{0}\">{0}</h2>", html_escape(r.policy));
  for (size_t e = 0; e < config.endpoints.size(); ++e) {
    for (size_t g = 0; g < config.endpoints[e].groups.size(); ++g) {
      html += group_charts_html(
          r, config.endpoints[e].name + "/" + config.endpoints[e].groups[g].name, e, g);
    }
  }
  size_t shown = 0;
  std::string decisions;
  for (const DecisionRecord& d : r.decisions) {
    if (++shown > 200) break;
    decisions += fmt::format("{:>9.1f}s {}/{} {} -> {}: {}\n", to_seconds(d.time), d.endpoint,
                             d.group, d.from, d.to, d.reason);
  }
  return html + fmt::format(
                    "<details><summary>decisions ({} in all, first 200)</summary><pre>{}</pre>"
                    "</details>",
                    r.decisions.size(), html_escape(decisions));
}

}  // namespace

void write_report_html(const std::string& dir, const std::vector<SimResult>& runs,
                       const config::Config& config, const std::string& title) {
  std::filesystem::create_directories(dir);
  std::string html = html_page_start(title) + "<h2>Comparison</h2>" + comparison_table_html(runs);
  if (!runs.empty()) {
    html += fmt::format(
        "<p>SLO: {}. Replica-hours if every request started on arrival with instant "
        "scaling: {:.2f}; of pure work: {:.2f}.</p>",
        html_escape(slo_text(runs.front(), "<=")), runs.front().zero_wait_replica_seconds / 3600.0,
        runs.front().work_bound_replica_seconds / 3600.0);
    if (runs.front().warmup_s > 0)
      html += fmt::format(
          "<p>The shaded first {} of each chart is the warm-up, left out of the figures.</p>",
          format_duration(from_seconds(runs.front().warmup_s)));
  }
  html += overlay_charts_html(runs);
  for (const SimResult& r : runs) {
    if (r.timeline.empty() && r.decisions.empty()) continue;  // e.g. the clairvoyant reference
    html += run_html(r, config);
  }
  html += "</body></html>\n";
  std::ofstream(dir + "/report.html") << html;
}

}  // namespace tide::sim
