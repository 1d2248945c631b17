// Parsing and validation of tide's YAML configuration.
//
// The parser never stops at the first problem: every field is read on its own, a bad value is
// reported with its path and left at its default, and ConfigError lists everything at the end.
// The schema lives here; the generic reading of nodes (types, ranges, unknown keys) lives in
// yaml_reader.h.
#include "tide/config/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <span>
#include <sstream>
#include <utility>

#include "tide/common/text.h"
#include "tide/config/pod_template.h"
#include "tide/config/yaml_reader.h"
#include "tide/net/address.h"

namespace tide::config {
namespace {

using namespace detail;

// ---- vocabularies ----------------------------------------------------------------------------

constexpr Choice<Metric> kMetrics[] = {{"utilization", Metric::kUtilization},
                                       {"in_flight", Metric::kInFlight},
                                       {"queue", Metric::kQueue},
                                       {"concurrency", Metric::kConcurrency},
                                       {"rps", Metric::kRps},
                                       {"load", Metric::kLoad},
                                       {"engine_waiting", Metric::kEngineWaiting},
                                       {"engine_running", Metric::kEngineRunning},
                                       {"engine_kv_cache", Metric::kEngineKvCache}};
constexpr Choice<metrics::EngineKind> kEngineKinds[] = {{"vllm", metrics::EngineKind::kVllm},
                                                        {"tgi", metrics::EngineKind::kTgi},
                                                        {"sglang", metrics::EngineKind::kSglang}};
constexpr std::string_view kEngineMetricsKeys[] = {"path", "kind", "interval", "timeout",
                                                   "max_bytes"};
constexpr Choice<PolicyKind> kPolicies[] = {{"queue", PolicyKind::kQueue},
                                            {"target", PolicyKind::kTarget},
                                            {"concurrency", PolicyKind::kConcurrency},
                                            {"step", PolicyKind::kStep},
                                            {"tide", PolicyKind::kTide}};
constexpr Choice<ScalingRules::Select> kSelects[] = {{"max", ScalingRules::Select::kMax},
                                                     {"min", ScalingRules::Select::kMin},
                                                     {"disabled", ScalingRules::Select::kDisabled}};
constexpr Choice<RateLimit::Type> kRateLimitTypes[] = {{"pods", RateLimit::Type::kPods},
                                                       {"percent", RateLimit::Type::kPercent}};
constexpr Choice<StepPolicy::Adjustment> kAdjustments[] = {
    {"change", StepPolicy::Adjustment::kChange},
    {"percent", StepPolicy::Adjustment::kPercent},
    {"exact", StepPolicy::Adjustment::kExact}};
using DistKind = DurationDistribution::Kind;
constexpr Choice<DistKind> kDists[] = {{"fixed", DistKind::kFixed},
                                       {"uniform", DistKind::kUniform},
                                       {"lognormal", DistKind::kLognormal},
                                       {"empirical", DistKind::kEmpirical}};
using ModelKind = ServiceTimeModel::Kind;
constexpr Choice<ModelKind> kModels[] = {{"fixed", ModelKind::kFixed},
                                         {"lognormal", ModelKind::kLognormal},
                                         {"tokens", ModelKind::kTokens},
                                         {"trace", ModelKind::kTrace}};
enum class ProvisionerKind { kLocal, kStatic, kSlurm, kKubernetes, kSimulated };
constexpr Choice<ProvisionerKind> kProvisionerKinds[] = {
    {"local", ProvisionerKind::kLocal},
    {"static", ProvisionerKind::kStatic},
    {"slurm", ProvisionerKind::kSlurm},
    {"kubernetes", ProvisionerKind::kKubernetes},
    {"simulated", ProvisionerKind::kSimulated}};

constexpr std::string_view kTopKeys[] = {"server", "state", "route", "endpoints"};
constexpr std::string_view kRouteKeys[] = {"token_ttl", "key_file", "rotate_after"};
constexpr std::string_view kAgentKeys[] = {"enabled", "work", "report_interval"};
constexpr Choice<AgentSpec::Work> kWorks[] = {{"tokens", AgentSpec::Work::kTokens},
                                              {"requests", AgentSpec::Work::kRequests}};
constexpr std::string_view kServerKeys[] = {"listen",
                                            "api",
                                            "threads",
                                            "max_header_bytes",
                                            "max_body_bytes",
                                            "api_max_body_bytes",
                                            "read_timeout",
                                            "idle_timeout",
                                            "upstream_timeout",
                                            "api_token",
                                            "public_read",
                                            "max_connections",
                                            "api_max_connections",
                                            "max_trailer_bytes",
                                            "max_body_memory",
                                            "metrics_auth",
                                            "client_auth",
                                            "tls",
                                            "api_tls"};
constexpr std::string_view kTlsKeys[] = {"cert_file", "key_file"};
constexpr std::string_view kStateKeys[] = {"path", "sample_interval", "downsample_after",
                                           "downsample_step", "retention"};
constexpr std::string_view kEndpointKeys[] = {"name",  "models",  "slo",
                                              "queue", "routing", "groups"};
// A model name: what an OpenAI client puts in `model` (e.g. meta-llama/Llama-3.1-8B-Instruct).
constexpr size_t kMaxModelName = 256;
constexpr std::string_view kRoutingKeys[] = {"mode", "weights", "sticky_header", "order"};
constexpr Choice<RoutingSpec::Mode> kRoutingModes[] = {{"split", RoutingSpec::Mode::kSplit},
                                                       {"overflow", RoutingSpec::Mode::kOverflow}};
constexpr std::string_view kSloKeys[] = {"max_wait", "ttft"};
// The longest ttft SLO accepted: beyond it, the queue timeout or upstream timeout decides.
constexpr double kMaxTtftSeconds = 3600;
constexpr std::string_view kQueueSpecKeys[] = {"max_length", "timeout"};
constexpr std::string_view kGroupKeys[] = {
    "name",  "provisioner",  "min_replicas", "max_replicas", "concurrency", "cold_start",
    "price", "service_time", "scaling",      "agent",        "rollout",     "engine_metrics"};
constexpr std::string_view kRolloutKeys[] = {"max_surge", "max_unavailable"};
constexpr std::string_view kProvisionerKeys[] = {
    "kind", "command", "urls", "ready", "gpus", "gpus_per_replica", "pending_timeout"};
// Beside the common keys, for kind slurm only.
constexpr std::string_view kSlurmKeys[] = {"partition",  "gres",        "cpus",   "mem",
                                           "time_limit", "sbatch_args", "output", "poll_interval"};
// Beside the common keys, for kind kubernetes only.
constexpr std::string_view kKubernetesKeys[] = {
    "namespace", "kubeconfig", "context", "template", "container", "port", "gpu_resource"};
constexpr std::string_view kColdStartKeys[] = {"pending", "boot"};
constexpr std::string_view kReadyKeys[] = {"path", "interval", "timeout"};

constexpr std::string_view kCommonKeys[] = {"preset", "policy", "tick", "admission"};
constexpr std::string_view kAdmissionKeys[] = {"hold", "reject_status"};
constexpr std::string_view kModifierKeys[] = {"idle_timeout",  "hysteresis", "up_interval",
                                              "down_interval", "up_delay",   "down_delay"};
constexpr std::string_view kQueuePolicyKeys[] = {"queue_size"};
constexpr std::string_view kTargetKeys[] = {"metric",        "target",   "tolerance", "sync_period",
                                            "metric_window", "scale_up", "scale_down"};
constexpr std::string_view kConcurrencyKeys[] = {"target",
                                                 "stable_window",
                                                 "panic_window_percentage",
                                                 "panic_threshold_percentage",
                                                 "max_scale_up_rate",
                                                 "max_scale_down_rate",
                                                 "scale_down_delay",
                                                 "scale_to_zero_grace"};
constexpr std::string_view kStepKeys[] = {"metric", "adjustment",  "steps",
                                          "window", "cooldown_up", "cooldown_down"};
constexpr std::string_view kTideKeys[] = {
    "target_wait_probability", "idle_timeout",   "demand_window",  "keep_window",
    "service_window",          "prewarm_period", "prewarm_cycles", "history_window"};
constexpr std::string_view kRulesKeys[] = {"stabilization", "select", "policies"};
constexpr std::string_view kRateLimitKeys[] = {"type", "value", "period"};
constexpr std::string_view kStepItemKeys[] = {"lower", "upper", "change"};

Keys policy_keys(PolicyKind p) {
  switch (p) {
    case PolicyKind::kQueue:
      return kQueuePolicyKeys;
    case PolicyKind::kTarget:
      return kTargetKeys;
    case PolicyKind::kConcurrency:
      return kConcurrencyKeys;
    case PolicyKind::kStep:
      return kStepKeys;
    case PolicyKind::kTide:
      return kTideKeys;
  }
  return {};
}

bool contains(Keys keys, std::string_view key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// ---- scaling ---------------------------------------------------------------------------------

void read_rules(Reader& r, const Node& node, const std::string& path, ScalingRules& rules) {
  if (!r.expect_map(node, path)) return;
  Map m(r, node, path);
  m.allow(kRulesKeys);
  m.read("stabilization", rules.stabilization);
  m.read("select", rules.select, kSelects);
  const Node* list = m.get("policies");
  if (list == nullptr || !r.expect_list(*list, m.at("policies"))) return;
  std::vector<RateLimit> limits;
  bool all_ok = true;
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string item_path = index_path(m.at("policies"), i);
    const Node item = (*list)[i];
    if (!r.expect_map(item, item_path, " like {type: pods, value: 4, period: 15s}")) {
      all_ok = false;
      continue;
    }
    Map im(r, item, item_path);
    im.allow(kRateLimitKeys);
    RateLimit limit;
    const bool ok =
        im.required("type", "pods or percent") && im.read("type", limit.type, kRateLimitTypes);
    const bool value_ok = im.required("value") && im.read("value", limit.value, above(0));
    const bool period_ok = im.get("period") == nullptr || im.read("period", limit.period, above(0));
    if (ok && value_ok && period_ok) {
      limits.push_back(limit);
    } else {
      all_ok = false;
    }
  }
  if (all_ok) rules.policies = std::move(limits);
}

void read_steps(Reader& r, const Map& m, StepPolicy& step) {
  const Node* list = m.get("steps");
  if (list == nullptr) {
    // A preset never uses step, so without `steps` there are none.
    if (step.steps.empty()) r.fail(m.at("steps"), "required (at least one step)");
    return;
  }
  const std::string path = m.at("steps");
  if (!r.expect_list(*list, path)) return;
  if (list->size() == 0) {
    r.fail(path, "must have at least one step");
    return;
  }
  struct Indexed {
    size_t index;
    Step step;
  };
  std::vector<Indexed> steps;
  bool all_ok = true;
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string item_path = index_path(path, i);
    const Node item = (*list)[i];
    if (!r.expect_map(item, item_path, " like {lower: 10, upper: 20, change: 1}")) {
      all_ok = false;
      continue;
    }
    Map im(r, item, item_path);
    im.allow(kStepItemKeys);
    Step s;
    bool ok = im.required("change") && im.read("change", s.change);
    if (im.get("lower") != nullptr) ok = im.read("lower", s.lower) && ok;
    if (im.get("upper") != nullptr) ok = im.read("upper", s.upper) && ok;
    if (ok && s.lower && s.upper && *s.upper <= *s.lower) {
      r.fail(im.at("upper"), fmt::format("must be > lower ({}), got {}", show_number(*s.lower),
                                         show_number(*s.upper)));
      ok = false;
    }
    if (ok && step.adjustment == StepPolicy::Adjustment::kExact && s.change < 0) {
      r.fail(im.at("change"),
             fmt::format("must be >= 0 with adjustment exact, got {}", show_number(s.change)));
      ok = false;
    }
    if (ok) {
      steps.push_back({i, s});
    } else {
      all_ok = false;
    }
  }
  if (!all_ok) return;
  constexpr double kInf = std::numeric_limits<double>::infinity();
  auto lower = [&](const Step& s) { return s.lower.value_or(-kInf); };
  auto upper = [&](const Step& s) { return s.upper.value_or(kInf); };
  auto band = [&](const Step& s) {
    return fmt::format("[{}, {})", s.lower ? show_number(*s.lower) : "-inf",
                       s.upper ? show_number(*s.upper) : "+inf");
  };
  std::vector<Indexed> sorted = steps;
  std::stable_sort(sorted.begin(), sorted.end(), [&](const Indexed& a, const Indexed& b) {
    return lower(a.step) < lower(b.step);
  });
  bool overlap = false;
  for (size_t i = 1; i < sorted.size(); ++i) {
    const Indexed& a = sorted[i - 1];
    const Indexed& b = sorted[i];
    if (upper(a.step) > lower(b.step)) {
      const Indexed& later = a.index > b.index ? a : b;
      const Indexed& earlier = a.index > b.index ? b : a;
      r.fail(index_path(path, later.index),
             fmt::format("overlaps steps[{}] ({} and {})", earlier.index, band(later.step),
                         band(earlier.step)));
      overlap = true;
    }
  }
  if (overlap) return;
  step.steps.clear();
  for (const Indexed& s : steps) step.steps.push_back(s.step);
}

void read_common_fields(Reader& r, const Map& m, ScalingSpec& spec) {
  if (m.read("tick", spec.tick, above(0)) && spec.policy == PolicyKind::kConcurrency)
    spec.concurrency.tick = spec.tick;
  if (const Node* adm = m.get("admission")) {
    if (r.expect_map(*adm, m.at("admission"), " like {hold: false, reject_status: 503}")) {
      Map am(r, *adm, m.at("admission"));
      am.allow(kAdmissionKeys);
      am.read("hold", spec.admission.hold);
      am.read("reject_status", spec.admission.reject_status, between(400, false, 599, false));
    }
  }
}

// queue and tide have an idle timeout of their own (per replica).
void read_modifier_fields(const Map& m, ScalingSpec& spec) {
  switch (spec.policy) {
    case PolicyKind::kQueue:
      m.read("idle_timeout", spec.queue.idle_timeout);
      break;
    case PolicyKind::kTide:
      m.read("idle_timeout", spec.tide.idle_timeout);
      break;
    default:
      m.read("idle_timeout", spec.modifiers.idle_timeout);
      break;
  }
  m.read("hysteresis", spec.modifiers.hysteresis, between(0, false, 1, true));
  m.read("up_interval", spec.modifiers.up_interval);
  m.read("down_interval", spec.modifiers.down_interval);
  m.read("up_delay", spec.modifiers.up_delay);
  m.read("down_delay", spec.modifiers.down_delay);
}

// The target's meaning depends on the metric, which may come from the preset.
void check_target(Reader& r, const Map& m, const TargetPolicy& t, int group_concurrency) {
  const std::string_view metric = metric_name(t.metric);
  if (t.target <= 0 && t.metric != Metric::kRps) {
    r.fail(m.at("target"), fmt::format("must be > 0 for metric {} (0 = auto only for rps), got {}",
                                       metric, show_number(t.target)));
  } else if ((t.metric == Metric::kUtilization || t.metric == Metric::kEngineKvCache) &&
             t.target > 1) {
    r.fail(m.at("target"), fmt::format("must be <= 1 for metric {} (a fraction), got {}", metric,
                                       show_number(t.target)));
  } else if (t.metric == Metric::kInFlight && group_concurrency > 0 &&
             t.target > group_concurrency) {
    r.fail(m.at("target"),
           fmt::format("must be <= the group's concurrency ({}) for metric in_flight, got {}",
                       group_concurrency, show_number(t.target)));
  }
}

void read_target_fields(Reader& r, const Map& m, TargetPolicy& t, int group_concurrency) {
  m.read("metric", t.metric, kMetrics);
  const bool target_ok = m.read("target", t.target, at_least(0));
  m.read("tolerance", t.tolerance, between(0, false, 1, true));
  m.read("sync_period", t.sync_period, above(0));
  m.read("metric_window", t.metric_window, above(0));
  if (const Node* n = m.get("scale_up")) read_rules(r, *n, m.at("scale_up"), t.scale_up);
  if (const Node* n = m.get("scale_down")) read_rules(r, *n, m.at("scale_down"), t.scale_down);
  if (target_ok || m.get("target") == nullptr) check_target(r, m, t, group_concurrency);
}

void read_concurrency_fields(const Map& m, ConcurrencyPolicy& c) {
  m.read("target", c.target, at_least(0));
  m.read("stable_window", c.stable_window, above(0));
  m.read("panic_window_percentage", c.panic_window_percentage, between(0, true, 100, false));
  m.read("panic_threshold_percentage", c.panic_threshold_percentage, above(0));
  m.read("max_scale_up_rate", c.max_scale_up_rate, above(1));
  m.read("max_scale_down_rate", c.max_scale_down_rate, above(1));
  m.read("scale_down_delay", c.scale_down_delay);
  m.read("scale_to_zero_grace", c.scale_to_zero_grace);
}

void read_step_fields(Reader& r, const Map& m, StepPolicy& s) {
  m.read("metric", s.metric, kMetrics);
  m.read("adjustment", s.adjustment, kAdjustments);
  m.read("window", s.window, above(0));
  m.read("cooldown_up", s.cooldown_up);
  m.read("cooldown_down", s.cooldown_down);
  read_steps(r, m, s);
}

// Reads `key` into `out` when it is at most a day; `zero_means` says what 0 does.
void read_at_most_a_day(Reader& r, const Map& m, std::string_view key, std::string_view zero_means,
                        Duration& out) {
  Duration value{0};
  if (!m.read(key, value)) return;
  if (value > std::chrono::hours(24)) {
    r.fail(m.at(key), fmt::format("must be at most 24h (0 turns {} off), got {}", zero_means,
                                  format_duration(value)));
  } else {
    out = value;
  }
}

void read_tide_fields(Reader& r, const Map& m, TidePolicy& t) {
  m.read("target_wait_probability", t.target_wait_probability, between(0, true, 1, true));
  m.read("demand_window", t.demand_window, above(0));
  m.read("keep_window", t.keep_window);
  m.read("service_window", t.service_window, above(0));
  // The history it keeps grows with the period: periods beyond a day are daily patterns
  // repeated, and a day's history at 10 s resolution is what the policy holds.
  read_at_most_a_day(r, m, "prewarm_period", "pre-warming", t.prewarm_period);
  m.read("prewarm_cycles", t.prewarm_cycles, between(2, false, 10, false));
  // The replay's work grows with the window (its arrivals are capped, its intervals not).
  read_at_most_a_day(r, m, "history_window", "warm headroom", t.history_window);
}

// Reads the keys that belong to `spec.policy` and the shared ones into `spec`.
void read_scaling_fields(Reader& r, const Map& m, ScalingSpec& spec, int group_concurrency) {
  read_common_fields(r, m, spec);
  read_modifier_fields(m, spec);
  switch (spec.policy) {
    case PolicyKind::kQueue:
      m.read("queue_size", spec.queue.queue_size, at_least(1));
      break;
    case PolicyKind::kTarget:
      read_target_fields(r, m, spec.target, group_concurrency);
      break;
    case PolicyKind::kConcurrency:
      read_concurrency_fields(m, spec.concurrency);
      break;
    case PolicyKind::kStep:
      read_step_fields(r, m, spec.step);
      break;
    case PolicyKind::kTide:
      read_tide_fields(r, m, spec.tide);
      break;
  }
}

ScalingSpec read_scaling(Reader& r, const Node& node, const std::string& path,
                         int group_concurrency) {
  ScalingSpec spec = *preset_spec("tide");
  const std::vector<std::string_view> presets(preset_names().begin(), preset_names().end());
  auto use_preset = [&](const Node& n, const std::string& at) {
    const auto name = r.string(n, at);
    if (!name) return false;
    auto p = preset_spec(*name);
    if (!p) {
      r.fail(at, fmt::format("unknown preset {}{}; known presets: {}", quote(*name),
                             did_you_mean(*name, presets), join(presets, ", ")));
      return false;
    }
    spec = std::move(*p);
    return true;
  };

  if (node.IsScalar()) {  // `scaling: hf`
    use_preset(node, path);
    return spec;
  }
  if (!r.expect_map(node, path, " like {preset: tide} or {policy: queue, queue_size: 1}"))
    return spec;
  Map m(r, node, path);
  const Node* preset = m.get("preset");
  const Node* policy = m.get("policy");
  if (preset != nullptr) {
    // Without a known preset the other keys cannot be judged: report only this.
    if (!use_preset(*preset, m.at("preset"))) return spec;
    if (policy != nullptr) {
      r.fail(m.at("policy"),
             fmt::format("cannot be combined with preset (preset {} uses policy {})", spec.preset,
                         policy_name(spec.policy)));
    }
  } else if (policy != nullptr) {
    const auto kind = r.choice(*policy, m.at("policy"), kPolicies);
    if (!kind) return spec;
    spec = ScalingSpec{};
    spec.policy = *kind;
  }

  // Keys must belong to the resulting policy, the modifiers or the common keys.
  std::vector<std::string_view> allowed(std::begin(kCommonKeys), std::end(kCommonKeys));
  allowed.insert(allowed.end(), std::begin(kModifierKeys), std::end(kModifierKeys));
  for (std::string_view k : policy_keys(spec.policy)) {
    if (!contains(allowed, k)) allowed.push_back(k);
  }
  const std::string this_policy =
      fmt::format("policy {}{}", policy_name(spec.policy),
                  spec.preset.empty() ? "" : fmt::format(" (preset {})", spec.preset));
  auto owners_of = [](std::string_view key) {
    std::vector<std::string_view> owners;
    for (const auto& p : kPolicies) {
      if (contains(policy_keys(p.value), key)) owners.push_back(p.name);
    }
    return owners;
  };
  std::vector<std::string_view> every_key;
  for (const auto& p : kPolicies) {
    for (std::string_view k : policy_keys(p.value)) {
      if (!contains(every_key, k)) every_key.push_back(k);
    }
  }
  for (const auto& entry : m.entries()) {
    const std::string& key = entry.first;
    if (contains(allowed, key)) continue;
    if (const auto owners = owners_of(key); !owners.empty()) {
      r.fail(m.at(key), fmt::format("not a key of {}; it belongs to policy {}", this_policy,
                                    join(owners, " and ")));
    } else if (closest(key, allowed)) {
      m.unknown(key, allowed);
    } else if (const auto other = closest(key, every_key)) {
      // A typo of another policy's key: worth saying both.
      r.fail(m.at(key),
             fmt::format("unknown key (did you mean {}? it belongs to policy {}, not {})", *other,
                         join(owners_of(*other), " and "), this_policy));
    } else {
      m.unknown(key, allowed);
    }
  }
  read_scaling_fields(r, m, spec, group_concurrency);
  return spec;
}

// ---- groups and endpoints --------------------------------------------------------------------

void check_name(Reader& r, const std::string& name, const std::string& path) {
  if (name.empty()) {
    r.fail(path, "must not be empty");
    return;
  }
  auto ok_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  };
  if (!std::all_of(name.begin(), name.end(), ok_char) || name.front() == '_' ||
      name.front() == '-') {
    r.fail(path, fmt::format("must match [a-z0-9][a-z0-9_-]* (lowercase letters, digits, - and _), "
                             "got {}",
                             quote(name)));
  }
}

