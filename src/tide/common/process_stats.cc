#include "tide/common/process_stats.h"

#include <time.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace tide {

std::optional<ProcessStats> parse_proc_stat(std::string_view text, long ticks_per_second,
                                            long page_bytes) {
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields are counted
  // from the last ')'. After it, field 3 (state) is the first; utime and stime are fields 14 and
  // 15, rss (pages) field 24.
  const size_t paren = text.rfind(')');
  if (paren == std::string_view::npos || ticks_per_second <= 0 || page_bytes <= 0)
    return std::nullopt;
  std::string_view rest = text.substr(paren + 1);
  double utime = -1, stime = -1, rss = -1;
  for (int field = 3; field <= 24; ++field) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const size_t end = std::min(rest.find(' '), rest.size());
    const std::string_view word = rest.substr(0, end);
    rest.remove_prefix(end);
    if (word.empty()) return std::nullopt;
    double* out = field == 14 ? &utime : field == 15 ? &stime : field == 24 ? &rss : nullptr;
    if (out == nullptr) continue;
    long long v = 0;
    const auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), v);
    if (ec != std::errc() || ptr != word.data() + word.size() || v < 0) return std::nullopt;
    *out = static_cast<double>(v);
  }
  ProcessStats s;
  s.cpu_seconds = (utime + stime) / static_cast<double>(ticks_per_second);
  s.resident_bytes = rss * static_cast<double>(page_bytes);
  return s;
}

std::optional<ProcessStats> read_process_stats() {
  std::ifstream in("/proc/self/stat");
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  auto s = parse_proc_stat(text.str(), sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE));
  if (!s) return std::nullopt;
  // /proc counts CPU time in clock ticks (10 ms): a process that has used less reads 0. The
  // process CPU clock has nanoseconds, all threads included.
  timespec cpu{};
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu) == 0)
    s->cpu_seconds = static_cast<double>(cpu.tv_sec) + static_cast<double>(cpu.tv_nsec) * 1e-9;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++s->open_fds;
  // The directory's own descriptor, open while it is read, is not one of the process's.
  if (s->open_fds > 0) --s->open_fds;
  return s;
}

}  // namespace tide
