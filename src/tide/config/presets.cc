// STUB: replaced by the config parser work.
#include "tide/config/config.h"

namespace tide::config {
const std::vector<std::string>& preset_names() { static const std::vector<std::string> n; return n; }
std::optional<ScalingSpec> preset_spec(std::string_view) { return std::nullopt; }
}  // namespace tide::config
