// `tide agent`: the worker-side agent that runs beside one model server (one replica).
//
//  - Admits a request only with a valid route token for this replica (`Tide-Route-Token`, from
//    POST /v1/route: signature, expiry, endpoint, replica, single use) or with this replica's
//    secret (`Tide-Replica-Secret`, which only the gateway sends); anything else gets 401/403
//    and a JSON reason.
//  - Proxies admitted requests to the model server, at most `slots` at once (the rest wait in
//    its queue), streaming answers (SSE) through as they come.
//  - Measures in service, queued, completed, latency, work (tokens in + out from the answer's
//    `usage`, or 1 per request), throughput and load against a capacity learned from what it
//    served (metrics/load.h); reads GPU utilization and memory through NVML when present.
//  - Watches the model server's health and pushes readiness and a report to the control plane
//    every report interval and at once when the state changes. A control plane that is away
//    costs nothing but failed reports: serving goes on, and the reports (with their running
//    totals) resume when it is back.
//  - Optionally runs the model server itself (`command`): as its child, in its process group,
//    killed if the agent dies; the agent exits with the model server's status when it ends.
//
// Serves on the thread that calls run(); stop() may be called from any thread. Beast and Asio
// stay in agent.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tide/agent/report.h"
#include "tide/auth/token.h"
#include "tide/common/time.h"

namespace tide::agent {

struct AgentOptions {
  std::string listen = "127.0.0.1:0";  // where the agent serves (port 0: any free port)
  std::string advertise;  // host:port reported to the control plane (default: listen's host and
                          // the bound port)
  std::string upstream;   // host:port of the model server
  std::string health_path = "/health";
  std::string control;  // the control plane's API, "http://host:port" ("": no reports)
  std::string endpoint;
  uint64_t replica_id = 0;
  std::string secret;       // this replica's secret: reports, and the gateway's admission
  int slots = 1;            // requests let through to the model server at once
  bool work_tokens = true;  // work = tokens from `usage` (else 1 per request)
  Duration report_interval = std::chrono::seconds(1);
  Duration health_interval = std::chrono::milliseconds(100);  // until ready; then 1 s
  int unhealthy_after = 3;            // failed health checks in a row, once ready
  std::vector<auth::PublicKey> keys;  // trusted at start; refreshed from control /v1/pubkey
  Duration key_refresh = std::chrono::seconds(60);
  auth::TokenVerifier::Options token;
  std::string nvml_library = "libnvidia-ml.so.1";
  int64_t max_body_bytes = 16 * 1024 * 1024;
  Duration read_timeout = std::chrono::seconds(30);
  Duration upstream_timeout = std::chrono::seconds(600);
  bool handle_signals = false;       // SIGINT / SIGTERM stop it (and its model server)
  std::vector<std::string> command;  // the model server to run as a child; empty: runs elsewhere
  // The model server's Prometheus page, read every engine_interval once it is ready, its
  // figures sent with each report (metrics/engine_signals.h). Empty path: not read.
  std::string engine_path;
  metrics::EngineKind engine_kind = metrics::EngineKind::kVllm;
  Duration engine_interval = std::chrono::seconds(1);
  Duration engine_timeout = std::chrono::seconds(1);
  size_t engine_max_bytes = 1024 * 1024;
  std::function<void(const std::string&)> log;  // default: stderr
};

// What the agent did, for /tide/status and tests.
struct AgentCounters {
  std::string state;  // starting | ready | unhealthy
  uint64_t admitted_token = 0;
  uint64_t admitted_gateway = 0;
  std::map<std::string, uint64_t> rejected;  // by reason
  uint64_t completed = 0;
  uint64_t upstream_errors = 0;
  uint64_t reports_sent = 0;
  uint64_t reports_failed = 0;
  int in_service = 0;
  int queued = 0;
  size_t keys = 0;
  bool gpu = false;
  std::vector<GpuReading> gpus;  // NVML's readings at the last report (none without NVML)
  std::optional<metrics::EngineSignals> engine;  // the model server's, as last read
  std::string engine_error;                      // why the last read failed ("": it did not)
  uint64_t engine_reads_failed = 0;
};

class Agent {
 public:
  // Binds the listener and resolves the upstream; throws std::runtime_error with the reason
  // when it cannot (or when an option is invalid). Nothing runs before run().
  explicit Agent(AgentOptions options);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  uint16_t port() const;
  // Starts the model server (if any), serves until stop(), a signal, or the model server's
  // exit; returns the exit status for the process (the model server's, else 0).
  int run();
  void stop();
  AgentCounters counters() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Parses a list of public keys as GET /v1/pubkey serves them ({"keys": [{"id", "public_key",
// "valid_until_ms"}]}), or the list alone. Throws std::runtime_error naming the problem.
std::vector<auth::PublicKey> parse_public_keys(const std::string& json_text);

}  // namespace tide::agent
