// The reference rows of a workload: fixed (hindsight) and clairvoyant.
//
// TEMPORARY STUB: they come from tide_sim's reference API (src/tide/sim/reference.h, branch
// `ref`). Until it is on main, references_available() is false and no reference is computed;
// the table shows "-" and the CSV leaves those columns empty. Replace the body of references()
// with calls to sim::fixed_hindsight() and sim::clairvoyant() then.
#pragma once

#include <optional>

#include "tide/config/config.h"
#include "tide/sim/engine.h"

namespace tide::bench {

inline constexpr const char* kFixedRow = "fixed (hindsight)";
inline constexpr const char* kClairvoyantRow = "clairvoyant";
inline constexpr const char* kReferencesNote = "stub until sim/reference.h lands on main";

struct References {
  std::optional<sim::SimResult> fixed;
  int fixed_replicas = 0;
  bool fixed_met = false;
  std::optional<sim::SimResult> clairvoyant;
};

inline bool references_available() { return false; }

inline References references(const config::Config&, const sim::Trace&, const sim::SimOptions&) {
  return {};
}

}  // namespace tide::bench
