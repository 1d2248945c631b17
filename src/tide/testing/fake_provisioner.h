// A Provisioner that launches nothing by itself: it records what the controller asks, and the
// test says when each replica is ready or fails through `events`. For the tests of control/.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tide/control/provisioner.h"

namespace tide::test {

struct FakeProvisioner : control::Provisioner {
  std::vector<uint64_t> launched;
  std::vector<uint64_t> stopped;
  control::ReplicaEvents* events = nullptr;               // of the last launch or adoption
  bool adoptable = true;                                  // what adopt() answers
  std::vector<std::pair<uint64_t, std::string>> adopted;  // replica id, handle

  void launch(const control::Replica& r, const config::GroupSpec&,
              control::ReplicaEvents& e) override {
    launched.push_back(r.id);
    events = &e;
  }
  void stop(const control::Replica& r) override { stopped.push_back(r.id); }
  bool adopt(const control::Replica& r, const config::GroupSpec&, const std::string& handle,
             control::ReplicaEvents& e) override {
    if (!adoptable) return false;
    adopted.emplace_back(r.id, handle);
    events = &e;
    return true;
  }
};

}  // namespace tide::test
