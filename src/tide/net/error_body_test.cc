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

TEST(ErrorBody, OpenAiShapeHasParamAndCodeNullWhereEmpty) {
  const auto j = nlohmann::json::parse(
      openai_error_body("invalid_request_error", "no model x", "model", "model_not_found"));
  EXPECT_EQ(j, nlohmann::json::parse(R"({"error": {"message": "no model x", "type":
      "invalid_request_error", "param": "model", "code": "model_not_found"}})"));
  const auto bare = nlohmann::json::parse(openai_error_body("invalid_request_error", "m", "", ""));
  EXPECT_TRUE(bare["error"]["param"].is_null());
  EXPECT_TRUE(bare["error"]["code"].is_null());
}

}  // namespace
}  // namespace tide::net
