#include "tide/control/rollout.h"

#include <algorithm>

namespace tide::control {

RolloutStep plan_rollout_step(const RolloutCounts& c, const config::RolloutSpec& limits) {
  RolloutStep step;
  step.stop_old_starting = c.old_starting;
  const int new_active = c.new_ready + c.new_starting;
  const int room = c.desired + limits.max_surge - (c.old_ready + new_active);
  step.launch_new = std::max(0, std::min(room, c.desired - new_active));
  const int min_ready = c.desired - limits.max_unavailable;
  step.drain_old_ready = std::clamp(c.old_ready + c.new_ready - min_ready, 0, c.old_ready);
  return step;
}

std::string_view rollout_state_name(RolloutStatus::State s) {
  switch (s) {
    case RolloutStatus::State::kNone:
      return "none";
    case RolloutStatus::State::kRolling:
      return "rolling";
    case RolloutStatus::State::kComplete:
      return "complete";
    case RolloutStatus::State::kStopped:
      return "stopped";
  }
  return "unknown";
}

}  // namespace tide::control
