#include "tide/gateway/model_route.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "tide/common/text.h"
#include "tide/net/error_body.h"

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

constexpr std::string_view kInvalidRequest = "invalid_request_error";

ModelRoute answer(unsigned status, std::string body) {
  ModelRoute r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// Every model of every endpoint, "a, b, c" (bounded).
std::string model_names(const std::vector<control::LiveEndpoint*>& endpoints) {
  std::string names;
  for (const control::LiveEndpoint* ep : endpoints) {
    for (const std::string& m : ep->spec().models) names += (names.empty() ? "" : ", ") + m;
  }
  return clip(names.empty() ? std::string("none") : names, 1000);
}

json model_json(const std::string& id, int64_t created) {
  return {{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "tide"}};
}

// GET /v1/models (`id` empty) or /v1/models/{id}.
ModelRoute list_models(std::string_view id, const std::vector<control::LiveEndpoint*>& endpoints,
                       int64_t created) {
  json data = json::array();
  for (const control::LiveEndpoint* ep : endpoints) {
    for (const std::string& m : ep->spec().models) {
      if (!id.empty() && m == id) return answer(200, model_json(m, created).dump());
      data.push_back(model_json(m, created));
    }
  }
  if (!id.empty())
    return answer(404,
                  net::openai_error_body(kInvalidRequest,
                                         fmt::format("The model `{}` does not exist; models: {}",
                                                     clip(id), model_names(endpoints)),
                                         "model", "model_not_found"));
  return answer(200, json{{"object", "list"}, {"data", std::move(data)}}.dump());
}

// 400 for a body whose model cannot be read.
ModelRoute refuse_field(const ModelField& f) {
  std::string message;
  std::string_view code = "invalid_model";
  switch (f.kind) {
    case Kind::kMissing:
      message = "you must provide a model parameter (the body has no top-level \"model\")";
      code = "missing_model";
      break;
    case Kind::kNotString:
      message = "\"model\" must be a non-empty string";
      break;
    case Kind::kDuplicate:
      message = "\"model\" is given twice";
      break;
    case Kind::kNotObject:
      message = "the request body must be a JSON object";
      code = "invalid_json";
      break;
    case Kind::kInvalidJson:
    case Kind::kFound:
      message = fmt::format("the request body is not valid JSON: {}", f.value);
      code = "invalid_json";
      break;
  }
  return answer(400, net::openai_error_body(kInvalidRequest, message,
                                            code == "invalid_json" ? "" : "model", code));
}

// POST /v1/...: the endpoint serving the body's model.
ModelRoute route_post(std::string_view body, const std::vector<control::LiveEndpoint*>& endpoints) {
  const ModelField f = find_model(body);
  if (f.kind != Kind::kFound) return refuse_field(f);
  for (control::LiveEndpoint* ep : endpoints) {
    if (config::serves_model(ep->spec(), f.value)) {
      ModelRoute r;
      r.endpoint = ep;
      return r;
    }
  }
  return answer(404, net::openai_error_body(kInvalidRequest,
                                            fmt::format("The model `{}` does not exist; models: {}",
                                                        clip(f.value), model_names(endpoints)),
                                            "model", "model_not_found"));
}

}  // namespace

ModelField find_model(std::string_view body) {
  ModelSax sax;
  json::sax_parse(body.data(), body.data() + body.size(), &sax);
  sax.finish();
  return std::move(sax.result);
}

ModelRoute route_by_model(std::string_view method, std::string_view target, std::string_view body,
                          const std::vector<control::LiveEndpoint*>& endpoints, int64_t created) {
  std::string_view path = target.substr(0, target.find('?'));
  if (!path.starts_with("/v1/")) return {};
  constexpr std::string_view kModels = "/v1/models";
  if (method == "GET" && path == kModels) return list_models({}, endpoints, created);
  if (method == "GET" && path.starts_with(kModels) && path.size() > kModels.size() + 1 &&
      path[kModels.size()] == '/')
    return list_models(path.substr(kModels.size() + 1), endpoints, created);
  if (method == "POST") return route_post(body, endpoints);
  return answer(404, net::openai_error_body(
                         kInvalidRequest,
                         fmt::format("Unknown request URL: {} {} (tide routes POST /v1/... by "
                                     "their \"model\", and GET /v1/models)",
                                     clip(method, 16), clip(path)),
                         "", "unknown_url"));
}

}  // namespace tide::gateway
