// Runs independent jobs on a pool of threads: each simulate() is single-threaded and shares
// nothing, so a comparison or a parameter search uses every core.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tide/config/config.h"
#include "tide/sim/engine.h"

namespace tide::sim {

// Calls job(i) for every i in [0, n) on `threads` threads (0: one per core), each index once,
// and returns when all are done. `done` (optional) is called after each job, from one thread at
// a time, with the count finished so far. The first exception a job throws is rethrown here
// after the other threads finish their current job and stop taking new ones.
void parallel_for(size_t n, size_t threads, const std::function<void(size_t)>& job,
                  const std::function<void(size_t)>& done = nullptr);

// Simulates each (label, config) on its own source from `make_source`, in parallel; each result
// is labelled. `done` as for parallel_for.
std::vector<SimResult> simulate_each(
    const std::vector<std::pair<std::string, config::Config>>& runs,
    const SourceFactory& make_source, const SimOptions& options, size_t threads,
    const std::function<void(size_t)>& done = nullptr);

}  // namespace tide::sim
