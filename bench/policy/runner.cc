#include "runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>

#include "tide/sim/parallel.h"
#include "tide/sim/reference.h"
#include "tide/sim/report.h"
#include "tide/sim/tune.h"

namespace tide::bench {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

config::Config with_scaling(config::Config c, const config::ScalingSpec& spec) {
  for (auto& ep : c.endpoints)
    for (auto& g : ep.groups) g.scaling = spec;
  return c;
}

// The policies to run: every preset, and the default (what a group without `scaling:` gets)
// as its own run only when it is no preset.
struct PolicySet {
  std::vector<std::pair<std::string, config::ScalingSpec>> specs;
  size_t default_index = 0;
};
PolicySet policy_set(const config::GroupSpec& group) {
  PolicySet p;
  const config::ScalingSpec def = config::parse_scaling("", group);
  p.default_index = SIZE_MAX;
  for (const auto& name : config::preset_names()) {
    const auto spec = config::preset_spec(name);
    if (*spec == def) p.default_index = p.specs.size();
    p.specs.emplace_back(name, *spec);
  }
  if (p.default_index == SIZE_MAX) {
    p.default_index = p.specs.size();
    p.specs.emplace_back("default", def);
  }
  return p;
}

// One workload's requests, built by the first run that needs them and freed after the last.
struct Shared {
  std::once_flag built;
  std::shared_ptr<const sim::Trace> trace;
  std::string error;
  std::atomic<size_t> left{0};
  std::mutex mu;
};

struct Task {
  size_t workload;
  enum class Kind { kPolicy, kFixed, kClairvoyant } kind;
  size_t policy;  // kPolicy: index in the policy set
};

sim::SimOptions options_of(const Workload& w) {
  sim::SimOptions o;
  o.seed = 1;
  o.warmup = w.warmup;
  o.record_timeline = false;
  return o;
}

// One policy's run; the default's timeline and decisions written to out_dir/WORKLOAD/ if given.
sim::SimResult run_policy(const Workload& w, const sim::Trace& trace,
                          const config::ScalingSpec& spec, bool is_default,
                          const std::string& out_dir) {
  const bool record = is_default && !out_dir.empty();
  sim::SimOptions o = options_of(w);
  o.record_timeline = record;
  sim::TraceSource source(trace);
  const config::Config c = with_scaling(w.config, spec);
  sim::SimResult res = sim::simulate(c, source, o);
  if (record) {
    sim::write_csvs(out_dir + "/" + w.name, res, c);
    res.timeline.clear();
    res.decisions.clear();
  }
  return res;
}

void run_task(const Task& t, const std::vector<const Workload*>& ws, const TraceFiles& files,
              const std::vector<PolicySet>& sets, std::vector<Shared>& shared,
              std::vector<WorkloadResult>& out, const std::string& out_dir) {
  const Workload& w = *ws[t.workload];
  Shared& s = shared[t.workload];
  std::call_once(s.built, [&] {
    try {
      s.trace = std::make_shared<const sim::Trace>(w.build(files));
    } catch (const std::exception& e) {
      s.error = e.what();
    }
  });
  std::shared_ptr<const sim::Trace> trace = s.trace;
  WorkloadResult& r = out[t.workload];
  if (trace) {
    try {
      if (t.kind == Task::Kind::kPolicy) {
        const auto& [name, spec] = sets[t.workload].specs[t.policy];
        const bool is_default = t.policy == sets[t.workload].default_index;
        sim::SimResult res = run_policy(w, *trace, spec, is_default, out_dir);
        res.policy = name;
        std::lock_guard lock(s.mu);
        r.runs[t.policy] = {name, is_default, std::move(res)};
      } else if (t.kind == Task::Kind::kFixed) {
        sim::TraceSource source(*trace);
        sim::FixedFleet f = sim::fixed_hindsight(w.config, source, options_of(w), kSloTarget);
        std::lock_guard lock(s.mu);
        r.fixed = std::move(f.result);
        r.fixed_replicas = f.replicas;
        r.fixed_met = f.met;
      } else {
        sim::TraceSource source(*trace);
        sim::SimResult c = sim::clairvoyant(w.config, source, options_of(w));
        std::lock_guard lock(s.mu);
        r.clairvoyant = std::move(c);
      }
    } catch (const std::exception& e) {
      std::lock_guard lock(s.mu);
      r.error = e.what();
    }
  } else {
    std::lock_guard lock(s.mu);
    r.error = s.error;
  }
  if (--s.left == 0) s.trace.reset();
}

}  // namespace

uint64_t lost(const sim::SimResult& r) { return r.outcomes.rejected + r.outcomes.timed_out; }
bool meets_target(const sim::SimResult& r) { return sim::meets_slo(r, kSloTarget); }

const PolicyRun* WorkloadResult::default_run() const {
  for (const auto& p : runs)
    if (p.is_default) return &p;
  return nullptr;
}

