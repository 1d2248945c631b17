#include "tide/gateway/model_route.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "tide/common/text.h"
#include "tide/net/error_body.h"
#include "tide/net/url_path.h"

namespace tide::gateway {

namespace {

using json = nlohmann::json;
using Kind = ModelField::Kind;

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

// GET /v1/models/{id}: the id comes percent-encoded (the SDKs encode the '/' of "org/model").
ModelRoute one_model(std::string_view encoded, const std::vector<control::LiveEndpoint*>& endpoints,
                     int64_t created) {
  const std::optional<std::string> id = net::percent_decode(encoded);
  if (!id || id->empty())
    return answer(400, net::openai_error_body(
                           kInvalidRequest,
                           fmt::format("the model in the path, `{}`, is not a percent-encoded "
                                       "model name",
                                       clip(encoded)),
                           "model", "invalid_model"));
  return list_models(*id, endpoints, created);
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

ModelRoute route_by_model(std::string_view method, std::string_view target, std::string_view body,
                          const std::vector<control::LiveEndpoint*>& endpoints, int64_t created) {
  std::string_view path = target.substr(0, target.find('?'));
  if (!path.starts_with("/v1/")) return {};
  constexpr std::string_view kModels = "/v1/models";
  if (method == "GET" && path == kModels) return list_models({}, endpoints, created);
  if (method == "GET" && path.starts_with(kModels) && path.size() > kModels.size() + 1 &&
      path[kModels.size()] == '/')
    return one_model(path.substr(kModels.size() + 1), endpoints, created);
  if (method == "POST") return route_post(body, endpoints);
  return answer(404, net::openai_error_body(
                         kInvalidRequest,
                         fmt::format("Unknown request URL: {} {} (tide routes POST /v1/... by "
                                     "their \"model\", and GET /v1/models)",
                                     clip(method, 16), clip(path)),
                         "", "unknown_url"));
}

}  // namespace tide::gateway
