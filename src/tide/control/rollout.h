// Rolling replacement of a group's replicas after its launch template changed (a PUT, or a
// changed file on SIGHUP): the plan of one step, and the rollout's state as the API shows it.
// Plain data and arithmetic: no clock, no I/O; Endpoint applies the step on every tick.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tide/config/config.h"

namespace tide::control {

// A group's replicas by template: old (an earlier generation) and new (the current one).
struct RolloutCounts {
  int desired = 0;       // what the group's policy asks for
  int old_ready = 0;     // ready (draining ones are on their way out and not counted)
  int old_starting = 0;  // requested or starting
  int new_ready = 0;
  int new_starting = 0;
};

// What one step does. Old replicas still starting serve nobody: they are stopped at once.
struct RolloutStep {
  int launch_new = 0;
  int stop_old_starting = 0;
  int drain_old_ready = 0;
};

// Launches new replicas while the group stays within desired + max_surge and below desired new
// ones; drains old ready replicas while at least desired - max_unavailable stay ready.
RolloutStep plan_rollout_step(const RolloutCounts& counts, const config::RolloutSpec& limits);

// Launches of the new template that fail before they are ready, in a row, that stop a rollout.
inline constexpr int kRolloutFailuresToStop = 3;

struct RolloutStatus {
  enum class State : uint8_t {
    kNone,      // the template never changed while replicas ran
    kRolling,   // old replicas are being replaced
    kComplete,  // every replica runs the current template
    kStopped,   // the new template's replicas failed: the old ones keep serving
  };
  State state = State::kNone;
  int generation = 1;    // of the current launch template: 1 at start, +1 for each change
  int failures = 0;      // new-template launches that failed before ready, in a row
  std::string reason;    // why it stopped
  int old_replicas = 0;  // live replicas of an earlier generation (filled in by status())
  int new_replicas = 0;  // live replicas of the current one
};
std::string_view rollout_state_name(RolloutStatus::State s);

}  // namespace tide::control
