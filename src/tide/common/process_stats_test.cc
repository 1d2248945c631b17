#include "tide/common/process_stats.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace tide {
namespace {

// A real line of /proc/<pid>/stat, with a command name holding a space and a parenthesis.
constexpr std::string_view kStat =
    "4242 (tide (x) y) S 1 4242 4242 0 -1 4194560 3000 0 0 0 250 50 0 0 20 0 9 0 12345 "
    "812345344 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";

TEST(ProcessStats, ParsesCpuTimeAndResidentSizeFromStat) {
  const auto s = parse_proc_stat(kStat, 100, 4096);
  ASSERT_TRUE(s.has_value());
  EXPECT_DOUBLE_EQ(s->cpu_seconds, 3.0);  // (250 + 50) ticks at 100/s
  EXPECT_DOUBLE_EQ(s->resident_bytes, 2560.0 * 4096);
}

TEST(ProcessStats, RefusesTextOfAnotherShape) {
  EXPECT_FALSE(parse_proc_stat("", 100, 4096).has_value());
  EXPECT_FALSE(parse_proc_stat("1 (x) S 1 2 3", 100, 4096).has_value());
  EXPECT_FALSE(parse_proc_stat(std::string(kStat).replace(56, 3, "abc"), 100, 4096).has_value());
}

TEST(ProcessStats, CpuTimeOfAProcessThatHasUsedLessThanAClockTickIsNotZero) {
  // /proc's clock ticks are 10 ms; a test process that has just started may have used less
  // (Serve.MetricsShowLiveNumbersOfARealRun once read process_cpu_seconds_total 0 in CI).
  const auto first = read_process_stats();
  ASSERT_TRUE(first.has_value());
  EXPECT_GT(first->cpu_seconds, 0);
  volatile double sink = 0;
  for (int i = 0; i < 100000; ++i) sink = sink + i;
  const auto second = read_process_stats();
  ASSERT_TRUE(second.has_value());
  EXPECT_GT(second->cpu_seconds, first->cpu_seconds);
}

TEST(ProcessStats, CountsTheDescriptorsThisProcessOpens) {
  const auto before = read_process_stats();
  ASSERT_TRUE(before.has_value());
  EXPECT_GT(before->resident_bytes, 0);
  const int fd = open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  const auto after = read_process_stats();
  close(fd);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->open_fds, before->open_fds + 1);
}

}  // namespace
}  // namespace tide
