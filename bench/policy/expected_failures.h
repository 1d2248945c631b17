// Workloads on which today's default policy fails issue 14's criteria, so that
// `bench_policy --fast --check-regression` (the ctest test bench_policy_fast) passes until the
// new default fixes them. The one place to edit: remove a name once the default passes it (the
// check prints "now passes" for each), never add one to hide a regression.
#pragma once

#include <string_view>

namespace tide::bench {

inline constexpr std::string_view kExpectedFailures[] = {
    // Measured 2026-12-04 with the default of main fa1c9e8:
    "function-burst-1",   // SLO 97.26% (runpod: 99.60%)
    "batch-40-every-3m",  // SLO 12.50%: scales to zero between batches (hpa: 99.77%)
    "code-completion",    // SLO 92.33%; no preset reaches 99%, a fixed fleet of 9 does
    "demo-poisson",       // 1.27x the fixed fleet of 3 (27 launches, 57 reversals in 50 min)
};

}  // namespace tide::bench
