// Request traces for the simulator: readers for CSV / JSONL request logs and for per-minute
// invocation-count matrices (the Azure Functions format), plus a synthetic Poisson source.
//
// Readers validate every row: a malformed one stops the load with a TraceError
// "FILE:LINE: problem" (nothing else is thrown). Files ending in .zst are decompressed on the fly
// (streamed, read once). Lines may end in CRLF; blank lines are skipped; a UTF-8 BOM is ignored.
// Not thread-safe; a loaded Trace is read-only.
//
// Request logs (CSV with a header row and RFC 4180 quoting, or JSONL with one object per line):
// one request per row. Arrivals are relative to the earliest timestamp (so the first arrival is
// 0) and rows are sorted stably by time (rows out of order are common in logs written at
// completion: they are counted in Trace::unordered_rows, for a warning). Streams: the distinct
// values of stream_col in order of first appearance, else one stream "all". has_tokens: an input or
// an output token column was found (a missing one leaves -1).
//
// Per-minute matrices: a count c in minute column m becomes c arrivals drawn uniformly within
// the minute [m-1, m) from one tide::Random seeded with `seed` (rows in file order, minutes in
// column order), then sorted stably: uniform within the minute, seeded, so runs repeat exactly.
// Times are absolute from the start of minute 1 (not shifted to the first arrival). With
// durations_path, each arrival of row r gets a service time drawn (from a second generator
// derived from `seed`, so arrivals do not change) by inverse CDF, linear between row r's
// percentile_Average_{0,1,25,50,75,99,100} points (ms). The two files must have the same number
// of rows, and the same HashFunction per row when both have that column.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "tide/common/random.h"
#include "tide/common/time.h"

namespace tide::sim {

// Bounds on a workload (docs/simulator.md, "Bounds"). A value beyond them is a typo or a corrupt
// file, and would make a run take unbounded time or memory (one control tick per group and
// second of the span), so the readers and tide sim's flags refuse it.
// Arrivals span at most 31 days (cut a longer trace with a limit).
constexpr Duration kMaxSpan = std::chrono::hours(24 * 31);
// One request is served in at most a day (a trace's service times and the sampled ones).
constexpr double kMaxServiceSeconds = 86400;
// A workload holds at most a billion requests (32 GB loaded; 10 minutes a policy to simulate).
constexpr uint64_t kMaxRequests = 1'000'000'000;

// One request of a workload. Times are relative to the start of the trace (first row = 0 unless
// the trace says otherwise).
struct TraceRequest {
  Time arrival;
  // Service time in seconds if the trace has it, else NaN.
  double duration_s = std::numeric_limits<double>::quiet_NaN();
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
  // auto: by extension (.jsonl/.ndjson, also with .zst -> JSONL, else CSV); a CSV without
  // time_col but with minute columns ("1".., "1_minute"..) is read as a per-minute matrix.
  Format format = Format::kAuto;
  // Request logs (CSV / JSONL). Column names match exactly, then case-insensitively.
  std::string time_col = "timestamp";
  // kDatetime: "2023-11-16 18:15:46.6805900" (or 'T' separator, up to 9 fractional digits,
  // optional trailing Z; read as UTC, exact to the nanosecond; 1970 or later). Others:
  // non-negative decimal numbers, may be fractional, read exactly (JSONL: numbers or strings).
  TimeUnit time_unit = TimeUnit::kDatetime;
  std::string duration_col;       // "" = none; values in seconds
  std::string input_tokens_col;   // "" = auto-detect (ContextTokens, input_tokens, ...)
  std::string output_tokens_col;  // "" = auto-detect (GeneratedTokens, output_tokens, ...)
  std::string stream_col;         // "" = one stream
  // Per-minute matrices: columns "1".."1440" (or "1_minute"...) of counts per row.
  bool sum_rows = true;        // true: all rows are one stream; false: one stream per row
  std::string durations_path;  // optional: Azure "_run" file aligned with rows (ms percentiles)
  uint64_t seed = 1;           // per-minute arrival times and sampled durations
  Duration limit{0};           // > 0: keep only requests arriving before this (<= kMaxSpan)
};

struct Trace {
  std::vector<TraceRequest> requests;  // sorted by arrival
  std::vector<std::string> streams;    // stream names (at least one)
  bool has_duration = false;
  bool has_tokens = false;
  Duration span{0};  // time of the last arrival (<= kMaxSpan)
  // Request logs: rows earlier than a row above them (sorted into place), and the first one's
  // line; 0 when the file is in order.
  uint64_t unordered_rows = 0;
  uint64_t first_unordered_line = 0;
};

// Loads a whole trace. Throws TraceError.
Trace load_trace(const TraceOptions& options);

// Where a shared trace file (e.g. "azure_llm_2023_conv.csv") is: data/traces/ under
// `repo_root` first, then $TIDE_TRACES, then ../shared/traces beside the repository. The first
// path that exists, or "" when none does.
std::string find_trace_file(const std::string& name, const std::string& repo_root);

// Synthetic Poisson arrivals at `rate` per second for `duration`, generated lazily so an hour at
// 2,000/s needs no memory. Deterministic for a seed. The first arrival comes after one
// exponential gap (not at 0); a rate <= 0 gives no arrivals.
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
