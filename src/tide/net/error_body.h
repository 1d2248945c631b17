// The JSON error body every HTTP answer of tide's own carries (gateway, agent):
// {"error": {"type": ..., "message": ...}}.
#pragma once

#include <string>
#include <string_view>

namespace tide::net {

// Messages may quote what a client sent: bytes that are not UTF-8 are replaced rather than
// thrown about.
std::string error_body(std::string_view type, std::string_view message);

}  // namespace tide::net
