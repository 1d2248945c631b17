// How long tide takes to read a model server's /metrics page (metrics/engine_signals.h), beside
// a baseline from the same run: counting the page's line ends with std::count (one plain pass
// over the bytes). Pages: the recorded vLLM page of tests/data/engine_metrics (about 4 KB) and
// that page repeated to just under 1 MiB (the default engine_metrics.max_bytes).
//   build/bin/bench_engine_metrics [SECONDS_PER_CASE]   (default 1)
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "tide/metrics/engine_signals.h"

namespace {

using Clock = std::chrono::steady_clock;

// Microseconds per call of `f`, over at least `seconds`.
double us_per_call(const std::function<double()>& f, double seconds) {
  double sink = 0;
  long n = 0;
  const auto start = Clock::now();
  std::chrono::duration<double> spent{0};
  while (spent.count() < seconds) {
    for (int i = 0; i < 16; ++i) sink += f();
    n += 16;
    spent = Clock::now() - start;
  }
  if (sink < 0) std::abort();  // keeps the calls from being optimized away
  return spent.count() / static_cast<double>(n) * 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  std::ifstream in(std::string(TIDE_SOURCE_DIR) + "/tests/data/engine_metrics/vllm.txt");
  std::stringstream text;
  text << in.rdbuf();
  const std::string one = text.str();
  if (one.empty()) return 1;
  std::string big;
  while (big.size() + one.size() <= (1u << 20)) big += one;
  fmt::print("{:>10} {:>14} {:>10} {:>16} {:>10}\n", "page", "read (us)", "MB/s", "baseline (us)",
             "MB/s");
  const std::string* pages[] = {&one, &big};
  for (const std::string* page : pages) {
    const double read = us_per_call(
        [&] {
          const auto scan =
              tide::metrics::read_engine_signals(*page, tide::metrics::EngineKind::kVllm, 1u << 20);
          return scan.signals ? *scan.signals->waiting : -1.0;
        },
        seconds);
    const double lines = us_per_call(
        [&] { return static_cast<double>(std::count(page->begin(), page->end(), '\n')); }, seconds);
    const double mb = static_cast<double>(page->size()) / 1e6;
    fmt::print("{:>10} {:>14.2f} {:>10.0f} {:>16.2f} {:>10.0f}\n", page->size(), read,
               mb / read * 1e6, lines, mb / lines * 1e6);
  }
  return 0;
}
