// `tide keys add|list|revoke`: the gateway's client API keys through the admin API of a running
// `tide serve` (POST/GET /v1/keys, DELETE /v1/keys/NAME). `add` prints the new key, alone on
// stdout (the one time anyone sees it: tide keeps only its SHA-256). Main thread only.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "tide/cli/commands.h"

namespace tide::cli {

struct KeysOptions {
  enum class Action { kAdd, kList, kRevoke };
  Action action = Action::kList;
  std::string name;                    // add, revoke
  std::vector<std::string> endpoints;  // add: the endpoints it may use; empty: every one
  double rate = 0;                     // add: requests per second; 0: no limit
  int concurrency = 0;                 // add: requests in flight; 0: no limit
  bool json = false;                   // the API's JSON instead of lines and tables
};

// Writes what the API said to `out`, or "tide: <why>" to `err`; returns the exit code (0 or 1).
int run_keys(const AdminApi& api, const KeysOptions& o, std::ostream& out, std::ostream& err);

}  // namespace tide::cli
