// A model server's /metrics page as tide's agent and probe read it (metrics/engine_signals.h):
// read_engine_signals never crashes on any bytes and, when it accepts a page, gives finite
// figures in range; a page it writes itself with those figures reads back the same; the byte
// cap is honoured.
#include <cmath>
#include <cstdint>
#include <string_view>

#include "tide/metrics/engine_signals.h"

namespace {

bool in_range(const std::optional<double>& v, double hi) {
  return !v || (std::isfinite(*v) && *v >= 0 && *v <= hi);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tide::metrics;
  const std::string_view page(reinterpret_cast<const char*>(data), size);
  for (EngineKind kind : {EngineKind::kVllm, EngineKind::kTgi, EngineKind::kSglang}) {
    const EngineScan scan = read_engine_signals(page, kind, 4096);
    if (size > 4096 && scan.signals) __builtin_trap();  // over the cap: refused
    if (!scan.signals) {
      if (scan.error.empty()) __builtin_trap();  // a refusal says why
      continue;
    }
    const EngineSignals& s = *scan.signals;
    if (!s.running && !s.waiting) __builtin_trap();
    if (!in_range(s.running, 1e9) || !in_range(s.waiting, 1e9) || !in_range(s.kv_cache, 1))
      __builtin_trap();
    const EngineScan again =
        read_engine_signals(engine_page(kind, s, page.substr(0, 64)), kind, 1 << 20);
    if (!again.signals || again.signals->running != s.running ||
        again.signals->waiting != s.waiting)
      __builtin_trap();
  }
  return 0;
}
