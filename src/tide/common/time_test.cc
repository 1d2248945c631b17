#include "tide/common/time.h"

#include <gtest/gtest.h>

namespace tide {
namespace {

using namespace std::chrono_literals;

TEST(ParseDuration, AcceptsTheDocumentedUnits) {
  EXPECT_EQ(parse_duration("500ms"), Duration{500ms});
  EXPECT_EQ(parse_duration("30s"), Duration{30s});
  EXPECT_EQ(parse_duration("3m"), Duration{3min});
  EXPECT_EQ(parse_duration("1h"), Duration{1h});
  EXPECT_EQ(parse_duration("2h30m"), Duration{150min});
  EXPECT_EQ(parse_duration("1.5s"), Duration{1500ms});
  EXPECT_EQ(parse_duration("100us"), Duration{100us});
  EXPECT_EQ(parse_duration("0"), Duration{0});
}

TEST(ParseDuration, RejectsGarbage) {
  for (const char* bad : {"", "30", "s", "3x", "-1s", "1.2.3s", "ms", "1s ", " 1s", "1e3s"}) {
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
  }
}

TEST(FormatDuration, RoundTripsThroughParse) {
  for (Duration d : {Duration{500ms}, Duration{30s}, Duration{3min}, Duration{1h}, Duration{90min},
                     Duration{1500ms}, Duration{250us}}) {
    EXPECT_EQ(parse_duration(format_duration(d)), d) << format_duration(d);
  }
  EXPECT_EQ(format_duration(90min), "1h30m");
  EXPECT_EQ(format_duration(45s), "45s");
}

TEST(UnixSeconds, EverySecondsValueComesBackFromItsInstant) {
  uint64_t x = 88172645463325252ull;  // xorshift: instants from 1 ns to centuries
  for (int i = 0; i < 200000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const Time t{Duration{static_cast<Duration::rep>(x >> (1 + i % 40))}};
    const double s = unix_seconds(t);
    ASSERT_EQ(unix_seconds(time_at_unix_seconds(s)), s) << t.time_since_epoch().count();
  }
  const int64_t ns = 1'733'390'000'123'456'789;
  EXPECT_EQ(unix_seconds(Time{Duration{ns}}), static_cast<double>(ns) / 1e9);
  EXPECT_EQ(time_at_unix_seconds(1.5), Time{Duration{1'500'000'000}});
}

TEST(ManualClock, MovesOnlyWhenTold) {
  ManualClock clock(time_at_seconds(10));
  EXPECT_EQ(clock.now(), time_at_seconds(10));
  clock.advance(5s);
  EXPECT_EQ(clock.now(), time_at_seconds(15));
}

}  // namespace
}  // namespace tide
