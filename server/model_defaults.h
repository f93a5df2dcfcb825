// A stored model's defaults (store/model_store.h ModelDefaults: Ollama's Modelfile SYSTEM and
// PARAMETER) on a generation request, where the client said nothing itself, as Ollama applies
// them: on the Ollama routes each parameter the request's options do not hold, and the system
// message when the request has none; on the OpenAI routes each parameter the request has no field
// for (top_k, min_p, repeat_penalty, repeat_last_n, num_ctx) or did not send (temperature, top_p,
// seed, stop, num_predict as max_tokens, the penalties), and the system message likewise.
//
// Thread safety: free functions over their arguments only.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "server/request.h"
#include "store/model_store.h"

namespace lowbit::server {

// Checks parameters as the Ollama routes check options (names and values), for /api/create and
// `lowbit create`: a RequestError(400) naming "parameters.NAME" on a name lowbit does not know
// or a value out of range.
void check_parameters(const nlohmann::ordered_json& parameters, int64_t max_ctx);

// Applies d to r, which r's route parsed from body.
void apply_defaults(const ModelDefaults& d, const nlohmann::ordered_json& body, int64_t max_ctx,
                    GenerationRequest& r);

// The parameters as Ollama's /api/show writes them: one "NAME VALUE" line each (a string value
// quoted, each stop string on a line of its own).
std::string parameters_text(const nlohmann::ordered_json& parameters);

}  // namespace lowbit::server
