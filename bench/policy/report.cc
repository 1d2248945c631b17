#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>

#include "runner.h"

namespace tide::bench {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double median(std::vector<double> v) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string ratio(double x) { return std::isnan(x) ? "-" : fmt::format("{:.2f}", x); }
double hours(const sim::SimResult& r) { return r.replica_seconds / 3600; }

std::string service_text(const config::ServiceTimeModel& m) {
  using K = config::ServiceTimeModel::Kind;
  switch (m.kind) {
    case K::kFixed:
      return fmt::format("fixed {}s", to_seconds(m.value));
    case K::kLognormal:
      return fmt::format("lognormal median {}s sigma {}", to_seconds(m.median), m.sigma);
    case K::kTokens:
      return fmt::format("tokens prefill {} decode {} base {}s", m.prefill_s, m.decode_s,
                         to_seconds(m.base));
    case K::kTrace:
      return "trace durations";
  }
  return "";
}

// RFC 4180: quote a field holding a comma or a quote.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string num(double x) { return std::isnan(x) ? "" : fmt::format("{:.6g}", x); }

// The default against `tide tune`'s optimum, per workload of the set (only with --tune).
void print_tuned(std::FILE* out, Set set, const std::vector<const WorkloadResult*>& rows) {
  std::vector<double> ratios;
  for (const WorkloadResult* r : rows)
    if (r->tuned) ratios.push_back(r->tuned->ratio());
  if (ratios.empty()) return;
  fmt::print(out,
             "\n-- {} set: the default against tide tune's optimum, on the fitted part (the first "
             "80% after the warm-up) --\n{:<24} {:>14} {:>14} {:>9}\n",
             set_name(set), "workload", "default rep-h", "tuned rep-h", "/tuned");
  for (const WorkloadResult* r : rows) {
    if (!r->tuned) continue;
    const TuneRatio& t = *r->tuned;
    fmt::print(out, "{:<24} {:>13.2f}{} {:>13.2f}{} {:>9}\n", r->workload->name,
               t.default_rs / 3600, t.default_met ? "*" : " ", t.tuned_rs / 3600,
               t.tuned_met ? "*" : " ", ratio(t.ratio()));
    fmt::print(out, "{:<24} tuned: {}\n", "", t.scaling);
  }
  fmt::print(out, "{} set: default/tuned median {} worst {} (* meets the target there)\n",
             set_name(set), ratio(median(ratios)),
             ratio(*std::max_element(ratios.begin(), ratios.end())));
}

}  // namespace

void print_tables(std::FILE* out, const std::vector<WorkloadResult>& results) {
  for (Set set : {Set::kDesign, Set::kCheck}) {
    std::vector<const WorkloadResult*> rows;
    for (const auto& r : results)
      if (r.workload->set == set) rows.push_back(&r);
    if (rows.empty()) continue;
    fmt::print(out, "\n== {} set: the default policy ==\n", set_name(set));
    fmt::print(out, "{:<24} {:>9} {:>5} {:>8} {:>8} {:>6} {:>5} {:>12} {:>22} {:>7} {:>5}  {}\n",
               "workload", "requests", "lost", "SLO", "rep-h", "launch", "rev", "fixed N/rep-h",
               "cheapest preset ok", "/clairv", "pass", "failed");
    std::vector<double> vs_fixed, vs_preset, vs_clair;
    int passed = 0, judged = 0;
    for (const WorkloadResult* r : rows) {
      if (!r->error.empty()) {
        fmt::print(out, "{:<24} error: {}\n", r->workload->name, r->error);
        continue;
      }
      const sim::SimResult& d = r->default_run()->result;
      const Verdict& v = r->verdict;
      ++judged;
      passed += v.pass;
      if (!std::isnan(v.vs_fixed)) vs_fixed.push_back(v.vs_fixed);
      if (!std::isnan(v.vs_cheapest_preset)) vs_preset.push_back(v.vs_cheapest_preset);
      if (!std::isnan(v.vs_clairvoyant)) vs_clair.push_back(v.vs_clairvoyant);
      const std::string fixed = r->fixed ? fmt::format("{}{} {:.1f}", r->fixed_replicas,
                                                       r->fixed_met ? "" : "!", hours(*r->fixed))
                                         : "-";
      const std::string cheapest =
          v.cheapest_preset.empty()
              ? "none"
              : fmt::format("{} {}x", v.cheapest_preset, ratio(v.vs_cheapest_preset));
      fmt::print(
          out, "{:<24} {:>9} {:>5} {:>7.2f}% {:>8.1f} {:>6} {:>5} {:>12} {:>22} {:>7} {:>5}  {}\n",
          r->workload->name, d.outcomes.total, lost(d), 100 * d.attainment(), hours(d), d.launches,
          d.scale_reversals, fixed, cheapest, ratio(v.vs_clairvoyant), v.pass ? "yes" : "NO",
          v.failed);
    }
    auto worst = [](const std::vector<double>& x) {
      return x.empty() ? kNaN : *std::max_element(x.begin(), x.end());
    };
    fmt::print(out,
               "{} set: {}/{} pass; default/fixed median {} worst {}; default/cheapest preset "
               "median {} worst {}; default/clairvoyant median {} worst {}\n",
               set_name(set), passed, judged, ratio(median(vs_fixed)), ratio(worst(vs_fixed)),
               ratio(median(vs_preset)), ratio(worst(vs_preset)), ratio(median(vs_clair)),
               ratio(worst(vs_clair)));

    fmt::print(out,
               "\n-- {} set: every policy, SLO attainment % / replica-hours "
               "(* meets 99% with nothing lost) --\n{:<24}",
               set_name(set), "workload");
    for (const auto& p : rows.front()->runs)
      fmt::print(out, " {:>15}", p.is_default ? p.policy + " (default)" : p.policy);
    fmt::print(out, "\n");
    for (const WorkloadResult* r : rows) {
      if (!r->error.empty()) continue;
      fmt::print(out, "{:<24}", r->workload->name);
      for (const auto& p : r->runs)
        fmt::print(out, " {:>15}",
                   fmt::format("{}{:.2f}/{:.1f}", meets_target(p.result) ? "*" : "",
                               100 * p.result.attainment(), hours(p.result)));
      fmt::print(out, "\n");
    }
    print_tuned(out, set, rows);
  }
}

