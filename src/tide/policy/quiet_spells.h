// Quiet spells between a group's arrivals over the last day, and how long the tide policy keeps
// replicas through one (tide_policy.cc). Time is passed in; owned by one decider.
#pragma once

#include <cstdint>
#include <deque>

#include "tide/common/time.h"

namespace tide::policy {

// A quiet spell is a gap between arrivals of at least the idle timeout. Each is kept for a day
// (see kMemory) with its head: the arrivals that came within `head_window` (a cold start less the
// wait the SLO allows) after it ended, those a scale to zero at the start of the spell would have
// made wait longer than the SLO. The SLO's error budget decides whether to hold: when the heads of
// every spell fit in the share of the arrivals since allowed to wait, scaling to zero costs nothing
// the SLO counts; otherwise replicas are kept through spells as long as the longest one whose
// head does not fit, and at least as long as the spells' mean's exponential tail at that share.
class QuietSpells {
 public:
  // Spells are kept for a day, and beyond it while fewer than kMinSpells remain (a day of rare
  // bursts holds too few to judge by), for at most kMaxMemory.
  static constexpr Duration kMemory = std::chrono::hours(24);
  static constexpr Duration kMaxMemory = std::chrono::hours(24 * 7);
  static constexpr size_t kMinSpells = 10;

  // An arrival at `end` ended a spell of `gap`; `fleet` replicas served the traffic before it.
  void end_spell(Time end, Duration gap, int fleet);
  // `arrivals` arrived during (now - interval, now]; those within head_window of the last
  // spell's end count in its head.
  void count(Time now, Duration interval, uint64_t arrivals, Duration head_window);
  // How long to keep replicas through a spell for at most a share `late_share` of late arrivals:
  // zero when scaling to zero at the idle timeout keeps within it.
  Duration hold(Time now, double late_share);

  struct Budget {
    double heads = 0;     // arrivals in the heads of the day's spells
    double arrivals = 0;  // all arrivals of the day
    size_t spells = 0;
  };
  Budget budget() const;
  // The largest fleet that served the traffic before a kept spell: the bursts a long spell may
  // end in.
  int fleet() const;
  // The most arrivals in the head of a kept spell: those a replica launched when a spell ends is
  // ready too late for, so the replicas kept through a spell must start them.
  double largest_head() const;

 private:
  void expire(Time now);

  struct Spell {
    Time end;
    double length_s = 0;
    double head = 0;
    int fleet = 0;
  };
  std::deque<Spell> spells_;
  std::deque<std::pair<Time, double>> minutes_;  // arrivals per minute
  double arrivals_ = 0;
};

}  // namespace tide::policy
