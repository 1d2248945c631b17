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
  // Where a launched replica runs, in a form its provisioner can find it again by after tide
  // itself restarts (adopt()): e.g. "local pid=1234 start=987654 port=40001", "slurm job=42".
  // Reported once it is known, before ready; a later call replaces it. The live system stores it.
  virtual void on_replica_handle(uint64_t replica_id, std::string handle) {
    (void)replica_id;
    (void)handle;
  }
  // What a ready replica's model server said of its load (config::EngineMetricsSpec), read by
  // the provisioner's probe where no agent reads it.
  virtual void on_replica_engine(uint64_t replica_id, Time now,
                                 const metrics::EngineSignals& signals) {
    (void)replica_id;
    (void)now;
    (void)signals;
  }
};

class Provisioner {
 public:
  virtual ~Provisioner() = default;
  // Starts a replica; reports starting / ready / failed to `events` later.
  virtual void launch(const Replica& replica, const config::GroupSpec& group,
                      ReplicaEvents& events) = 0;
  // Terminates a replica (it has been drained, or it never became ready).
  virtual void stop(const Replica& replica) = 0;
  // Takes over a replica that a previous run of tide launched, from the handle it reported
  // (ReplicaEvents::on_replica_handle). Returns false at once when this provisioner cannot adopt
  // at all (the replica is then forgotten). Otherwise reports like launch(): ready when it is
  // still there and healthy (starting first, if it is still cold), failed with the reason when it
  // is gone. stop() works on an adopted replica as on a launched one.
  virtual bool adopt(const Replica& replica, const config::GroupSpec& group,
                     const std::string& handle, ReplicaEvents& events) {
    (void)replica;
    (void)group;
    (void)handle;
    (void)events;
    return false;
  }
};

}  // namespace tide::control
