// A stable 64-bit hash of text (FNV-1a): the same on every machine and in every run, for keys
// that are compared across processes or kept in the state file.
#pragma once

#include <cstdint>
#include <string_view>

namespace tide {

constexpr uint64_t fnv1a(std::string_view text) {
  uint64_t h = 14695981039346656037ull;
  for (char ch : text) {
    h ^= static_cast<unsigned char>(ch);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace tide
