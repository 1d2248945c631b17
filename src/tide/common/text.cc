#include "tide/common/text.h"

#include <fmt/format.h>

#include <algorithm>

namespace tide {
namespace {

// The length of the well-formed UTF-8 sequence at the start of `s`, or 0 if it is not one.
size_t sequence_length(std::string_view s) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b = byte(0);
  if (b < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3;
    if (b == 0xE0) lo = 0xA0;  // overlong
    if (b == 0xED) hi = 0x9F;  // surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4;
    if (b == 0xF0) lo = 0x90;  // overlong
    if (b == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() < n || byte(1) < lo || byte(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
  }
  return n;
}

}  // namespace

bool valid_utf8(std::string_view s) {
  while (!s.empty()) {
    const size_t n = sequence_length(s);
    if (n == 0) return false;
    s.remove_prefix(n);
  }
  return true;
}

std::string clip(std::string_view s, size_t max) {
  std::string out;
  size_t at = 0;
  while (at < s.size()) {
    const size_t n = sequence_length(s.substr(at));
    if (out.size() + std::max<size_t>(n, 1) > max) break;
    if (n == 0) {
      out += '?';
      ++at;
    } else {
      out.append(s.substr(at, n));
      at += n;
    }
  }
  if (at < s.size()) out += fmt::format("... ({} bytes)", s.size());
  return out;
}

}  // namespace tide
