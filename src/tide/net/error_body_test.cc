#include "tide/net/error_body.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace tide::net {
namespace {

TEST(ErrorBody, TypeAndMessage) {
  EXPECT_EQ(error_body("not_found", "no such endpoint"),
            R"({"error":{"message":"no such endpoint","type":"not_found"}})");
}

TEST(ErrorBody, BytesThatAreNotUtf8AreReplaced) {
  const auto j = nlohmann::json::parse(error_body("bad_request", "bad \xff byte"));
  EXPECT_EQ(j["error"]["message"], "bad \xEF\xBF\xBD byte");
}

}  // namespace
}  // namespace tide::net
