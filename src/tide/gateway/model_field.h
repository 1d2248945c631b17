// The top-level "model" of an OpenAI request body, which routing by model (model_route.h) reads.
// Plain code on nlohmann's SAX parser; depends on nothing else of tide but text.h (fuzz/ links it
// alone).
#pragma once

#include <string>
#include <string_view>

namespace tide::gateway {

// The top-level "model" of a JSON request body. The whole body is parsed (nlohmann's SAX
// parser: no tree is built, nesting costs no stack), so that a "model" inside "messages" never
// matches, escapes are decoded, and a body the replica could not read either is refused here.
struct ModelField {
  enum class Kind {
    kFound,        // `value` is the model
    kMissing,      // a JSON object without "model"
    kNotString,    // "model" is not a string, or is empty
    kDuplicate,    // "model" twice: which one would the replica take?
    kNotObject,    // valid JSON, but not an object
    kInvalidJson,  // `value` says why
  };
  Kind kind = Kind::kMissing;
  std::string value;
};
ModelField find_model(std::string_view body);

}  // namespace tide::gateway
