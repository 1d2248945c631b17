// The pod template of a kubernetes provisioner: read from YAML, checked, and kept as the JSON the
// Kubernetes API takes. Internal to tide_config (it brings in yaml-cpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tide/config/yaml_reader.h"

namespace tide::config::detail {

// Reads `template` ({metadata: {labels, annotations}, spec: {containers: [...], ...}}) at `path`
// and returns it as compact JSON text, or nullopt after reporting each problem to `r`. What tide
// sets itself (the pod's name and namespace) is refused; the rest is left to the API server.
// `container_names` receives the names of spec.containers, in order.
std::optional<std::string> read_pod_template(Reader& r, const Node& node, const std::string& path,
                                             std::vector<std::string>& container_names);

// Whether `s` is a DNS-1123 label (a namespace): [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63.
bool is_dns_label(std::string_view s);

}  // namespace tide::config::detail
