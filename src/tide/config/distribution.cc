#include "tide/config/config.h"

#include <cmath>

namespace tide::config {

Duration DurationDistribution::sample(Random& rng) const {
  switch (kind) {
    case Kind::kFixed:
      return value;
    case Kind::kUniform:
      return from_seconds(rng.uniform(to_seconds(min), to_seconds(max)));
    case Kind::kLognormal:
      return from_seconds(rng.lognormal(to_seconds(median), sigma));
    case Kind::kEmpirical:
      return values.empty() ? Duration{0} : values[rng.below(values.size())];
  }
  return value;
}

Duration DurationDistribution::mean() const {
  switch (kind) {
    case Kind::kFixed:
      return value;
    case Kind::kUniform:
      return (min + max) / 2;
    case Kind::kLognormal:
      return from_seconds(to_seconds(median) * std::exp(sigma * sigma / 2));
    case Kind::kEmpirical: {
      if (values.empty()) return Duration{0};
      Duration sum{0};
      for (Duration v : values) sum += v;
      return sum / static_cast<int64_t>(values.size());
    }
  }
  return value;
}

}  // namespace tide::config