std::vector<WorkloadResult> run_corpus(const std::vector<const Workload*>& workloads,
                                       const TraceFiles& files, size_t jobs,
                                       const std::function<void(size_t, size_t)>& progress,
                                       const std::string& out_dir, bool default_only) {
  std::vector<PolicySet> sets;
  std::vector<Task> tasks;
  std::vector<Shared> shared(workloads.size());
  std::vector<WorkloadResult> out(workloads.size());
  for (size_t i = 0; i < workloads.size(); ++i) {
    sets.push_back(policy_set(workloads[i]->config.endpoints.front().groups.front()));
    out[i].workload = workloads[i];
    out[i].runs.resize(sets[i].specs.size());
    if (default_only) {
      tasks.push_back({i, Task::Kind::kPolicy, sets[i].default_index});
      continue;
    }
    // The references first: the fixed-fleet search is the longest job of a workload.
    tasks.push_back({i, Task::Kind::kFixed, 0});
    tasks.push_back({i, Task::Kind::kClairvoyant, 0});
    for (size_t p = 0; p < sets[i].specs.size(); ++p) tasks.push_back({i, Task::Kind::kPolicy, p});
  }
  for (const Task& t : tasks) ++shared[t.workload].left;

  sim::parallel_for(
      tasks.size(), jobs,
      [&](size_t i) { run_task(tasks[i], workloads, files, sets, shared, out, out_dir); },
      [&](size_t done) {
        if (progress) progress(done, tasks.size());
      });
  for (auto& r : out) {
    if (default_only)  // the presets' places were never filled
      std::erase_if(r.runs, [](const PolicyRun& p) { return p.policy.empty(); });
    if (r.error.empty()) r.verdict = judge(r);
  }
  return out;
}

namespace {

// The winner's `scaling:` block (sim::scaling_yaml: one unindented `key: value` line each)
// as one CSV cell, its lines joined with "; ".
std::string one_line(std::string yaml) {
  while (!yaml.empty() && yaml.back() == '\n') yaml.pop_back();
  std::string out;
  for (char c : yaml) {
    if (c == '\n')
      out += "; ";
    else
      out += c;
  }
  return out;
}

}  // namespace

void tune_corpus(std::vector<WorkloadResult>& results, const TraceFiles& files, int candidates,
                 size_t jobs, const std::function<void(const std::string&)>& progress) {
  for (auto& r : results) {
    if (!r.error.empty()) continue;
    const Workload& w = *r.workload;
    if (progress) progress(w.name);
    try {
      const auto trace = std::make_shared<const sim::Trace>(w.build(files));
      sim::TuneOptions o;
      o.candidates = candidates;
      o.jobs = jobs;
      o.target = kSloTarget;
      o.sim = options_of(w);
      const sim::TuneResult t = sim::tune(
          w.config, [&] { return std::make_unique<sim::TraceSource>(*trace); }, o);
      const sim::TuneCandidate& d = t.explored.front();
      const sim::TuneCandidate& best = t.winner();
      r.tuned = TuneRatio{d.fit.replica_seconds, best.fit.replica_seconds, d.feasible,
                          best.feasible, one_line(t.yaml)};
    } catch (const std::exception& e) {
      r.error = fmt::format("tune: {}", e.what());
    }
  }
}

Verdict judge(const WorkloadResult& w) {
  Verdict v;
  const PolicyRun* d = w.default_run();
  const sim::SimResult& dr = d->result;
  double best_attainment = 0;
  const sim::SimResult* cheapest = nullptr;
  for (const auto& p : w.runs) {
    if (p.is_default) continue;
    best_attainment = std::max(best_attainment, p.result.attainment());
    if (meets_target(p.result) &&
        (cheapest == nullptr || p.result.replica_seconds < cheapest->replica_seconds)) {
      cheapest = &p.result;
      v.cheapest_preset = p.policy;
    }
  }
  // Without the fixed-fleet row, "reachable" falls back to: some preset reaches it.
  const bool reachable = w.fixed ? w.fixed_met : cheapest != nullptr;
  v.nothing_lost = lost(dr) == 0;
  v.slo_ok = dr.attainment() >= kSloTarget || (!reachable && dr.attainment() >= best_attainment);
  v.cost_vs_presets = cheapest == nullptr || dr.replica_seconds <= cheapest->replica_seconds;
  v.vs_cheapest_preset = cheapest ? dr.replica_seconds / cheapest->replica_seconds : kNaN;
  v.vs_fixed = w.fixed ? dr.replica_seconds / w.fixed->replica_seconds : kNaN;
  v.vs_clairvoyant = w.clairvoyant ? dr.replica_seconds / w.clairvoyant->replica_seconds : kNaN;
  v.cost_vs_fixed = !w.fixed || !w.fixed_met || v.vs_fixed <= kFixedSlack;
  std::vector<std::string> failed;
  if (!v.nothing_lost) failed.push_back(fmt::format("lost {}", lost(dr)));
  if (!v.slo_ok) failed.push_back(fmt::format("SLO {:.2f}%", 100 * dr.attainment()));
  if (!v.cost_vs_presets)
    failed.push_back(fmt::format("{:.2f}x {}", v.vs_cheapest_preset, v.cheapest_preset));
  if (!v.cost_vs_fixed) failed.push_back(fmt::format("{:.2f}x fixed", v.vs_fixed));
  // Where it fails on cost, how much of its bill came after the workload had ended (replicas held
  // idle past the end; a fixed fleet is billed to the end only).
  if ((!v.cost_vs_presets || !v.cost_vs_fixed) && dr.after_end_replica_seconds > 0)
    failed.push_back(
        fmt::format("{:.2f} rep-h of it after the end", dr.after_end_replica_seconds / 3600));
  for (const auto& f : failed) v.failed += (v.failed.empty() ? "" : "; ") + f;
  v.pass = failed.empty();
  return v;
}

}  // namespace tide::bench
