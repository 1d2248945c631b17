// GPU utilization and memory from NVML, loaded at run time with dlopen("libnvidia-ml.so.1"), so
// that the agent has no link-time dependency on the NVIDIA driver and runs the same on a machine
// without a GPU (it then reports no GPU fields).
//
// Not thread-safe: one reader per agent, used from its report loop.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tide/agent/report.h"

namespace tide::agent {

class Nvml {
 public:
  static constexpr const char* kLibrary = "libnvidia-ml.so.1";

  // Loads `library` and initializes NVML; nullptr when it cannot (no library, no driver, no
  // device), with the reason in `why`.
  static std::unique_ptr<Nvml> open(const std::string& library, std::string& why);
  ~Nvml();
  Nvml(const Nvml&) = delete;
  Nvml& operator=(const Nvml&) = delete;

  int device_count() const;
  // Readings of `devices` (NVML indexes; all when empty). A device that cannot be read is left
  // out.
  std::vector<GpuReading> read(const std::vector<int>& devices) const;

 private:
  struct Api;
  explicit Nvml(std::unique_ptr<Api> api);
  std::unique_ptr<Api> api_;
};

// The device indexes in a CUDA_VISIBLE_DEVICES value ("0,2"); empty for unset, empty or
// non-numeric values (UUIDs: then every device is read).
std::vector<int> visible_devices(const char* cuda_visible_devices);

}  // namespace tide::agent