DurationDistribution read_distribution(Reader& r, const Node& node, const std::string& path) {
  DurationDistribution d;
  if (node.IsScalar()) {
    if (auto v = r.duration(node, path)) d.value = *v;
    return d;
  }
  if (!r.expect_map(node, path, " like {dist: uniform, min: 30s, max: 90s} or a duration like 60s"))
    return d;
  Map m(r, node, path);
  if (!m.required("dist", "fixed|uniform|lognormal|empirical") || !m.read("dist", d.kind, kDists)) {
    return d;
  }
  switch (d.kind) {
    case DistKind::kFixed: {
      constexpr std::string_view keys[] = {"dist", "value"};
      m.allow(keys);
      if (m.required("value")) m.read("value", d.value);
      break;
    }
    case DistKind::kUniform: {
      constexpr std::string_view keys[] = {"dist", "min", "max"};
      m.allow(keys);
      const bool min_ok = m.required("min") && m.read("min", d.min);
      const bool max_ok = m.required("max") && m.read("max", d.max);
      if (min_ok && max_ok && d.max < d.min) {
        r.fail(m.at("max"), fmt::format("must be >= min ({}), got {}", format_duration(d.min),
                                        format_duration(d.max)));
      }
      break;
    }
    case DistKind::kLognormal: {
      constexpr std::string_view keys[] = {"dist", "median", "sigma"};
      m.allow(keys);
      if (m.required("median")) m.read("median", d.median, above(0));
      if (m.required("sigma")) m.read("sigma", d.sigma, at_least(0));
      break;
    }
    case DistKind::kEmpirical: {
      constexpr std::string_view keys[] = {"dist", "values"};
      m.allow(keys);
      if (!m.required("values")) break;
      const Node& list = *m.get("values");
      if (!r.expect_list(list, m.at("values"))) break;
      if (list.size() == 0) {
        r.fail(m.at("values"), "must have at least one value");
        break;
      }
      for (size_t i = 0; i < list.size(); ++i) {
        if (auto v = r.duration(list[i], index_path(m.at("values"), i))) d.values.push_back(*v);
      }
      break;
    }
  }
  return d;
}

