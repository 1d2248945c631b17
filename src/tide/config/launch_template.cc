// What starts a group's replicas, as text: compared for a rollout (same_launch_template) and
// hashed into the fingerprint the state file keeps with each replica.
#include <fmt/format.h>

#include <chrono>
#include <string>
#include <vector>

#include "tide/common/hash.h"
#include "tide/config/config.h"

namespace tide::config {

namespace {

std::string quoted(const std::string& s) { return fmt::format("{}:{}", s.size(), s); }
std::string quoted(const std::vector<std::string>& v) {
  std::string out = fmt::format("[{}]", v.size());
  for (const std::string& s : v) out += quoted(s);
  return out;
}
std::string quoted(const std::vector<int>& v) { return fmt::format("[{}]", fmt::join(v, ",")); }
std::string quoted(Duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}
std::string quoted(int v) { return std::to_string(v); }
std::string quoted(bool v) { return v ? "1" : "0"; }

// One line per field that differs from its default: a field added later, at its default, does
// not change the text of a template written before it.
class Lines {
 public:
  template <typename T>
  void add(const char* name, const T& value, const T& by_default) {
    if (!(value == by_default)) text_ += fmt::format("{}={}\n", name, quoted(value));
  }
  std::string text() && { return std::move(text_); }

 private:
  std::string text_;
};

void add_provisioner(Lines& l, const ProvisionerSpec& p) {
  const ProvisionerSpec d;
  l.add("kind", p.kind, d.kind);
  l.add("command", p.command, d.command);
  l.add("urls", p.urls, d.urls);
  l.add("gpus", p.gpus, d.gpus);
  l.add("gpus_per_replica", p.gpus_per_replica, d.gpus_per_replica);
  l.add("namespace", p.kube_namespace, d.kube_namespace);
  l.add("kubeconfig", p.kubeconfig, d.kubeconfig);
  l.add("context", p.kube_context, d.kube_context);
  l.add("template", p.pod_template, d.pod_template);
  l.add("container", p.container, d.container);
  l.add("port", p.port, d.port);
  l.add("gpu_resource", p.gpu_resource, d.gpu_resource);
  const SlurmSpec& s = p.slurm;
  const SlurmSpec ds;
  l.add("slurm.partition", s.partition, ds.partition);
  l.add("slurm.gres", s.gres, ds.gres);
  l.add("slurm.cpus", s.cpus, ds.cpus);
  l.add("slurm.mem", s.mem, ds.mem);
  l.add("slurm.time_limit", s.time_limit, ds.time_limit);
  l.add("slurm.sbatch_args", s.sbatch_args, ds.sbatch_args);
  l.add("slurm.output", s.output, ds.output);
  l.add("slurm.poll_interval", s.poll_interval, ds.poll_interval);
}

void add_agent(Lines& l, const GroupSpec& g) {
  const AgentSpec d;
  l.add("agent.enabled", g.agent.enabled, d.enabled);
  l.add("agent.work", static_cast<int>(g.agent.work), static_cast<int>(d.work));
  l.add("agent.report_interval", g.agent.report_interval, d.report_interval);
  if (!g.agent.enabled) return;  // without an agent, tide's probe reads the engine's page
  const EngineMetricsSpec& e = g.engine_metrics;
  const EngineMetricsSpec de;
  l.add("engine_metrics.enabled", e.enabled, de.enabled);
  l.add("engine_metrics.path", e.path, de.path);
  l.add("engine_metrics.kind", static_cast<int>(e.kind), static_cast<int>(de.kind));
  l.add("engine_metrics.interval", e.interval, de.interval);
  l.add("engine_metrics.timeout", e.timeout, de.timeout);
  l.add("engine_metrics.max_bytes", e.max_bytes, de.max_bytes);
}

}  // namespace

std::string launch_template_text(const GroupSpec& g) {
  Lines lines;
  add_provisioner(lines, g.provisioner);
  add_agent(lines, g);
  return std::move(lines).text();
}

std::string launch_template_fingerprint(const GroupSpec& g) {
  return fmt::format("{:016x}", fnv1a(launch_template_text(g)));
}

bool same_launch_template(const GroupSpec& a, const GroupSpec& b) {
  return launch_template_text(a) == launch_template_text(b);
}

}  // namespace tide::config
