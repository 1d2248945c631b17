// What keeps a parsed configuration from running live (`tide serve`, `tide validate`, and
// `PUT /v1/endpoints/{name}`): provisioner kinds and their fields, the launch templates of
// local and Slurm groups ({placeholders}, {port}, the command exists and is executable), and
// the TLS listeners' certificate and key files (server.tls, server.api_tls).
// Each problem is "path: reason", the path as ConfigError's ("endpoints[0].groups[1]...").
#pragma once

#include <string>
#include <vector>

#include "tide/config/config.h"

namespace tide::serve {

// The placeholders a launch command may hold: {port}, {replica_id}, {tide}.
std::vector<std::string> check_for_serving(const config::Config& config);
// One endpoint, its paths starting at `at` (e.g. "endpoints[0]", or "body" for the API).
std::vector<std::string> check_for_serving(const config::EndpointSpec& endpoint,
                                           const std::string& at);

// Problems of one local or Slurm launch command ("" prefix-free reasons, one per problem):
// unknown placeholders such as {prot}, no {port} (nor $TIDE_PORT) where the replica learns its
// port, and for kind local an argv[0] that is not an executable file (searched in PATH when it
// has no '/'). `tide` is the path {tide} stands for.
std::vector<std::string> check_command(const std::vector<std::string>& command, bool local,
                                       const std::string& tide, const std::string& path_env);

}  // namespace tide::serve
