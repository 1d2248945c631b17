// The report a replica's agent sends the control plane every report interval, and at once when
// its model server's state changes: POST /v1/agent/report, header `Authorization: Bearer
// <replica secret>`, body JSON (docs/agent.md shows an example).
//
// encode_report() is what the agent sends; parse_report() is what the control plane accepts:
// every field is checked (type, range) and a problem is named by its field. Unknown fields are
// ignored, so that a newer agent can report to an older control plane. Plain values; no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tide/control/replica.h"

namespace tide::agent {

using control::GpuReading;

struct AgentReport {
  std::string endpoint;
  uint64_t replica_id = 0;
  control::AgentState state = control::AgentState::kStarting;
  std::string detail;   // why starting / unhealthy, for people
  std::string address;  // host:port where the agent serves (required when ready)
  uint64_t seq = 0;     // reports this agent has sent, from 1
  int slots = 1;        // requests it lets through to the model server at once

  // Over the last interval.
  double interval_s = 0;
  int in_service = 0;  // at the end of the interval
  int queued = 0;
  double avg_in_service = 0;
  double avg_queued = 0;
  double busy = 0;  // share of the interval with >= 1 request in service
  uint64_t arrivals = 0;
  uint64_t completed = 0;
  double work = 0;                     // work units of those completions
  std::string work_unit = "requests";  // tokens | requests
  uint64_t tokens_in = 0;
  uint64_t tokens_out = 0;
  std::optional<double> latency_mean_s;  // of the interval's completions
  std::optional<double> latency_max_s;
  metrics::LoadSample load;
  double work_per_request = 1;

  // Since the agent started.
  uint64_t total_requests = 0;
  uint64_t total_completed = 0;
  uint64_t total_rejected = 0;  // refused: bad or missing token, bad secret
  double total_work = 0;
  uint64_t reports_failed = 0;  // reports the control plane did not take (away, refused)

  std::vector<GpuReading> gpus;  // only where NVML is present
  // Its model server's own figures, last read from its metrics page (agent --engine-metrics).
  std::optional<metrics::EngineSignals> engine;
};

std::string_view state_name(control::AgentState s);

std::string encode_report(const AgentReport& report);

// GPU readings as the report, the agent's /tide/status and the API show them:
// [{"index", "utilization", "memory_used_bytes", "memory_total_bytes"}, ...].
nlohmann::json gpus_json(const std::vector<GpuReading>& gpus);
// A model server's figures as the report and the API show them: {"running", "waiting",
// "kv_cache"}, each only where the engine exports it.
nlohmann::json engine_json(const metrics::EngineSignals& engine);

// A report as parsed, or the first problem found ("field: problem").
struct ParsedReport {
  std::optional<AgentReport> report;
  std::string error;
};
ParsedReport parse_report(std::string_view json_text);

// What the control plane keeps of a report.
control::ReplicaReport to_replica_report(const AgentReport& report);

}  // namespace tide::agent
