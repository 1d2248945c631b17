#include "tide/sim/tune.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "tide/sim/parallel.h"
#include "tide/sim/report.h"

namespace tide::sim {
namespace {

using config::ScalingSpec;
using Unit = TuneParam::Unit;

// ---------------------------------------------------------------------------------------------
// The search space: one table per policy kind. To search another parameter, add a row.

double seconds_of(Duration d) { return to_seconds(d); }

constexpr TuneParam kQueueSpace[] = {
    {"queue_size", Unit::kInteger, 1, 16, true, false, 1,
     [](const ScalingSpec& s) { return double(s.queue.queue_size); },
     [](ScalingSpec& s, double v) { s.queue.queue_size = int(v); }},
    {"idle_timeout", Unit::kSeconds, 5, 1800, true, false, 1,
     [](const ScalingSpec& s) { return seconds_of(s.queue.idle_timeout); },
     [](ScalingSpec& s, double v) { s.queue.idle_timeout = from_seconds(v); }},
};

// config::TidePolicy's parameters (docs/policies.md).
constexpr TuneParam kTideSpace[] = {
    {"target_wait_probability", Unit::kReal, 0.001, 0.3, true, false, 0,
     [](const ScalingSpec& s) { return s.tide.target_wait_probability; },
     [](ScalingSpec& s, double v) { s.tide.target_wait_probability = v; }},
    {"idle_timeout", Unit::kSeconds, 5, 1800, true, false, 1,
     [](const ScalingSpec& s) { return seconds_of(s.tide.idle_timeout); },
     [](ScalingSpec& s, double v) { s.tide.idle_timeout = from_seconds(v); }},
    {"demand_window", Unit::kSeconds, 5, 300, true, false, 1,
     [](const ScalingSpec& s) { return seconds_of(s.tide.demand_window); },
     [](ScalingSpec& s, double v) { s.tide.demand_window = from_seconds(v); }},
    {"keep_window", Unit::kSeconds, 5, 1800, true, false, 1,
     [](const ScalingSpec& s) { return seconds_of(s.tide.keep_window); },
     [](ScalingSpec& s, double v) { s.tide.keep_window = from_seconds(v); }},
    {"prewarm_period", Unit::kSeconds, 0, 3600, false, false, 600,
     [](const ScalingSpec& s) { return seconds_of(s.tide.prewarm_period); },
     [](ScalingSpec& s, double v) { s.tide.prewarm_period = from_seconds(v); }},
    {"history_window", Unit::kSeconds, 0, 7200, false, false, 600,
     [](const ScalingSpec& s) { return seconds_of(s.tide.history_window); },
     [](ScalingSpec& s, double v) { s.tide.history_window = from_seconds(v); }},
};

// The shared modifiers a target / concurrency / step policy is tuned with.
constexpr TuneParam kIdleTimeoutModifier{
    "idle_timeout",
    Unit::kSeconds,
    30,
    3600,
    true,
    false,
    1,
    [](const ScalingSpec& s) { return seconds_of(s.modifiers.idle_timeout.value_or(Duration{0})); },
    [](ScalingSpec& s, double v) { s.modifiers.idle_timeout = from_seconds(v); }};
constexpr TuneParam kDownDelayModifier{
    "down_delay",
    Unit::kSeconds,
    0,
    1800,
    false,
    false,
    10,
    [](const ScalingSpec& s) { return seconds_of(s.modifiers.down_delay); },
    [](ScalingSpec& s, double v) { s.modifiers.down_delay = from_seconds(v); }};

// target, on a fraction (utilization, load): 0.3 to 1.
constexpr TuneParam kTargetFractionSpace[] = {
    {"target", Unit::kReal, 0.3, 1.0, false, false, 0,
     [](const ScalingSpec& s) { return s.target.target; },
     [](ScalingSpec& s, double v) { s.target.target = v; }},
    {"metric_window", Unit::kSeconds, 5, 300, true, false, 1,
     [](const ScalingSpec& s) { return seconds_of(s.target.metric_window); },
     [](ScalingSpec& s, double v) { s.target.metric_window = from_seconds(v); }},
    kIdleTimeoutModifier,
    kDownDelayModifier,
};

// target, on requests per replica (in_flight, queue, concurrency): a share of its slots.
constexpr TuneParam kTargetRequestsSpace[] = {
    {"target", Unit::kReal, 0.25, 4, true, true, 0,
     [](const ScalingSpec& s) { return s.target.target; },
     [](ScalingSpec& s, double v) { s.target.target = v; }},
    {"metric_window", Unit::kSeconds, 1, 300, true, false, 1,
     [](const ScalingSpec& s) { return seconds_of(s.target.metric_window); },
     [](ScalingSpec& s, double v) { s.target.metric_window = from_seconds(v); }},
    kIdleTimeoutModifier,
    kDownDelayModifier,
};

// target on rps: its target depends on service times; the windows and delays are searched.
constexpr TuneParam kTargetRpsSpace[] = {
    {"metric_window", Unit::kSeconds, 5, 300, true, false, 1,
     [](const ScalingSpec& s) { return seconds_of(s.target.metric_window); },
     [](ScalingSpec& s, double v) { s.target.metric_window = from_seconds(v); }},
    {"up_delay", Unit::kSeconds, 0, 600, false, false, 5,
     [](const ScalingSpec& s) { return seconds_of(s.modifiers.up_delay); },
     [](ScalingSpec& s, double v) { s.modifiers.up_delay = from_seconds(v); }},
    kIdleTimeoutModifier,
    kDownDelayModifier,
};

constexpr TuneParam kConcurrencySpace[] = {
    {"target", Unit::kReal, 0.3, 1.0, false, true, 0,
     [](const ScalingSpec& s) { return s.concurrency.target; },
     [](ScalingSpec& s, double v) { s.concurrency.target = v; }},
    {"stable_window", Unit::kSeconds, 10, 300, true, false, 1,
     [](const ScalingSpec& s) { return seconds_of(s.concurrency.stable_window); },
     [](ScalingSpec& s, double v) { s.concurrency.stable_window = from_seconds(v); }},
    {"scale_to_zero_grace", Unit::kSeconds, 0, 600, false, false, 5,
     [](const ScalingSpec& s) { return seconds_of(s.concurrency.scale_to_zero_grace); },
     [](ScalingSpec& s, double v) { s.concurrency.scale_to_zero_grace = from_seconds(v); }},
    {"scale_down_delay", Unit::kSeconds, 0, 1800, false, false, 10,
     [](const ScalingSpec& s) { return seconds_of(s.concurrency.scale_down_delay); },
     [](ScalingSpec& s, double v) { s.concurrency.scale_down_delay = from_seconds(v); }},
};

constexpr TuneParam kStepSpace[] = {
    {"window", Unit::kSeconds, 10, 300, true, false, 1,
     [](const ScalingSpec& s) { return seconds_of(s.step.window); },
     [](ScalingSpec& s, double v) { s.step.window = from_seconds(v); }},
    {"cooldown_up", Unit::kSeconds, 0, 300, false, false, 5,
     [](const ScalingSpec& s) { return seconds_of(s.step.cooldown_up); },
     [](ScalingSpec& s, double v) { s.step.cooldown_up = from_seconds(v); }},
    {"cooldown_down", Unit::kSeconds, 0, 1800, false, false, 10,
     [](const ScalingSpec& s) { return seconds_of(s.step.cooldown_down); },
     [](ScalingSpec& s, double v) { s.step.cooldown_down = from_seconds(v); }},
};

}  // namespace

std::span<const TuneParam> search_space(const ScalingSpec& spec) {
  switch (spec.policy) {
    case config::PolicyKind::kQueue:
      return kQueueSpace;
    case config::PolicyKind::kTide:
      return kTideSpace;
    case config::PolicyKind::kConcurrency:
      return kConcurrencySpace;
    case config::PolicyKind::kStep:
      return kStepSpace;
    case config::PolicyKind::kTarget:
      switch (spec.target.metric) {
        case config::Metric::kUtilization:
        case config::Metric::kLoad:
        case config::Metric::kEngineKvCache:
          return kTargetFractionSpace;
        case config::Metric::kRps:
          return kTargetRpsSpace;
        default:
          return kTargetRequestsSpace;
      }
  }
  return {};
}

namespace {

// Where the tuned group sits in the config.
struct GroupRef {
  size_t endpoint = 0;
  size_t group = 0;
};

GroupRef find_group(const config::Config& config, const std::string& name) {
  std::vector<std::string> all;
  std::vector<GroupRef> matches;
  for (size_t e = 0; e < config.endpoints.size(); ++e) {
    const auto& ep = config.endpoints[e];
    for (size_t g = 0; g < ep.groups.size(); ++g) {
      all.push_back(ep.name + "/" + ep.groups[g].name);
      if (name == all.back() || name == ep.groups[g].name) matches.push_back({e, g});
    }
  }
  auto list = [&] { return fmt::format("{}", fmt::join(all, ", ")); };
  if (name.empty()) {
    if (all.size() == 1) return {0, 0};
    throw std::invalid_argument(
        fmt::format("--group: the config has {} groups; name one of {}", all.size(), list()));
  }
  if (matches.empty())
    throw std::invalid_argument(
        fmt::format("--group: no group \"{}\" in the config (groups: {})", name, list()));
  if (matches.size() > 1)
    throw std::invalid_argument(
        fmt::format("--group: \"{}\" names groups of several endpoints; write ENDPOINT/GROUP ({})",
                    name, list()));
  return matches.front();
}

// The parameter's range for this group.
std::pair<double, double> range_of(const TuneParam& p, int concurrency) {
  const double k = p.per_slot ? concurrency : 1.0;
  return {p.lo * k, p.hi * k};
}

double round_value(const TuneParam& p, double v) {
  if (p.unit == Unit::kInteger) return std::max(p.lo, std::round(v));
  if (p.step > 0) return std::round(v / p.step) * p.step;
  return v > 0 ? std::stod(fmt::format("{:.3g}", v)) : v;
}

// u in [0, 1] to a value of the parameter, rounded.
double from_unit(const TuneParam& p, int concurrency, double u) {
  const auto [lo, hi] = range_of(p, concurrency);
  const double v = p.log ? lo * std::pow(hi / lo, u) : lo + (hi - lo) * u;
  return round_value(p, std::clamp(v, lo, hi));
}

double to_unit(const TuneParam& p, int concurrency, double v) {
  const auto [lo, hi] = range_of(p, concurrency);
  const double u =
      p.log ? (v > 0 ? std::log(v / lo) / std::log(hi / lo) : 0.0) : (v - lo) / (hi - lo);
  return std::clamp(u, 0.0, 1.0);
}

// Cheaper, then higher attainment, then fewer launches (the frontier's order).
bool cheaper(const SimResult& a, const SimResult& b) {
  if (a.replica_seconds != b.replica_seconds) return a.replica_seconds < b.replica_seconds;
  if (a.attainment() != b.attainment()) return a.attainment() > b.attainment();
  return a.launches < b.launches;
}

// Feasible first; among infeasible ones the higher attainment; then the cheaper.
bool better(const TuneCandidate& a, const TuneCandidate& b) {
  if (a.feasible != b.feasible) return a.feasible;
  if (!a.feasible && a.fit.attainment() != b.fit.attainment())
    return a.fit.attainment() > b.fit.attainment();
  return cheaper(a.fit, b.fit);
}

// The workload's span and where the check part starts; every part must have requests.
Duration split_point(const SourceFactory& make_source, const TuneOptions& o, Duration& horizon) {
  if (!(o.check >= 0.01 && o.check <= 0.9))
    throw std::invalid_argument(fmt::format(
        "--check: the held-out share must be between 1% and 90%, got {:.4g}%", o.check * 100));
  if (o.candidates < 1 || o.candidates > 100000)
    throw std::invalid_argument(
        fmt::format("--candidates: must be between 1 and 100000, got {}", o.candidates));
  auto source = make_source();
  horizon = source->horizon();
  // On whole minutes for a workload of ten minutes or more, whole seconds below.
  const double unit = horizon >= std::chrono::minutes(10) ? 60.0 : 1.0;
  const Duration split =
      from_seconds(std::round(to_seconds(horizon) * (1 - o.check) / unit) * unit);
  if (o.sim.warmup >= split)
    throw std::invalid_argument(
        fmt::format("--warmup: {} leaves nothing of the fitted part (the first {:.4g}%, up to {})",
                    format_duration(o.sim.warmup), (1 - o.check) * 100, format_duration(split)));
  uint64_t fit = 0, check = 0;
  TraceRequest r;
  while (source->next(r)) {
    if (r.arrival >= Time{split}) {
      ++check;
    } else if (r.arrival >= Time{o.sim.warmup}) {
      ++fit;
    }
  }
  if (fit == 0 || check == 0)
    throw std::invalid_argument(fmt::format(
        "--check {:.4g}%: the {} part ({}) has no requests", o.check * 100,
        fit == 0 ? "fitted" : "held-out",
        fit == 0 ? fmt::format("{} to {}", format_duration(o.sim.warmup), format_duration(split))
                 : fmt::format("{} to {}", format_duration(split), format_duration(horizon))));
  return split;
}

// Runs the search: the state shared by its rounds.
class Search {
 public:
  Search(const config::Config& config, GroupRef ref, const ScalingSpec& base,
         const SourceFactory& make_source, const TuneOptions& o, Duration split)
      : config_(config),
        ref_(ref),
        base_(base),
        make_source_(make_source),
        o_(o),
        split_(split),
        space_(search_space(base)),
        concurrency_(config.endpoints[ref.endpoint].groups[ref.group].concurrency),
        rng_(o.sim.seed * 0x2545f4914f6cdd1dULL + 7) {}

