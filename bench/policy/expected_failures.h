// Workloads on which today's default policy fails issue 14's criteria, so that
// `bench_policy --fast --check-regression` (the ctest test bench_policy_fast) passes until the
// new default fixes them. The one place to edit: remove a name once the default passes it (the
// check prints "now passes" for each), never add one to hide a regression.
#pragma once

#include <string_view>

namespace tide::bench {

inline constexpr std::string_view kExpectedFailures[] = {
    // Measured 2026-12-05 with the default of main a58e26b (bench_policy, one run):
    "batch-40-every-3m",  // SLO 99.77%, at 1.23x the fixed fleet of one (2.24 against 1.82)
    "code-completion",    // 100% at 1.29x the fixed fleet of 9: the first hour's bursts weigh more
};

}  // namespace tide::bench
