#include "tide/sim/trace.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace tide::sim {
namespace {

namespace fs = std::filesystem;

int64_t ns(Time t) { return t.time_since_epoch().count(); }

std::vector<int64_t> arrivals(const Trace& trace) {
  std::vector<int64_t> out;
  for (const TraceRequest& r : trace.requests) out.push_back(ns(r.arrival));
  return out;
}

std::string compress(const std::string& data, int level = 3) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  EXPECT_FALSE(ZSTD_isError(n)) << ZSTD_getErrorName(n);
  out.resize(n);
  return out;
}

// Each test gets a fresh directory of small hand-written files (never the real traces).
class TraceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = fs::temp_directory_path() /
           ("tide_trace_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string write(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  static TraceOptions csv(const std::string& path) {
    TraceOptions o;
    o.path = path;
    return o;
  }

  // The message of the TraceError that loading throws ("" and a test failure if none).
  static std::string error_of(const TraceOptions& o) {
    try {
      load_trace(o);
    } catch (const TraceError& e) {
      return e.what();
    } catch (...) {
      ADD_FAILURE() << "threw something other than TraceError";
      return "";
    }
    ADD_FAILURE() << "no error for " << o.path;
    return "";
  }

  fs::path dir_;
};

// ----- time parsing ----------------------------------------------------------------------------

TEST_F(TraceTest, DatetimeIsExactToTheNanosecond) {
  const std::string path = write("t.csv",
                                 "timestamp\n"
                                 "2023-11-16 18:15:46.6805900\n"
                                 "2023-11-16 18:15:46.680590001\n"
                                 "2023-11-16T18:15:47Z\n"
                                 "2023-11-16 18:15:46.7\n"
                                 "2023-11-16 18:15:46\n");
  const Trace t = load_trace(csv(path));
  const int64_t frac = 680'590'000;
  EXPECT_EQ(arrivals(t),
            (std::vector<int64_t>{0, frac, frac + 1, frac + 19'410'000, frac + 319'410'000}));
  // The epoch itself is a time; anything before it is refused.
  const Trace epoch = load_trace(csv(write("e.csv",
                                           "timestamp\n1970-01-01 00:00:00.000000001\n"
                                           "1970-01-01 00:00:00\n")));
  EXPECT_EQ(arrivals(epoch), (std::vector<int64_t>{0, 1}));
}

TEST_F(TraceTest, DatetimeAcrossMidnightMonthYearAndLeapDays) {
  // Pairs within a trace's 31 days: (later, earlier, difference).
  const int64_t day = 86'400'000'000'000;
  const std::tuple<std::string, std::string, int64_t> cases[] = {
      {"2024-01-01 00:00:00", "2023-12-31 23:59:59.999999999", 1},
      {"2024-02-29 12:00:00", "2024-02-28 12:00:00", day},  // 2024 is a leap year
      {"2024-03-01 12:00:00", "2024-02-29 12:00:00", day},
      {"2023-02-01 12:00:00", "2023-01-31 12:00:00", day},
      {"2023-03-01 12:00:00", "2023-02-28 12:00:00", day},      // 2023 is not
      {"2000-03-01 00:00:00", "2000-02-28 00:00:00", 2 * day},  // 2000 is (a 400th year)
      {"2100-03-01 00:00:00", "2100-02-28 00:00:00", day},      // 2100 is not
      {"2000-01-31 00:00:00", "2000-01-01 00:00:00", 30 * day},
  };
  for (const auto& [later, earlier, diff] : cases) {
    const Trace t = load_trace(csv(write("t.csv", "timestamp\n" + later + "\n" + earlier + "\n")));
    EXPECT_EQ(arrivals(t), (std::vector<int64_t>{0, diff})) << later << " " << earlier;
  }
}

