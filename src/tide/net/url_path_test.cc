#include "tide/net/url_path.h"

#include <gtest/gtest.h>

namespace tide::net {
namespace {

TEST(PercentDecode, DecodesEscapesAndRefusesBrokenOnes) {
  EXPECT_EQ(percent_decode("qwen%2Fcoder:7b"), "qwen/coder:7b");
  EXPECT_EQ(percent_decode("a%20b%2fc%3F"), "a b/c?");
  EXPECT_EQ(percent_decode("plain-model_1.2"), "plain-model_1.2");
  EXPECT_EQ(percent_decode("a+b"), "a+b");  // '+' is a space only in a query
  EXPECT_EQ(percent_decode(""), "");
  EXPECT_EQ(percent_decode("%00"), std::string(1, '\0'));
  EXPECT_EQ(percent_decode("50%"), std::nullopt);
  EXPECT_EQ(percent_decode("%2"), std::nullopt);
  EXPECT_EQ(percent_decode("%zz"), std::nullopt);
  EXPECT_EQ(percent_decode("%-1x"), std::nullopt);
}

}  // namespace
}  // namespace tide::net
