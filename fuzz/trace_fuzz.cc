// tide sim's trace readers (sim/trace.h), one target per format: TIDE_FUZZ_TRACE_FORMAT is 0 for
// CSV request logs, 1 for JSONL, 2 for per-minute matrices. The first byte sets the options
// (time unit, duration and stream columns, a limit, rows summed or not); for per-minute, a NUL
// byte in the rest starts a durations file. Loading either gives a trace within the bounds of
// trace.h or throws TraceError; anything else is a finding.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "tide/sim/trace.h"

namespace {

using namespace tide::sim;

// A file in memory, rewritten for each input: the reader opens it by path like any file.
class MemFile {
 public:
  explicit MemFile(const char* name) : fd_(memfd_create(name, 0)) {
    if (fd_ < 0) __builtin_trap();
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  const std::string& write(std::string_view text) {
    if (ftruncate(fd_, 0) != 0 || pwrite(fd_, text.data(), text.size(), 0) != ssize_t(text.size()))
      __builtin_trap();
    return path_;
  }

 private:
  int fd_;
  std::string path_;
};

void check(const Trace& t) {
  if (t.streams.empty() || t.span > kMaxSpan || t.span < tide::Duration{0}) __builtin_trap();
  tide::Time last{};
  for (const TraceRequest& r : t.requests) {
    if (r.arrival < last || r.stream >= t.streams.size()) __builtin_trap();
    if (!std::isnan(r.duration_s) && !(r.duration_s >= 0 && r.duration_s <= kMaxServiceSeconds))
      __builtin_trap();
    last = r.arrival;
  }
  if (!t.requests.empty() && t.requests.back().arrival.time_since_epoch() != t.span)
    __builtin_trap();
}

// Per-minute counts expand into arrivals: a 30-byte file may ask for 10^7 of them per cell, up to
// the 10^9 of kMaxRequests (tens of seconds and gigabytes under ASan, as documented, not a bug).
// Inputs whose numbers add up to more than 10^5 are left out.
bool too_many_arrivals(std::string_view text) {
  uint64_t total = 0, number = 0;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      number = std::min<uint64_t>(number * 10 + uint64_t(c - '0'), 1'000'000);
    } else {
      total += number;
      number = 0;
    }
  }
  return total + number > 100'000;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static MemFile trace_file("trace"), durations_file("durations");
  tide::fuzz::Input in(data, size);
  const uint8_t options = in.byte();
  TraceOptions o;
  o.format = TIDE_FUZZ_TRACE_FORMAT == 0   ? TraceOptions::Format::kCsv
             : TIDE_FUZZ_TRACE_FORMAT == 1 ? TraceOptions::Format::kJsonl
                                           : TraceOptions::Format::kPerMinute;
  o.time_unit = static_cast<TimeUnit>(options & 3);
  if (options & 4) o.duration_col = "dur";
  if (options & 8) o.stream_col = "s";
  if (options & 16) o.limit = std::chrono::minutes(options >> 5);
  o.sum_rows = (options & 32) == 0;
  std::string_view text = in.rest();
  if (TIDE_FUZZ_TRACE_FORMAT == 2 && too_many_arrivals(text)) return 0;
  if (TIDE_FUZZ_TRACE_FORMAT == 2) {
    if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
      o.durations_path = durations_file.write(text.substr(nul + 1));
      text = text.substr(0, nul);
    }
  }
  o.path = trace_file.write(text);
  try {
    check(load_trace(o));
  } catch (const TraceError& e) {
    // Every message names the file and stays short, whatever the input.
    const std::string_view what = e.what();
    const bool names_file = what.starts_with(o.path) ||
                            (!o.durations_path.empty() && what.starts_with(o.durations_path));
    if (!names_file || what.size() > 1000) __builtin_trap();
  }
  return 0;
}
