// The reference rows of a workload: fixed (hindsight) and clairvoyant, from tide_sim's
// reference API (src/tide/sim/reference.h), the same rows `tide sim --compare` prints.
#pragma once

#include <optional>

#include "tide/config/config.h"
#include "tide/sim/engine.h"
#include "tide/sim/reference.h"

namespace tide::bench {

inline constexpr const char* kFixedRow = sim::kFixedLabel;
inline constexpr const char* kClairvoyantRow = sim::kClairvoyantLabel;
inline constexpr const char* kReferencesNote = "";

struct References {
  std::optional<sim::SimResult> fixed;
  int fixed_replicas = 0;
  bool fixed_met = false;
  std::optional<sim::SimResult> clairvoyant;
};

inline bool references_available() { return true; }

inline References references(const config::Config& config, const sim::Trace& trace,
                             const sim::SimOptions& options) {
  References r;
  sim::TraceSource source(trace);
  const sim::FixedFleet fixed = sim::fixed_hindsight(config, source, options);
  r.fixed = fixed.result;
  r.fixed_replicas = fixed.replicas;
  r.fixed_met = fixed.met;
  sim::TraceSource again(trace);
  r.clairvoyant = sim::clairvoyant(config, again, options);
  return r;
}

}  // namespace tide::bench
