// What the gateway answers for a request no replica took: the outcome of its dispatch (queue
// full, no replica, timed out while held, a crash-looping group, shutdown) as an HTTP status,
// error type and message. Plain code (no sockets, no Beast): gateway.cc writes the answer.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "tide/config/config.h"
#include "tide/control/live_endpoint.h"

namespace tide::gateway {

struct Refusal {
  unsigned status = 503;
  std::string type;       // the error body's "type"
  std::string message;    // and its "message"
  int retry_after_s = 0;  // Retry-After when > 0
  bool keep = true;       // false: the connection closes after the answer
  // The counter it adds to: 429, 502 or 503 (a configured reject_status other than 502 counts
  // as 503, whatever it is).
  unsigned counted_as = 503;
};

// The answer for `d`, a dispatch of a request to endpoint `spec`; nullopt for kStarted and kLost
// (not refusals). `retry_after_s` is asked only where the answer carries Retry-After from the
// endpoint's state (no replica, timed out, failing).
std::optional<Refusal> refusal_for(const control::Dispatch& d, const config::EndpointSpec& spec,
                                   const std::function<int()>& retry_after_s);

}  // namespace tide::gateway
