#include "tide/cli/format.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ctime>

#include "tide/common/time.h"

namespace tide::cli {
namespace {

constexpr std::string_view kBold = "\x1b[1m";
constexpr std::string_view kDim = "\x1b[2m";
constexpr std::string_view kRed = "\x1b[31m";
constexpr std::string_view kGreen = "\x1b[32m";
constexpr std::string_view kYellow = "\x1b[33m";
constexpr std::string_view kCyan = "\x1b[36m";
constexpr std::string_view kReset = "\x1b[0m";

const json& field(const json& j, std::string_view key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

bool has_number(const json& j, std::string_view key) { return field(j, key).is_number(); }

double number(const json& j, std::string_view key, double fallback = 0) {
  const json& v = field(j, key);
  return v.is_number() ? v.get<double>() : fallback;
}

std::string text(const json& j, std::string_view key) {
  const json& v = field(j, key);
  return v.is_string() ? v.get<std::string>() : "";
}

// A name or id: a string or a number as the API sends it, or "-".
std::string label(const json& j, std::string_view key) {
  const json& v = field(j, key);
  if (v.is_string() && !v.get<std::string>().empty()) return v.get<std::string>();
  if (v.is_number_integer()) return fmt::format("{}", v.get<int64_t>());
  return "-";
}

// A count as the API sends it, or "-".
std::string count(const json& j, std::string_view key) {
  const json& v = field(j, key);
  if (v.is_number_integer()) return fmt::format("{}", v.get<int64_t>());
  if (v.is_number()) return fmt::format("{:g}", v.get<double>());
  return "-";
}

std::string seconds_field(const json& j, std::string_view key) {
  return has_number(j, key) ? format_seconds(number(j, key)) : "-";
}

std::string paint(std::string_view s, std::string_view color, bool on) {
  if (!on || color.empty()) return std::string(s);
  return fmt::format("{}{}{}", color, s, kReset);
}

// Whether the group's launch template changed while it ran (a rollout to show).
bool changed_template(const json& rollout) {
  const std::string state = text(rollout, "state");
  return !state.empty() && state != "none";
}

// A replica's launch template, once its group's template has changed: "gen 2", "gen 1 (old)".
std::string template_cell(const json& replica, const json& rollout) {
  if (!has_number(replica, "generation")) return "-";
  const bool old = has_number(rollout, "generation") &&
                   number(replica, "generation") < number(rollout, "generation");
  return fmt::format("gen {}{}", label(replica, "generation"), old ? " (old)" : "");
}

// "local: rollout to template generation 2 rolling: 1 old, 2 new replicas"; a stopped one in
// red with its reason.
std::string rollout_note(const std::string& group, const json& rollout, const FormatOptions& o) {
  const std::string state = label(rollout, "state");
  std::string line = fmt::format("rollout to template generation {} {}: {} old, {} new replicas",
                                 label(rollout, "generation"), state,
                                 count(rollout, "old_replicas"), count(rollout, "new_replicas"));
  if (const std::string reason = text(rollout, "reason"); !reason.empty()) line += "; " + reason;
  return fmt::format("  {}: {}\n", group, state == "stopped" ? paint(line, kRed, o.color) : line);
}

// A group's streamed answers: "ttft p50 510ms p99 1.90s, tpot p50 20ms p99 41ms (12 streamed)",
// or "" when it had none (the gateway's /metrics have them as tide_gateway_ttft_seconds ...).
std::string token_times(const json& stats) {
  const json& ttft = field(stats, "ttft_s");
  if (number(ttft, "count") <= 0) return "";
  std::string line =
      fmt::format("ttft p50 {} p99 {}", seconds_field(ttft, "p50"), seconds_field(ttft, "p99"));
  const json& tpot = field(stats, "tpot_s");
  if (number(tpot, "count") > 0)
    line +=
        fmt::format(", tpot p50 {} p99 {}", seconds_field(tpot, "p50"), seconds_field(tpot, "p99"));
  return line + fmt::format(" ({} streamed)", count(ttft, "count"));
}

// "engine: 3 waiting, 4 running, KV cache 62% (2 replicas read)": the model servers' figures.
std::string engine_note(const json& engine) {
  std::string line = fmt::format("engine: {} waiting, {} running", count(engine, "waiting"),
                                 count(engine, "running"));
  if (has_number(engine, "kv_cache"))
    line += fmt::format(", KV cache {:.0f}%", 100 * number(engine, "kv_cache"));
  return line + fmt::format(" ({} replicas read)", count(engine, "reporting"));
}

std::string state_color(const std::string& state) {
  if (state == "ready") return std::string(kGreen);
  if (state == "starting" || state == "requested") return std::string(kYellow);
  if (state == "draining") return std::string(kCyan);
  if (state == "failed") return std::string(kRed);
  if (state == "stopped") return std::string(kDim);
  return "";
}

// "split local 3, b 1, sticky X-User" / "overflow local > b". Not inlined: inlined into
// endpoint_block, GCC 12 reports a false -Wrestrict on moving the result.
[[gnu::noinline]] std::string routing_text(const json& ep) {
  const json& routing = field(ep, "routing");
  std::string mode = text(routing, "mode");
  if (mode.empty()) return "";
  const json& weights = field(routing, "weights");
  if (mode == "split" && weights.is_object() && weights.size() > 1) {
    std::string list;
    for (auto it = weights.begin(); it != weights.end(); ++it) {
      list += fmt::format("{}{} {}", list.empty() ? "" : ", ", it.key(),
                          it.value().is_number() ? fmt::format("{:g}", it.value().get<double>())
                                                 : std::string("-"));
    }
    mode += " " + list;
    if (const std::string sticky = text(routing, "sticky_header"); !sticky.empty())
      mode += ", sticky " + sticky;
  }
  const json& order = field(routing, "order");
  if (mode == "overflow" && order.is_array() && order.size() > 1) {
    std::string list;
    for (const json& g : order)
      list += (list.empty() ? "" : " > ") + (g.is_string() ? g.get<std::string>() : "-");
    mode += " " + list;
  }
  return mode;
}

// The endpoint's first line: its name, routing, queue, requests and rejections.
std::string endpoint_headline(const json& ep, const FormatOptions& o) {
  std::string out = paint(label(ep, "name"), kBold, o.color);
  if (const std::string routing = routing_text(ep); !routing.empty()) out += "  routing " + routing;
  out += "  queued " + count(ep, "queued");
  if (const json& queue = field(ep, "queue"); has_number(queue, "max_length"))
    out += " of " + count(queue, "max_length");
  out += "  requests " + count(ep, "requests");
  const double full = number(ep, "rejected_queue_full");
  const double none = number(ep, "rejected_no_replica");
  const double late = number(ep, "timed_out");
  out += fmt::format("  rejected {:g}", full + none + late);
  if (full + none + late > 0) {
    std::string parts;
    for (auto [what, n] : {std::pair{"queue full", full}, std::pair{"no replica", none},
                           std::pair{"timed out", late}}) {
      if (n > 0) parts += fmt::format("{}{} {:g}", parts.empty() ? "" : ", ", what, n);
    }
    out += " (" + parts + ")";
  }
  return out + "\n";
}

Table group_table() {
  using A = Table::Align;
  return Table({{"GROUP"},
                {"DESIRED", A::kRight},
                {"READY", A::kRight},
                {"STARTING", A::kRight},
                {"DRAINING", A::kRight},
                {"MIN/MAX", A::kRight},
                {"QUEUED", A::kRight},
                {"IN FLIGHT", A::kRight},
                {"P50", A::kRight},
                {"P95", A::kRight}});
}

Table replica_table() {
  using A = Table::Align;
  return Table({{"REPLICA"},
                {"STATE"},
                {"ADDRESS"},
                {"AGE", A::kRight},
                {"IN FLIGHT", A::kRight},
                {"COLD START", A::kRight},
                {"TEMPLATE", A::kLeft, true},
                {"ERROR", A::kLeft, true}});
}

void add_group_row(Table& gt, const json& g, const std::string& gname) {
  const json& latency = field(field(g, "stats"), "latency_s");
  const bool answered = number(latency, "count") > 0;
  const std::string ready_color = !has_number(g, "ready") ? ""
                                  : number(g, "ready") >= number(g, "desired")
                                      ? std::string(kGreen)
                                      : std::string(kYellow);
  gt.add_row(
      {gname, count(g, "desired"), count(g, "ready"), count(g, "starting"), count(g, "draining"),
       count(g, "min_replicas") + "/" + count(g, "max_replicas"), count(g, "queued"),
       count(g, "in_flight"), answered ? seconds_field(latency, "p50") : "-",
       answered ? seconds_field(latency, "p95") : "-"},
      {"", "", ready_color});
}

// The lines under the group table about one group: token times, its last reason, failed
// launches, a rollout and its engines.
std::string group_notes(const json& g, const std::string& gname, const FormatOptions& o) {
  std::string notes;
  if (const std::string tokens = token_times(field(g, "stats")); !tokens.empty())
    notes += fmt::format("  {}: {}\n", gname, tokens);
  if (const std::string reason = text(g, "last_reason"); !reason.empty())
    notes += fmt::format("  {}: {}\n", gname, reason);
  const std::string error = text(g, "last_error");
  if (number(g, "failures") > 0 || !error.empty()) {
    std::string line =
        fmt::format("{} of {} launches failed", count(g, "failures"), count(g, "launches"));
    if (!error.empty()) line += "; last: " + error;
    if (has_number(g, "backoff_s") && number(g, "backoff_s") > 0)
      line += "; next launch in " + format_age(std::ceil(number(g, "backoff_s")));
    notes += fmt::format("  {}: {}\n", gname, paint(line, kRed, o.color));
  }
  if (const json& rollout = field(g, "rollout"); changed_template(rollout))
    notes += rollout_note(gname, rollout, o);
  if (const json& engine = field(g, "engine"); engine.is_object())
    notes += fmt::format("  {}: {}\n", gname, engine_note(engine));
  return notes;
}

void add_replica_rows(Table& rt, const json& g, const std::string& prefix) {
  const json& replicas = field(g, "replicas");
  if (!replicas.is_array()) return;
  const json& rollout = field(g, "rollout");
  const bool rolled = changed_template(rollout);
  for (const json& r : replicas) {
    if (!r.is_object()) continue;
    std::string rname = text(r, "name");
    if (rname.empty()) rname = fmt::format("{}/{}", prefix, label(r, "id"));
    const std::string state = label(r, "state");
    std::string address = text(r, "address");
    rt.add_row({rname, state, address.empty() ? "-" : address,
                has_number(r, "age_s") ? format_age(number(r, "age_s")) : "-",
                count(r, "in_flight"), seconds_field(r, "cold_start_s"),
                rolled ? template_cell(r, rollout) : "", text(r, "error")},
               {"", state_color(state), "", "", "", "", "", std::string(kRed)});
  }
}

std::string endpoint_block(const json& ep, const FormatOptions& o) {
  std::string out = endpoint_headline(ep, o);
  const json& groups = field(ep, "groups");
  if (!groups.is_array() || groups.empty()) return out + "  no groups\n";
  const std::string name = label(ep, "name");
  Table gt = group_table();
  Table rt = replica_table();
  std::string notes;
  for (const json& g : groups) {
    if (!g.is_object()) continue;
    const std::string gname = label(g, "name");
    add_group_row(gt, g, gname);
    notes += group_notes(g, gname, o);
    add_replica_rows(rt, g, fmt::format("{}/{}", name, gname));
  }
  out += gt.render("  ", o.color);
  out += notes;
  out += "\n";
  if (rt.rows() == 0) {
    out += "  no replicas\n";
  } else {
    out += rt.render("  ", o.color);
  }
  return out;
}

struct Column {
  bool data = false;
  double desired = 0, ready = 0, stack = 0;  // stack: ready + starting
};

}  // namespace

void Table::add_row(std::vector<std::string> cells, std::vector<std::string> colors) {
  cells.resize(columns_.size());
  colors.resize(columns_.size());
  rows_.push_back({std::move(cells), std::move(colors)});
}

std::string Table::render(std::string_view indent, bool color) const {
  std::vector<size_t> width(columns_.size());
  std::vector<bool> shown(columns_.size(), true);
  for (size_t c = 0; c < columns_.size(); ++c) {
    width[c] = columns_[c].title.size();
    bool any = false;
    for (const Row& r : rows_) {
      width[c] = std::max(width[c], r.cells[c].size());
      any = any || !r.cells[c].empty();
    }
    shown[c] = any || !columns_[c].hide_if_empty;
  }
  auto line = [&](auto cell_of, auto color_of) {
    std::string s(indent);
    std::string pending;  // spaces, written only if something follows them
    bool first = true;
    for (size_t c = 0; c < columns_.size(); ++c) {
      if (!shown[c]) continue;
      if (!first) pending += "  ";
      first = false;
      const std::string& cell = cell_of(c);
      const size_t pad = width[c] - cell.size();
      if (columns_[c].align == Align::kRight) pending.append(pad, ' ');
      if (!cell.empty()) {
        s += pending;
        pending.clear();
        s += paint(cell, color_of(c), color);
      }
      if (columns_[c].align == Align::kLeft) pending.append(pad, ' ');
    }
    return s + "\n";
  };
  std::string out = line([&](size_t c) -> const std::string& { return columns_[c].title; },
                         [](size_t) { return kDim; });
  for (const Row& r : rows_) {
    out += line([&](size_t c) -> const std::string& { return r.cells[c]; },
                [&](size_t c) { return std::string_view(r.colors[c]); });
  }
  return out;
}

std::string format_seconds(double s) {
  if (!(s >= 0) || !std::isfinite(s)) return "-";
  if (s < 1e-3) return fmt::format("{:.0f}us", s * 1e6);
  if (s < 1) return fmt::format("{:.0f}ms", s * 1e3);
  if (s < 10) return fmt::format("{:.2f}s", s);
  if (s < 60) return fmt::format("{:.1f}s", s);
  const auto whole = static_cast<int64_t>(std::round(s));
  return fmt::format("{}m{:02}s", whole / 60, whole % 60);
}

std::string format_age(double s) {
  if (!(s >= 0) || !std::isfinite(s)) return "-";
  const auto t = static_cast<int64_t>(s);
  if (t < 60) return fmt::format("{}s", t);
  if (t < 3600) return fmt::format("{}m{:02}s", t / 60, t % 60);
  if (t < 86400) return fmt::format("{}h{:02}m", t / 3600, (t / 60) % 60);
  return fmt::format("{}d{:02}h", t / 86400, (t / 3600) % 24);
}

std::string format_clock(double unix_s, bool with_date, bool utc) {
  if (!std::isfinite(unix_s)) return "-";
  const auto t = static_cast<std::time_t>(std::floor(unix_s));
  std::tm tm{};
  if ((utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm)) == nullptr) return "-";
  char buf[32];
  const size_t n = std::strftime(buf, sizeof buf, with_date ? "%m-%d %H:%M" : "%H:%M:%S", &tm);
  return std::string(buf, n);
}

std::string format_status(const std::vector<json>& endpoints, const FormatOptions& o) {
  if (endpoints.empty()) return "no endpoints\n";
  std::string out;
  for (size_t i = 0; i < endpoints.size(); ++i) {
    if (i > 0) out += "\n";
    out += endpoint_block(endpoints[i], o);
  }
  return out;
}

std::string replica_chart(const json& points, double step_s, int max_columns,
                          const FormatOptions& o) {
  if (!points.is_array() || points.empty()) return "";
  double t0 = INFINITY, t1 = -INFINITY, last = -INFINITY;
  for (const json& p : points) {
    if (!has_number(p, "t")) continue;
    t0 = std::min(t0, number(p, "t"));
    last = std::max(last, number(p, "t"));
    t1 = std::max(t1, number(p, "t") + number(p, "step_s", step_s));
  }
  if (!(t1 > t0)) return "";
  const double step = step_s > 0 ? step_s : (t1 - t0) / static_cast<double>(points.size());
  const int n =
      std::clamp(static_cast<int>(std::lround((t1 - t0) / step)), 1, std::max(1, max_columns));
  std::vector<Column> cols(static_cast<size_t>(n));
  double top = 1;
  for (const json& p : points) {
    if (!has_number(p, "t")) continue;
    const int at =
        std::clamp(static_cast<int>(std::floor((number(p, "t") - t0) / (t1 - t0) * n)), 0, n - 1);
    Column& c = cols[static_cast<size_t>(at)];
    c.data = true;
    c.desired = std::max(c.desired, number(p, "desired"));
    c.ready = std::max(c.ready, number(p, "ready"));
    c.stack = std::max(c.stack, number(p, "ready") + number(p, "starting"));
    top = std::max({top, c.desired, c.stack});
  }
  // One row per replica up to 10; beyond, 10 rows of top/10 each (a cell fills when the value
  // reaches the middle of its row).
  const int rows = top <= 10 ? static_cast<int>(std::ceil(top)) : 10;
  const double per_row = top / rows;
  const std::string top_label = fmt::format("{:g}", std::round(top));
  const size_t label_width = top_label.size();
  std::string out;
  for (int r = rows; r >= 1; --r) {
    const double mid = (r - 0.5) * per_row;
    std::string label;
    if (rows == static_cast<int>(std::ceil(top)) || r == rows || r == 1 || r == rows / 2)
      label = fmt::format("{:g}", std::round(r * per_row));
    std::string line = fmt::format("  {:>{}} |", label, label_width);
    std::string cells;
    for (const Column& c : cols) {
      char ch = ' ';
      if (c.data && c.ready >= mid) {
        ch = '#';
      } else if (c.data && c.stack >= mid) {
        ch = '+';
      } else if (c.data && c.desired >= mid) {
        ch = '.';
      }
      cells += ch;
    }
    while (!cells.empty() && cells.back() == ' ') cells.pop_back();
    if (o.color) {
      std::string painted;
      for (char ch : cells) {
        painted += ch == '#'   ? paint("#", kGreen, true)
                   : ch == '+' ? paint("+", kYellow, true)
                               : std::string(1, ch);
      }
      cells = painted;
    }
    out += line + cells + "\n";
  }
  out += fmt::format("  {:>{}} +{}\n", "0", label_width, std::string(static_cast<size_t>(n), '-'));
  const bool with_date = t1 - t0 > 20 * 3600;
  const std::string first = format_clock(t0, with_date, o.utc);
  // The times of the first and the last sample, under the first and the last column.
  const std::string final = format_clock(last, with_date, o.utc);
  std::string axis(label_width + 4, ' ');
  axis += first;
  if (static_cast<size_t>(n) >= first.size() + final.size() + 2) {
    axis += std::string(static_cast<size_t>(n) - first.size() - final.size(), ' ');
    axis += final;
  }
  return out + axis + "\n";
}

std::string format_history(const json& history, const json& decisions, int decisions_limit,
                           const FormatOptions& o) {
  std::string out;
  const std::string endpoint = text(history, "endpoint");
  const double from = number(history, "from"), to = number(history, "to");
  const double step = number(history, "step_s");
  const bool with_date = to - from > 20 * 3600;
  const std::string span = fmt::format("{} to {}", format_clock(from, with_date, o.utc),
                                       format_clock(to, with_date, o.utc));
  const json& groups = field(history, "groups");
  if (!groups.is_array() || groups.empty()) {
    out += fmt::format(
        "no history for {} from {} (the server writes a sample per group every "
        "state.sample_interval)\n",
        endpoint, span);
  }
  using A = Table::Align;
  const int chart_columns = std::max(10, o.width - 12);
  for (const json& g : groups.is_array() ? groups : json::array()) {
    if (!out.empty()) out += "\n";
    const json& points = field(g, "points");
    out += fmt::format("{}  {}, step {}\n", paint(endpoint + "/" + text(g, "name"), kBold, o.color),
                       span, format_duration(from_seconds(step)));
    if (!points.is_array() || points.empty()) {
      out += "  no samples\n";
      continue;
    }
    out += "  replicas (" + paint("#", kGreen, o.color) + " ready, " +
           paint("+", kYellow, o.color) + " starting, . desired but not there)\n";
    out += replica_chart(points, step, chart_columns, o);
    out += "\n";
    Table t({{"TIME"},
             {"DESIRED", A::kRight},
             {"READY", A::kRight},
             {"STARTING", A::kRight},
             {"DRAINING", A::kRight},
             {"QUEUED", A::kRight},
             {"IN FLIGHT", A::kRight},
             {"REQUESTS", A::kRight},
             {"P50", A::kRight},
             {"P95", A::kRight}});
    for (const json& p : points) {
      t.add_row({has_number(p, "t") ? format_clock(number(p, "t"), with_date, o.utc) : "-",
                 count(p, "desired"), count(p, "ready"), count(p, "starting"), count(p, "draining"),
                 count(p, "queued"), count(p, "in_flight"), count(p, "requests"),
                 seconds_field(p, "latency_p50_s"), seconds_field(p, "latency_p95_s")});
    }
    out += t.render("  ", o.color);
  }
  const json& list = field(decisions, "decisions");
  if (!list.is_array()) return out;
  out += "\n";
  if (list.empty()) return out + fmt::format("no scaling decisions from {}\n", span);
  out += list.size() >= static_cast<size_t>(decisions_limit)
             ? fmt::format("the last {} scaling decisions\n", list.size())
             : fmt::format("{} scaling decision{} from {}\n", list.size(),
                           list.size() == 1 ? "" : "s", span);
  Table d({{"TIME"}, {"GROUP"}, {"CHANGE"}, {"REASON"}});
  for (const json& x : list) {
    const double a = number(x, "from"), b = number(x, "to");
    d.add_row({has_number(x, "time") ? format_clock(number(x, "time"), with_date, o.utc) : "-",
               text(x, "group"), count(x, "from") + " -> " + count(x, "to"), text(x, "reason")},
              {"", "",
               b > a   ? std::string(kGreen)
               : b < a ? std::string(kYellow)
                       : ""});
  }
  return out + d.render("  ", o.color);
}

}  // namespace tide::cli
