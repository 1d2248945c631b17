// Time as tide sees it: a monotonic instant and a duration, both int64 nanoseconds.
//
// What decides reads the time only through a Clock; everything else (policies, metric windows,
// the dispatcher) receives `now` as an argument, so the simulator and tests can drive the same
// code on a virtual clock. (The few direct reads, for I/O deadlines and log lines, are listed in
// docs/architecture.md.) Plain values: safe to copy across threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tide {

using Duration = std::chrono::nanoseconds;

// Marks instants of tide's clocks: production's steady clock or the simulator's virtual one.
struct TideClockTag {
  using duration = Duration;
  using rep = Duration::rep;
  using period = Duration::period;
  static constexpr bool is_steady = true;
};
using Time = std::chrono::time_point<TideClockTag, Duration>;

constexpr Time kTimeZero{};
constexpr Time kTimeMax = Time::max();
constexpr Time kTimeMin = Time::min();

constexpr double to_seconds(Duration d) { return static_cast<double>(d.count()) * 1e-9; }
constexpr double to_seconds(Time t) { return to_seconds(t.time_since_epoch()); }
constexpr Duration from_seconds(double s) {
  return Duration{static_cast<Duration::rep>(s * 1e9 + (s >= 0 ? 0.5 : -0.5))};
}
constexpr Time time_at_seconds(double s) { return Time{from_seconds(s)}; }

// Parses "500ms", "30s", "1.5s", "3m", "1h", "2h30m", "100us", "0". Returns nullopt on bad input.
std::optional<Duration> parse_duration(std::string_view text);

// Formats with the largest unit that keeps it short: "500ms", "30s", "3m", "1h30m", "1.5s".
std::string format_duration(Duration d);

// Source of the current time. Production uses a steady clock; the simulator a virtual one.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual Time now() const = 0;
};

// Reads std::chrono::steady_clock: the clock of the control loop in production.
class SteadyClock final : public Clock {
 public:
  Time now() const override;
};

// Reads std::chrono::system_clock: Time is then nanoseconds since the Unix epoch. For what must
// agree between machines (the expiry of a route token); everything else uses SteadyClock.
class SystemClock final : public Clock {
 public:
  Time now() const override;
};

// Wall-clock instants (SystemClock's, or the steady clock moved onto the wall clock) as the
// state file and the API give them: seconds since the Unix epoch, nanoseconds / 1e9 (which
// to_seconds may round one bit apart). time_at_unix_seconds is its inverse: for every double
// that unix_seconds returns, it returns an instant that unix_seconds maps to the same double.
double unix_seconds(Time t);
Time time_at_unix_seconds(double s);

// A clock tests and the simulator move by hand.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Time start = kTimeZero) : now_(start) {}
  Time now() const override { return now_; }
  void set(Time t) { now_ = t; }
  void advance(Duration d) { now_ += d; }

 private:
  Time now_;
};

}  // namespace tide
