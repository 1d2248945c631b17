// A log-linear histogram of non-negative values (latencies in seconds, say): constant memory,
// O(1) record, quantiles with a bounded relative error (1/64 of the value at most).
// Values below `min_value` land in one exact-zero-ish bucket. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tide {

class LogLinearHistogram {
 public:
  // Values from min_value up to min_value * 2^octaves are resolved; larger ones clamp to the top.
  explicit LogLinearHistogram(double min_value = 1e-6, int octaves = 48);

  void record(double value);
  void merge(const LogLinearHistogram& other);
  // Removes what `earlier` (an older copy of this cumulative histogram, same shape) held: what
  // was recorded in between remains, for per-interval quantiles. max() becomes the upper edge of
  // the highest bucket left (clamped to the old max), so quantiles still never understate.
  void subtract(const LogLinearHistogram& earlier);

  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  double max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : sum_ / static_cast<double>(count_); }
  // q in [0, 1]. Returns 0 when empty. The result is the upper edge of the bucket holding the
  // q-th value, clamped to the largest value seen, so a quantile never understates.
  double quantile(double q) const;
  // Bucket upper edges and counts, for Prometheus-style export.
  const std::vector<uint64_t>& buckets() const { return counts_; }
  double bucket_upper(size_t index) const;
  // Values counted at or below `le`, for a coarser fixed set of bounds: a bucket is counted only
  // if its upper edge is <= le, so one straddling `le` counts toward the next bound (never an
  // overstatement; the error is within a bucket's width, 1/64 of the value).
  uint64_t count_at_or_below(double le) const;

 private:
  static constexpr int kSubBits = 6;  // 64 linear sub-buckets per octave
  size_t index_of(double value) const;

  double min_value_;
  int octaves_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
  double max_ = 0;
};

}  // namespace tide
