// queue: ViewComfy semantics. Up: a replica starts whenever queued requests exceed
// queue_size x replicas, so desired = ceil(queued / queue_size). Down: every ready replica idle for
// idle_timeout stops, but never below what the queue still needs.
#include <fmt/format.h>

#include <algorithm>

#include "tide/policy/policies.h"

namespace tide::policy {
namespace {

int ceil_div(int a, int b) { return b <= 0 ? a : (a + b - 1) / b; }

// Stateless: everything it needs is in the Observation.
class QueueDecider final : public Decider {
 public:
  explicit QueueDecider(const config::QueuePolicy& params) : params_(params) {}

  Decision decide(const Observation& obs) override {
    const int queue_size = std::max(1, params_.queue_size);
    const int cur = obs.current;
    const int needed = ceil_div(obs.queued, queue_size);
    if (obs.queued > queue_size * cur) {
      return {needed, fmt::format("queued {} > queue_size {} x {} replicas: {} -> {}", obs.queued,
                                  queue_size, cur, cur, needed)};
    }
    const auto expired = std::count_if(obs.idle_since.begin(), obs.idle_since.end(),
                                       [&](Time t) { return obs.now - t >= params_.idle_timeout; });
    const std::string idle = format_duration(params_.idle_timeout);
    if (expired > 0) {
      const int desired = std::min(cur, std::max(cur - static_cast<int>(expired), needed));
      if (desired < cur) {
        return {desired,
                fmt::format("{} replicas idle >= {}: {} -> {}", expired, idle, cur, desired)};
      }
      return {cur, fmt::format("no change: {} replicas idle >= {} but queued {} needs {}", expired,
                               idle, obs.queued, needed)};
    }
    return {cur, fmt::format("no change: queued {} <= queue_size {} x {} replicas, none idle >= {}",
                             obs.queued, queue_size, cur, idle)};
  }

 private:
  config::QueuePolicy params_;
};

}  // namespace

std::unique_ptr<Decider> make_queue_policy(const config::QueuePolicy& params) {
  return std::make_unique<QueueDecider>(params);
}

}  // namespace tide::policy
