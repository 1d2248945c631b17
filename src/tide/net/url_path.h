// URL paths as text: a path segment's percent-escapes decoded. Plain C++, like address.h.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tide::net {

// A URL path segment with its %XX escapes decoded ("qwen%2Fcoder:7b" -> "qwen/coder:7b", as
// clients encode a model id in /v1/models/{id}); nothing when a '%' is not followed by two hex
// digits. '+' stays '+' (a query's convention, not a path's).
std::optional<std::string> percent_decode(std::string_view segment);

}  // namespace tide::net
