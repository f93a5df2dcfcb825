// The server's requests as plain structs: JSON bodies of the Ollama and OpenAI routes parsed and
// checked here, before anything touches a model, so every mistake is answered with a 4xx whose
// message names the field at fault ("options.num_predict must be >= -2, got -5").
//
// What needs the model (the prompt's length in tokens against the context, a chat template's own
// refusal) is checked later, by the routes, with the same RequestError.
//
// Thread safety: free functions over their arguments only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/json_schema.h"
#include "runtime/sampler.h"

namespace lowbit::server {

// A request the client got wrong (or cannot have now): the HTTP status to answer with, the field
// at fault in the dotted form the client wrote it ("options.num_ctx", "messages[2].content"; ""
// when it is the request as a whole) and a one-line message that names it.
// text with its control characters written as escapes ("\n", "\x01"): a request's own bytes
// quoted in a message keep it one line (a log line, an error field).
std::string one_line(const std::string& text);

class RequestError : public std::runtime_error {
 public:
  RequestError(int status, const std::string& field, const std::string& message)
      : std::runtime_error(one_line(message)), status_(status), field_(one_line(field)) {}
  int status() const { return status_; }
  const std::string& field() const { return field_; }

 private:
  int status_;
  std::string field_;
};

// How long a model stays loaded after its last request (Ollama's keep_alive).
struct KeepAlive {
  bool given = false;     // absent: the server's default
  bool forever = false;   // a negative duration
  double seconds = 0;     // when not forever; 0 unloads once the request is done
};

// Ollama's duration strings ("5m", "1h30m", "300ms", "-1s") and plain numbers of seconds, as Go's
// time.ParseDuration and Ollama's api.Duration read them. Throws RequestError naming `field`.
KeepAlive parse_keep_alive(const nlohmann::ordered_json& v, const std::string& field);

// Parses a request body, its keys in the client's order (a chat template's tojson shows them, as
// transformers' does). Throws RequestError(400) for a body that is not valid UTF-8 (naming the
// byte), not JSON (naming the position) or not a JSON object.
nlohmann::ordered_json parse_body(const std::string& body);

enum class Route { ollama_generate, ollama_chat, openai_chat, openai_completion, openai_responses };

// One generation request of any of the four routes, in the engine's terms.
struct GenerationRequest {
  Route route = Route::ollama_generate;
  std::string model;
  // Ollama generate and OpenAI completions: the text; chat routes: the messages (objects with a
  // string "role" and "content", other keys kept for the template).
  std::string prompt;
  std::string system;            // Ollama generate: the system message of the template
  bool raw = false;              // Ollama generate: the prompt as it is, no template
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  // Chat routes: the functions the model may call ({"type": "function", "function": {"name",
  // "description", "parameters"}}, as sent; null when none), and OpenAI's tool_choice: none (the
  // template still shows them), auto (the reply is read for calls), required (the reply is held
  // to a call of one of them), or one named function (held to a call of it). Ollama: auto.
  nlohmann::ordered_json tools;
  enum class ToolChoice { none, automatic, required, named } tool_choice = ToolChoice::automatic;
  std::string tool_name;             // with named
  bool parallel_tool_calls = true;   // false: a reply's first call only
  // Chat routes: drop the oldest turns of a conversation too long for the context (Ollama's
  // `truncate`, default true; OpenAI's route always does); false makes it a 400.
  bool truncate = true;
  bool stream = true;            // Ollama: default true; OpenAI: default false
  bool include_usage = false;    // OpenAI stream_options.include_usage
  KeepAlive keep_alive;

  // New tokens at most: -1 until the context is full (Ollama's -1 and -2, OpenAI's absent
  // max_tokens), else >= 0.
  int64_t max_tokens = -1;
  int64_t num_ctx = 0;           // 0: the model's context as the server loaded it
  SamplerParams sampler;
  bool seed_given = false;       // else the server draws a fresh seed
  std::vector<std::string> stop;
  bool logprobs = false;         // OpenAI chat: each generated token's log-probability
  // Thinking models (runtime/chat/thinking.h): Ollama's `think`, OpenAI's reasoning_effort or
  // chat_template_kwargs.enable_thinking; unset: the model's default. Given, the template sees it
  // as enable_thinking; unless false, a thinking model's reasoning comes apart from its answer.
  std::optional<bool> think;
  // OpenAI chat's chat_template_kwargs (vLLM's and llama.cpp's): more variables for the chat
  // template, an object; null when none.
  nlohmann::ordered_json template_vars;
  bool json = false;             // Ollama format "json", OpenAI response_format json_object: JSON mode
  std::shared_ptr<const JsonSchema> schema;  // with json: Ollama format {schema}, OpenAI json_schema

  // Ollama: no prompt (generate) or no messages (chat): load the model, generate nothing.
  bool load_only() const;
};

// Each throws RequestError (400, naming the field) on a missing or mistyped field, a value out of
// range, invalid sampling settings or a field this server does not support (n != 1, images).
// max_ctx: the largest context the server allows, so a huge num_ctx / max_tokens is refused here.
GenerationRequest parse_ollama_generate(const nlohmann::ordered_json& body, int64_t max_ctx);
GenerationRequest parse_ollama_chat(const nlohmann::ordered_json& body, int64_t max_ctx);
GenerationRequest parse_openai_chat(const nlohmann::ordered_json& body, int64_t max_ctx);
GenerationRequest parse_openai_completion(const nlohmann::ordered_json& body, int64_t max_ctx);
// OpenAI's Responses API (POST /v1/responses): input (a string, or message, function_call and
// function_call_output items), instructions, tools and tool_choice in its flat form, text.format,
// max_output_tokens, truncation, temperature, top_p, stream, store and previous_response_id
// (`conversation` is a 400). It amounts to a chat request: messages, tools as chat completions
// carry them.
struct ResponsesRequest {
  GenerationRequest chat;               // the previous turns, then the instructions' and input's
  std::string previous_response_id;     // "" when none
  std::string instructions;             // "" when none
  bool store = true;                    // OpenAI's default
  nlohmann::ordered_json input_items;   // the input as items ({"type": "message", ...} for a string)
  // The previous turns and this input as chat messages without the instructions: what a later
  // previous_response_id continues, once the reply is added.
  nlohmann::ordered_json conversation;
};
// previous(id): the conversation of a kept response, nullptr when there is none (a 400 naming
// previous_response_id).
using PreviousTurns = std::function<const nlohmann::ordered_json*(const std::string& id)>;
ResponsesRequest parse_openai_responses(const nlohmann::ordered_json& body, int64_t max_ctx,
                                        const PreviousTurns& previous);

// The smaller routes' bodies.
struct EmbedRequest {
  std::string model;
  std::vector<std::string> input;  // Ollama /api/embed: a string or an array of strings
  bool truncate = true;
  KeepAlive keep_alive;
  // OpenAI's and Ollama's `dimensions`: the first this many of the pooled vector, then
  // normalized (OpenAI's shortened embeddings); 0: all of the model's.
  int64_t dimensions = 0;
};
EmbedRequest parse_embed(const nlohmann::ordered_json& body);

// A required string field ("model", "name", "source", "destination"); Ollama's /api/show,
// /api/delete, /api/copy and /api/create name the model "model" today and "name" before.
std::string required_string(const nlohmann::ordered_json& body, const std::string& key);
// The model name of /api/show, /api/delete, /api/create: "model", or the older "name".
std::string model_name_field(const nlohmann::ordered_json& body);

}  // namespace lowbit::server