// `cold_start: <distribution>` (boot only), or `cold_start: {pending: <distribution>, boot:
// <distribution>}` for a cluster that queues jobs before they run.
void read_cold_start(Reader& r, const Node& node, const std::string& path, GroupSpec& g) {
  if (!node.IsMap() || (!node["pending"] && !node["boot"])) {
    g.cold_start = read_distribution(r, node, path);
    return;
  }
  Map m(r, node, path);
  m.allow(kColdStartKeys);
  if (const Node* n = m.get("pending")) g.pending = read_distribution(r, *n, m.at("pending"));
  if (const Node* n = m.get("boot")) g.cold_start = read_distribution(r, *n, m.at("boot"));
}

ServiceTimeModel read_service_time(Reader& r, const Node& node, const std::string& path) {
  ServiceTimeModel s;
  if (node.IsScalar()) {  // `service_time: 2s`
    if (auto v = r.duration(node, path)) {
      s.kind = ModelKind::kFixed;
      s.value = *v;
    }
    return s;
  }
  if (!r.expect_map(node, path, " like {model: fixed, value: 2s}")) return s;
  Map m(r, node, path);
  if (!m.required("model", "fixed|lognormal|tokens|trace") || !m.read("model", s.kind, kModels)) {
    return s;
  }
  switch (s.kind) {
    case ModelKind::kFixed: {
      constexpr std::string_view keys[] = {"model", "value"};
      m.allow(keys);
      if (m.required("value")) m.read("value", s.value, above(0));
      break;
    }
    case ModelKind::kLognormal: {
      constexpr std::string_view keys[] = {"model", "median", "sigma"};
      m.allow(keys);
      if (m.required("median")) m.read("median", s.median, above(0));
      if (m.required("sigma")) m.read("sigma", s.sigma, at_least(0));
      break;
    }
    case ModelKind::kTokens: {
      constexpr std::string_view keys[] = {"model", "prefill", "decode", "base"};
      m.allow(keys);
      m.read("prefill", s.prefill_s, at_least(0));
      m.read("decode", s.decode_s, at_least(0));
      m.read("base", s.base);
      break;
    }
    case ModelKind::kTrace: {
      constexpr std::string_view keys[] = {"model"};
      m.allow(keys);
      break;
    }
  }
  return s;
}

