// The effective configuration as YAML: what `tide validate` prints.
#include <yaml-cpp/yaml.h>

#include "tide/config/config.h"

namespace tide::config {

namespace {

std::string dur(Duration d) { return format_duration(d); }

std::string distribution(const DurationDistribution& d) {
  switch (d.kind) {
    case DurationDistribution::Kind::kFixed:
      return dur(d.value);
    case DurationDistribution::Kind::kUniform:
      return "uniform " + dur(d.min) + ".." + dur(d.max);
    case DurationDistribution::Kind::kLognormal:
      return "lognormal median " + dur(d.median) + ", sigma " + std::to_string(d.sigma);
    case DurationDistribution::Kind::kEmpirical:
      return "empirical, " + std::to_string(d.values.size()) + " values, mean " + dur(d.mean());
  }
  return "";
}

void emit_policy(YAML::Emitter& y, const ScalingSpec& s) {
  switch (s.policy) {
    case PolicyKind::kQueue:
      y << YAML::Key << "queue_size" << YAML::Value << s.queue.queue_size;
      y << YAML::Key << "idle_timeout" << YAML::Value << dur(s.queue.idle_timeout);
      break;
    case PolicyKind::kTarget:
      y << YAML::Key << "metric" << YAML::Value << std::string(metric_name(s.target.metric));
      y << YAML::Key << "target" << YAML::Value << s.target.target;
      y << YAML::Key << "tolerance" << YAML::Value << s.target.tolerance;
      y << YAML::Key << "sync_period" << YAML::Value << dur(s.target.sync_period);
      y << YAML::Key << "metric_window" << YAML::Value << dur(s.target.metric_window);
      break;
    case PolicyKind::kConcurrency:
      y << YAML::Key << "target" << YAML::Value << s.concurrency.target;
      y << YAML::Key << "stable_window" << YAML::Value << dur(s.concurrency.stable_window);
      y << YAML::Key << "scale_to_zero_grace" << YAML::Value
        << dur(s.concurrency.scale_to_zero_grace);
      break;
    case PolicyKind::kStep:
      y << YAML::Key << "metric" << YAML::Value << std::string(metric_name(s.step.metric));
      y << YAML::Key << "steps" << YAML::Value << s.step.steps.size();
      y << YAML::Key << "window" << YAML::Value << dur(s.step.window);
      y << YAML::Key << "cooldown_up" << YAML::Value << dur(s.step.cooldown_up);
      y << YAML::Key << "cooldown_down" << YAML::Value << dur(s.step.cooldown_down);
      break;
    case PolicyKind::kTide:
      y << YAML::Key << "target_wait_probability" << YAML::Value << s.tide.target_wait_probability;
      y << YAML::Key << "idle_timeout" << YAML::Value
        << (s.tide.idle_timeout.count() == 0 ? std::string("0 (the mean cold start)")
                                             : dur(s.tide.idle_timeout));
      y << YAML::Key << "demand_window" << YAML::Value << dur(s.tide.demand_window);
      y << YAML::Key << "keep_window" << YAML::Value
        << (s.tide.keep_window.count() == 0 ? std::string("0 (the mean cold start)")
                                            : dur(s.tide.keep_window));
      y << YAML::Key << "service_window" << YAML::Value << dur(s.tide.service_window);
      y << YAML::Key << "history_window" << YAML::Value << dur(s.tide.history_window);
      break;
  }
}

void emit_provisioner(YAML::Emitter& y, const ProvisionerSpec& p) {
  y << YAML::Key << "provisioner" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "kind" << YAML::Value << p.kind;
  if (!p.command.empty()) {
    y << YAML::Key << "command" << YAML::Value << YAML::Flow << p.command;
  }
  if (!p.urls.empty()) y << YAML::Key << "urls" << YAML::Value << YAML::Flow << p.urls;
  if (p.kind == "kubernetes") {
    y << YAML::Key << "namespace" << YAML::Value << p.kube_namespace;
    y << YAML::Key << "port" << YAML::Value << p.port;
  }
  if (queues_in_cluster(p.kind))
    y << YAML::Key << "pending_timeout" << YAML::Value << dur(p.pending_timeout);
  if (p.gpus_per_replica > 0)
    y << YAML::Key << "gpus_per_replica" << YAML::Value << p.gpus_per_replica;
  y << YAML::Key << "ready" << YAML::Value << YAML::Flow << YAML::BeginMap;
  y << YAML::Key << "path" << YAML::Value << p.ready.path;
  y << YAML::Key << "interval" << YAML::Value << dur(p.ready.interval);
  y << YAML::Key << "timeout" << YAML::Value << dur(p.ready.timeout) << YAML::EndMap;
  y << YAML::EndMap;
}

void emit_group(YAML::Emitter& y, const GroupSpec& g) {
  y << YAML::BeginMap;
  y << YAML::Key << "name" << YAML::Value << g.name;
  y << YAML::Key << "min_replicas" << YAML::Value << g.min_replicas;
  y << YAML::Key << "max_replicas" << YAML::Value << g.max_replicas;
  y << YAML::Key << "concurrency" << YAML::Value << g.concurrency;
  y << YAML::Key << "cold_start" << YAML::Value << distribution(g.cold_start);
  if (g.price) y << YAML::Key << "price" << YAML::Value << *g.price;
  emit_provisioner(y, g.provisioner);
  y << YAML::Key << "agent" << YAML::Value << YAML::Flow << YAML::BeginMap;
  y << YAML::Key << "enabled" << YAML::Value << g.agent.enabled << YAML::EndMap;
  if (g.engine_metrics.enabled) {
    const EngineMetricsSpec& e = g.engine_metrics;
    y << YAML::Key << "engine_metrics" << YAML::Value << YAML::Flow << YAML::BeginMap;
    y << YAML::Key << "path" << YAML::Value << e.path;
    y << YAML::Key << "kind" << YAML::Value << std::string(metrics::engine_kind_name(e.kind));
    y << YAML::Key << "interval" << YAML::Value << dur(e.interval);
    y << YAML::Key << "timeout" << YAML::Value << dur(e.timeout);
    y << YAML::Key << "max_bytes" << YAML::Value << e.max_bytes << YAML::EndMap;
  }
  y << YAML::Key << "rollout" << YAML::Value << YAML::Flow << YAML::BeginMap;
  y << YAML::Key << "max_surge" << YAML::Value << g.rollout.max_surge;
  y << YAML::Key << "max_unavailable" << YAML::Value << g.rollout.max_unavailable;
  y << YAML::EndMap;
  const ScalingSpec& s = g.scaling;
  y << YAML::Key << "scaling" << YAML::Value << YAML::BeginMap;
  if (!s.preset.empty()) y << YAML::Key << "preset" << YAML::Value << s.preset;
  y << YAML::Key << "policy" << YAML::Value << std::string(policy_name(s.policy));
  emit_policy(y, s);
  y << YAML::Key << "tick" << YAML::Value << dur(s.tick);
  y << YAML::Key << "hold" << YAML::Value << s.admission.hold;
  if (s.modifiers.idle_timeout)
    y << YAML::Key << "idle_timeout" << YAML::Value << dur(*s.modifiers.idle_timeout);
  y << YAML::EndMap << YAML::EndMap;
}

void emit_endpoint(YAML::Emitter& y, const EndpointSpec& e) {
  y << YAML::BeginMap;
  y << YAML::Key << "name" << YAML::Value << e.name;
  y << YAML::Key << "models" << YAML::Value << YAML::Flow << e.models;
  y << YAML::Key << "slo" << YAML::Value << YAML::Flow << YAML::BeginMap;
  if (e.slo.ttft) {
    y << YAML::Key << "ttft" << YAML::Value << dur(*e.slo.ttft) << YAML::EndMap;
  } else {
    y << YAML::Key << "max_wait" << YAML::Value << dur(e.slo.max_wait) << YAML::EndMap;
  }
  y << YAML::Key << "queue" << YAML::Value << YAML::Flow << YAML::BeginMap;
  y << YAML::Key << "max_length" << YAML::Value << e.queue.max_length;
  y << YAML::Key << "timeout" << YAML::Value << dur(e.queue.timeout) << YAML::EndMap;
  if (e.groups.size() > 1) {
    y << YAML::Key << "routing" << YAML::Value
      << (e.routing.mode == RoutingSpec::Mode::kSplit ? "split" : "overflow");
  }
  y << YAML::Key << "groups" << YAML::Value << YAML::BeginSeq;
  for (const auto& g : e.groups) emit_group(y, g);
  y << YAML::EndSeq << YAML::EndMap;
}

}  // namespace

std::string effective_yaml(const Config& c) {
  YAML::Emitter y;
  y << YAML::BeginMap;
  y << YAML::Key << "server" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "listen" << YAML::Value << c.server.listen;
  y << YAML::Key << "api" << YAML::Value << c.server.api;
  y << YAML::Key << "threads" << YAML::Value << c.server.threads;
  y << YAML::Key << "api_token" << YAML::Value
    << (c.server.api_token.empty() ? "(TIDE_API_TOKEN, else the state file's)" : "(set)");
  y << YAML::Key << "public_read" << YAML::Value << c.server.public_read;
  y << YAML::Key << "metrics_auth" << YAML::Value << std::string(metrics_auth_name(c.server));
  y << YAML::Key << "client_auth" << YAML::Value
    << (c.server.client_auth == ServerSpec::ClientAuth::kKeys ? "keys" : "none");
  for (auto [key, tls] :
       {std::pair{"tls", &c.server.tls}, std::pair{"api_tls", &c.server.api_tls}}) {
    if (!tls->enabled()) continue;
    y << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginMap;
    y << YAML::Key << "cert_file" << YAML::Value << tls->cert_file;
    y << YAML::Key << "key_file" << YAML::Value << tls->key_file << YAML::EndMap;
  }
  y << YAML::Key << "read_timeout" << YAML::Value << dur(c.server.read_timeout);
  y << YAML::Key << "idle_timeout" << YAML::Value << dur(c.server.idle_timeout);
  y << YAML::Key << "upstream_timeout" << YAML::Value << dur(c.server.upstream_timeout);
  y << YAML::EndMap;
  y << YAML::Key << "state" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "path" << YAML::Value << c.state.path;
  y << YAML::Key << "sample_interval" << YAML::Value << dur(c.state.sample_interval);
  y << YAML::Key << "retention" << YAML::Value << dur(c.state.retention);
  y << YAML::EndMap;
  y << YAML::Key << "route" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "token_ttl" << YAML::Value << dur(c.route.token_ttl);
  y << YAML::Key << "key_file" << YAML::Value
    << (c.route.key_file.empty() ? "(tide-route.key beside state.path)" : c.route.key_file);
  y << YAML::EndMap;
  y << YAML::Key << "endpoints" << YAML::Value << YAML::BeginSeq;
  for (const auto& e : c.endpoints) emit_endpoint(y, e);
  y << YAML::EndSeq << YAML::EndMap;
  return std::string(y.c_str()) + "\n";
}

}  // namespace tide::config
