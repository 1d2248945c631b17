// One scaling decision and the inputs it saw: what the control loop records (the simulator's
// report, the live system's log), the state file keeps and the admin API returns. One type from
// end to end, so that no step drops an input. Plain value.
#pragma once

#include <string>

#include "tide/common/time.h"

namespace tide {

// Only changes of the desired count are decisions. `time` is on the clock of whoever holds the
// record: the control loop's (virtual or steady), or, in the state file and the API, the wall
// clock (nanoseconds since the Unix epoch, as SystemClock reads it).
struct DecisionRecord {
  Time time;
  std::string endpoint;
  std::string group;
  int from = 0;
  int to = 0;
  std::string reason;
  // The inputs it saw.
  int queued = 0;
  int in_flight = 0;
  int ready = 0;
  int starting = 0;
  double utilization = 0;
};

}  // namespace tide
