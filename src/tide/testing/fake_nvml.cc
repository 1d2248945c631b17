// A stand-in for libnvidia-ml.so.1 (tests only): two GPUs at 93% and 40%, 60 and 20 GiB of 80 used.
#include <cstdint>

namespace {
struct Utilization {
  unsigned int gpu;
  unsigned int memory;
};
struct Memory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
constexpr unsigned long long kGiB = 1ull << 30;
unsigned int index_of(void* device) {
  return static_cast<unsigned int>(reinterpret_cast<uintptr_t>(device) - 1);
}
}  // namespace

extern "C" {
int nvmlInit_v2() { return 0; }
int nvmlShutdown() { return 0; }
int nvmlDeviceGetCount_v2(unsigned int* count) {
  *count = 2;
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void** device) {
  if (index >= 2) return 2;  // NVML_ERROR_INVALID_ARGUMENT
  *device = reinterpret_cast<void*>(static_cast<uintptr_t>(index) + 1);
  return 0;
}
int nvmlDeviceGetUtilizationRates(void* device, Utilization* u) {
  u->gpu = index_of(device) == 0 ? 93 : 40;
  u->memory = 10;
  return 0;
}
int nvmlDeviceGetMemoryInfo(void* device, Memory* m) {
  m->total = 80 * kGiB;
  m->used = (index_of(device) == 0 ? 60 : 20) * kGiB;
  m->free = m->total - m->used;
  return 0;
}
}
