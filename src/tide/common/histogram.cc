#include "tide/common/histogram.h"

#include <algorithm>
#include <cmath>

namespace tide {

LogLinearHistogram::LogLinearHistogram(double min_value, int octaves)
    : min_value_(min_value),
      octaves_(octaves),
      counts_(1 + static_cast<size_t>(octaves) * (size_t{1} << kSubBits), 0) {}

size_t LogLinearHistogram::index_of(double value) const {
  if (!(value >= min_value_)) return 0;  // also catches NaN
  int exponent = 0;
  const double mantissa = std::frexp(value / min_value_, &exponent);  // in [0.5, 1)
  const int octave = exponent - 1;
  if (octave >= octaves_) return counts_.size() - 1;
  const auto sub = static_cast<size_t>((mantissa * 2.0 - 1.0) * static_cast<double>(1 << kSubBits));
  return 1 + static_cast<size_t>(octave) * (size_t{1} << kSubBits) +
         std::min(sub, (size_t{1} << kSubBits) - 1);
}

double LogLinearHistogram::bucket_upper(size_t index) const {
  if (index == 0) return min_value_;
  const size_t i = index - 1;
  const auto octave = static_cast<int>(i >> kSubBits);
  const auto sub = static_cast<double>(i & ((size_t{1} << kSubBits) - 1));
  return std::ldexp(min_value_, octave) * (1.0 + (sub + 1.0) / static_cast<double>(1 << kSubBits));
}

void LogLinearHistogram::record(double value) {
  if (!(value >= 0)) value = 0;
  ++counts_[index_of(value)];
  ++count_;
  sum_ += value;
  max_ = std::max(max_, value);
}

void LogLinearHistogram::merge(const LogLinearHistogram& other) {
  for (size_t i = 0; i < counts_.size() && i < other.counts_.size(); ++i)
    counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
}

void LogLinearHistogram::subtract(const LogLinearHistogram& earlier) {
  size_t top = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    const uint64_t before = i < earlier.counts_.size() ? earlier.counts_[i] : 0;
    counts_[i] = counts_[i] >= before ? counts_[i] - before : 0;
    if (counts_[i] > 0) top = i;
  }
  count_ = count_ >= earlier.count_ ? count_ - earlier.count_ : 0;
  sum_ = count_ == 0 ? 0.0 : std::max(0.0, sum_ - earlier.sum_);
  max_ = count_ == 0 ? 0.0 : std::min(max_, bucket_upper(top));
}

uint64_t LogLinearHistogram::count_at_or_below(double le) const {
  uint64_t n = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    if (bucket_upper(i) > le) break;
    n += counts_[i];
  }
  return n;
}

double LogLinearHistogram::quantile(double q) const {
  if (count_ == 0) return 0.0;
  q = std::clamp(q, 0.0, 1.0);
  // Rank of the q-th value, 1-based: the smallest value with at least q of the mass at or below.
  const auto rank =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return i == 0 ? 0.0 : std::min(bucket_upper(i), max_);
  }
  return max_;
}

}  // namespace tide
