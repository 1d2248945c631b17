// The gateway's client API keys through the admin API (server.client_auth: keys; keys may be
// managed whatever client_auth says, and are checked only with keys):
//
//   POST   /v1/keys         {"name": "alice", "endpoints": ["chat"], "rate": 10, "concurrency": 4}
//                           (all but name optional: every endpoint, no limits)
//                           -> 201 {"name", "key", "endpoints", "created", "rate", "concurrency"}:
//                           the key, shown once
//   GET    /v1/keys         -> {"keys": [{"name", "endpoints", "created", "rate", "concurrency",
//                                         "requests", "limited"}]}
//   DELETE /v1/keys/{name}  -> 200; the key stops working before the answer is sent
//
// The state file keeps each key's SHA-256 only; no answer, log line or file holds a key but the
// POST's answer. The admin token is checked by the caller (AdminApi). Runs on the API thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tide/auth/client_keys.h"
#include "tide/gateway/gateway.h"
#include "tide/store/store.h"

namespace tide::serve {

class KeysApi {
 public:
  // `now_s`: the wall clock in Unix seconds; `endpoint_names`: the endpoints a key may name.
  KeysApi(store::Store& store, auth::ClientKeyRing& ring, std::function<double()> now_s,
          std::function<std::vector<std::string>()> endpoint_names);
  // Fills the ring from the state file (at start).
  void load();
  // The answer for a /v1/keys path; nullopt for any other path.
  std::optional<gateway::ApiResponse> handle(const gateway::ApiRequest& req);

 private:
  // The key a POST asks for (name, endpoints, limits), or nullopt and `problem`.
  std::optional<store::ClientKeyRow> read_add(const std::string& body, std::string& problem);
  gateway::ApiResponse add(const std::string& body);
  gateway::ApiResponse list();
  gateway::ApiResponse revoke(const std::string& name);

  store::Store& store_;
  auth::ClientKeyRing& ring_;
  std::function<double()> now_s_;
  std::function<std::vector<std::string>()> endpoint_names_;
};

// Why `name` cannot name a key ([A-Za-z0-9._-], 1 to 64 characters), or nullopt.
std::optional<std::string> key_name_problem(std::string_view name);

}  // namespace tide::serve