void write_csv(const std::string& path, const std::vector<WorkloadResult>& results) {
  std::ofstream f(path);
  if (!f) throw std::runtime_error(path + ": cannot write");
  f << "set,family,workload,source,slo_s,concurrency,cold_start_mean_s,max_replicas,service,"
       "warmup_s,policy,is_default,requests,ok,lost,rejected,timed_out,attainment,meets_target,"
       "wait_p99_s,replica_hours,launches,reversals,peak_replicas,error,fixed_replicas,fixed_met,"
       "cheapest_preset,default_vs_cheapest_preset,default_vs_fixed,default_vs_clairvoyant,"
       "nothing_lost,slo_ok,cost_le_presets,cost_le_fixed_x1.05,pass,failed,tune_default_hours,"
       "tune_best_hours,tune_best_met,default_vs_tuned,replica_hours_after_end,tune_best_scaling\n";
  for (const auto& r : results) {
    const Workload& w = *r.workload;
    const auto& ep = w.config.endpoints.front();
    const auto& g = ep.groups.front();
    const std::string head = fmt::format(
        "{},{},{},{},{},{},{},{},{},{}", set_name(w.set), w.family, w.name, csv_field(w.source),
        num(to_seconds(ep.slo.max_wait)), g.concurrency, num(to_seconds(g.mean_cold_start())),
        g.max_replicas, csv_field(service_text(g.service_time)), num(to_seconds(w.warmup)));
    if (!r.error.empty()) {
      f << head << ",,,,,,,,,,,,,,," << csv_field(r.error) << std::string(18, ',') << "\n";
      continue;
    }
    auto row = [&](const std::string& policy, bool is_default, const sim::SimResult& s) {
      f << head << "," << csv_field(policy) << "," << (is_default ? 1 : 0) << ","
        << s.outcomes.total << "," << s.outcomes.ok << "," << lost(s) << "," << s.outcomes.rejected
        << "," << s.outcomes.timed_out << "," << num(s.attainment()) << ","
        << (meets_target(s) ? 1 : 0) << "," << num(s.outcomes.wait_s.quantile(0.99)) << ","
        << num(hours(s)) << "," << s.launches << "," << s.scale_reversals << "," << s.peak_replicas
        << ",";
      if (is_default) {
        const Verdict& v = r.verdict;
        f << "," << (r.fixed ? std::to_string(r.fixed_replicas) : "") << ","
          << (r.fixed ? (r.fixed_met ? "1" : "0") : "") << "," << v.cheapest_preset << ","
          << num(v.vs_cheapest_preset) << "," << num(v.vs_fixed) << "," << num(v.vs_clairvoyant)
          << "," << v.nothing_lost << "," << v.slo_ok << "," << v.cost_vs_presets << ","
          << v.cost_vs_fixed << "," << v.pass << "," << csv_field(v.failed) << ",";
        if (r.tuned)
          f << num(r.tuned->default_rs / 3600) << "," << num(r.tuned->tuned_rs / 3600) << ","
            << r.tuned->tuned_met << "," << num(r.tuned->ratio());
        else
          f << ",,,";
      } else {
        f << std::string(16, ',');  // the verdict's columns: the default's row only
      }
      f << "," << num(s.after_end_replica_seconds / 3600) << ","
        << (is_default && r.tuned ? csv_field(r.tuned->scaling) : "") << "\n";
    };
    for (const auto& p : r.runs) row(p.policy, p.is_default, p.result);
    if (r.fixed) row(sim::kFixedLabel, false, *r.fixed);
    if (r.clairvoyant) row(sim::kClairvoyantLabel, false, *r.clairvoyant);
  }
}

}  // namespace tide::bench
