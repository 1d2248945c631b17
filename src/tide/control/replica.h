// A replica of a worker group and its lifecycle:
//   requested -> starting (cold start) -> ready -> draining -> stopped, plus failed.
// Billing-relevant time runs from requested to stopped (or failed).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tide/common/time.h"
#include "tide/dispatch/dispatcher.h"
#include "tide/metrics/engine_signals.h"
#include "tide/metrics/load.h"

namespace tide::control {

enum class ReplicaState : uint8_t { kRequested, kStarting, kReady, kDraining, kStopped, kFailed };
std::string_view state_name(ReplicaState s);

// What a replica's agent says of its model server.
enum class AgentState : uint8_t {
  kStarting,   // not healthy yet
  kReady,      // healthy: the replica may take requests (pushed readiness)
  kUnhealthy,  // was healthy, no longer is: the replica has failed
};

// One GPU as the replica's agent read it from NVML at its last report.
struct GpuReading {
  int index = 0;           // NVML's device index
  double utilization = 0;  // 0..1, as nvidia-smi shows it
  uint64_t memory_used_bytes = 0;
  uint64_t memory_total_bytes = 0;
};

// What a replica's agent measured over its last report interval (the wire format and its
// validation live in src/tide/agent/report.h).
struct ReplicaReport {
  Duration interval{0};
  int in_service = 0;  // now
  int queued = 0;      // now: waiting at the replica for a slot
  double avg_in_service = 0;
  double avg_queued = 0;
  double busy = 0;  // share of the interval with >= 1 request in service (nvidia-smi style)
  uint64_t completions = 0;
  double work_per_request = 1;  // learned work units per request
  metrics::LoadSample load;
  std::vector<GpuReading> gpus;  // the GPUs it runs on, where its agent reads NVML
  // Its model server's own figures, where the agent reads them (config::EngineMetricsSpec).
  std::optional<metrics::EngineSignals> engine;
};

struct Replica {
  uint64_t id = 0;   // unique within the endpoint, never reused
  std::string name;  // "endpoint/group/id", for logs and the API
  int group = 0;
  int generation = 1;       // of the group's launch template it was started from (see rollout.h)
  std::string template_id;  // that template's config::launch_template_fingerprint
  ReplicaState state = ReplicaState::kRequested;
  Time requested_at{};
  Time ready_at{};
  Time drain_at{};
  Time stopped_at{};
  dispatch::ReplicaSlot slot = dispatch::kNoSlot;  // while ready or draining
  std::string address;                             // where the gateway reaches it (production)
  std::string error;                               // why it failed, if it did
  std::string handle;        // where its provisioner runs it, to find it again after a restart
  bool adopted = false;      // launched by a previous run of tide and taken over
  int connect_failures = 0;  // connections the gateway could not open in a row (see Endpoint)

  // Agent reports and two-step routing (tide serve only).
  std::optional<ReplicaReport> report;  // the latest
  Time reported_at{};
  Time last_busy{};                   // when a report last showed work in progress or done
  double routed_since_report = 0;     // requests routed straight to it since that report
  uint64_t routes = 0;                // requests routed straight to it, in all
  bool awaiting_idle_report = false;  // drained at the gateway, still busy with direct requests

  // Its model server's own figures as last read (by its agent or the probe), and when.
  std::optional<metrics::EngineSignals> engine;
  Time engine_at{};

  bool active() const {  // counts toward the group's current size
    return state == ReplicaState::kRequested || state == ReplicaState::kStarting ||
           state == ReplicaState::kReady;
  }
};

}  // namespace tide::control
