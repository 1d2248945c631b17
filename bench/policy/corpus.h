// The policy corpus: workloads with their replica model and SLO, on which every scaling policy is
// compared (bench_policy, see README.md in this folder).
//
// Each workload is an endpoint config (YAML, parsed and validated like a user's) and a way to
// build its requests: a cut of a real trace, or arrivals generated with a fixed seed. Its set
// (design or check) follows from its place in its family (the rule in README.md), never from
// results.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tide/config/config.h"
#include "tide/sim/trace.h"

namespace tide::bench {

enum class Set { kDesign, kCheck };
std::string_view set_name(Set s);

// Where the shared trace files are (sim::find_trace_file).
struct TraceFiles {
  std::string llm;       // azure_llm_2023_conv.csv
  std::string fn_inv;    // azure_functions_2019_invitro_sample1340_inv.csv.zst
  std::string fn_run;    // ..._run.csv.zst
  std::string servegen;  // servegen_client_window_traces.tar.zst
  static TraceFiles find(const std::string& repo_root);
  // Names of the files not found ("" when all are there).
  std::string missing() const;
};

struct Workload {
  std::string name;
  std::string family;
  Set set = Set::kDesign;
  std::string source;  // where the requests come from, in words (for the table and CSV)
  config::Config config;
  Duration warmup{0};
  bool fast = false;  // in the fast subset (--fast, the regression test)
  // The requests, built when the workload runs (real traces are read then).
  std::function<sim::Trace(const TraceFiles&)> build;
};

// The whole corpus, in a fixed order; sets assigned by the rule. Throws config::ConfigError if a
// workload's config is invalid (a bug in the table).
std::vector<Workload> corpus();

// The endpoint config of a workload: one endpoint "ep", one group "gpu", a bounded hold queue.
// `service` is the group's service_time in YAML, `cold_start` its cold_start.
struct Model {
  std::string slo = "2s";
  int concurrency = 8;
  std::string cold_start = "60s";
  int max_replicas = 20;
  std::string service = "{model: lognormal, median: 1s, sigma: 0.5}";
};
config::Config make_config(const Model& m);

}  // namespace tide::bench
