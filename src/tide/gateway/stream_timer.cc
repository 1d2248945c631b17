#include "tide/gateway/stream_timer.h"

#include <algorithm>
#include <cctype>

namespace tide::gateway {

namespace {

// An event whose data is the OpenAI stream's end marker, not a token.
bool is_done_marker(std::string_view head) {
  return head == "data: [DONE]" || head == "data:[DONE]";
}
// An event of comment lines only (": keep-alive"), sent to hold the connection open.
bool is_comment(std::string_view head) { return !head.empty() && head.front() == ':'; }

}  // namespace

void StreamTimer::on_body(Time now, std::string_view piece) {
  if (piece.empty()) return;
  if (!first_) first_ = now;
  if (!sse_) return;
  for (char c : piece) scan(c, now);
}

void StreamTimer::scan(char c, Time now) {
  if (c == '\r') return;
  if (c != '\n') {
    newlines_ = 0;
    if (head_size_ < sizeof head_) head_[head_size_] = c;
    ++head_size_;
    in_event_ = true;
    return;
  }
  if (++newlines_ < 2 || !in_event_) return;
  // A blank line: the event that began after the previous one ends here.
  const std::string_view head(head_, std::min(head_size_, sizeof head_));
  const bool token = !is_comment(head) && !(head_size_ <= sizeof head_ && is_done_marker(head));
  if (token) {
    if (events_ == 0) first_event_ = now;
    last_event_ = now;
    ++events_;
  }
  in_event_ = false;
  head_size_ = 0;
  newlines_ = 0;
}

std::optional<control::StreamTimes> StreamTimer::times() const {
  if (!first_) return std::nullopt;
  control::StreamTimes t;
  t.ttft = std::max(Duration{0}, *first_ - arrived_);
  if (sse_ && events_ >= 2)
    t.tpot = (last_event_ - first_event_) / static_cast<int64_t>(events_ - 1);
  return t;
}

bool is_event_stream(std::string_view content_type) {
  constexpr std::string_view kType = "text/event-stream";
  while (!content_type.empty() && content_type.front() == ' ') content_type.remove_prefix(1);
  if (content_type.size() < kType.size()) return false;
  for (size_t i = 0; i < kType.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(content_type[i])) != kType[i]) return false;
  }
  const std::string_view rest = content_type.substr(kType.size());
  return rest.empty() || rest.front() == ';' || rest.front() == ' ';
}

}  // namespace tide::gateway
