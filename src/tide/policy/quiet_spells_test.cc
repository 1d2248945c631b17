#include "tide/policy/quiet_spells.h"

#include <gtest/gtest.h>

#include <cmath>

namespace tide::policy {
namespace {

using namespace std::chrono_literals;

// Steady arrivals of `per_second` a second for `seconds`, from `now`.
Time steady(QuietSpells& q, Time now, int seconds, uint64_t per_second) {
  for (int i = 0; i < seconds; ++i) {
    now += 1s;
    q.count(now, 1s, per_second, 58s);
  }
  return now;
}

TEST(QuietSpells, NoSpellNoHold) {
  QuietSpells q;
  const Time now = steady(q, Time{}, 600, 2);
  EXPECT_EQ(q.hold(now, 0.01), Duration{0});
}

TEST(QuietSpells, ScalesToZeroWhenTheRequestsAfterEverySpellFitInTheShareAllowedLate) {
  // 1,200 arrivals, then a 10 min spell followed by 5 arrivals: 5 late of 1,205 is under 1%.
  QuietSpells q;
  Time now = steady(q, Time{}, 600, 2);
  now += 10min;
  q.end_spell(now - 1s, 10min, 1);
  now = steady(q, now - 1s, 5, 1);
  EXPECT_EQ(q.budget().heads, 5);
  EXPECT_EQ(q.budget().arrivals, 1205);
  EXPECT_EQ(q.hold(now, 0.01), Duration{0});
}

TEST(QuietSpells, HoldsThroughSpellsWhoseHeadsBreakTheBudget) {
  // Batches of 40 after spells of 3 min: every arrival follows a spell.
  QuietSpells q;
  Time now{};
  for (int i = 0; i < 5; ++i) {
    if (i > 0) q.end_spell(now, 3min, 1);
    q.count(now + 1s, 1s, 40, 58s);
    now += 3min + 1s;
  }
  // Beyond the longest spell, the exponential tail of the spells' mean (at its upper bound, two
  // standard errors over 4 spells) where a spell's head, 80% of the arrivals, is late with at
  // most 1% of the arrivals: exp(-H / mean) x 0.8 = 0.01.
  const double mean = 180 * (1 + 2 / std::sqrt(4.0));
  EXPECT_NEAR(to_seconds(q.hold(now, 0.01)), mean * std::log(0.8 / 0.01), 1);
}

TEST(QuietSpells, HoldsOnlyAsLongAsTheSpellsWhoseHeadsMatter) {
  // Many short spells with a small head each, one long spell with a large head: scaling to zero
  // after the short ones fits the budget, after the long one it does not.
  QuietSpells q;
  Time now = steady(q, Time{}, 3000, 10);  // 30,000 arrivals
  for (int i = 0; i < 20; ++i) {
    now += 2min;
    q.end_spell(now, 2min, 1);
    now = steady(q, now, 1, 10);  // heads of 10: 200 in all, under 1%
  }
  EXPECT_EQ(q.hold(now, 0.01), Duration{0});
  now += 2h;
  q.end_spell(now, 2h, 1);
  now = steady(q, now, 58, 10);  // a head of 580: over the budget
  const double hold = to_seconds(q.hold(now, 0.01));
  EXPECT_GE(hold, 7200);
  EXPECT_LE(hold, 86400);
}

TEST(QuietSpells, ArrivalsAfterTheHeadWindowAreNotLate) {
  QuietSpells q;
  Time now{};
  q.end_spell(now, 1h, 1);
  now = steady(q, now, 120, 1);  // 58 within the head window, 62 after it
  EXPECT_EQ(q.budget().heads, 58);
  EXPECT_EQ(q.budget().arrivals, 120);
}

TEST(QuietSpells, KeepsTenSpellsBeyondADayAndNoneBeyondAWeek) {
  QuietSpells q;
  Time now{};
  q.end_spell(now, 1h, 1);
  now = steady(q, now, 10, 10);
  EXPECT_GT(q.hold(now, 0.01), Duration{0});
  // A day later the spell is one of fewer than ten: kept, with the arrivals since it began.
  now += QuietSpells::kMemory + 1s;
  EXPECT_GT(q.hold(now, 0.01), Duration{0});
  EXPECT_EQ(q.budget().spells, 1u);
  EXPECT_EQ(q.budget().arrivals, 100);
  // Eleven more spells, half a day apart with 100 arrivals and no head: the two oldest go.
  for (int i = 0; i < 11; ++i) {
    now += 1h;
    q.end_spell(now, 1h, 1);
    now = steady(q, now + 2min, 10, 10);
    now += 10h;
  }
  q.hold(now, 0.01);
  EXPECT_EQ(q.budget().spells, QuietSpells::kMinSpells);
  EXPECT_EQ(q.budget().heads, 0);
  EXPECT_EQ(q.hold(now, 0.01), Duration{0});
  now += QuietSpells::kMaxMemory;
  EXPECT_EQ(q.hold(now, 0.01), Duration{0});
  EXPECT_EQ(q.budget().spells, 0u);
  EXPECT_EQ(q.budget().arrivals, 0);
}

TEST(QuietSpells, TheFleetHeldIsTheLargestBeforeAKeptSpell) {
  QuietSpells q;
  Time now{};
  EXPECT_EQ(q.fleet(), 0);
  for (int fleet : {2, 5, 1}) {
    now += 10h;
    q.end_spell(now, 10h, fleet);
    now = steady(q, now, 10, 10);
  }
  EXPECT_EQ(q.fleet(), 5);
  now += QuietSpells::kMaxMemory;
  q.hold(now, 0.01);
  EXPECT_EQ(q.fleet(), 0);
}

TEST(QuietSpells, HoldIsAtMostADay) {
  QuietSpells q;
  Time now{};
  for (int i = 0; i < 3; ++i) {
    now += 20h;
    q.end_spell(now, 20h, 1);
    now = steady(q, now, 10, 10);
  }
  EXPECT_EQ(q.hold(now, 0.01), QuietSpells::kMemory);
}

}  // namespace
}  // namespace tide::policy