  std::vector<TuneCandidate> run();

 private:
  config::Config with(const ScalingSpec& s) const {
    config::Config c = config_;
    c.endpoints[ref_.endpoint].groups[ref_.group].scaling = s;
    return c;
  }
  // Queues the candidate at unit point u unless its rounded values were seen.
  bool propose(const std::vector<double>& u);
  void evaluate();
  size_t best() const;

  const config::Config& config_;
  GroupRef ref_;
  ScalingSpec base_;
  const SourceFactory& make_source_;
  const TuneOptions& o_;
  Duration split_;
  std::span<const TuneParam> space_;
  int concurrency_;
  Random rng_;
  std::vector<TuneCandidate> done_;
  std::vector<TuneCandidate> pending_;
  std::map<std::vector<double>, size_t> seen_;
};

bool Search::propose(const std::vector<double>& u) {
  TuneCandidate c;
  c.scaling = base_;
  for (size_t i = 0; i < space_.size(); ++i) {
    c.values.push_back(from_unit(space_[i], concurrency_, u[i]));
    space_[i].set(c.scaling, c.values.back());
  }
  if (!seen_.emplace(c.values, seen_.size()).second) return false;
  pending_.push_back(std::move(c));
  return true;
}

void Search::evaluate() {
  const size_t total = static_cast<size_t>(o_.candidates);
  const size_t before = done_.size();
  SimOptions so = o_.sim;
  so.record_timeline = false;
  so.progress = nullptr;
  parallel_for(
      pending_.size(), o_.jobs,
      [&](size_t i) {
        PrefixSource fit(make_source_(), split_);
        pending_[i].fit = simulate(with(pending_[i].scaling), fit, so);
        pending_[i].feasible = meets_slo(pending_[i].fit, o_.target);
      },
      [&](size_t n) {
        if (o_.progress) o_.progress(before + n, total);
      });
  for (auto& c : pending_) done_.push_back(std::move(c));
  pending_.clear();
}

size_t Search::best() const {
  size_t b = 0;
  for (size_t i = 1; i < done_.size(); ++i)
    if (better(done_[i], done_[b])) b = i;
  return b;
}

std::vector<TuneCandidate> Search::run() {
  const size_t budget = static_cast<size_t>(o_.candidates);
  const size_t d = space_.size();
  // The default, as configured (its values need not lie on the search grid).
  TuneCandidate base;
  base.scaling = base_;
  for (const TuneParam& p : space_) base.values.push_back(p.get(base_));
  seen_.emplace(base.values, 0);
  pending_.push_back(std::move(base));
  // A Latin hypercube over half the budget: every parameter's range cut in n strata, each hit once.
  const size_t n = std::min(budget - 1, std::max<size_t>(budget / 2, 1));
  std::vector<std::vector<double>> strata(d, std::vector<double>(n));
  for (size_t i = 0; i < d; ++i) {
    for (size_t k = 0; k < n; ++k)
      strata[i][k] = (static_cast<double>(k) + rng_.uniform()) / static_cast<double>(n);
    for (size_t k = n; k > 1; --k) std::swap(strata[i][k - 1], strata[i][rng_.below(k)]);
  }
  for (size_t k = 0; k < n; ++k) {
    std::vector<double> u(d);
    for (size_t i = 0; i < d; ++i) u[i] = strata[i][k];
    propose(u);
  }
  evaluate();
  // Local refinement: rounds of 16 around the best so far, the step shrinking each round.
  double sigma = 0.15;
  int stale = 0;
  while (done_.size() < budget && stale < 50) {
    const TuneCandidate& lead = done_[best()];
    std::vector<double> center(d);
    for (size_t i = 0; i < d; ++i) center[i] = to_unit(space_[i], concurrency_, lead.values[i]);
    const size_t round = std::min<size_t>(16, budget - done_.size());
    for (int tries = 0; pending_.size() < round && tries < 400; ++tries) {
      std::vector<double> u = center;
      for (size_t i = 0; i < d; ++i)
        if (d <= 2 || rng_.uniform() < 0.5)
          u[i] = std::clamp(u[i] + sigma * rng_.normal(), 0.0, 1.0);
      propose(u);
    }
    if (pending_.empty()) {
      ++stale;  // every neighbour seen: widen the step
      sigma = std::min(0.5, sigma * 2);
      continue;
    }
    evaluate();
    sigma = std::max(0.02, sigma * 0.8);
  }
  return std::move(done_);
}

std::vector<size_t> frontier_of(const std::vector<TuneCandidate>& all) {
  std::vector<size_t> order(all.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  // Stable: among equals the first explored, as better() keeps it.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return cheaper(all[a].fit, all[b].fit); });
  std::vector<size_t> out;
  double reached = -1;
  for (size_t i : order) {
    if (all[i].fit.attainment() > reached) {
      out.push_back(i);
      reached = all[i].fit.attainment();
    }
  }
  return out;
}

}  // namespace

TuneResult tune(const config::Config& config, const SourceFactory& make_source,
                const TuneOptions& options) {
  const GroupRef ref = find_group(config, options.group);
  const config::GroupSpec& group = config.endpoints[ref.endpoint].groups[ref.group];
  ScalingSpec base = group.scaling;
  if (!options.policy.empty()) {
    auto preset = config::preset_spec(options.policy);
    if (!preset)
      throw std::invalid_argument(fmt::format("--policy: unknown preset \"{}\" (presets: {})",
                                              options.policy,
                                              fmt::join(config::preset_names(), ", ")));
    base = *preset;
  }
  if (!(options.target > 0 && options.target <= 1))
    throw std::invalid_argument("--slo-target: must be a share in (0, 1]");
  TuneResult out;
  out.endpoint = config.endpoints[ref.endpoint].name;
  out.group = group.name;
  out.target = options.target;
  out.check = options.check;
  out.warmup = options.sim.warmup;
  check_workload(config, *make_source());
  out.split = split_point(make_source, options, out.horizon);
  const auto space = search_space(base);
  out.params.assign(space.begin(), space.end());

  Search search(config, ref, base, make_source, options, out.split);
  out.explored = search.run();
  out.best = 0;
  for (size_t i = 1; i < out.explored.size(); ++i)
    if (better(out.explored[i], out.explored[out.best])) out.best = i;
  out.frontier = frontier_of(out.explored);

  // The default and the winner on the held-out part, in steady state from the part before.
  SimOptions check = options.sim;
  check.warmup = out.split;
  check.record_timeline = false;
  check.progress = nullptr;
  const ScalingSpec* specs[] = {&out.explored[0].scaling, &out.winner().scaling};
  SimResult* results[] = {&out.default_check, &out.best_check};
  parallel_for(2, options.jobs, [&](size_t i) {
    config::Config c = config;
    c.endpoints[ref.endpoint].groups[ref.group].scaling = *specs[i];
    auto source = make_source();
    *results[i] = simulate(c, *source, check);
  });
  out.yaml = scaling_yaml(out.winner().scaling, space);
  try {
    out.yaml_complete = config::parse_scaling(out.yaml, group) == out.winner().scaling;
  } catch (const config::ConfigError&) {
    out.yaml_complete = false;
  }
  return out;
}

std::string scaling_yaml(const ScalingSpec& spec, std::span<const TuneParam> params) {
  std::string y = spec.preset.empty()
                      ? fmt::format("policy: {}\n", config::policy_name(spec.policy))
                      : fmt::format("preset: {}\n", spec.preset);
  for (const TuneParam& p : params) {
    const double v = p.get(spec);
    switch (p.unit) {
      case Unit::kSeconds:
        y += fmt::format("{}: {}\n", p.key, format_duration(from_seconds(v)));
        break;
      case Unit::kInteger:
        y += fmt::format("{}: {}\n", p.key, static_cast<long long>(std::llround(v)));
        break;
      case Unit::kReal:
        y += fmt::format("{}: {}\n", p.key, v);
        break;
    }
  }
  return y;
}

namespace {

// The four runs side by side: default and winner, on the fitted part and on the held-out part.
std::vector<SimResult> part_runs(const TuneResult& r) {
  std::vector<SimResult> runs = {r.explored[0].fit, r.default_check, r.winner().fit, r.best_check};
  const char* labels[] = {"default, fitted part", "default, held-out part", "tuned, fitted part",
                          "tuned, held-out part"};
  for (size_t i = 0; i < runs.size(); ++i) {
    runs[i].policy = labels[i];
    runs[i].note.clear();
  }
  return runs;
}

std::string value_text(const TuneParam& p, double v) {
  if (p.unit == Unit::kSeconds) return format_duration(from_seconds(v));
  if (p.unit == Unit::kInteger) return fmt::format("{}", std::llround(v));
  return fmt::format("{}", v);
}

// The frontier as rows of text cells: replica-h, SLO met, lost, then each parameter.
std::vector<std::vector<std::string>> frontier_rows(const TuneResult& r) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"", "replica-h", "SLO met", "lost"};
  for (const TuneParam& p : r.params) header.emplace_back(p.key);
  rows.push_back(std::move(header));
  for (size_t i : r.frontier) {
    const TuneCandidate& c = r.explored[i];
    std::vector<std::string> row = {
        i == r.best ? "*"
        : i == 0    ? "default"
                    : "",
        fmt::format("{:.2f}", c.fit.replica_seconds / 3600.0),
        fmt::format("{:.2f}%", 100 * c.fit.attainment()),
        fmt::format("{}", c.fit.outcomes.rejected + c.fit.outcomes.timed_out)};
    for (size_t k = 0; k < r.params.size(); ++k)
      row.push_back(value_text(r.params[k], c.values[k]));
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string headline(const TuneResult& r) {
  const TuneCandidate& w = r.winner();
  return fmt::format(
      "tide tune: {}/{}, {}; {} candidates on the fitted part ({:.4g}%: {} to {}), the last "
      "{:.4g}% held out ({} to {}). Goal: the fewest replica-hours with {:.4g}% of requests "
      "within the SLO ({} <= {}s) and none lost.",
      r.endpoint, r.group,
      w.scaling.preset.empty() ? fmt::format("policy {}", config::policy_name(w.scaling.policy))
                               : fmt::format("preset {}", w.scaling.preset),
      r.explored.size(), (1 - r.check) * 100, format_duration(r.warmup), format_duration(r.split),
      r.check * 100, format_duration(r.split), format_duration(r.horizon), r.target * 100,
      w.fit.ttft_s > 0 ? "ttft (wait + prefill)" : "wait",
      w.fit.ttft_s > 0 ? w.fit.ttft_s : w.fit.max_wait_s);
}

std::string verdict(const TuneResult& r) {
  const TuneCandidate& w = r.winner();
  if (!w.feasible)
    return "No candidate met the goal on the fitted part; the closest is shown (more replicas "
           "or a longer SLO may be needed).";
  const bool holds = meets_slo(r.best_check, r.target);
  return fmt::format(
      "Tuned: {:.2f} replica-hours against the default's {:.2f} on the fitted part; on the "
      "held-out part {:.2f} against {:.2f}, and it {} the goal there ({:.2f}% within the SLO, {} "
      "lost).",
      w.fit.replica_seconds / 3600, r.explored[0].fit.replica_seconds / 3600,
      r.best_check.replica_seconds / 3600, r.default_check.replica_seconds / 3600,
      holds ? "meets" : "MISSES", 100 * r.best_check.attainment(),
      r.best_check.outcomes.rejected + r.best_check.outcomes.timed_out);
}

std::string indented(const std::string& yaml) {
  std::string out = "scaling:\n";
  size_t start = 0;
  while (start < yaml.size()) {
    const size_t nl = yaml.find('\n', start);
    out += "  " + yaml.substr(start, nl - start) + "\n";
    start = nl == std::string::npos ? yaml.size() : nl + 1;
  }
  return out;
}

}  // namespace

std::string format_tune(const TuneResult& r) {
  std::string out = headline(r) + "\n\n" + format_table(part_runs(r)) + "\n" + verdict(r) + "\n\n";
  out += "The winning scaling block:\n\n" + indented(r.yaml);
  if (!r.yaml_complete) out += "  # keep the group's other scaling keys (they are not searched)\n";
  out += fmt::format(
      "\nFrontier of the {} candidates (the cheapest for each attainment "
      "reached, fitted part; * = tuned):\n",
      r.explored.size());
  const auto rows = frontier_rows(r);
  std::vector<size_t> width(rows.front().size(), 0);
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c)
      out += c == 0 ? fmt::format("{:<{}}", row[c], width[c])
                    : fmt::format("  {:>{}}", row[c], width[c]);
    out += '\n';
  }
  return out;
}

