#include "tide/agent/nvml.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <string_view>

namespace tide::agent {

namespace {

// The few NVML types and entry points used, as nvml.h declares them.
using NvmlReturn = int;  // nvmlReturn_t: 0 = NVML_SUCCESS
using NvmlDevice = void*;
struct NvmlUtilization {
  unsigned int gpu;
  unsigned int memory;
};
struct NvmlMemory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

}  // namespace

struct Nvml::Api {
  void* handle = nullptr;
  NvmlReturn (*init)() = nullptr;
  NvmlReturn (*shutdown)() = nullptr;
  NvmlReturn (*count)(unsigned int*) = nullptr;
  NvmlReturn (*by_index)(unsigned int, NvmlDevice*) = nullptr;
  NvmlReturn (*utilization)(NvmlDevice, NvmlUtilization*) = nullptr;
  NvmlReturn (*memory)(NvmlDevice, NvmlMemory*) = nullptr;
  ~Api() {
    if (handle != nullptr) ::dlclose(handle);
  }
};

namespace {

template <class F>
bool bind(void* handle, const char* name, F& out, std::string& why) {
  out = reinterpret_cast<F>(::dlsym(handle, name));
  if (out == nullptr) why = fmt::format("{} has no {}", Nvml::kLibrary, name);
  return out != nullptr;
}

}  // namespace

std::unique_ptr<Nvml> Nvml::open(const std::string& library, std::string& why) {
  auto api = std::make_unique<Api>();
  api->handle = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (api->handle == nullptr) {
    const char* err = ::dlerror();
    why = fmt::format("cannot load {}: {}", library, err != nullptr ? err : "unknown error");
    return nullptr;
  }
  if (!bind(api->handle, "nvmlInit_v2", api->init, why) ||
      !bind(api->handle, "nvmlShutdown", api->shutdown, why) ||
      !bind(api->handle, "nvmlDeviceGetCount_v2", api->count, why) ||
      !bind(api->handle, "nvmlDeviceGetHandleByIndex_v2", api->by_index, why) ||
      !bind(api->handle, "nvmlDeviceGetUtilizationRates", api->utilization, why) ||
      !bind(api->handle, "nvmlDeviceGetMemoryInfo", api->memory, why))
    return nullptr;
  if (const NvmlReturn r = api->init(); r != 0) {
    why = fmt::format("nvmlInit failed (error {})", r);
    return nullptr;
  }
  std::unique_ptr<Nvml> nvml(new Nvml(std::move(api)));
  if (nvml->device_count() == 0) {
    why = "NVML sees no GPU";
    return nullptr;
  }
  return nvml;
}

Nvml::Nvml(std::unique_ptr<Api> api) : api_(std::move(api)) {}

Nvml::~Nvml() {
  if (api_ && api_->shutdown != nullptr) api_->shutdown();
}

int Nvml::device_count() const {
  unsigned int n = 0;
  return api_->count(&n) == 0 ? static_cast<int>(n) : 0;
}

std::vector<GpuReading> Nvml::read(const std::vector<int>& devices) const {
  std::vector<int> indexes = devices;
  if (indexes.empty()) {
    for (int i = 0; i < device_count(); ++i) indexes.push_back(i);
  }
  std::vector<GpuReading> out;
  for (int i : indexes) {
    NvmlDevice dev = nullptr;
    NvmlUtilization util{};
    NvmlMemory mem{};
    if (api_->by_index(static_cast<unsigned int>(i), &dev) != 0 ||
        api_->utilization(dev, &util) != 0 || api_->memory(dev, &mem) != 0)
      continue;
    out.push_back({i, util.gpu / 100.0, mem.used, mem.total});
  }
  return out;
}

std::vector<int> visible_devices(const char* value) {
  std::vector<int> out;
  if (value == nullptr) return out;
  std::string_view v(value);
  while (!v.empty()) {
    const size_t comma = v.find(',');
    const std::string_view item = v.substr(0, comma);
    if (item.empty() || item.size() > 4) return {};
    int n = 0;
    for (char c : item) {
      if (c < '0' || c > '9') return {};
      n = n * 10 + (c - '0');
    }
    out.push_back(n);
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace tide::agent
