#include "tide/agent/nvml.h"

#include <gtest/gtest.h>

namespace tide::agent {
namespace {

TEST(Nvml, AbsentLibraryMeansNoReadingsAndSaysWhy) {
  std::string why;
  EXPECT_EQ(Nvml::open("libnvidia-ml-that-is-not-here.so.1", why), nullptr);
  EXPECT_NE(why.find("cannot load"), std::string::npos) << why;
}

TEST(Nvml, ReadsUtilizationAndMemoryThroughDlopen) {
  std::string why;
  auto nvml = Nvml::open(FAKE_NVML, why);
  ASSERT_NE(nvml, nullptr) << why;
  EXPECT_EQ(nvml->device_count(), 2);
  const auto all = nvml->read({});
  ASSERT_EQ(all.size(), 2u);
  EXPECT_DOUBLE_EQ(all[0].utilization, 0.93);
  EXPECT_EQ(all[0].memory_used_bytes, 60ull << 30);
  EXPECT_EQ(all[0].memory_total_bytes, 80ull << 30);
  EXPECT_DOUBLE_EQ(all[1].utilization, 0.40);
  // Only the replica's own GPUs; a device that cannot be read is left out.
  const auto mine = nvml->read({1, 7});
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0].index, 1);
}

TEST(Nvml, VisibleDevicesFromCudaVisibleDevices) {
  EXPECT_EQ(visible_devices(nullptr), std::vector<int>{});
  EXPECT_EQ(visible_devices(""), std::vector<int>{});
  EXPECT_EQ(visible_devices("0,2"), (std::vector<int>{0, 2}));
  EXPECT_EQ(visible_devices("GPU-8f6b0b1e"), std::vector<int>{});  // UUIDs: read every device
  EXPECT_EQ(visible_devices("1,,2"), std::vector<int>{});
}

}  // namespace
}  // namespace tide::agent
