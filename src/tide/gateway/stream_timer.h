// Time to first token and time per output token of one streamed answer, as the gateway relays
// it: fed the body's pieces as they are read from the replica, each with the time it was read.
// No sockets and no clock of its own: the caller passes the times (tests pass made-up ones).
//
// TTFT: from the request's arrival at the gateway (so a wait in the hold queue counts) to the
// first byte of the answer's body. TPOT, for server-sent events (text/event-stream) only: the
// mean time between the ends of successive events after the first, i.e. (last - first) /
// (events - 1); an OpenAI stream's closing `data: [DONE]` event is no token and is not counted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "tide/common/time.h"
#include "tide/control/live_endpoint.h"

namespace tide::gateway {

class StreamTimer {
 public:
  // `arrived`: when the request reached the gateway; `sse`: the answer is text/event-stream.
  StreamTimer(Time arrived, bool sse) : arrived_(arrived), sse_(sse) {}

  // Whether on_body needs the time of the next piece (the first byte, or events to count).
  bool wants_time() const { return sse_ || !first_; }
  // A piece of the body, read at `now`.
  void on_body(Time now, std::string_view piece);

  // The figures, once a body byte was seen (else nullopt); tpot_s only for SSE with two events
  // or more.
  std::optional<control::StreamTimes> times() const;
  uint64_t events() const { return events_; }

 private:
  // The byte `c` of an event stream: counts an event at each blank line that ends one.
  void scan(char c, Time now);

  Time arrived_;
  bool sse_;
  std::optional<Time> first_;  // the first body byte
  // Events: the end of the first and of the last, and how many ended.
  Time first_event_{}, last_event_{};
  uint64_t events_ = 0;
  // Parsing state: newlines in a row ('\r' ignored), whether the event holds a byte, and its
  // start (to leave out "data: [DONE]").
  int newlines_ = 0;
  bool in_event_ = false;
  char head_[16] = {};
  size_t head_size_ = 0;
};

// Whether a Content-Type value names server-sent events ("text/event-stream", any parameters
// or case).
bool is_event_stream(std::string_view content_type);

}  // namespace tide::gateway
