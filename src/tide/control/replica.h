// A replica of a worker group and its lifecycle:
//   requested -> starting (cold start) -> ready -> draining -> stopped, plus failed.
// Billing-relevant time runs from requested to stopped (or failed).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tide/common/time.h"
#include "tide/dispatch/dispatcher.h"

namespace tide::control {

enum class ReplicaState : uint8_t { kRequested, kStarting, kReady, kDraining, kStopped, kFailed };
std::string_view state_name(ReplicaState s);

struct Replica {
  uint64_t id = 0;   // unique within the endpoint, never reused
  std::string name;  // "endpoint/group/id", for logs and the API
  int group = 0;
  ReplicaState state = ReplicaState::kRequested;
  Time requested_at{};
  Time ready_at{};
  Time drain_at{};
  Time stopped_at{};
  dispatch::ReplicaSlot slot = dispatch::kNoSlot;  // while ready or draining
  std::string address;                             // where the gateway reaches it (production)
  std::string error;                               // why it failed, if it did
  std::string handle;    // where its provisioner runs it, to find it again after a restart
  bool adopted = false;  // launched by a previous run of tide and taken over

  bool active() const {  // counts toward the group's current size
    return state == ReplicaState::kRequested || state == ReplicaState::kStarting ||
           state == ReplicaState::kReady;
  }
};

}  // namespace tide::control
