#include "tide/sim/arrivals.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace tide::sim {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::vector<double> times(RequestSource& s) {
  std::vector<double> out;
  for (const auto& r : collect(s).requests) out.push_back(to_seconds(r.arrival));
  return out;
}

void expect_sorted_within(const std::vector<double>& t, double end) {
  for (size_t i = 0; i < t.size(); ++i) {
    ASSERT_GE(t[i], 0);
    ASSERT_LT(t[i], end);
    if (i > 0) {
      ASSERT_LE(t[i - 1], t[i]);
    }
  }
}

double gap_cv(const std::vector<double>& t) {
  double sum = 0, sq = 0;
  const double n = static_cast<double>(t.size() - 1);
  for (size_t i = 1; i < t.size(); ++i) sum += t[i] - t[i - 1];
  const double mean = sum / n;
  for (size_t i = 1; i < t.size(); ++i) sq += (t[i] - t[i - 1] - mean) * (t[i] - t[i - 1] - mean);
  return std::sqrt(sq / n) / mean;
}

TEST(MmppSourceTest, MeanRateFollowsTheShareOfTimeOn) {
  MmppSource s({10, 0, 1min, 1min}, 100h, 7);
  const auto t = times(s);
  expect_sorted_within(t, 100 * 3600);
  // Half the time on at 10/s: 5/s on average.
  EXPECT_NEAR(static_cast<double>(t.size()) / (100 * 3600), 5.0, 0.5);
  // On/off makes gaps far more variable than Poisson (CV 1).
  EXPECT_GT(gap_cv(t), 1.5);
}

TEST(MmppSourceTest, DeterministicForASeedAndRewinds) {
  MmppSource a({5, 0.1, 30s, 5min}, 2h, 1), b({5, 0.1, 30s, 5min}, 2h, 1),
      c({5, 0.1, 30s, 5min}, 2h, 2);
  const auto ta = times(a);
  EXPECT_EQ(ta, times(b));
  EXPECT_NE(ta, times(c));
  EXPECT_EQ(ta, times(a));  // collect() rewinds
}

TEST(BatchSourceTest, FixedPeriodGivesWholeBatchesWithinTheSpread) {
  BatchSource s({40, 1s, 3min, false}, 1h, 3);
  const auto t = times(s);
  expect_sorted_within(t, 3600);
  // Batches at 3, 6, ... 57 minutes: 19 batches of 40.
  ASSERT_EQ(t.size(), 19u * 40);
  for (size_t i = 0; i < t.size(); ++i) {
    const double start = 180.0 * static_cast<double>(i / 40 + 1);
    EXPECT_GE(t[i], start);
    EXPECT_LT(t[i], start + 1);
  }
}

TEST(BatchSourceTest, RandomGapsKeepTheMeanPeriod) {
  BatchSource s({10, 500ms, 1min, true}, 200h, 4);
  const auto t = times(s);
  expect_sorted_within(t, 200 * 3600);
  EXPECT_NEAR(static_cast<double>(t.size()) / 10 / 200, 60.0, 3.0);  // batches per hour
}

TEST(PiecewisePoissonSourceTest, StepUpStays) {
  PiecewisePoissonSource s({{0s, 1}, {1h, 4}}, 3h, 5);
  const auto t = times(s);
  expect_sorted_within(t, 3 * 3600);
  const auto before = std::count_if(t.begin(), t.end(), [](double x) { return x < 3600; });
  const auto after = static_cast<long>(t.size()) - before;
  EXPECT_NEAR(static_cast<double>(before), 3600, 4 * 60);
  EXPECT_NEAR(static_cast<double>(after), 4 * 7200, 4 * 170);
}

ClientWindows client(std::vector<ClientWindow> w) { return {"test", std::move(w)}; }

TEST(ClientWindowSourceTest, KeepsEachWindowsRateAndTheFittedBurstiness) {
  // Gamma shape 0.25: gaps with CV 2. The fitted scale is off on purpose (mean 0.25 s, not
  // 1 / rate = 2 s): the source keeps the measured rate.
  std::vector<ClientWindow> w;
  for (int i = 0; i < 200; ++i)
    w.push_back({i * kClientWindowS, 0.5, ClientWindow::Dist::kGamma, 0.25, 1.0});
  ClientWindowSource s({client(w)}, 1.0, 200 * 600s, 6);
  const auto t = times(s);
  expect_sorted_within(t, 200 * 600);
  EXPECT_NEAR(static_cast<double>(t.size()) / (200 * 600), 0.5, 0.05);
  EXPECT_NEAR(gap_cv(t), 2.0, 0.3);
  EXPECT_NEAR(mean_rate({client(w)}, 200 * 600s), 0.5, 1e-12);
}