TEST_F(TraceTest, NumericTimeUnitsAreExact) {
  struct Case {
    TimeUnit unit;
    std::string a, b;
    int64_t diff;
  };
  const Case cases[] = {
      {TimeUnit::kSeconds, "1700000000.123456789", "1700000000", 123'456'789},
      {TimeUnit::kSeconds, "2.5", "1", 1'500'000'000},
      {TimeUnit::kSeconds, "1.5e3", "1000", 500'000'000'000},
      {TimeUnit::kMillis, "1700000000123.456", "1700000000000", 123'456'000},
      {TimeUnit::kMillis, "750", "250", 500'000'000},
      {TimeUnit::kMicros, "10.5", "0", 10'500},
      {TimeUnit::kMicros, "1700000000000000", "1699999999000000", 1'000'000'000},
  };
  for (const Case& c : cases) {
    TraceOptions o = csv(write("u.csv", "t\n" + c.a + "\n" + c.b + "\n"));
    o.time_col = "t";
    o.time_unit = c.unit;
    const Trace t = load_trace(o);
    EXPECT_EQ(arrivals(t), (std::vector<int64_t>{0, c.diff})) << c.a << " " << c.b;
    EXPECT_EQ(t.span, Duration{c.diff});
  }
}

// ----- request logs ----------------------------------------------------------------------------

TEST_F(TraceTest, ArrivalsAreRelativeAndSortedStably) {
  TraceOptions o = csv(write("t.csv",
                             "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                             "5,1,10\n"
                             "3,2,20\n"
                             "5,3,30\n"
                             "3.5,4,40\n"
                             "3,5,50\n"));
  o.time_unit = TimeUnit::kSeconds;
  const Trace t = load_trace(o);
  ASSERT_EQ(t.requests.size(), 5u);
  std::vector<int32_t> order;
  for (const TraceRequest& r : t.requests) order.push_back(r.input_tokens);
  EXPECT_EQ(order, (std::vector<int32_t>{2, 5, 4, 1, 3}));  // ties keep file order
  EXPECT_EQ(arrivals(t), (std::vector<int64_t>{0, 0, 500'000'000, 2'000'000'000, 2'000'000'000}));
  EXPECT_EQ(t.requests[0].output_tokens, 20);
  EXPECT_EQ(t.span, Duration{2'000'000'000});
  EXPECT_TRUE(t.has_tokens);
  EXPECT_FALSE(t.has_duration);
  EXPECT_TRUE(std::isnan(t.requests[0].duration_s));
  EXPECT_EQ(t.streams, (std::vector<std::string>{"all"}));
  // 3 (line 3), 3.5 and 3 come after a 5: counted for tide sim's warning.
  EXPECT_EQ(t.unordered_rows, 3u);
  EXPECT_EQ(t.first_unordered_line, 3u);
}

TEST_F(TraceTest, LimitDropsArrivalsAtOrAfterIt) {
  TraceOptions o = csv(write("t.csv", "timestamp\n0\n1\n2\n3\n"));
  o.time_unit = TimeUnit::kSeconds;
  o.limit = std::chrono::seconds(2);
  const Trace t = load_trace(o);
  EXPECT_EQ(arrivals(t), (std::vector<int64_t>{0, 1'000'000'000}));
  EXPECT_EQ(t.span, std::chrono::seconds(1));
}

TEST_F(TraceTest, TokenColumnsAreDetected) {
  {
    TraceOptions o = csv(write("a.csv", "Prompt_Tokens,ts,COMPLETION_TOKENS\n7,0,9\n"));
    o.time_col = "ts";
    o.time_unit = TimeUnit::kSeconds;
    const Trace t = load_trace(o);
    EXPECT_TRUE(t.has_tokens);
    EXPECT_EQ(t.requests[0].input_tokens, 7);
    EXPECT_EQ(t.requests[0].output_tokens, 9);
  }
  {
    TraceOptions o = csv(write("b.csv", "timestamp,input_tokens\n0,3\n"));
    o.time_unit = TimeUnit::kSeconds;
    const Trace t = load_trace(o);
    EXPECT_TRUE(t.has_tokens);
    EXPECT_EQ(t.requests[0].input_tokens, 3);
    EXPECT_EQ(t.requests[0].output_tokens, -1);
  }
  {
    TraceOptions o = csv(write("c.csv", "timestamp,other\n0,3\n"));
    o.time_unit = TimeUnit::kSeconds;
    const Trace t = load_trace(o);
    EXPECT_FALSE(t.has_tokens);
    EXPECT_EQ(t.requests[0].input_tokens, -1);
  }
  {
    // Explicit names win over detection; exact case before case-insensitive.
    TraceOptions o = csv(write("d.csv", "timestamp,in,IN,output_tokens\n0,1,2,3\n"));
    o.time_unit = TimeUnit::kSeconds;
    o.input_tokens_col = "IN";
    o.output_tokens_col = "Output_Tokens";
    const Trace t = load_trace(o);
    EXPECT_EQ(t.requests[0].input_tokens, 2);
    EXPECT_EQ(t.requests[0].output_tokens, 3);
  }
}

TEST_F(TraceTest, QuotedFieldsStreamsAndDurations) {
  TraceOptions o = csv(write("q.csv",
                             "\xEF\xBB\xBFtimestamp,model,note,dur\r\n"
                             "\"0\",\"a,b\",\"say \"\"hi\"\"\",0.5\r\n"
                             "1,c,\"two\r\nlines\",1\r\n"
                             "\r\n"
                             "2,\"a,b\",\"\",0\r\n"
                             "3,\"\",x,2.25"));  // final line without newline
  o.time_unit = TimeUnit::kSeconds;
  o.stream_col = "model";
  o.duration_col = "dur";
  const Trace t = load_trace(o);
  ASSERT_EQ(t.requests.size(), 4u);
  EXPECT_EQ(t.streams, (std::vector<std::string>{"a,b", "c", ""}));
  EXPECT_EQ(t.requests[0].stream, 0u);
  EXPECT_EQ(t.requests[1].stream, 1u);
  EXPECT_EQ(t.requests[2].stream, 0u);
  EXPECT_EQ(t.requests[3].stream, 2u);
  EXPECT_TRUE(t.has_duration);
  EXPECT_DOUBLE_EQ(t.requests[0].duration_s, 0.5);
  EXPECT_DOUBLE_EQ(t.requests[3].duration_s, 2.25);
  EXPECT_EQ(t.span, std::chrono::seconds(3));
}

TEST_F(TraceTest, Jsonl) {
  TraceOptions o;
  o.path = write("r.jsonl",
                 "{\"timestamp\": \"2023-11-16 18:15:47\", \"prompt_tokens\": 5, "
                 "\"completion_tokens\": 7, \"model\": \"m1\", \"extra\": {\"a\": [1, 2]}}\n"
                 "\n"
                 "{\"extra\": null, \"model\": \"m2\", \"timestamp\": \"2023-11-16T18:15:46.5Z\", "
                 "\"prompt_tokens\": 1, \"completion_tokens\": 2}\r\n");
  o.stream_col = "model";
  const Trace t = load_trace(o);
  ASSERT_EQ(t.requests.size(), 2u);
  EXPECT_EQ(arrivals(t), (std::vector<int64_t>{0, 500'000'000}));
  EXPECT_EQ(t.requests[0].input_tokens, 1);
  EXPECT_EQ(t.requests[1].output_tokens, 7);
  EXPECT_EQ(t.streams, (std::vector<std::string>{"m1", "m2"}));
  EXPECT_EQ(t.requests[0].stream, 1u);

  // Numbers keep their exact digits; strings work for numeric units too.
  TraceOptions n;
  n.path = write("n.ndjson",
                 "{\"t\": 1700000000.123456789, \"d\": 0.25}\n"
                 "{\"t\": \"1700000000\", \"d\": 1}\n"
                 "{\"t\": 1700000001, \"d\": \"2\"}\n");
  n.time_col = "t";
  n.time_unit = TimeUnit::kSeconds;
  n.duration_col = "d";
  const Trace tn = load_trace(n);
  EXPECT_EQ(arrivals(tn), (std::vector<int64_t>{0, 123'456'789, 1'000'000'000}));
  EXPECT_DOUBLE_EQ(tn.requests[1].duration_s, 0.25);
  EXPECT_FALSE(tn.has_tokens);
}

TEST_F(TraceTest, JsonlErrors) {
  TraceOptions o;
  o.time_unit = TimeUnit::kSeconds;
  o.path = write("a.jsonl", "{\"timestamp\": 1}\n[1, 2]\n");
  EXPECT_EQ(error_of(o), o.path + ":2: expected a JSON object");
  o.path = write("b.jsonl", "{\"timestamp\": 1}\n{\"timestamp\": 2\n");
  EXPECT_EQ(error_of(o).rfind(o.path + ":2: invalid JSON: parse error at column", 0), 0u)
      << error_of(o);
  o.path = write("c.jsonl", "{\"timestamp\": 1}\n{\"time\": 2}\n");
  EXPECT_EQ(error_of(o), o.path + ":2: no key \"timestamp\"");
  o.path = write("d.jsonl", "{\"ts\": 1, \"x\": 2}\n");
  EXPECT_EQ(error_of(o), o.path + ":1: no key \"timestamp\" (keys: ts, x)");
  o.path = write("e.jsonl", "{\"timestamp\": 1, \"input_tokens\": 1.5}\n");
  EXPECT_EQ(error_of(o),
            o.path + ":1: key \"input_tokens\": expected a non-negative integer, got 1.5");
  o.path = write("f.jsonl", "{\"timestamp\": null}\n");
  EXPECT_EQ(error_of(o),
            o.path + ":1: key \"timestamp\": expected a non-negative number of seconds, got null");
  o.path = write("g.jsonl", "\n\n");
  EXPECT_EQ(error_of(o), o.path + ":1: empty file (expected JSON objects)");
  o.path = write("h.jsonl", "7\n");
  EXPECT_EQ(error_of(o), o.path + ":1: expected a JSON object");
}

// ----- zstd ------------------------------------------------------------------------------------

TEST_F(TraceTest, ZstdRoundTripMatchesPlain) {
  // Big enough to span several read buffers on both sides of the decompressor.
  std::string text = "timestamp,ContextTokens,GeneratedTokens\r\n";
  Random rng(7);
  for (int i = 0; i < 200'000; ++i) {
    text += std::to_string(i) + "." + std::to_string(rng.below(1000)) + "," +
            std::to_string(rng.below(5000)) + "," + std::to_string(rng.below(500)) + "\r\n";
  }
  TraceOptions plain = csv(write("big.csv", text));
  plain.time_unit = TimeUnit::kMillis;
  TraceOptions packed = plain;
  packed.path = write("big.csv.zst", compress(text, 1));
  const Trace a = load_trace(plain);
  const Trace b = load_trace(packed);
  ASSERT_EQ(a.requests.size(), 200'000u);
  ASSERT_EQ(b.requests.size(), a.requests.size());
  for (size_t i = 0; i < a.requests.size(); ++i) {
    ASSERT_EQ(a.requests[i].arrival, b.requests[i].arrival) << i;
    ASSERT_EQ(a.requests[i].input_tokens, b.requests[i].input_tokens) << i;
    ASSERT_EQ(a.requests[i].output_tokens, b.requests[i].output_tokens) << i;
  }

  // Two concatenated frames are one stream of text.
  TraceOptions two = plain;
  two.path = write("two.csv.zst", compress("timestamp\n1\n") + compress("2\n3\n"));
  EXPECT_EQ(load_trace(two).requests.size(), 3u);
}

TEST_F(TraceTest, ZstdErrors) {
  TraceOptions o = csv(write("bad.csv.zst", "this is not zstd\n"));
  EXPECT_EQ(error_of(o), o.path + ":1: corrupt zstd data: Unknown frame descriptor");

  std::string text = "timestamp\n";
  for (int i = 0; i < 1000; ++i) text += std::to_string(i) + "\n";
  const std::string packed = compress(text);
  o.path = write("cut.csv.zst", packed.substr(0, packed.size() - 5));
  o.time_unit = TimeUnit::kSeconds;
  const std::string message = error_of(o);
  EXPECT_NE(message.find("truncated zstd data"), std::string::npos) << message;
  EXPECT_EQ(message.rfind(o.path + ":", 0), 0u) << message;

  o.path = write("empty.csv.zst", "");
  EXPECT_EQ(error_of(o), o.path + ":1: empty file (expected a header row)");
}

// ----- errors ----------------------------------------------------------------------------------

TEST_F(TraceTest, ErrorsNameFileLineAndColumn) {
  TraceOptions o;
  o.time_unit = TimeUnit::kSeconds;
  auto check = [&](const std::string& name, const std::string& content,
                   const std::string& expected) {
    o.path = write(name, content);
    EXPECT_EQ(error_of(o), o.path + expected);
  };
  check("missing.csv", "a,b,c\n1,2,3\n", ":1: no column \"timestamp\" (columns: a, b, c)");
  check("tokens.csv", "timestamp,ContextTokens\n1,2\n2,3\n3,abc\n",
        ":4: column \"ContextTokens\": expected a non-negative integer, got \"abc\"");
  check("negtokens.csv", "timestamp,output_tokens\n1,-2\n",
        ":2: column \"output_tokens\": expected a non-negative integer, got \"-2\"");
  check("bigtokens.csv", "timestamp,output_tokens\n1,3000000000\n",
        ":2: column \"output_tokens\": expected a non-negative integer, got \"3000000000\"");
  check("fields.csv", "timestamp,a,b\n1,2,3\n\n1,2,3,4\n", ":4: expected 3 fields, got 4");
  check("fewer.csv", "timestamp,a,b\n1,2\n", ":2: expected 3 fields, got 2");
  check("time.csv", "timestamp\n1\nsoon\n",
        ":3: column \"timestamp\": expected a non-negative number of seconds, got \"soon\"");
  check("empty.csv", "", ":1: empty file (expected a header row)");
  check("blank.csv", "\r\n\n", ":1: empty file (expected a header row)");
  check("header.csv", "timestamp\n", ":1: no requests (only a header)");
  check("quote.csv", "timestamp,a\n1,\"open\n2,3\n", ":2: unterminated quoted field");
  check("quote2.csv", "timestamp,a\n1,\"x\"y\n",
        ":2: malformed quoted field (text after the closing quote)");

  o.time_unit = TimeUnit::kDatetime;
  const std::string dt =
      ":2: column \"timestamp\": expected a datetime from 1970 on like "
      "\"2023-11-16 18:15:46.68\", got ";
  check("dt1.csv", "timestamp\n2023-13-01 00:00:00\n", dt + "\"2023-13-01 00:00:00\"");
  check("dt2.csv", "timestamp\n2023-02-29 00:00:00\n", dt + "\"2023-02-29 00:00:00\"");
  check("dt3.csv", "timestamp\n1900-02-29 00:00:00\n", dt + "\"1900-02-29 00:00:00\"");
  check("dt4.csv", "timestamp\n2023-11-16 18:15:46.1234567891\n",
        dt + "\"2023-11-16 18:15:46.1234567891\"");
  check("dt5.csv", "timestamp\n2023-11-16 24:00:00\n", dt + "\"2023-11-16 24:00:00\"");
  check("dt6.csv", "timestamp\n2023-11-16\n", dt + "\"2023-11-16\"");
  check("dt7.csv", "timestamp\n2023-11-16 18:15:46.\n", dt + "\"2023-11-16 18:15:46.\"");
  check("dt8.csv", "timestamp\n2023/11/16 18:15:46\n", dt + "\"2023/11/16 18:15:46\"");

  o.duration_col = "dur";
  check("dur.csv", "timestamp,dur\n2023-11-16 18:15:46,-1\n",
        ":2: column \"dur\": expected a number of seconds from 0 to 86400, got \"-1\"");
  check("dur2.csv", "timestamp,dur\n2023-11-16 18:15:46,nan\n",
        ":2: column \"dur\": expected a number of seconds from 0 to 86400, got \"nan\"");
  check("nodur.csv", "timestamp\n2023-11-16 18:15:46\n",
        ":1: no column \"dur\" (columns: timestamp)");

  o.path = (dir_ / "does_not_exist.csv").string();
  EXPECT_EQ(error_of(o), o.path + ": cannot open: No such file or directory");
}

// Whatever bytes a file holds, loading either works or throws TraceError.
TEST_F(TraceTest, GarbageNeverThrowsAnythingElse) {
  Random rng(99);
  const std::string alphabet = "0123456789,\"\r\n:-. Tz{}[]ae_";
  using Format = TraceOptions::Format;
  for (int i = 0; i < 300; ++i) {
    std::string text = i % 2 == 0 ? "timestamp,ContextTokens,1,2\n" : "";
    const uint64_t n = rng.below(200);
    for (uint64_t k = 0; k < n; ++k) {
      text += i % 3 == 0 ? static_cast<char>(rng.below(256)) : alphabet[rng.below(alphabet.size())];
    }
    for (Format format : {Format::kCsv, Format::kJsonl, Format::kPerMinute}) {
      TraceOptions o;
      o.format = format;
      o.path = write(i % 5 == 0 ? "g.csv.zst" : "g.csv", text);
      try {
        load_trace(o);
      } catch (const TraceError&) {
      } catch (...) {
        ADD_FAILURE() << "non-TraceError for input " << i;
      }
    }
  }
}

// ----- per-minute matrices ---------------------------------------------------------------------

const char kInv[] =
    "HashFunction,HashOwner,HashApp,1,2,3,4\n"
    "f1,o1,a1,3,0,5,1\n"
    "f2,o2,a2,0,2,0,4\n"
    "f3,o3,a3,0,0,0,0\n";

TEST_F(TraceTest, PerMinuteExpansionKeepsCountsInTheirMinute) {
  TraceOptions o;
  o.path = write("inv.csv", kInv);
  o.format = TraceOptions::Format::kPerMinute;
  o.seed = 42;
  const Trace t = load_trace(o);
  ASSERT_EQ(t.requests.size(), 15u);
  EXPECT_EQ(t.streams, (std::vector<std::string>{"all"}));
  EXPECT_FALSE(t.has_duration);
  EXPECT_FALSE(t.has_tokens);
  std::vector<int> per_minute(4, 0);
  const int64_t minute = 60'000'000'000;
  for (size_t i = 0; i < t.requests.size(); ++i) {
    const int64_t a = ns(t.requests[i].arrival);
    ASSERT_GE(a, 0);
    ASSERT_LT(a, 4 * minute);
    per_minute[static_cast<size_t>(a / minute)]++;
    EXPECT_EQ(t.requests[i].stream, 0u);
    if (i > 0) {
      EXPECT_LE(t.requests[i - 1].arrival, t.requests[i].arrival);
    }
  }
  EXPECT_EQ(per_minute, (std::vector<int>{3, 2, 5, 5}));
  EXPECT_EQ(t.span, t.requests.back().arrival.time_since_epoch());

  // Same seed: same trace. Another seed: other times, same counts.
  EXPECT_EQ(arrivals(load_trace(o)), arrivals(t));
  TraceOptions other = o;
  other.seed = 43;
  const Trace t2 = load_trace(other);
  EXPECT_NE(arrivals(t2), arrivals(t));
  EXPECT_EQ(t2.requests.size(), t.requests.size());

  // Each row its own stream, named by the first column; same arrival times overall.
  TraceOptions each = o;
  each.sum_rows = false;
  const Trace te = load_trace(each);
  EXPECT_EQ(te.streams, (std::vector<std::string>{"f1", "f2", "f3"}));
  EXPECT_EQ(arrivals(te), arrivals(t));
  std::vector<int> per_stream(3, 0);
  for (const TraceRequest& r : te.requests) per_stream[r.stream]++;
  EXPECT_EQ(per_stream, (std::vector<int>{9, 6, 0}));
  for (const TraceRequest& r : te.requests) {
    // Row f2 only has arrivals in minutes 2 and 4.
    if (r.stream == 1) {
      const int64_t m = ns(r.arrival) / minute;
      EXPECT_TRUE(m == 1 || m == 3) << m;
    }
  }

  // The limit truncates the same trace.
  TraceOptions limited = o;
  limited.limit = std::chrono::minutes(2);
  const Trace tl = load_trace(limited);
  const std::vector<int64_t> all = arrivals(t);
  EXPECT_EQ(arrivals(tl), std::vector<int64_t>(all.begin(), all.begin() + 5));
}

TEST_F(TraceTest, PerMinuteMinuteSuffixHeadersAndAutoDetection) {
  TraceOptions o;
  o.path = write("inv.csv.zst", compress("HashFunction,1_minute,2_minute\r\nf,2,1\r\ng,0,1"));
  o.sum_rows = false;
  const Trace t = load_trace(o);  // kAuto: no "timestamp" column but minute columns
  ASSERT_EQ(t.requests.size(), 4u);
  EXPECT_EQ(t.streams, (std::vector<std::string>{"f", "g"}));
}

TEST_F(TraceTest, PerMinuteErrors) {
  TraceOptions o;
  o.format = TraceOptions::Format::kPerMinute;
  auto check = [&](const std::string& content, const std::string& expected) {
    o.path = write("inv.csv", content);
    EXPECT_EQ(error_of(o), o.path + expected);
  };
  check("HashFunction,1,2\nf,1,x\n",
        ":2: column \"2\": expected a non-negative integer, got \"x\"");
  check("HashFunction,1,2\nf,1,-1\n",
        ":2: column \"2\": expected a non-negative integer, got \"-1\"");
  check("HashFunction,1,2\nf,1\n", ":2: expected 3 fields, got 2");
  check("HashFunction,a\nf,1\n",
        ":1: no per-minute count columns (\"1\", \"2\", ... or \"1_minute\", ...) (columns: "
        "HashFunction, a)");
  check("HashFunction,1,1_minute\nf,1,1\n", ":1: minute 1 appears in two columns");
  check("HashFunction,0,1\nf,1,1\n", ":1: column \"0\": minutes are numbered from 1");
  check("HashFunction,1\n", ":1: no rows (only a header)");
  check("HashFunction,1\nf,10000001\n",
        ":2: column \"1\": 10000001 arrivals in one minute is more than the 10000000 allowed");
}

std::string run_file(const std::vector<std::vector<double>>& rows) {
  std::string text =
      "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,"
      "percentile_Average_1,percentile_Average_25,percentile_Average_50,percentile_Average_75,"
      "percentile_Average_99,percentile_Average_100\n";
  int i = 0;
  for (const std::vector<double>& p : rows) {
    ++i;
    text += "o" + std::to_string(i) + ",a" + std::to_string(i) + ",f" + std::to_string(i) +
            ",1,1," + std::to_string(p.front()) + "," + std::to_string(p.back());
    for (double v : p) text += "," + std::to_string(v);
    text += "\n";
  }
  return text;
}

TEST_F(TraceTest, DurationsAreSampledWithinEachRowsRange) {
  TraceOptions o;
  o.path = write("inv.csv",
                 "HashFunction,HashOwner,HashApp,1,2,3\n"
                 "f1,o1,a1,300,200,100\n"
                 "f2,o2,a2,100,400,100\n"
                 "f3,o3,a3,50,0,0\n");
  o.durations_path = write("run.csv", run_file({{10, 12, 20, 30, 40, 90, 100},
                                                {1000, 1000, 1500, 2000, 2500, 5000, 9000},
                                                {7, 7, 7, 7, 7, 7, 7}}));
  o.sum_rows = false;
  o.seed = 5;
  const Trace t = load_trace(o);
  EXPECT_TRUE(t.has_duration);
  ASSERT_EQ(t.requests.size(), 1250u);
  const double lo[] = {0.010, 1.0, 0.007}, hi[] = {0.100, 9.0, 0.007};
  std::vector<std::vector<double>> by_row(3);
  for (const TraceRequest& r : t.requests) {
    ASSERT_GE(r.duration_s, lo[r.stream]);
    ASSERT_LE(r.duration_s, hi[r.stream]);
    by_row[r.stream].push_back(r.duration_s);
  }
  // Roughly the median of the given percentiles (row 2: 2000 ms).
  std::sort(by_row[1].begin(), by_row[1].end());
  EXPECT_NEAR(by_row[1][by_row[1].size() / 2], 2.0, 0.25);

  // Durations do not move arrivals, and the same seed repeats them.
  TraceOptions no_durations = o;
  no_durations.durations_path.clear();
  EXPECT_EQ(arrivals(load_trace(no_durations)), arrivals(t));
  const Trace again = load_trace(o);
  for (size_t i = 0; i < t.requests.size(); ++i) {
    ASSERT_EQ(again.requests[i].duration_s, t.requests[i].duration_s);
  }
}

TEST_F(TraceTest, DurationsFileErrors) {
  TraceOptions o;
  o.path = write("inv.csv", "HashFunction,1\nf1,1\nf2,1\n");
  o.format = TraceOptions::Format::kPerMinute;

  o.durations_path = write("run1.csv", run_file({{1, 2, 3, 4, 5, 6, 7}}));
  EXPECT_EQ(error_of(o), o.path + ":3: row 2 has no line in the durations file " +
                             o.durations_path + " (1 rows)");

  o.durations_path = write(
      "run3.csv", run_file({{1, 2, 3, 4, 5, 6, 7}, {1, 2, 3, 4, 5, 6, 7}, {1, 2, 3, 4, 5, 6, 7}}));
  EXPECT_EQ(error_of(o),
            o.durations_path + ":4: 3 rows, but " + o.path + " has 2 (rows must align)");

  o.path = write("inv2.csv", "HashFunction,1\nf1,1\nzz,1\n");
  o.durations_path = write("run2.csv", run_file({{1, 2, 3, 4, 5, 6, 7}, {1, 2, 3, 4, 5, 6, 7}}));
  EXPECT_EQ(error_of(o), o.path + ":3: HashFunction differs from row 2 of the durations file " +
                             o.durations_path);

  o.path = write("inv.csv", "HashFunction,1\nf1,1\n");
  o.durations_path = write("dec.csv", run_file({{1, 2, 3, 2, 5, 6, 7}}));
  EXPECT_EQ(error_of(o), o.durations_path +
                             ":2: column \"percentile_Average_50\": percentiles must not decrease "
                             "(2 < 3 of \"percentile_Average_25\")");

  o.durations_path = write("hdr.csv", "Average,percentile_Average_0\n1,1\n");
  EXPECT_EQ(error_of(o), o.durations_path +
                             ":1: no column \"percentile_Average_1\" (columns: Average, "
                             "percentile_Average_0)");
}

// ----- Poisson ---------------------------------------------------------------------------------

std::vector<int64_t> drain(PoissonSource& source) {
  std::vector<int64_t> out;
  TraceRequest r;
  while (source.next(r)) out.push_back(ns(r.arrival));
  return out;
}

TEST(PoissonSourceTest, RateIsWithinStatisticalBounds) {
  const double rate = 200.0;
  const auto duration = std::chrono::seconds(500);
  PoissonSource source(rate, duration, 11);
  const std::vector<int64_t> times = drain(source);
  // Expected 100,000 arrivals, standard deviation ~316: 5 sigma either way.
  EXPECT_GT(times.size(), 100'000u - 1'600u);
  EXPECT_LT(times.size(), 100'000u + 1'600u);
  EXPECT_TRUE(std::is_sorted(times.begin(), times.end()));
  EXPECT_GT(times.front(), 0);
  EXPECT_LT(times.back(), Duration{duration}.count());
  // Inter-arrival gaps: coefficient of variation ~1 for an exponential.
  double sum = 0, sum2 = 0;
  for (size_t i = 1; i < times.size(); ++i) {
    const double gap = static_cast<double>(times[i] - times[i - 1]) * 1e-9;
    sum += gap;
    sum2 += gap * gap;
  }
  const double n = static_cast<double>(times.size() - 1);
  const double mean = sum / n;
  const double cv = std::sqrt(sum2 / n - mean * mean) / mean;
  EXPECT_NEAR(mean, 1.0 / rate, 0.05 / rate);
  EXPECT_NEAR(cv, 1.0, 0.03);
  TraceRequest r;
  EXPECT_FALSE(source.next(r));  // stays exhausted
}

TEST(PoissonSourceTest, DeterministicForASeed) {
  PoissonSource a(50.0, std::chrono::seconds(20), 3), b(50.0, std::chrono::seconds(20), 3),
      c(50.0, std::chrono::seconds(20), 4);
  const std::vector<int64_t> ta = drain(a);
  EXPECT_EQ(ta, drain(b));
  EXPECT_NE(ta, drain(c));
  PoissonSource none(0.0, std::chrono::seconds(20), 3);
  EXPECT_TRUE(drain(none).empty());
  PoissonSource slow(1e-12, std::chrono::seconds(20), 3);
  EXPECT_TRUE(drain(slow).empty());
}

// ----- the real traces (data/traces) -------------------------------------------

// The repository root, from the build (src/tide/sim/CMakeLists.txt).
std::string repo_root() { return TIDE_SOURCE_DIR; }

TEST(TraceRealTest, FindsTracesInTheRepositoryFirst) {
  const std::string llm = find_trace_file("azure_llm_2023_conv.csv", repo_root());
  if (llm.empty()) GTEST_SKIP() << "traces not found (data/traces, $TIDE_TRACES, ../shared/traces)";
  EXPECT_TRUE(fs::exists(llm));
  if (fs::exists(fs::path(repo_root()) / "data" / "traces" / "azure_llm_2023_conv.csv")) {
    EXPECT_NE(llm.find("data/traces"), std::string::npos) << llm;
  }
  EXPECT_EQ(find_trace_file("no-such-trace.csv", repo_root()), "");
}

TEST(TraceRealTest, LoadsTheSharedTraces) {
  const fs::path llm = find_trace_file("azure_llm_2023_conv.csv", repo_root());
  const fs::path inv =
      find_trace_file("azure_functions_2019_invitro_sample1340_inv.csv.zst", repo_root());
  const fs::path run =
      find_trace_file("azure_functions_2019_invitro_sample1340_run.csv.zst", repo_root());
  if (llm.empty() || inv.empty() || run.empty()) {
    GTEST_SKIP() << "real traces not found (data/traces, $TIDE_TRACES, ../shared/traces)";
  }
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  };

  TraceOptions lo;
  lo.path = llm.string();
  auto start = Clock::now();
  const Trace l = load_trace(lo);
  std::printf("azure_llm_2023_conv.csv: %zu requests in %.1f ms\n", l.requests.size(),
              ms_since(start));
  EXPECT_EQ(l.requests.size(), 19'366u);
  EXPECT_TRUE(l.has_tokens);
  EXPECT_EQ(ns(l.requests.front().arrival), 0);
  EXPECT_GT(l.span, std::chrono::minutes(57));
  EXPECT_LT(l.span, std::chrono::minutes(59));

  TraceOptions fo;
  fo.path = inv.string();
  fo.format = TraceOptions::Format::kPerMinute;
  start = Clock::now();
  const Trace f = load_trace(fo);
  std::printf("invitro inv: %zu arrivals in %.1f ms\n", f.requests.size(), ms_since(start));
  EXPECT_EQ(f.requests.size(), 991'405u);
  EXPECT_LT(f.span, std::chrono::hours(24));

  fo.sum_rows = false;
  fo.durations_path = run.string();
  start = Clock::now();
  const Trace fd = load_trace(fo);
  std::printf("invitro inv+run, per row: %zu arrivals in %.1f ms\n", fd.requests.size(),
              ms_since(start));
  EXPECT_EQ(fd.requests.size(), 991'405u);
  EXPECT_EQ(fd.streams.size(), 1'340u);
  EXPECT_TRUE(fd.has_duration);
  EXPECT_EQ(arrivals(fd), arrivals(f));
}

// ----- bounds (docs/simulator.md "Bounds") -----------------------------------------------------

TEST_F(TraceTest, AbsurdServiceTimesAreRefusedWithFileLineAndColumn) {
  TraceOptions o;
  o.time_unit = TimeUnit::kSeconds;
  o.duration_col = "dur";
  const std::string expected = ":3: column \"dur\": expected a number of seconds from 0 to 86400, ";
  for (const std::string bad : {"1e15", "86400.5", "inf", "-inf", "-0.5", "NaN", "1e999"}) {
    o.path = write("d.csv", "timestamp,dur\n0,1.5\n1," + bad + "\n");
    EXPECT_EQ(error_of(o), o.path + expected + "got \"" + bad + "\"");
  }
  o.path = write("d.jsonl", "{\"timestamp\": 0, \"dur\": 1e15}\n");
  o.format = TraceOptions::Format::kJsonl;
  EXPECT_EQ(error_of(o),
            o.path + ":1: key \"dur\": expected a number of seconds from 0 to 86400, got 1e15");
  o.path = write("ok.csv", "timestamp,dur\n0,86400\n");
  o.format = TraceOptions::Format::kCsv;
  EXPECT_EQ(load_trace(o).requests.at(0).duration_s, 86400);
}

TEST_F(TraceTest, NegativeTimesAreRefusedWithTheLine) {
  TraceOptions o;
  o.time_unit = TimeUnit::kSeconds;
  o.path = write("n.csv", "timestamp\n5\n-1\n");
  EXPECT_EQ(error_of(o), o.path +
                             ":3: column \"timestamp\": expected a non-negative number of "
                             "seconds, got \"-1\"");
  o.time_unit = TimeUnit::kMillis;
  o.path = write("n.jsonl", "{\"timestamp\": 5}\n{\"timestamp\": -1e3}\n");
  EXPECT_EQ(error_of(o), o.path +
                             ":2: key \"timestamp\": expected a non-negative number of "
                             "milliseconds, got -1e3");
  o.time_unit = TimeUnit::kDatetime;
  o.path = write("n2.csv", "timestamp\n1969-12-31 23:59:59\n");
  EXPECT_EQ(error_of(o), o.path +
                             ":2: column \"timestamp\": expected a datetime from 1970 on like "
                             "\"2023-11-16 18:15:46.68\", got \"1969-12-31 23:59:59\"");
}

// A gap of 1e9 s would tick the control loop a billion times: refused at once, naming both rows.
TEST_F(TraceTest, SpanBeyondThirtyOneDaysIsRefusedUnlessLimited) {
  TraceOptions o;
  o.time_unit = TimeUnit::kSeconds;
  o.path = write("gap.csv", "timestamp\n10\n1000000010\n20\n");
  EXPECT_EQ(error_of(o), o.path +
                             ":3: column \"timestamp\": this row comes 1000000000 s after the "
                             "earliest one (line 2); a workload spans at most 31 days (cut the "
                             "trace with a limit)");
  o.path = write("ok.csv", "timestamp\n0\n2678400\n");  // exactly 31 days
  EXPECT_EQ(load_trace(o).span, kMaxSpan);
  o.path = write("over.csv", "timestamp\n0\n2678400.000000001\n");
  EXPECT_NE(error_of(o).find(":3: column \"timestamp\": this row comes"), std::string::npos);
  // A limit cuts the far row away; a limit beyond the bound is refused itself.
  o.path = (dir_ / "gap.csv").string();
  o.limit = std::chrono::hours(1);
  EXPECT_EQ(arrivals(load_trace(o)), (std::vector<int64_t>{0, 10'000'000'000}));
  o.limit = kMaxSpan + std::chrono::hours(1);
  EXPECT_EQ(error_of(o), o.path + ": a limit of 745h is more than the 31 days a workload may span");
}

TEST_F(TraceTest, PerMinuteBeyondTheSpanOrWithAbsurdDurationsIsRefused) {
  TraceOptions o;
  o.format = TraceOptions::Format::kPerMinute;
  o.path = write("far.csv", "HashFunction,1,999999999\nf,1,1\n");
  EXPECT_EQ(error_of(o), o.path +
                             ":1: column \"999999999\": minute 999999999 is beyond the 44640 "
                             "minutes (31 days) a workload may span (cut the trace with a limit)");
  o.limit = std::chrono::hours(1);  // the far column is cut away (its draws still happen)
  const Trace t = load_trace(o);
  EXPECT_EQ(t.requests.size(), 1u);
  EXPECT_LT(t.span, std::chrono::minutes(1));

  o.limit = Duration{0};
  o.path = write("inv.csv", "HashFunction,1\nf,1\n");
  o.durations_path = write("run.csv",
                           "HashFunction,percentile_Average_0,percentile_Average_1,"
                           "percentile_Average_25,percentile_Average_50,percentile_Average_75,"
                           "percentile_Average_99,percentile_Average_100\n"
                           "f,1,2,3,4,5,6,1e15\n");
  EXPECT_EQ(error_of(o), o.durations_path +
                             ":2: column \"percentile_Average_100\": expected a number of "
                             "milliseconds from 0 to 8.64e+07, got \"1e15\"");
}

// Whatever a bad line holds, its error message stays short (the probe's 50 MB line was echoed
// whole). The other lines are 4 MB, to keep the test short.
TEST_F(TraceTest, AFiftyMegabyteLineGivesAShortMessage) {
  const std::string huge(50'000'000, 'x');
  const std::string big(4'000'000, 'x');
  TraceOptions o;
  o.time_unit = TimeUnit::kSeconds;
  auto expect_short = [&](const std::string& name, const std::string& content) {
    o.path = write(name, content);
    const std::string message = error_of(o);
    EXPECT_LT(message.size(), o.path.size() + 500) << message.substr(0, 1000);
  };
  expect_short("c.csv", "timestamp\n" + huge + "\n");
  expect_short("h.csv", "a," + big + "\n1,2\n");  // no column "timestamp": the names listed
  o.format = TraceOptions::Format::kPerMinute;
  expect_short("m.csv", "HashFunction,1\nf," + big + "\n");
  expect_short("m2.csv", "HashFunction," + big + "\nf,1\n");  // no minute columns: names listed
  o.format = TraceOptions::Format::kJsonl;
  expect_short("s.jsonl", "{\"timestamp\": \"" + big + "\n");  // unterminated string
  expect_short("v.jsonl", "{\"timestamp\": 1}\n{\"timestamp\": tru" + big + "}\n");
  expect_short("n.jsonl", "{\"timestamp\": 1" + big + "}\n");
  expect_short("k.jsonl", "{\"" + big + "\": 1}\n");  // no key "timestamp": the keys listed
}

}  // namespace
}  // namespace tide::sim
