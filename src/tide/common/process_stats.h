// The standard Prometheus process metrics of this process, read from Linux's /proc:
// process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds.
#pragma once

#include <optional>
#include <string_view>

namespace tide {

struct ProcessStats {
  double cpu_seconds = 0;     // user + system time
  double resident_bytes = 0;  // resident set size
  int open_fds = 0;           // entries of /proc/self/fd
};

// Reads /proc/self/stat and /proc/self/fd, and the CPU time from the process CPU clock (finer
// than /proc's clock ticks); nullopt where /proc is not there (not Linux).
std::optional<ProcessStats> read_process_stats();

// The CPU time and resident size from the text of /proc/<pid>/stat (open_fds left 0), given the
// clock ticks per second and the page size; nullopt when the text is not of that shape.
std::optional<ProcessStats> parse_proc_stat(std::string_view text, long ticks_per_second,
                                            long page_bytes);

}  // namespace tide
