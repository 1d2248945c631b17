#include "tide/net/error_body.h"

#include <nlohmann/json.hpp>

namespace tide::net {

namespace {

nlohmann::json text_or_null(std::string_view s) {
  return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s);
}

std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string error_body(std::string_view type, std::string_view message) {
  return dump({{"error", {{"type", type}, {"message", message}}}});
}

std::string openai_error_body(std::string_view type, std::string_view message,
                              std::string_view param, std::string_view code) {
  return dump({{"error",
                {{"message", message},
                 {"type", type},
                 {"param", text_or_null(param)},
                 {"code", text_or_null(code)}}}});
}

}  // namespace tide::net