TEST(ClientWindowSourceTest, ScalesTheRateAndMergesClients) {
  std::vector<ClientWindow> weibull, silent_then_poisson;
  for (int i = 0; i < 100; ++i) {
    weibull.push_back({i * kClientWindowS, 2.0, ClientWindow::Dist::kWeibull, 0.5, 3.0});
    silent_then_poisson.push_back(
        {i * kClientWindowS, i < 50 ? 0.0 : 1.0, ClientWindow::Dist::kNone, 0, 0});
  }
  ClientWindowSource s({client(weibull), client(silent_then_poisson)}, 0.1, 100 * 600s, 7);
  const auto t = times(s);
  expect_sorted_within(t, 100 * 600);
  // (2 + 0.5 x 1) x 0.1 per second.
  EXPECT_NEAR(static_cast<double>(t.size()) / (100 * 600), 0.25, 0.025);
  ClientWindowSource again({client(weibull), client(silent_then_poisson)}, 0.1, 100 * 600s, 7);
  EXPECT_EQ(t, times(again));
}

// ----- the archive ---------------------------------------------------------------------------

std::string tar_member(const std::string& name, const std::string& body) {
  std::string h(512, '\0');
  h.replace(0, name.size(), name);
  const std::string size = fmt::format("{:011o}", body.size());
  h.replace(124, size.size(), size);
  h[156] = '0';
  h.replace(257, 5, "ustar");
  std::string padded = body;
  padded.resize((body.size() + 511) / 512 * 512, '\0');
  return h + padded;
}

class ClientArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tide_arrivals_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& tar) {
    const std::string path = (dir_ / "t.tar").string();
    std::ofstream(path, std::ios::binary) << tar << std::string(1024, '\0');
    return path;
  }
  fs::path dir_;
};

TEST_F(ClientArchiveTest, ReadsTheClientsOfOneModelInChunkOrder) {
  const std::string path = write(
      tar_member("data/reason/r1/chunk-10-trace.csv", "0,0,0,,0,0\n600,0.5,2.0,Gamma,0.25,8\n") +
      tar_member("data/reason/r1/chunk-2-trace.csv", "0,1.5,1.1,Weibull,0.9,0.7\r\n") +
      tar_member("data/language/m1/chunk-0-trace.csv", "0,3,1,,0,0\n"));
  const auto clients = load_client_windows(path, "r1");
  ASSERT_EQ(clients.size(), 2u);
  EXPECT_NE(clients[0].name.find("chunk-2-"), std::string::npos);
  ASSERT_EQ(clients[1].windows.size(), 2u);
  EXPECT_EQ(clients[1].windows[1].dist, ClientWindow::Dist::kGamma);
  EXPECT_DOUBLE_EQ(clients[1].windows[1].shape, 0.25);
  EXPECT_EQ(clients[0].windows[0].dist, ClientWindow::Dist::kWeibull);
}

TEST_F(ClientArchiveTest, NamesTheMemberAndLineOfABadRow) {
  auto error_of = [&](const std::string& body, const std::string& model = "r1") {
    try {
      load_client_windows(write(tar_member("data/reason/r1/chunk-0-trace.csv", body)), model);
    } catch (const TraceError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(
      error_of("0,1,1,,0,0\n600,x,1,,0,0\n").find("chunk-0-trace.csv:2: a field is not a number"),
      std::string::npos);
  EXPECT_NE(error_of("0,1,1,Pareto,1,1\n").find("unknown distribution \"Pareto\""),
            std::string::npos);
  EXPECT_NE(error_of("0,1,1,Gamma,0,1\n").find("shape must be"), std::string::npos);
  EXPECT_NE(error_of("0,1,1\n").find("expected 6 fields, got 3"), std::string::npos);
  EXPECT_NE(error_of("600,1,1,,0,0\n0,1,1,,0,0\n").find(":2: window starts must increase"),
            std::string::npos);
  EXPECT_NE(
      error_of("0,1,1,,0,0\n", "m-mid").find("no client files of model \"m-mid\" (models: r1)"),
      std::string::npos);
  EXPECT_NE(error_of("0,-1,1,,0,0\n").find("out of range"), std::string::npos);
}

TEST_F(ClientArchiveTest, RejectsATruncatedArchive) {
  const std::string member = tar_member("data/reason/r1/chunk-0-trace.csv", std::string(2000, '1'));
  const std::string path = (dir_ / "cut.tar").string();
  std::ofstream(path, std::ios::binary) << member.substr(0, 1024);
  EXPECT_THROW(load_client_windows(path, "r1"), TraceError);
  EXPECT_THROW(load_client_windows((dir_ / "missing.tar.zst").string(), "r1"), TraceError);
}

TEST(ClientArchiveRealTest, ReadsServeGen) {
  const std::string root = TIDE_SOURCE_DIR;  // the repository root (src/tide/sim/CMakeLists.txt)
  const std::string archive = find_trace_file("servegen_client_window_traces.tar.zst", root);
  if (archive.empty()) GTEST_SKIP() << "servegen_client_window_traces.tar.zst not found";
  const auto r1 = load_client_windows(archive, "deepseek-r1");
  EXPECT_EQ(r1.size(), 73u);
  // The README's figure: deepseek-r1 sums to 16 requests/s on average over its day.
  EXPECT_NEAR(mean_rate(r1, 24h), 16.0, 0.5);
  ClientWindowSource s(r1, 0.05, 2h, 1);
  const Trace t = collect(s);
  EXPECT_GT(t.requests.size(), 0u);
}

}  // namespace
}  // namespace tide::sim
