#include "tide/gateway/stream_timer.h"

#include <gtest/gtest.h>

namespace tide::gateway {
namespace {

using namespace std::chrono_literals;

Time at(double s) { return time_at_seconds(s); }

TEST(StreamTimer, TtftRunsFromArrivalToTheFirstBodyByte) {
  StreamTimer t(at(10), false);
  EXPECT_FALSE(t.times().has_value());  // nothing read yet
  EXPECT_TRUE(t.wants_time());
  t.on_body(at(11), "");  // framing only: no body byte
  EXPECT_FALSE(t.times().has_value());
  t.on_body(at(12.5), "{\"a\":");
  EXPECT_FALSE(t.wants_time());  // not SSE: later pieces need no time
  t.on_body(at(14), "1}");
  ASSERT_TRUE(t.times().has_value());
  EXPECT_EQ(t.times()->ttft, 2500ms);
  EXPECT_FALSE(t.times()->tpot.has_value());
}

TEST(StreamTimer, TpotIsTheMeanGapBetweenEventsAfterTheFirstLeavingOutDone) {
  StreamTimer t(at(0), true);
  t.on_body(at(1), "data: {\"t\":1}\n\n");
  t.on_body(at(1.1), "data: {\"t\":2}\n\ndata: {\"t\":3}\n\n");  // two in one piece
  t.on_body(at(1.4), "data: {\"t\":4}\n\n");
  t.on_body(at(1.4), "data: [DONE]\n\n");  // the end marker: no token
  EXPECT_EQ(t.events(), 4u);
  ASSERT_TRUE(t.times().has_value());
  EXPECT_EQ(t.times()->ttft, 1s);
  // (1.4 - 1) / 3.
  ASSERT_TRUE(t.times()->tpot.has_value());
  EXPECT_NEAR(to_seconds(*t.times()->tpot), 0.4 / 3, 1e-9);
}

TEST(StreamTimer, EventsSplitAcrossPiecesEndWhereTheirBlankLineArrives) {
  StreamTimer t(at(0), true);
  t.on_body(at(0.5), "data: one\r");  // CRLF line ends, split anywhere
  t.on_body(at(0.6), "\n\r");
  t.on_body(at(0.7), "\ndata: two\n");
  t.on_body(at(0.9), "\n: keep-alive comment\n\n");
  t.on_body(at(1.3), "event: x\ndata: three\n\n");
  EXPECT_EQ(t.events(), 3u);  // the comment is no event
  ASSERT_TRUE(t.times().has_value());
  EXPECT_EQ(t.times()->ttft, 500ms);
  // Events ended at 0.7, 0.9 and 1.3: (1.3 - 0.7) / 2.
  EXPECT_NEAR(to_seconds(*t.times()->tpot), 0.3, 1e-9);
}

TEST(StreamTimer, OneEventGivesNoTpot) {
  StreamTimer t(at(0), true);
  t.on_body(at(2), "data: only\n\ndata: [DONE]\n\n");
  ASSERT_TRUE(t.times().has_value());
  EXPECT_EQ(t.times()->ttft, 2s);
  EXPECT_FALSE(t.times()->tpot.has_value());
}

TEST(StreamTimer, ContentTypeOfServerSentEvents) {
  EXPECT_TRUE(is_event_stream("text/event-stream"));
  EXPECT_TRUE(is_event_stream("Text/Event-Stream; charset=utf-8"));
  EXPECT_FALSE(is_event_stream("application/json"));
  EXPECT_FALSE(is_event_stream("text/event-streams"));
  EXPECT_FALSE(is_event_stream(""));
}

}  // namespace
}  // namespace tide::gateway
