#include "tide/gateway/model_field.h"

#include <nlohmann/json.hpp>

#include "tide/common/text.h"

namespace tide::gateway {

namespace {

using json = nlohmann::json;
using Kind = ModelField::Kind;

// Follows the parse's events and keeps the value of "model" at depth 1 of the top object; stops
// the parse (returns false) as soon as the answer cannot change any more.
class ModelSax {
 public:
  ModelField result;

  bool null() { return scalar(); }
  bool boolean(bool) { return scalar(); }
  bool number_integer(json::number_integer_t) { return scalar(); }
  bool number_unsigned(json::number_unsigned_t) { return scalar(); }
  bool number_float(json::number_float_t, const json::string_t&) { return scalar(); }
  bool binary(json::binary_t&) { return scalar(); }
  bool string(json::string_t& s) {
    if (depth_ != 1 || !at_model_) return scalar();
    at_model_ = false;
    if (s.empty()) return stop(Kind::kNotString);
    if (found_) return stop(Kind::kDuplicate);
    found_ = true;
    result.value = std::move(s);
    return true;
  }
  bool start_object(std::size_t) { return open(); }
  bool start_array(std::size_t) { return depth_ == 0 ? stop(Kind::kNotObject) : open(); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(json::string_t& k) {
    at_model_ = depth_ == 1 && k == "model";
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    std::string_view why = e.what();
    if (const size_t at = why.find("] "); at != std::string_view::npos) why.remove_prefix(at + 2);
    result.value = clip(why);
    return stop(Kind::kInvalidJson);
  }

  // After a complete parse: what was found.
  void finish() {
    if (!stopped_) result.kind = found_ ? Kind::kFound : Kind::kMissing;
  }

 private:
  bool scalar() {
    if (depth_ == 0) return stop(Kind::kNotObject);
    if (depth_ == 1 && at_model_) return stop(Kind::kNotString);
    return true;
  }
  bool open() {
    if (depth_ == 1 && at_model_) return stop(Kind::kNotString);
    ++depth_;
    return true;
  }
  bool close() {
    --depth_;
    return true;
  }
  bool stop(Kind kind) {
    stopped_ = true;
    result.kind = kind;
    if (kind != Kind::kInvalidJson) result.value.clear();
    return false;
  }

  int depth_ = 0;
  bool at_model_ = false;
  bool found_ = false;
  bool stopped_ = false;
};

}  // namespace

ModelField find_model(std::string_view body) {
  ModelSax sax;
  json::sax_parse(body.data(), body.data() + body.size(), &sax);
  sax.finish();
  return std::move(sax.result);
}

}  // namespace tide::gateway