// A list of strings; reports and returns nullopt if any item is not one.
std::optional<std::vector<std::string>> read_strings(Reader& r, const Node& node,
                                                     const std::string& path) {
  if (!r.expect_list(node, path)) return std::nullopt;
  std::vector<std::string> out;
  bool ok = true;
  for (size_t i = 0; i < node.size(); ++i) {
    if (auto s = r.string(node[i], index_path(path, i))) {
      out.push_back(std::move(*s));
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

// A string that goes into an sbatch option: not empty, no whitespace.
void read_word(Reader& r, const Map& m, std::string_view key, std::string& out) {
  std::string v;
  if (!m.read(key, v)) return;
  if (v.empty() || v.find_first_of(" \t\n\r") != std::string::npos) {
    r.fail(m.at(key), fmt::format("must be one word without spaces, got {}", quote(v)));
    return;
  }
  out = std::move(v);
}

// The keys of kind slurm (see SlurmSpec), from the provisioner's map.
void read_slurm(Reader& r, const Map& m, SlurmSpec& s) {
  read_word(r, m, "partition", s.partition);
  read_word(r, m, "gres", s.gres);
  m.read("cpus", s.cpus, at_least(1));
  std::string mem;
  if (m.read("mem", mem)) {
    const size_t digits = mem.find_first_not_of("0123456789");
    const bool ok =
        digits > 0 && (digits == std::string::npos ||
                       (digits + 1 == mem.size() &&
                        std::string_view("KMGT").find(mem[digits]) != std::string_view::npos));
    if (ok) {
      s.mem = std::move(mem);
    } else {
      r.fail(m.at("mem"), fmt::format("must be a number of megabytes with an optional unit "
                                      "K, M, G or T (as sbatch --mem), got {}",
                                      quote(mem)));
    }
  }
  m.read("time_limit", s.time_limit, above(0));
  if (const Node* n = m.get("sbatch_args")) {
    // Options tide sets itself, from its own keys or for its own use.
    constexpr std::string_view kOwn[] = {
        "--job-name", "-J",     "--output",        "-o", "--parsable", "--wrap", "--partition",
        "-p",         "--gres", "--cpus-per-task", "-c", "--mem",      "--time", "-t"};
    if (auto args = read_strings(r, *n, m.at("sbatch_args"))) {
      bool ok = true;
      for (size_t i = 0; i < args->size(); ++i) {
        const std::string& a = (*args)[i];
        const std::string at = index_path(m.at("sbatch_args"), i);
        if (a.empty() || a.front() != '-') {
          r.fail(at, fmt::format("must be an sbatch option starting with -, got {}", quote(a)));
          ok = false;
          continue;
        }
        const std::string_view name = std::string_view(a).substr(0, a.find('='));
        if (std::find(std::begin(kOwn), std::end(kOwn), name) != std::end(kOwn)) {
          r.fail(at, fmt::format("{} is set by tide (use the provisioner's own keys)", name));
          ok = false;
        }
      }
      if (ok) s.sbatch_args = std::move(*args);
    }
  }
  std::string output;
  if (m.read("output", output)) {
    if (output.empty()) {
      r.fail(m.at("output"), "must not be empty (leave it out for /dev/null)");
    } else {
      s.output = std::move(output);
    }
  }
  m.read("poll_interval", s.poll_interval, above(0));
}

// The fields of kind kubernetes (see docs/kubernetes.md).
void read_kubernetes(Reader& r, const Map& m, ProvisionerSpec& p) {
  if (m.get("gpus"))
    r.fail(m.at("gpus"),
           "only for kind local (a pool of GPU ids); kind kubernetes asks the "
           "cluster for gpus_per_replica GPUs");
  std::string ns;
  if (m.read("namespace", ns)) {
    if (is_dns_label(ns)) {
      p.kube_namespace = ns;
    } else {
      r.fail(m.at("namespace"), fmt::format("must be a DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, "
                                            "at most 63 characters), got {}",
                                            quote(ns)));
    }
  }
  if (m.read("kubeconfig", p.kubeconfig) && p.kubeconfig.empty())
    r.fail(m.at("kubeconfig"), "must not be empty (a path to a kubeconfig file)");
  if (m.read("context", p.kube_context) && p.kube_context.empty())
    r.fail(m.at("context"), "must not be empty (a context of the kubeconfig)");
  std::vector<std::string> containers;
  if (const Node* n = m.get("template")) {
    if (auto t = read_pod_template(r, *n, m.at("template"), containers)) p.pod_template = *t;
  } else {
    r.fail(m.at("template"),
           "required: kind kubernetes needs a pod template like {spec: "
           "{containers: [{name: model, image: ...}]}}");
  }
  if (m.read("container", p.container) && !containers.empty() &&
      std::find(containers.begin(), containers.end(), p.container) == containers.end()) {
    std::string names;
    for (const auto& c : containers) names += (names.empty() ? "" : ", ") + c;
    r.fail(m.at("container"),
           fmt::format("no container named {} in template.spec.containers (containers: {})",
                       quote(p.container), names));
  }
  if (m.required("port", "the port the container listens on"))
    m.read("port", p.port, between(1, false, 65535, false));
  std::string resource;
  if (m.read("gpu_resource", resource)) {
    static const std::regex kResource(
        R"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)");
    if (std::regex_match(resource, kResource)) {
      p.gpu_resource = resource;
    } else {
      r.fail(m.at("gpu_resource"),
             fmt::format("expected an extended resource name like nvidia.com/gpu, got {}",
                         quote(resource)));
    }
  }
}

ProvisionerKind read_provisioner_kind(const Map& m, ProvisionerSpec& p) {
  ProvisionerKind kind = ProvisionerKind::kLocal;
  if (m.read("kind", kind, kProvisionerKinds)) {
    for (const auto& k : kProvisionerKinds) {
      if (k.value == kind) p.kind = std::string(k.name);
    }
  }
  return kind;
}

// The keys of kind slurm and kubernetes are known to it alone (and told apart from typos for
// the others).
void allow_provisioner_keys(Reader& r, const Map& m, ProvisionerKind kind) {
  std::vector<std::string_view> known(std::begin(kProvisionerKeys), std::end(kProvisionerKeys));
  auto kind_keys = [&](std::span<const std::string_view> keys, ProvisionerKind owner,
                       std::string_view owner_name) {
    for (std::string_view key : keys) {
      if (kind == owner) {
        known.push_back(key);
      } else if (m.get(key) != nullptr) {
        r.fail(m.at(key), fmt::format("only for kind {}", owner_name));
        known.push_back(key);
      }
    }
  };
  kind_keys(kSlurmKeys, ProvisionerKind::kSlurm, "slurm");
  kind_keys(kKubernetesKeys, ProvisionerKind::kKubernetes, "kubernetes");
  m.allow(known);
}

void read_pending_timeout(Reader& r, const Map& m, ProvisionerSpec& p) {
  if (queues_in_cluster(p.kind)) {
    m.read("pending_timeout", p.pending_timeout);
  } else if (m.get("pending_timeout") != nullptr) {
    r.fail(m.at("pending_timeout"),
           "only for kind slurm or kubernetes (a replica waiting in the cluster's queue)");
  }
}

void read_command(Reader& r, const Map& m, ProvisionerSpec& p) {
  const Node* n = m.get("command");
  if (n == nullptr) return;
  auto cmd = read_strings(r, *n, m.at("command"));
  if (!cmd) return;
  if (cmd->empty()) {
    r.fail(m.at("command"), "must not be empty (the program and its arguments)");
  } else if (cmd->front().empty()) {
    r.fail(index_path(m.at("command"), 0), "must not be empty (the program to run)");
  } else {
    p.command = std::move(*cmd);
  }
}

// Whether `urls` is absent or read whole.
bool read_urls(Reader& r, const Map& m, ProvisionerSpec& p) {
  const Node* n = m.get("urls");
  if (n == nullptr) return true;
  auto urls = read_strings(r, *n, m.at("urls"));
  if (!urls) return false;
  bool urls_ok = true;
  for (size_t i = 0; i < urls->size(); ++i) {
    const std::string& u = (*urls)[i];
    if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0) {
      r.fail(index_path(m.at("urls"), i),
             fmt::format("must start with http:// or https://, got {}", quote(u)));
      urls_ok = false;
    }
  }
  if (urls_ok) p.urls = std::move(*urls);
  return urls_ok;
}

void read_ready(Reader& r, const Map& m, ReadyProbe& ready) {
  const Node* n = m.get("ready");
  if (n == nullptr ||
      !r.expect_map(*n, m.at("ready"), " like {path: /health, interval: 100ms, timeout: 1s}")) {
    return;
  }
  Map rm(r, *n, m.at("ready"));
  rm.allow(kReadyKeys);
  std::string probe_path;
  if (rm.read("path", probe_path)) {
    if (probe_path.empty() || probe_path.front() != '/') {
      r.fail(rm.at("path"), fmt::format("must start with /, got {}", quote(probe_path)));
    } else {
      ready.path = probe_path;
    }
  }
  rm.read("interval", ready.interval, above(0));
  rm.read("timeout", ready.timeout, above(0));
}

// Whether `gpus` is absent or read whole.
bool read_gpus(Reader& r, const Map& m, ProvisionerSpec& p) {
  const Node* n = m.get("gpus");
  if (n == nullptr) return true;
  bool gpus_ok = r.expect_list(*n, m.at("gpus"));
  std::vector<int> gpus;
  for (size_t i = 0; gpus_ok && i < n->size(); ++i) {
    const std::string at = index_path(m.at("gpus"), i);
    const Node item = (*n)[i];
    const auto v = r.int_value(item, at, at_least(0));
    if (!v) {
      gpus_ok = false;
    } else if (std::find(gpus.begin(), gpus.end(), *v) != gpus.end()) {
      r.fail(at, fmt::format("duplicate gpu {}", *v));
      gpus_ok = false;
    } else {
      gpus.push_back(*v);
    }
  }
  if (gpus_ok) p.gpus = std::move(gpus);
  return gpus_ok;
}

ProvisionerSpec read_provisioner(Reader& r, const Node& node, const std::string& path) {
  ProvisionerSpec p;
  if (!r.expect_map(node, path, " like {kind: local, command: [...]}")) return p;
  Map m(r, node, path);
  const ProvisionerKind kind = read_provisioner_kind(m, p);
  allow_provisioner_keys(r, m, kind);
  if (kind == ProvisionerKind::kSlurm) read_slurm(r, m, p.slurm);
  read_pending_timeout(r, m, p);
  read_command(r, m, p);
  const bool urls_ok = read_urls(r, m, p);
  if (kind == ProvisionerKind::kStatic && urls_ok && p.urls.empty()) {
    r.fail(m.at("urls"), "required: kind static needs at least one url");
  }
  read_ready(r, m, p.ready);
  const bool gpus_ok = read_gpus(r, m, p);
  if (m.read("gpus_per_replica", p.gpus_per_replica, at_least(0)) && gpus_ok && !p.gpus.empty() &&
      p.gpus_per_replica > static_cast<int>(p.gpus.size())) {
    r.fail(m.at("gpus_per_replica"), fmt::format("must be <= the number of gpus ({}), got {}",
                                                 p.gpus.size(), p.gpus_per_replica));
  }
  if (kind == ProvisionerKind::kKubernetes) read_kubernetes(r, m, p);
  return p;
}

EngineMetricsSpec read_engine_metrics(Reader& r, const Node& node, const std::string& path) {
  EngineMetricsSpec spec;
  spec.enabled = true;
  if (!r.expect_map(node, path, " like {path: /metrics, kind: vllm}")) return spec;
  Map m(r, node, path);
  m.allow(kEngineMetricsKeys);
  std::string page_path;
  if (m.read("path", page_path)) {
    const bool printable = std::all_of(page_path.begin(), page_path.end(),
                                       [](unsigned char c) { return c > ' ' && c < 0x7f; });
    if (page_path.empty() || page_path.front() != '/' || !printable) {
      r.fail(m.at("path"),
             fmt::format("must start with / and hold no spaces, got {}", quote(page_path)));
    } else {
      spec.path = page_path;
    }
  }
  m.read("kind", spec.kind, kEngineKinds);
  m.read("interval", spec.interval, between(0.1, false, 60, false));
  m.read("timeout", spec.timeout, between(0.01, false, 60, false));
  m.read("max_bytes", spec.max_bytes, between(1024, false, 64 * 1024 * 1024, false));
  return spec;
}

RolloutSpec read_rollout(Reader& r, const Node& node, const std::string& path) {
  RolloutSpec spec;
  if (!r.expect_map(node, path, " like {max_surge: 1, max_unavailable: 0}")) return spec;
  Map m(r, node, path);
  m.allow(kRolloutKeys);
  const bool surge_ok =
      m.get("max_surge") == nullptr || m.read("max_surge", spec.max_surge, at_least(0));
  const bool unavailable_ok = m.get("max_unavailable") == nullptr ||
                              m.read("max_unavailable", spec.max_unavailable, at_least(0));
  if (surge_ok && unavailable_ok && spec.max_surge == 0 && spec.max_unavailable == 0) {
    r.fail(m.get("max_unavailable") != nullptr ? m.at("max_unavailable") : m.at("max_surge"),
           "max_surge and max_unavailable cannot both be 0 (a rollout could never replace a "
           "replica)");
  }
  return spec;
}

// The engine metric (Metric::kEngine*) a target or step policy scales on, if it does.
std::optional<Metric> engine_metric_of(const ScalingSpec& s) {
  const auto engine = [](Metric m) {
    return m == Metric::kEngineWaiting || m == Metric::kEngineRunning ||
           m == Metric::kEngineKvCache;
  };
  if (s.policy == PolicyKind::kTarget && engine(s.target.metric)) return s.target.metric;
  if (s.policy == PolicyKind::kStep && engine(s.step.metric)) return s.step.metric;
  return std::nullopt;
}

GroupSpec read_group(Reader& r, const Node& node, const std::string& path) {
  GroupSpec g;
  if (!r.expect_map(node, path, " like {name: h100, max_replicas: 4, ...}")) return g;
  Map m(r, node, path);
  m.allow(kGroupKeys);
  if (m.required("name") && m.read("name", g.name)) check_name(r, g.name, m.at("name"));
  if (const Node* n = m.get("provisioner"))
    g.provisioner = read_provisioner(r, *n, m.at("provisioner"));
  if (const Node* n = m.get("agent")) {
    if (r.expect_map(*n, m.at("agent"), " like {enabled: true}")) {
      Map am(r, *n, m.at("agent"));
      am.allow(kAgentKeys);
      am.read("enabled", g.agent.enabled);
      am.read("work", g.agent.work, kWorks);
      am.read("report_interval", g.agent.report_interval, between(0.1, false, 60, false));
      if (g.agent.enabled && g.provisioner.kind != "local")
        r.fail(am.at("enabled"),
               fmt::format("tide starts the agent with kind local only; with kind {}, put `tide "
                           "agent` in front of each server yourself and leave this out",
                           g.provisioner.kind));
    }
  }

  if (const Node* n = m.get("rollout")) g.rollout = read_rollout(r, *n, m.at("rollout"));
  if (const Node* n = m.get("engine_metrics"))
    g.engine_metrics = read_engine_metrics(r, *n, m.at("engine_metrics"));

  const bool min_ok =
      m.get("min_replicas") == nullptr || m.read("min_replicas", g.min_replicas, at_least(0));
  const bool max_ok =
      m.get("max_replicas") == nullptr ||
      m.read("max_replicas", g.max_replicas, between(1, false, kMaxReplicas, false));
  if (min_ok && max_ok && g.max_replicas < g.min_replicas) {
    r.fail(m.at("max_replicas"),
           fmt::format("must be >= min_replicas ({}), got {}{}", g.min_replicas, g.max_replicas,
                       m.get("max_replicas") == nullptr ? " (the default)" : ""));
  }
  const bool concurrency_ok =
      m.get("concurrency") == nullptr ||
      m.read("concurrency", g.concurrency, between(1, false, kMaxConcurrency, false));
  if (const Node* n = m.get("cold_start")) read_cold_start(r, *n, m.at("cold_start"), g);
  m.read("price", g.price, at_least(0));
  if (const Node* n = m.get("service_time"))
    g.service_time = read_service_time(r, *n, m.at("service_time"));

  // 0: unknown (invalid), so checks against it are skipped.
  const int concurrency = concurrency_ok ? g.concurrency : 0;
  if (const Node* n = m.get("scaling")) {
    g.scaling = read_scaling(r, *n, m.at("scaling"), concurrency);
  } else {
    g.scaling = *preset_spec("tide");
  }
  if (const auto metric = engine_metric_of(g.scaling); metric && !g.engine_metrics.enabled) {
    r.fail(m.at("scaling"),
           fmt::format("metric {} is read from the model servers: the group needs engine_metrics "
                       "(like {{path: /metrics, kind: vllm}})",
                       metric_name(*metric)));
  }
  return g;
}

RoutingSpec read_routing(Reader& r, const Node& node, const std::string& path,
                         const std::vector<GroupSpec>& groups) {
  RoutingSpec spec;
  if (!r.expect_map(node, path, " like {mode: split, weights: {a: 90, b: 10}}")) return spec;
  Map m(r, node, path);
  m.allow(kRoutingKeys);
  m.read("mode", spec.mode, kRoutingModes);
  std::string names;
  for (const auto& g : groups) names += (names.empty() ? "" : ", ") + g.name;
  auto group_index = [&](const std::string& name, const std::string& at) -> int {
    for (size_t i = 0; i < groups.size(); ++i) {
      if (groups[i].name == name) return static_cast<int>(i);
    }
    r.fail(at, fmt::format("no group named {} (groups: {})", quote(name), names));
    return -1;
  };
  const bool split = spec.mode == RoutingSpec::Mode::kSplit;
  if (const Node* n = m.get("weights")) {
    if (!split) {
      r.fail(m.at("weights"), "only for mode split");
    } else if (r.expect_map(*n, m.at("weights"), " like {a: 90, b: 10}")) {
      Map wm(r, *n, m.at("weights"));
      std::vector<double> weights(groups.size(), 0.0);
      bool ok = true;
      for (const auto& [key, value] : wm.entries()) {
        const int i = group_index(key, wm.at(key));
        const auto w = r.number(value, wm.at(key));
        if (i < 0 || !w || !r.in_range(*w, at_least(0), value, wm.at(key))) {
          ok = false;
          continue;
        }
        weights[static_cast<size_t>(i)] = *w;
      }
      double total = 0;
      for (double w : weights) total += w;
      if (ok && total <= 0) {
        r.fail(m.at("weights"), "at least one weight must be > 0");
      } else if (ok) {
        spec.weights = std::move(weights);
      }
    }
  }
  if (m.read("sticky_header", spec.sticky_header) && !split)
    r.fail(m.at("sticky_header"), "only for mode split");
  if (const Node* n = m.get("order")) {
    if (split) {
      r.fail(m.at("order"), "only for mode overflow");
    } else if (auto list = read_strings(r, *n, m.at("order"))) {
      std::vector<int> order;
      bool ok = true;
      for (size_t i = 0; i < list->size(); ++i) {
        const int g = group_index((*list)[i], index_path(m.at("order"), i));
        if (g < 0) {
          ok = false;
        } else if (std::find(order.begin(), order.end(), g) != order.end()) {
          r.fail(index_path(m.at("order"), i),
                 fmt::format("{} is listed twice", quote((*list)[i])));
          ok = false;
        } else {
          order.push_back(g);
        }
      }
      if (ok && order.size() != groups.size()) {
        r.fail(m.at("order"), fmt::format("must list every group once (groups: {})", names));
      } else if (ok) {
        spec.order = std::move(order);
      }
    }
  }
  return spec;
}

// Why `name` cannot be a model name, or nullopt.
std::optional<std::string> model_name_problem(std::string_view name) {
  if (name.empty()) return "must not be empty";
  if (name.size() > kMaxModelName)
    return fmt::format("must be at most {} bytes, got {}", kMaxModelName, name.size());
  const auto control = std::find_if(name.begin(), name.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
  if (control != name.end())
    return fmt::format("must not contain control characters (byte {:#04x} at {})",
                       static_cast<unsigned char>(*control), control - name.begin());
  if (!valid_utf8(name)) return "must be UTF-8";
  return std::nullopt;
}

// `models:`, a list of model names each listed once; default: the endpoint's own name.
std::vector<std::string> read_models(Reader& r, const Map& m, const std::string& name) {
  const Node* n = m.get("models");
  if (n == nullptr) return {name};
  auto list = read_strings(r, *n, m.at("models"));
  if (!list) return {};
  if (list->empty())
    r.fail(m.at("models"),
           "must list at least one model (leave it out for the "
           "endpoint's name)");
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string& model = (*list)[i];
    if (auto problem = model_name_problem(model)) {
      r.fail(index_path(m.at("models"), i), *problem);
    } else if (std::find(list->begin(), list->begin() + static_cast<ptrdiff_t>(i), model) !=
               list->begin() + static_cast<ptrdiff_t>(i)) {
      r.fail(index_path(m.at("models"), i), fmt::format("{} is listed twice", quote(model)));
    }
  }
  return std::move(*list);
}

EndpointSpec read_endpoint(Reader& r, const Node& node, const std::string& path) {
  EndpointSpec e;
  if (!r.expect_map(node, path, " like {name: chat, groups: [...]}")) return e;
  Map m(r, node, path);
  m.allow(kEndpointKeys);
  if (m.required("name") && m.read("name", e.name)) check_name(r, e.name, m.at("name"));
  e.source = YAML::Dump(node);
  e.models = read_models(r, m, e.name);
  if (const Node* n = m.get("slo")) {
    if (r.expect_map(*n, m.at("slo"), " like {max_wait: 2s} or {ttft: 1s}")) {
      Map sm(r, *n, m.at("slo"));
      sm.allow(kSloKeys);
      sm.read("max_wait", e.slo.max_wait);
      sm.read("ttft", e.slo.ttft, between(0, true, kMaxTtftSeconds, false));
      if (e.slo.ttft && sm.get("max_wait") != nullptr)
        r.fail(sm.at("ttft"), "give max_wait or ttft, not both (a ttft SLO sets the wait budget)");
    }
  }
  if (const Node* n = m.get("queue")) {
    if (r.expect_map(*n, m.at("queue"), " like {max_length: 10000, timeout: 300s}")) {
      Map qm(r, *n, m.at("queue"));
      qm.allow(kQueueSpecKeys);
      qm.read("max_length", e.queue.max_length, at_least(0));
      qm.read("timeout", e.queue.timeout, above(0));
    }
  }
  if (!m.required("groups", "at least one worker group")) return e;
  const Node& groups = *m.get("groups");
  if (!r.expect_list(groups, m.at("groups"))) return e;
  if (groups.size() == 0) {
    r.fail(m.at("groups"), "must have at least one worker group");
    return e;
  }
  for (size_t i = 0; i < groups.size(); ++i) {
    const std::string group_path = index_path(m.at("groups"), i);
    GroupSpec g = read_group(r, groups[i], group_path);
    for (size_t j = 0; j < e.groups.size(); ++j) {
      if (!g.name.empty() && e.groups[j].name == g.name) {
        r.fail(key_path(group_path, "name"),
               fmt::format("duplicate group name {} (also groups[{}])", quote(g.name), j));
        break;
      }
    }
    e.groups.push_back(std::move(g));
  }
  if (const Node* n = m.get("routing")) e.routing = read_routing(r, *n, m.at("routing"), e.groups);
  return e;
}

// Both files are required; their contents are checked when the listener loads them.
TlsSpec read_tls(Reader& r, const Node& node, const std::string& path) {
  TlsSpec t;
  if (!r.expect_map(node, path, " like {cert_file: server.crt, key_file: server.key}")) return t;
  Map m(r, node, path);
  m.allow(kTlsKeys);
  for (auto [key, out] :
       {std::pair{"cert_file", &t.cert_file}, std::pair{"key_file", &t.key_file}}) {
    if (!m.required(key, "a PEM file")) continue;
    if (m.read(key, *out) && out->empty()) r.fail(m.at(key), "must not be empty");
  }
  if (t.cert_file.empty() || t.key_file.empty()) return {};
  return t;
}

ServerSpec read_server(Reader& r, const Node& node, const std::string& path) {
  ServerSpec s;
  if (!r.expect_map(node, path, " like {listen: 127.0.0.1:8080, api: 127.0.0.1:8081}")) return s;
  Map m(r, node, path);
  m.allow(kServerKeys);
  for (auto [key, out] : {std::pair{"listen", &s.listen}, std::pair{"api", &s.api}}) {
    std::string v;
    if (!m.read(key, v)) continue;
    if (net::split_host_port(v)) {
      *out = v;
    } else {
      r.fail(m.at(key), fmt::format("expected host:port like 127.0.0.1:8080, got {}", quote(v)));
    }
  }
  if (s.listen == s.api && !s.listen.ends_with(":0")) {
    r.fail(m.at("api"), fmt::format("must differ from listen, got {}", quote(s.api)));
  }
  m.read("threads", s.threads, between(0, false, 256, false));
  m.read("max_header_bytes", s.max_header_bytes, between(1024, false, 1024 * 1024, false));
  double body = static_cast<double>(s.max_body_bytes);
  if (m.read("max_body_bytes", body, between(0, false, 1e10, false)))
    s.max_body_bytes = static_cast<int64_t>(body);
  double api_body = static_cast<double>(s.api_max_body_bytes);
  if (m.read("api_max_body_bytes", api_body, between(1024, false, 1e9, false)))
    s.api_max_body_bytes = static_cast<int64_t>(api_body);
  m.read("max_connections", s.max_connections, between(1, false, 1000000, false));
  m.read("api_max_connections", s.api_max_connections, between(1, false, 100000, false));
  m.read("max_trailer_bytes", s.max_trailer_bytes, between(256, false, 1024 * 1024, false));
  double memory = static_cast<double>(s.max_body_memory);
  if (m.read("max_body_memory", memory, between(1024, false, 1e12, false)))
    s.max_body_memory = static_cast<int64_t>(memory);
  if (s.max_body_memory < s.max_body_bytes)
    r.fail(m.at("max_body_memory"), fmt::format("must be at least max_body_bytes ({}), got {}",
                                                s.max_body_bytes, s.max_body_memory));
  m.read("read_timeout", s.read_timeout, above(0));
  m.read("idle_timeout", s.idle_timeout, above(0));
  m.read("upstream_timeout", s.upstream_timeout, above(0));
  if (m.read("api_token", s.api_token) && s.api_token.size() < 16)
    r.fail(m.at("api_token"),
           fmt::format("must be at least 16 characters, got {}", s.api_token.size()));
  m.read("public_read", s.public_read);
  using MetricsAuth = ServerSpec::MetricsAuth;
  static constexpr Choice<MetricsAuth> kMetricsAuth[] = {
      {"auto", MetricsAuth::kAuto}, {"token", MetricsAuth::kToken}, {"none", MetricsAuth::kNone}};
  m.read("metrics_auth", s.metrics_auth, kMetricsAuth);
  using ClientAuth = ServerSpec::ClientAuth;
  static constexpr Choice<ClientAuth> kClientAuth[] = {{"none", ClientAuth::kNone},
                                                       {"keys", ClientAuth::kKeys}};
  m.read("client_auth", s.client_auth, kClientAuth);
  if (const Node* n = m.get("tls")) s.tls = read_tls(r, *n, m.at("tls"));
  if (const Node* n = m.get("api_tls")) s.api_tls = read_tls(r, *n, m.at("api_tls"));
  return s;
}

RouteSpec read_route(Reader& r, const Node& node, const std::string& path) {
  RouteSpec s;
  if (!r.expect_map(node, path, " like {token_ttl: 30s, key_file: tide-route.key}")) return s;
  Map m(r, node, path);
  m.allow(kRouteKeys);
  // Agents refuse tokens that live longer than 10 minutes (TokenVerifier::Options::max_ttl).
  m.read("token_ttl", s.token_ttl, between(0, true, 600, false));
  if (m.read("key_file", s.key_file) && s.key_file.empty())
    r.fail(m.at("key_file"), "must not be empty (leave it out for the default)");
  if (m.read("rotate_after", s.rotate_after) && s.rotate_after > Duration{0} &&
      s.rotate_after <= s.token_ttl)
    r.fail(m.at("rotate_after"),
           fmt::format("must be 0 (never) or longer than token_ttl ({}), got {}",
                       format_duration(s.token_ttl), format_duration(s.rotate_after)));
  return s;
}

StateSpec read_state(Reader& r, const Node& node, const std::string& path) {
  StateSpec s;
  if (!r.expect_map(node, path, " like {path: tide-state.db}")) return s;
  Map m(r, node, path);
  m.allow(kStateKeys);
  if (m.read("path", s.path) && s.path.empty())
    r.fail(m.at("path"), "must not be empty (\":memory:\" keeps state in memory only)");
  m.read("sample_interval", s.sample_interval, between(0.1, false, 3600, false));
  m.read("downsample_after", s.downsample_after, above(0));
  m.read("downsample_step", s.downsample_step, above(0));
  m.read("retention", s.retention, above(0));
  if (s.downsample_step < s.sample_interval)
    r.fail(m.at("downsample_step"),
           fmt::format("must be >= sample_interval ({}), got {}",
                       format_duration(s.sample_interval), format_duration(s.downsample_step)));
  return s;
}

// Each model of `e` (at `path`) against the endpoints before it: a model goes to one endpoint.
// `listed`: the endpoint has `models:` (else it serves its name, and the problem is its name's).
void check_models_unique(Reader& r, const std::vector<EndpointSpec>& before, const EndpointSpec& e,
                         const std::string& path, bool listed) {
  for (size_t k = 0; k < e.models.size(); ++k) {
    for (const EndpointSpec& other : before) {
      // The same name twice is reported as such.
      if (other.name == e.name || !serves_model(other, e.models[k])) continue;
      r.fail(listed ? index_path(key_path(path, "models"), k) : key_path(path, "name"),
             fmt::format("model {} is served by endpoint {} already ({}); a model may be listed by "
                         "one endpoint only",
                         quote(e.models[k]), quote(other.name),
                         listed ? "list other names in models:"
                                : "without models: an endpoint serves its name"));
      break;
    }
  }
}

Config read_config(Reader& r, const Node& root) {
  Config c;
  if (!root.IsNull() && !root.IsMap()) {
    r.fail("", fmt::format("expected a map with server and endpoints at the top level, got {}",
                           show(root)));
    return c;
  }
  Map m(r, root, "");
  m.allow(kTopKeys);
  if (const Node* n = m.get("server")) c.server = read_server(r, *n, "server");
  if (const Node* n = m.get("state")) c.state = read_state(r, *n, "state");
  if (const Node* n = m.get("route")) c.route = read_route(r, *n, "route");
  if (!m.required("endpoints", "at least one endpoint")) return c;
  const Node& endpoints = *m.get("endpoints");
  if (!r.expect_list(endpoints, "endpoints")) return c;
  if (endpoints.size() == 0) {
    r.fail("endpoints", "must have at least one endpoint");
    return c;
  }
  for (size_t i = 0; i < endpoints.size(); ++i) {
    const std::string path = index_path("endpoints", i);
    EndpointSpec e = read_endpoint(r, endpoints[i], path);
    for (size_t j = 0; j < c.endpoints.size(); ++j) {
      if (!e.name.empty() && c.endpoints[j].name == e.name) {
        r.fail(key_path(path, "name"),
               fmt::format("duplicate endpoint name {} (also endpoints[{}])", quote(e.name), j));
        break;
      }
    }
    const Node item = endpoints[i];
    check_models_unique(r, c.endpoints, e, path, item.IsMap() && item["models"]);
    c.endpoints.push_back(std::move(e));
  }
  return c;
}

std::string what_text(const std::vector<std::string>& problems, std::string_view source) {
  if (problems.empty())
    return source.empty() ? "invalid config" : fmt::format("{}: invalid config", source);
  std::string out;
  for (size_t i = 0; i < problems.size(); ++i) {
    if (i > 0) out += '\n';
    if (!source.empty()) out += fmt::format("{}: ", source);
    out += problems[i];
  }
  return out;
}

}  // namespace

ConfigError::ConfigError(std::vector<std::string> problems)
    : std::runtime_error(what_text(problems, "")), problems_(std::move(problems)) {}

ConfigError::ConfigError(std::vector<std::string> problems, std::string source)
    : std::runtime_error(what_text(problems, source)),
      problems_(std::move(problems)),
      source_(std::move(source)) {}

std::string_view metric_name(Metric m) {
  for (const auto& c : kMetrics) {
    if (c.value == m) return c.name;
  }
  return "?";
}

Duration wait_budget(const SloSpec& slo, Duration expected_prefill) {
  if (!slo.ttft) return slo.max_wait;
  return std::max(Duration{0}, *slo.ttft - std::max(Duration{0}, expected_prefill));
}

bool serves_model(const EndpointSpec& spec, std::string_view model) {
  return std::find(spec.models.begin(), spec.models.end(), model) != spec.models.end();
}

std::optional<std::string> model_clash(const EndpointSpec& e,
                                       const std::vector<const EndpointSpec*>& others) {
  for (const std::string& model : e.models) {
    for (const EndpointSpec* other : others) {
      if (other->name != e.name && serves_model(*other, model))
        return fmt::format("model {} is served by endpoint {} already", quote(model),
                           quote(other->name));
    }
  }
  return std::nullopt;
}

std::string_view metrics_auth_name(const ServerSpec& server) {
  switch (server.metrics_auth) {
    case ServerSpec::MetricsAuth::kAuto:
      return "auto";
    case ServerSpec::MetricsAuth::kToken:
      return "token";
    case ServerSpec::MetricsAuth::kNone:
      return "none";
  }
  return "?";
}

bool metrics_need_token(const ServerSpec& server) {
  if (server.metrics_auth != ServerSpec::MetricsAuth::kAuto)
    return server.metrics_auth == ServerSpec::MetricsAuth::kToken;
  const std::string_view host = net::host_of(server.api);
  const bool loopback =
      host.starts_with("127.") || host == "localhost" || host == "[::1]" || host == "::1";
  return !loopback;
}

std::string_view policy_name(PolicyKind p) {
  for (const auto& c : kPolicies) {
    if (c.value == p) return c.name;
  }
  return "?";
}

Config parse_config(std::string_view yaml_text, std::string_view source) {
  Reader r;
  Config config;
  // The walk itself only uses non-throwing yaml-cpp calls; the catch is a last line of defence
  // so that no yaml-cpp exception ever escapes as anything but a ConfigError.
  try {
    if (auto root = load_yaml(r, yaml_text)) config = read_config(r, *root);
  } catch (const YAML::Exception& e) {
    r.fail("", fmt::format("invalid YAML: {}", e.what()));
  }
  if (!r.ok()) throw ConfigError(r.take(), std::string(source));
  return config;
}

Config load_config(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError({"cannot read: is a directory"}, path);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError({fmt::format("cannot read: {}", std::strerror(errno))}, path);
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError({"cannot read: read error"}, path);
  return parse_config(text.str(), path);
}

EndpointSpec parse_endpoint(std::string_view text, std::string_view path) {
  Reader r;
  EndpointSpec spec;
  try {
    if (auto root = load_yaml(r, text)) spec = read_endpoint(r, *root, std::string(path));
  } catch (const YAML::Exception& e) {
    r.fail("", fmt::format("invalid YAML: {}", e.what()));
  }
  if (!r.ok()) throw ConfigError(r.take());
  return spec;
}

ScalingSpec parse_scaling(std::string_view yaml_text, const GroupSpec& group) {
  Reader r;
  ScalingSpec spec = *preset_spec("tide");
  try {
    if (auto root = load_yaml(r, yaml_text)) {
      if (!root->IsNull()) spec = read_scaling(r, *root, "scaling", group.concurrency);
    }
  } catch (const YAML::Exception& e) {
    r.fail("", fmt::format("invalid YAML: {}", e.what()));
  }
  if (!r.ok()) throw ConfigError(r.take());
  return spec;
}

}  // namespace tide::config
