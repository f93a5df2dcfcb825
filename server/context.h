// What the route files share: the registry of loaded models, the metrics, the model store, the
// Responses API's kept responses, the server's settings, and the helpers that answer errors in
// each API's shape.
#pragma once

#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "server/metrics.h"
#include "server/registry.h"
#include "server/response_store.h"
#include "server/server.h"
#include "store/blobs.h"
#include "store/model_store.h"

namespace lowbit::server {

struct Context {
  ServerParams params;
  Metrics metrics;
  ModelStore store;
  BlobStore blobs;  // uploads for /api/create's `files`, beside the store's models
  Registry registry;
  ResponseStore responses;  // the Responses API's kept responses
  Context(const ServerParams& p, Resolver resolver);
};

// The HTTP status for a library error, by its code (never by its message).
int status_of(const std::exception& e);
// The field a RequestError names, "" for other errors.
std::string field_of(const std::exception& e);

// {"error": "message"} with the status.
void ollama_error(httplib::Response& res, int status, const std::string& message);
// {"error": {"message", "type", "param", "code"}} with the status.
void openai_error(httplib::Response& res, int status, const std::string& message, const std::string& param,
                  const std::string& code = "");
// Answers the exception in the API's shape: 503 also says Retry-After.
void answer_exception(httplib::Response& res, const std::exception& e, bool openai);

void set_json(httplib::Response& res, const nlohmann::json& j, int status = 200);
// JSON text of a value that may hold invalid UTF-8 from a model (replaced, never thrown on).
std::string dump(const nlohmann::json& j);

// RFC 3339 time in UTC with nanoseconds, as Ollama writes created_at.
std::string rfc3339_now();
int64_t unix_now();
// An id as OpenAI spells them: "chatcmpl-...", "cmpl-...", "call_...", "resp_..." (unique in this
// process: the time and a counter).
std::string new_id(const char* prefix, char separator = '-');

void add_ollama_routes(httplib::Server& http, Context& ctx);
void add_openai_routes(httplib::Server& http, Context& ctx);
void add_store_routes(httplib::Server& http, Context& ctx);
void add_embed_routes(httplib::Server& http, Context& ctx);
void add_responses_routes(httplib::Server& http, Context& ctx);

}  // namespace lowbit::server
