#include "tide/gateway/model_field.h"

#include <gtest/gtest.h>

#include <string>

namespace tide::gateway {
namespace {

using Kind = ModelField::Kind;

TEST(FindModel, TheTopLevelModelIsFoundWhereverItStands) {
  EXPECT_EQ(find_model(R"({"model": "chat", "prompt": "hi"})").value, "chat");
  const ModelField last = find_model(
      R"({"messages": [{"role": "user", "content": "hi"}], "stream": true, "model": "m/x:7b"})");
  EXPECT_EQ(last.kind, Kind::kFound);
  EXPECT_EQ(last.value, "m/x:7b");
}

TEST(FindModel, NestedModelKeysDoNotMatch) {
  // Only the one of the top object counts, before or after nested ones.
  EXPECT_EQ(find_model(R"({"messages": [{"model": "evil"}], "model": "chat"})").value, "chat");
  EXPECT_EQ(find_model(R"({"model": "chat", "tools": {"model": {"model": "evil"}}})").value,
            "chat");
  EXPECT_EQ(find_model(R"({"messages": [{"role": "user", "model": "evil"}]})").kind,
            Kind::kMissing);
  EXPECT_EQ(find_model(R"({"metadata": {"model": "evil"}})").kind, Kind::kMissing);
}

TEST(FindModel, EscapedStringsAreDecodedAndQuotedTextIsNoKey) {
  // A "model" inside a string value is text, not a key.
  EXPECT_EQ(find_model(R"({"prompt": "\"model\": \"evil\"", "model": "chat"})").value, "chat");
  EXPECT_EQ(find_model(R"({"prompt": "say \"model\": \"evil\"\\"})").kind, Kind::kMissing);
  // Escapes in the key and in the value are decoded as JSON says.
  EXPECT_EQ(find_model(R"({"mod\u0065l": "ch\u0061t\/v1"})").value, "chat/v1");
  EXPECT_EQ(find_model(R"({"model": "\u00e9t\u00e9"})").value, "\xC3\xA9t\xC3\xA9");
  // A lone surrogate is no character: refused.
  EXPECT_EQ(find_model(R"({"model": "\ud800"})").kind, Kind::kInvalidJson);
}

TEST(FindModel, BodiesWithoutAUsableModelSayWhy) {
  EXPECT_EQ(find_model(R"({"prompt": "hi"})").kind, Kind::kMissing);
  EXPECT_EQ(find_model("{}").kind, Kind::kMissing);
  EXPECT_EQ(find_model(R"({"model": 7})").kind, Kind::kNotString);
  EXPECT_EQ(find_model(R"({"model": null})").kind, Kind::kNotString);
  EXPECT_EQ(find_model(R"({"model": ["chat"]})").kind, Kind::kNotString);
  EXPECT_EQ(find_model(R"({"model": {"id": "chat"}})").kind, Kind::kNotString);
  EXPECT_EQ(find_model(R"({"model": ""})").kind, Kind::kNotString);
  EXPECT_EQ(find_model(R"({"model": "a", "model": "b"})").kind, Kind::kDuplicate);
  EXPECT_EQ(find_model(R"(["model", "chat"])").kind, Kind::kNotObject);
  EXPECT_EQ(find_model(R"("chat")").kind, Kind::kNotObject);
  const ModelField bad = find_model(R"({"model": "chat",)");
  EXPECT_EQ(bad.kind, Kind::kInvalidJson);
  EXPECT_NE(bad.value.find("parse error"), std::string::npos) << bad.value;
  EXPECT_EQ(find_model("").kind, Kind::kInvalidJson);
  EXPECT_EQ(find_model(R"({"model": "chat"} trailing)").kind, Kind::kInvalidJson);
  EXPECT_EQ(find_model("{\"model\": \"\xff\"}").kind, Kind::kInvalidJson);
}

TEST(FindModel, AHugeBodyIsParsedWithoutStackOrTreeAndItsMessageIsBounded) {
  // 8 MiB of prompt before the model.
  std::string body = R"({"messages": [{"role": "user", "content": ")";
  body += std::string(8 << 20, 'x');
  body += R"("}], "model": "chat"})";
  EXPECT_EQ(find_model(body).value, "chat");
  // Deep nesting costs no stack (the parser keeps its depth in a bit vector).
  const std::string deep =
      R"({"messages": )" + std::string(1 << 20, '[') + std::string(1 << 20, ']') + "}";
  EXPECT_EQ(find_model(deep).kind, Kind::kMissing);
  // A huge broken body: the reason is clipped.
  const ModelField cut = find_model(R"({"model": ")" + std::string(1 << 20, 'y'));
  EXPECT_EQ(cut.kind, Kind::kInvalidJson);
  EXPECT_LT(cut.value.size(), 400u);
}

}  // namespace
}  // namespace tide::gateway
