// Two-step routing and the agents' side of the API listener (server.api):
//
//   POST /v1/route         {"endpoint": "chat", "work": 120}  ->  {"url", "token", "expires_at"}
//                          for a ready replica of a group with agents; with none ready, 503 with
//                          the group's state and Retry-After (and the client counts as demand)
//   GET  /v1/pubkey        the public keys agents trust (the current one, and rotated-out ones
//                          until their last tokens expire)
//   POST /v1/agent/report  an agent's report, `Authorization: Bearer <replica secret>`
//   GET  /v1/agents        what these paths did: routes, reports taken and refused by reason
//
// These authenticate by themselves: reports by the replica's secret; route and pubkey are as
// open as the gateway itself (the payload never comes here). The signing keys live in
// route.key_file (see config::RouteSpec); replica secrets are derived from them.
//
// Thread-safe: handle() runs on the API listener's thread, the secret and launch functions on
// gateway and provisioner threads.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tide/auth/keys.h"
#include "tide/config/config.h"
#include "tide/control/live_endpoint.h"
#include "tide/gateway/gateway.h"

namespace tide::serve {

class RouteApi {
 public:
  using Log = std::function<void(const std::string&)>;
  // Opens (or creates) the key file when some group runs agents; throws std::runtime_error
  // naming the file when it cannot.
  RouteApi(const config::Config& config, std::vector<control::LiveEndpoint*> endpoints, Log log);

  // The answer when `req` is for one of the paths above; nullopt otherwise.
  std::optional<gateway::ApiResponse> handle(const gateway::ApiRequest& req);

  // The secret of replica `replica_id` of `endpoint`. Opens the keys first when no group had
  // agents at start ("" when they cannot be opened; the reason is logged).
  std::string replica_secret(const std::string& endpoint, uint64_t replica_id);
  // The trusted public keys as GET /v1/pubkey serves them (handed to agents at launch).
  std::string public_keys_json();

  // Adds the two-step and agent figures to an endpoint's API JSON (made from `view`).
  void annotate(nlohmann::json& endpoint, const control::EndpointView& view) const;

 private:
  gateway::ApiResponse route(const gateway::ApiRequest& req);
  gateway::ApiResponse report(const gateway::ApiRequest& req);
  gateway::ApiResponse reject_report(int status, const std::string& reason,
                                     const std::string& message);
  nlohmann::json keys_json_locked(Time now) const;
  void rotate_if_due_locked(Time now);
  // Opens or creates the key ring (key_path_, or in memory) unless open; throws like the
  // constructor.
  void open_ring_locked(Time now);

  config::RouteSpec spec_;
  std::string key_path_;  // "" = keys in memory only
  std::vector<control::LiveEndpoint*> endpoints_;
  Log log_;
  SystemClock wall_;
  mutable std::mutex mu_;
  std::optional<auth::KeyRing> ring_;  // none until some group runs agents
  struct Counts {
    uint64_t calls = 0;
    uint64_t routed = 0;
    uint64_t no_replica = 0;
    uint64_t refused = 0;  // bad request, unknown endpoint, no agents
  };
  std::map<std::string, Counts> routes_;  // by endpoint ("" for unknown)
  uint64_t reports_accepted_ = 0;
  std::map<std::string, uint64_t> reports_rejected_;  // by reason
};

}  // namespace tide::serve
