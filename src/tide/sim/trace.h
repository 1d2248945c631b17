// Request traces for the simulator: readers for CSV / JSONL request logs and for per-minute
// invocation-count matrices (the Azure Functions format), plus a synthetic Poisson source.
//
// Readers validate every row: a malformed one stops the load with "FILE:LINE: problem". Files
// ending in .zst are decompressed on the fly. Not thread-safe; a loaded Trace is read-only.
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "tide/common/random.h"
#include "tide/common/time.h"

namespace tide::sim {

// One request of a workload. Times are relative to the start of the trace (first row = 0 unless
// the trace says otherwise).
struct TraceRequest {
  Time arrival;
  double duration_s = std::numeric_limits<double>::quiet_NaN();  // service time if the trace has it
  int32_t input_tokens = -1;   // -1: unknown
  int32_t output_tokens = -1;  // -1: unknown
  uint32_t stream = 0;         // which stream (endpoint) of the trace it belongs to
};

class TraceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class TimeUnit { kDatetime, kSeconds, kMillis, kMicros };

struct TraceOptions {
  std::string path;
  enum class Format { kAuto, kCsv, kJsonl, kPerMinute };
  Format format = Format::kAuto;  // auto: by extension (.jsonl/.ndjson -> JSONL, else CSV)
  // Request logs (CSV / JSONL). Column names match exactly, then case-insensitively.
  std::string time_col = "timestamp";
  TimeUnit time_unit = TimeUnit::kDatetime;
  std::string duration_col;        // "" = none; values in seconds
  std::string input_tokens_col;    // "" = auto-detect (ContextTokens, input_tokens, ...)
  std::string output_tokens_col;   // "" = auto-detect (GeneratedTokens, output_tokens, ...)
  std::string stream_col;          // "" = one stream
  // Per-minute matrices: columns "1".."1440" (or "1_minute"...) of counts per row.
  bool sum_rows = true;            // true: all rows are one stream; false: one stream per row
  std::string durations_path;      // optional: Azure "_run" file aligned with rows (ms percentiles)
  uint64_t seed = 1;               // arrival times within a minute are drawn from this
  Duration limit{0};               // > 0: keep only requests arriving before this
};

struct Trace {
  std::vector<TraceRequest> requests;  // sorted by arrival
  std::vector<std::string> streams;    // stream names (at least one)
  bool has_duration = false;
  bool has_tokens = false;
  Duration span{0};                    // time of the last arrival
};

// Loads a whole trace. Throws TraceError.
Trace load_trace(const TraceOptions& options);

// Synthetic Poisson arrivals at `rate` per second for `duration`, generated lazily so an hour at
// 2,000/s needs no memory. Deterministic for a seed.
class PoissonSource {
 public:
  PoissonSource(double rate, Duration duration, uint64_t seed)
      : rate_(rate), end_(Time{duration}), rng_(seed) {}
  // Fills `out` with the next request; false when the source is exhausted.
  bool next(TraceRequest& out);

 private:
  double rate_;
  Time end_;
  Random rng_;
  Time t_{};
};

}  // namespace tide::sim