void write_tune_report(const std::string& dir, const TuneResult& r, const std::string& title) {
  std::filesystem::create_directories(dir);
  std::string html = html_page_start(title) + "<p>" + html_escape(headline(r)) + "</p>";
  html += comparison_table_html(part_runs(r)) + "<p>" + html_escape(verdict(r)) + "</p>";
  html += "<h2>The winning scaling block</h2><pre>" + html_escape(indented(r.yaml)) + "</pre>";
  ChartSeries all{"candidates", "#bbb", {}, false, true};
  ChartSeries front{"frontier", "#1f77b4", {}, true};
  ChartSeries base{"default", "#d62728", {}, false, true, 5};
  ChartSeries best{"tuned", "#2ca02c", {}, false, true, 5};
  double x_end = 0, y_min = 100;
  for (const TuneCandidate& c : r.explored) {
    const double x = c.fit.replica_seconds / 3600, y = 100 * c.fit.attainment();
    all.points.emplace_back(x, y);
    x_end = std::max(x_end, x);
    y_min = std::min(y_min, y);
  }
  for (size_t i : r.frontier)
    front.points.emplace_back(r.explored[i].fit.replica_seconds / 3600,
                              100 * r.explored[i].fit.attainment());
  base.points.emplace_back(r.explored[0].fit.replica_seconds / 3600,
                           100 * r.explored[0].fit.attainment());
  best.points.emplace_back(r.winner().fit.replica_seconds / 3600,
                           100 * r.winner().fit.attainment());
  ChartAxes axes;
  axes.x_label = [](double x) { return fmt::format("{:.3g} replica-h", x); };
  axes.y_min = std::floor(y_min);
  html += svg_chart("SLO attainment against replica-hours, fitted part", "%",
                    {all, front, base, best}, x_end * 1.05, axes);
  html += "<h2>Frontier</h2><table>";
  for (const auto& row : frontier_rows(r)) {
    html += "<tr>";
    for (const auto& cell : row) html += "<td>" + html_escape(cell) + "</td>";
    html += "</tr>";
  }
  html += "</table></body></html>\n";
  std::ofstream(dir + "/report.html") << html;
}

}  // namespace tide::sim
