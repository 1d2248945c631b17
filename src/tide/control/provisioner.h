// The seam between the control plane and whatever runs replicas: local processes, a cluster
// engine, or the simulator. Launch and stop are asynchronous; the provisioner reports back
// through the ReplicaEvents it was given.
#pragma once

#include "tide/config/config.h"
#include "tide/control/replica.h"

namespace tide::control {

// Called by a provisioner when a replica it launched changes state. Same thread as the control
// loop (production posts to the control strand).
class ReplicaEvents {
 public:
  virtual ~ReplicaEvents() = default;
  virtual void on_replica_starting(uint64_t replica_id, Time now) = 0;
  virtual void on_replica_ready(uint64_t replica_id, Time now, std::string address) = 0;
  virtual void on_replica_failed(uint64_t replica_id, Time now, std::string error) = 0;
};

class Provisioner {
 public:
  virtual ~Provisioner() = default;
  // Starts a replica; reports starting / ready / failed to `events` later.
  virtual void launch(const Replica& replica, const config::GroupSpec& group,
                      ReplicaEvents& events) = 0;
  // Terminates a replica (it has been drained, or it never became ready).
  virtual void stop(const Replica& replica) = 0;
};

}  // namespace tide::control
