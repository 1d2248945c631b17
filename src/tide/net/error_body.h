// The JSON error body every HTTP answer of tide's own carries (gateway, agent):
// {"error": {"type": ..., "message": ...}}; on the gateway's OpenAI paths (/v1/...) the same with
// OpenAI's two more fields, {"error": {"message", "type", "param", "code"}}, which OpenAI's
// clients read.
#pragma once

#include <string>
#include <string_view>

namespace tide::net {

// Messages may quote what a client sent: bytes that are not UTF-8 are replaced rather than
// thrown about.
std::string error_body(std::string_view type, std::string_view message);

// OpenAI's shape: `param` and `code` are null where empty.
std::string openai_error_body(std::string_view type, std::string_view message,
                              std::string_view param, std::string_view code);

}  // namespace tide::net
