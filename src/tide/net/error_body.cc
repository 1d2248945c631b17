#include "tide/net/error_body.h"

#include <nlohmann/json.hpp>

namespace tide::net {

std::string error_body(std::string_view type, std::string_view message) {
  nlohmann::json j = {{"error", {{"type", type}, {"message", message}}}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace tide::net
