#include "tide/common/time.h"

#include <fmt/format.h>
#include <cmath>
#include <cstdlib>

namespace tide {
namespace {

struct Unit {
  std::string_view suffix;
  double nanos;
};
// Longest suffix first so that "ms" is not read as "m" followed by garbage.
constexpr Unit kUnits[] = {{"ms", 1e6}, {"us", 1e3}, {"ns", 1.0},   {"h", 3600e9},
                           {"m", 60e9}, {"s", 1e9},  {"d", 86400e9}};

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  if (text == "0") return Duration{0};
  if (text.empty()) return std::nullopt;
  double total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
      ++i;
    if (i == start) return std::nullopt;
    std::string number(text.substr(start, i - start));
    char* end = nullptr;
    double value = std::strtod(number.c_str(), &end);
    if (end != number.c_str() + number.size() || !std::isfinite(value)) return std::nullopt;
    const Unit* unit = nullptr;
    for (const Unit& u : kUnits) {
      if (text.substr(i, u.suffix.size()) == u.suffix) {
        unit = &u;
        break;
      }
    }
    if (unit == nullptr) return std::nullopt;
    i += unit->suffix.size();
    total += value * unit->nanos;
  }
  if (total > 9.2e18) return std::nullopt;
  return Duration{static_cast<Duration::rep>(std::llround(total))};
}

std::string format_duration(Duration d) {
  const int64_t ns = d.count();
  if (ns == 0) return "0s";
  const char* sign = ns < 0 ? "-" : "";
  const int64_t a = ns < 0 ? -ns : ns;
  if (a % 3'600'000'000'000 == 0) return fmt::format("{}{}h", sign, a / 3'600'000'000'000);
  if (a >= 3'600'000'000'000 && a % 60'000'000'000 == 0)
    return fmt::format("{}{}h{}m", sign, a / 3'600'000'000'000, (a / 60'000'000'000) % 60);
  if (a % 60'000'000'000 == 0) return fmt::format("{}{}m", sign, a / 60'000'000'000);
  if (a >= 1'000'000'000) return fmt::format("{}{:g}s", sign, static_cast<double>(a) / 1e9);
  if (a >= 1'000'000) return fmt::format("{}{:g}ms", sign, static_cast<double>(a) / 1e6);
  if (a >= 1'000) return fmt::format("{}{:g}us", sign, static_cast<double>(a) / 1e3);
  return fmt::format("{}{}ns", sign, a);
}

double unix_seconds(Time t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }

Time time_at_unix_seconds(double s) {
  // A double holds every nanosecond only below 2^53 ns: the instant that gave `s` is the
  // nearest nanosecond to s * 1e9 or one of the doubles beside it.
  const auto nearest = static_cast<double>(std::llround(static_cast<long double>(s) * 1e9L));
  const double candidates[] = {nearest, std::floor(std::nextafter(nearest, -HUGE_VAL)),
                               std::ceil(std::nextafter(nearest, HUGE_VAL))};
  for (double ns : candidates) {
    const Time t{Duration{static_cast<Duration::rep>(ns)}};
    if (unix_seconds(t) == s) return t;
  }
  return Time{Duration{static_cast<Duration::rep>(nearest)}};
}

Time SteadyClock::now() const {
  return Time{
      std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now().time_since_epoch())};
}

Time SystemClock::now() const {
  return Time{
      std::chrono::duration_cast<Duration>(std::chrono::system_clock::now().time_since_epoch())};
}

}  // namespace tide
