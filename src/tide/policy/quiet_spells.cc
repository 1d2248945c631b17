#include "tide/policy/quiet_spells.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace tide::policy {

void QuietSpells::end_spell(Time end, Duration gap, int fleet) {
  spells_.push_back({end, to_seconds(gap), 0, fleet});
}

int QuietSpells::fleet() const {
  int most = 0;
  for (const Spell& s : spells_) most = std::max(most, s.fleet);
  return most;
}

double QuietSpells::largest_head() const {
  double most = 0;
  for (const Spell& s : spells_) most = std::max(most, s.head);
  return most;
}

void QuietSpells::count(Time now, Duration interval, uint64_t arrivals, Duration head_window) {
  if (arrivals == 0) return;
  const auto n = static_cast<double>(arrivals);
  const Time minute = now - Duration{now.time_since_epoch() % std::chrono::minutes(1)};
  if (!minutes_.empty() && minutes_.back().first == minute) {
    minutes_.back().second += n;
  } else {
    minutes_.emplace_back(minute, n);
  }
  arrivals_ += n;
  if (!spells_.empty() && now - interval < spells_.back().end + head_window)
    spells_.back().head += n;
}

void QuietSpells::expire(Time now) {
  while (!spells_.empty() &&
         (spells_.front().end <= now - kMaxMemory ||
          (spells_.front().end <= now - kMemory && spells_.size() > kMinSpells)))
    spells_.pop_front();
  // The arrivals of the same span: the last day, or since the oldest spell kept began.
  Time horizon = now - kMemory;
  if (!spells_.empty())
    horizon = std::min(horizon, spells_.front().end - from_seconds(spells_.front().length_s));
  while (!minutes_.empty() && minutes_.front().first < horizon - std::chrono::minutes(1)) {
    arrivals_ -= minutes_.front().second;
    minutes_.pop_front();
  }
  if (minutes_.empty()) arrivals_ = 0;  // no drift
}

QuietSpells::Budget QuietSpells::budget() const {
  Budget b{0, arrivals_, spells_.size()};
  for (const Spell& s : spells_) b.heads += s.head;
  return b;
}

Duration QuietSpells::hold(Time now, double late_share) {
  expire(now);
  if (spells_.empty()) return Duration{0};
  const double allowed = late_share * arrivals_;
  std::vector<Spell> longest(spells_.begin(), spells_.end());
  std::sort(longest.begin(), longest.end(),
            [](const Spell& a, const Spell& b) { return a.length_s > b.length_s; });
  // Scaling to zero after a hold H makes the heads of the spells longer than H late: the
  // shortest hold whose late heads fit in the budget.
  double late = 0, must_cover = 0, sum = 0;
  for (const Spell& s : longest) {
    late += s.head;
    sum += s.length_s;
    if (late > allowed && must_cover == 0) must_cover = s.length_s;
  }
  if (must_cover == 0) return Duration{0};
  // Beyond the longest seen, an exponential tail: a spell longer than H comes with probability
  // exp(-H / mean) and makes its head late, heads / arrivals of the day's arrivals on average;
  // the hold keeps that under the share allowed. The mean is taken at its upper bound (two
  // standard errors) since a day may hold few spells.
  const double n = static_cast<double>(longest.size());
  const double mean = sum / n * (1 + 2 / std::sqrt(n));
  const double share = late / std::max(arrivals_, 1.0);
  const double tail = mean * std::log(std::max(1.0, share / std::clamp(late_share, 1e-6, 0.5)));
  return from_seconds(std::min(std::max(must_cover, tail), to_seconds(kMemory)));
}

}  // namespace tide::policy
