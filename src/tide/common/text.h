// Checks and trims of text that comes from outside (request targets, bodies, names) before it is
// parsed or echoed in an error message.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tide {

// Whether `s` is well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s);

// `s` as an error message may echo it: at most `max` bytes of it (cut on a character boundary),
// followed by "... (N bytes)" when it was longer. Invalid UTF-8 bytes become '?'.
std::string clip(std::string_view s, size_t max = 200);

}  // namespace tide
