// The body's "model" as the gateway reads it for routing by model (POST /v1/...): find_model
// never throws or crashes, and agrees with nlohmann's DOM parser on the same text: a body the DOM
// parser refuses is refused (or stopped early for a reason of its own), one that is not an object
// is kNotObject, and a model found is the object's "model" string.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "tide/gateway/model_field.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using Kind = tide::gateway::ModelField::Kind;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const tide::gateway::ModelField f = tide::gateway::find_model(text);
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Early stops see only a prefix: the rest may be broken.
    if (f.kind == Kind::kFound || f.kind == Kind::kMissing) __builtin_trap();
    if (f.kind == Kind::kInvalidJson && f.value.empty()) __builtin_trap();  // says why
    return 0;
  }
  if (!j.is_object()) {
    if (f.kind != Kind::kNotObject) __builtin_trap();
    return 0;
  }
  if (!j.contains("model") && f.kind != Kind::kMissing) __builtin_trap();
  if (f.kind == Kind::kFound) {
    const auto& m = j["model"];
    if (!m.is_string() || m.get<std::string>() != f.value || f.value.empty()) __builtin_trap();
  }
  return 0;
}
