// The admin API of `tide serve` on its listener (server.api), every path in one place:
//
//   GET  /healthz, /metrics (text of observe.h), the dashboard's files (/, /ui/...)
//   GET  /v1/endpoints, /v1/endpoints/{name} (with its configuration and last decisions)
//   PUT  /v1/endpoints/{name}       a new configuration, validated and applied at once
//   GET  /v1/endpoints/{name}/history, /v1/endpoints/{name}/decisions   from the state file
//   GET  /v1/events                 the event stream (Server-Sent Events)
//   POST, GET /v1/keys, DELETE /v1/keys/{name}   the gateway's client keys (KeysApi, keys_api.h;
//                                   always behind the token, public_read or not)
//   two-step routing and the agents' paths: handed to RouteApi (route_api.h)
//
// Everything but /healthz, the dashboard, the two-step paths and (where server.metrics_auth
// allows) /metrics needs `Authorization: Bearer <token>`. Runs on the API listener's thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tide/common/time.h"
#include "tide/config/config.h"
#include "tide/control/live_endpoint.h"
#include "tide/gateway/gateway.h"
#include "tide/serve/keys_api.h"
#include "tide/serve/route_api.h"
#include "tide/serve/serve.h"
#include "tide/serve/wall_clock.h"
#include "tide/store/store.h"

namespace tide::serve {

class AdminApi {
 public:
  // What the API answers from; each outlives the AdminApi.
  struct Parts {
    const config::Config& config;
    const ServeOptions& options;
    const Clock& clock;
    store::Store& store;
    const std::string& api_token;
    const std::vector<std::unique_ptr<control::LiveEndpoint>>& endpoints;
    RouteApi& route_api;
    KeysApi& keys;
    const WallClock& wall;
    std::function<control::LiveEndpoint*(std::string_view)> find_endpoint;
    std::function<std::string()> metrics;  // the /metrics text
  };

  // Reads the dashboard's built files (options.web_dir) once.
  explicit AdminApi(Parts parts);
  ~AdminApi();
  AdminApi(const AdminApi&) = delete;
  AdminApi& operator=(const AdminApi&) = delete;

  gateway::ApiResponse handle(const gateway::ApiRequest& req);
  bool has_dashboard() const;
  // The config file read again (SIGHUP): every endpoint whose entry changed gets it as a PUT
  // would; one line per endpoint for the log (applied, unchanged, refused and why, or needing a
  // restart: an endpoint added or removed).
  std::vector<std::string> reload(const config::Config& next, const std::string& file);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `{tide}` in a local command is the path of this tide binary (for `{tide} demo-model`). Specs
// keep the placeholder (so stored configurations stay portable); replicas get the path.
void expand_tide_path(config::EndpointSpec& spec);

}  // namespace tide::serve
