// Routing by model, as OpenAI's API does it: `POST /v1/chat/completions`, `/v1/completions`,
// `/v1/embeddings` (any POST under /v1/) name the model in the body's top-level "model" field, and
// the endpoint that lists that model (config `models:`) takes the request, body and target
// unchanged. `GET /v1/models` lists every model of every endpoint, also those at zero replicas.
// The gateway asks this only for requests neither the Tide-Endpoint header nor a path prefix
// routed. Plain code (no sockets, no Beast): gateway.cc writes the answers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tide/control/live_endpoint.h"
#include "tide/gateway/model_field.h"

namespace tide::gateway {

// How to go on with a request no header or prefix routed.
struct ModelRoute {
  // Set: forward the request there, target and body unchanged.
  control::LiveEndpoint* endpoint = nullptr;
  // Else, when not 0, the gateway's own answer (JSON in OpenAI's shape): the model list, 400 for
  // a body without a usable model, 404 for a model no endpoint serves. 0: not an OpenAI path
  // (the gateway's unknown-endpoint answer).
  unsigned status = 0;
  std::string body;
};

// `created`: the Unix time /v1/models gives as each model's "created" (the gateway's start).
ModelRoute route_by_model(std::string_view method, std::string_view target, std::string_view body,
                          const std::vector<control::LiveEndpoint*>& endpoints, int64_t created);

}  // namespace tide::gateway
