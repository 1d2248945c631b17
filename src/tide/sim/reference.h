// Reference rows beside the policies of a comparison: what a fixed fleet would have cost, and
// what no schedule can beat. Both answer a user's "what would this cost me?" in the same units
// as a simulated policy (a SimResult, measured after the same --warmup).
//
// fixed (hindsight): the smallest fleet of N replicas per group (min = max = N, ready from the
// start, behind the hold queue) that meets the SLO target with nothing lost, found with the real
// simulate(). Chosen knowing the whole workload, hence "hindsight".
//
// clairvoyant: the cheapest schedule that starts every request on arrival when each replica is
// billed from its launch and needs a cold start before it serves. Per replica level k, the spans
// where ceil(in service / concurrency) >= k; gaps no longer than a billed cold start are kept
// (cheaper than a stop and a new cold start); each span is billed its length plus one cold start.
// Computed by a sweep over the requests (O(n log n)), no simulation. A lower bound on the cost of
// any policy that starts every request at once; a policy may cost less only by letting requests
// wait (an SLO longer than the cold start allows that). It ignores max_replicas.
//
// Not thread-safe per source; each function rewinds the source it is given.
#pragma once

#include <optional>

#include "tide/config/config.h"
#include "tide/sim/engine.h"

namespace tide::sim {

inline constexpr double kDefaultSloTarget = 0.99;
inline constexpr const char* kFixedLabel = "fixed (hindsight)";
inline constexpr const char* kClairvoyantLabel = "clairvoyant";

// A run meets the SLO: at least `target` of its requests waited <= slo.max_wait, and none was
// rejected or timed out.
bool meets_slo(const SimResult& run, double target);

struct FixedFleet {
  int replicas = 0;  // N; when none meets the target, the N with the best attainment
  bool met = false;  // false: no N up to max_replicas meets the target
  SimResult result;  // the run of that fleet, labelled kFixedLabel, with a note saying N
};

// The smallest N in [1, max over groups of max_replicas] (each group min = max = min(N, its
// max)) that meets the SLO target. Binary search (attainment grows with N in practice), then
// confirmed: N - 1 is simulated and must fail, else the search steps down.
FixedFleet fixed_hindsight(const config::Config& config, RequestSource& source,
                           const SimOptions& options, double target = kDefaultSloTarget);

// The clairvoyant schedule's bill. Every request counts as answered at once (wait 0); launches
// are the spans opened after the warm-up, peak the highest level. With several groups on an
// endpoint, its first group (the first of an overflow order) serves every request.
SimResult clairvoyant(const config::Config& config, RequestSource& source,
                      const SimOptions& options);

// Both reference rows, fixed (hindsight) then clairvoyant, computed side by side.
std::vector<SimResult> reference_rows(const config::Config& config,
                                      const SourceFactory& make_source, const SimOptions& options,
                                      double target = kDefaultSloTarget);

// The config with every group fixed at `replicas` (capped at its max_replicas), the queue policy
// with the hold queue (no decision ever changes the count).
config::Config fixed_fleet_config(const config::Config& config, int replicas);

}  // namespace tide::sim
