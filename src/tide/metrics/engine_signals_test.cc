#include "tide/metrics/engine_signals.h"

#include <gtest/gtest.h>

#include <array>
#include <fstream>
#include <sstream>
#include <string>

namespace tide::metrics {
namespace {

constexpr size_t kCap = 1 << 20;

// A page of tests/data/engine_metrics (see its README for where the names come from).
std::string page(const std::string& name) {
  std::ifstream in(std::string(TIDE_SOURCE_DIR) + "/tests/data/engine_metrics/" + name);
  std::stringstream s;
  s << in.rdbuf();
  EXPECT_FALSE(s.str().empty()) << name;
  return s.str();
}

TEST(EngineSignalsTest, VllmPageSumsEnginesAndAveragesKvCache) {
  const EngineScan scan = read_engine_signals(page("vllm.txt"), EngineKind::kVllm, kCap);
  ASSERT_TRUE(scan.signals) << scan.error;
  EXPECT_EQ(scan.signals->running, 26.0);  // 14 + 12 over engines 0 and 1
  EXPECT_EQ(scan.signals->waiting, 5.0);
  EXPECT_DOUBLE_EQ(*scan.signals->kv_cache, 0.75);  // mean of 0.8125 and 0.6875
}

TEST(EngineSignalsTest, NewerVllmNamesItsKvGaugeKvCacheUsage) {
  const EngineScan scan =
      read_engine_signals(page("vllm_kv_cache_usage.txt"), EngineKind::kVllm, kCap);
  ASSERT_TRUE(scan.signals) << scan.error;
  EXPECT_EQ(scan.signals->running, 1.0);
  EXPECT_EQ(scan.signals->waiting, 0.0);
  EXPECT_NEAR(*scan.signals->kv_cache, 0.00347, 1e-5);
}

TEST(EngineSignalsTest, TgiPageHasQueueAndBatchButNoKvCache) {
  const EngineScan scan = read_engine_signals(page("tgi.txt"), EngineKind::kTgi, kCap);
  ASSERT_TRUE(scan.signals) << scan.error;
  EXPECT_EQ(scan.signals->running, 32.0);
  EXPECT_EQ(scan.signals->waiting, 7.0);
  EXPECT_FALSE(scan.signals->kv_cache);
}

TEST(EngineSignalsTest, SglangPage) {
  const EngineScan scan = read_engine_signals(page("sglang.txt"), EngineKind::kSglang, kCap);
  ASSERT_TRUE(scan.signals) << scan.error;
  EXPECT_EQ(scan.signals->running, 21.0);
  EXPECT_EQ(scan.signals->waiting, 4.0);
  EXPECT_DOUBLE_EQ(*scan.signals->kv_cache, 0.28);
}

TEST(EngineSignalsTest, TheWrongKindIsAnErrorNamingTheMissingFamilies) {
  const EngineScan scan = read_engine_signals(page("tgi.txt"), EngineKind::kVllm, kCap);
  EXPECT_FALSE(scan.signals);
  EXPECT_NE(scan.error.find("vllm:num_requests_waiting"), std::string::npos) << scan.error;
}

TEST(EngineSignalsTest, OversizePageIsRefusedWithTheLimit) {
  const std::string p = page("vllm.txt");
  const EngineScan scan = read_engine_signals(p, EngineKind::kVllm, p.size() - 1);
  EXPECT_FALSE(scan.signals);
  EXPECT_NE(scan.error.find("over the limit of " + std::to_string(p.size() - 1)), std::string::npos)
      << scan.error;
  EXPECT_TRUE(read_engine_signals(p, EngineKind::kVllm, p.size()).signals);
}

TEST(EngineSignalsTest, OutOfRangeValuesAreRefused) {
  EXPECT_FALSE(
      read_engine_signals("vllm:num_requests_waiting -1\n", EngineKind::kVllm, kCap).signals);
  EXPECT_FALSE(read_engine_signals("vllm:num_requests_waiting 1\nvllm:kv_cache_usage_perc 1.5\n",
                                   EngineKind::kVllm, kCap)
                   .signals);
}

TEST(EngineSignalsTest, ScanToleratesOddLinesAndQuotedBraces) {
  const std::array<std::string_view, 2> families{"a", "b:c"};
  const std::string text =
      "# a comment\n"
      "# TYPE a gauge\n"
      "\n"
      "a 1\r\n"
      "a{x=\"}\\\"{,\"} 2 1712345678000\n"  // a label value with a brace, a quote, a comma
      "a{x=\"y\"} NaN\n"                    // not finite: left out
      "a{x=\"z\"} +Inf\n"
      "a{x=\"never closed} 5\n"  // no closing brace: not a sample
      "a5\n"                     // another family's name
      "a  \n"                    // no value
      "a 1e400\n"                // out of range
      "ab 100\n"                 // another family
      "   b:c{} 4\n"
      "{x=\"1\"} 9\n"  // no name
      "b:c 0x10\n"     // not a number Prometheus writes
      "unknown_family{bad 7\n"
      "a 3";  // no newline at the end
  const PrometheusScan scan = scan_prometheus(text, families, kCap);
  ASSERT_TRUE(scan.error.empty()) << scan.error;
  EXPECT_EQ(scan.totals[0].sum, 6.0);  // 1 + 2 + 3
  EXPECT_EQ(scan.totals[0].series, 3);
  EXPECT_EQ(scan.totals[1].sum, 4.0);
  EXPECT_EQ(scan.totals[1].series, 1);
  EXPECT_EQ(scan.skipped, 7);
}

TEST(EngineSignalsTest, NulBytesAreNotText) {
  const std::array<std::string_view, 1> families{"a"};
  EXPECT_FALSE(scan_prometheus(std::string("a 1\n\0", 5), families, kCap).error.empty());
}

TEST(EngineSignalsTest, EnginePageReadsBackForEveryKind) {
  const EngineSignals s{.running = 3, .waiting = 2, .kv_cache = 0.375};
  for (EngineKind k : {EngineKind::kVllm, EngineKind::kSglang}) {
    const std::string text = engine_page(k, s, "org/model \"q\"");
    const EngineScan scan = read_engine_signals(text, k, kCap);
    ASSERT_TRUE(scan.signals) << scan.error << "\n" << text;
    EXPECT_EQ(*scan.signals, s) << text;
  }
  // TGI exports no KV-cache gauge.
  const EngineScan tgi =
      read_engine_signals(engine_page(EngineKind::kTgi, s, "m"), EngineKind::kTgi, kCap);
  ASSERT_TRUE(tgi.signals) << tgi.error;
  EXPECT_EQ(tgi.signals->waiting, 2.0);
  EXPECT_FALSE(tgi.signals->kv_cache);
}

TEST(EngineSignalsTest, KindNames) {
  for (EngineKind k : {EngineKind::kVllm, EngineKind::kTgi, EngineKind::kSglang})
    EXPECT_EQ(engine_kind(engine_kind_name(k)), k);
  EXPECT_FALSE(engine_kind("triton"));
}

}  // namespace
}  // namespace tide::metrics
