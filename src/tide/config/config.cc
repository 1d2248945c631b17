// STUB: replaced by the config parser work.
#include "tide/config/config.h"

namespace tide::config {
ConfigError::ConfigError(std::vector<std::string> problems)
    : std::runtime_error(problems.empty() ? "invalid config" : problems.front()),
      problems_(std::move(problems)) {}
Config parse_config(std::string_view, std::string_view) { throw ConfigError({"not implemented"}); }
Config load_config(const std::string&) { throw ConfigError({"not implemented"}); }
ScalingSpec parse_scaling(std::string_view, const GroupSpec&) { throw ConfigError({"not implemented"}); }
std::string_view metric_name(Metric) { return "?"; }
std::string_view policy_name(PolicyKind) { return "?"; }
}  // namespace tide::config
