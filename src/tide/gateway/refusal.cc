#include "tide/gateway/refusal.h"

#include <fmt/format.h>

#include "tide/common/time.h"

namespace tide::gateway {

std::optional<Refusal> refusal_for(const control::Dispatch& d, const config::EndpointSpec& spec,
                                   const std::function<int()>& retry_after_s) {
  using Kind = control::Dispatch::Kind;
  switch (d.kind) {
    case Kind::kStarted:
    case Kind::kLost:
      return std::nullopt;
    case Kind::kQueueFull:
      return Refusal{429,
                     "queue_full",
                     fmt::format("endpoint {} holds {} requests already (queue.max_length)",
                                 spec.name, spec.queue.max_length),
                     1,
                     true,
                     429};
    case Kind::kNoReplica: {
      const int status = spec.groups[static_cast<size_t>(d.group)].scaling.admission.reject_status;
      return Refusal{
          static_cast<unsigned>(status),
          "no_replica",
          fmt::format("endpoint {} has no ready replica and this group does not hold requests",
                      spec.name),
          retry_after_s(),
          true,
          status == 502 ? 502u : 503u};
    }
    case Kind::kTimedOut:
      return Refusal{503,
                     "queue_timeout",
                     fmt::format("no replica of endpoint {} could take the request within {} "
                                 "(queue.timeout)",
                                 spec.name, format_duration(spec.queue.timeout)),
                     retry_after_s(),
                     true,
                     503};
    case Kind::kFailing:
      return Refusal{503,
                     "replica_failing",
                     fmt::format("endpoint {}: {}", spec.name, d.error),
                     retry_after_s(),
                     true,
                     503};
    case Kind::kShutdown:
    case Kind::kQueued:
      return Refusal{503, "shutting_down", "tide is shutting down", 1, false, 503};
  }
  return std::nullopt;
}

}  // namespace tide::gateway
