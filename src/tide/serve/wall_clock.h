// The steady clock's instants on the wall clock, as people read them: the state file, the API,
// the event stream. Fixed by one reading of both clocks at start (serve.cc); reads no clock
// itself. Plain value: safe to share across threads once made.
#pragma once

#include <chrono>

#include "tide/common/decision.h"
#include "tide/common/time.h"

namespace tide::serve {

class WallClock {
 public:
  WallClock() = default;
  // `zero`: the wall-clock time of the steady clock's zero.
  explicit WallClock(std::chrono::system_clock::time_point zero) : zero_(zero) {}

  // `t` (steady) as nanoseconds since the Unix epoch.
  Time at(Time t) const {
    const auto wall = zero_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                  t.time_since_epoch());
    return Time{std::chrono::duration_cast<Duration>(wall.time_since_epoch())};
  }
  // `t` (steady) as Unix seconds.
  double seconds(Time t) const { return unix_seconds(at(t)); }
  // The steady instant of `wall_s` Unix seconds.
  Time from_seconds(double wall_s) const {
    const double zero = std::chrono::duration<double>(zero_.time_since_epoch()).count();
    return time_at_seconds(wall_s - zero);
  }
  // A decision of the control loop on the wall clock.
  DecisionRecord decision(DecisionRecord d) const {
    d.time = at(d.time);
    return d;
  }

 private:
  std::chrono::system_clock::time_point zero_;
};

}  // namespace tide::serve
