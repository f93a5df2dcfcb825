// The flow every generation route shares: hold the model (loading it on first use), turn the
// request into prompt tokens (the chat template, the tokenizer), check them against the
// context, submit them to the model's engine, then stream or collect the text. What differs per
// API is only the shape of the bytes written, a Format.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "runtime/chat/tool_calls.h"
#include "server/context.h"
#include "server/request.h"

namespace lowbit::server {

// A generated token and its log-probability (OpenAI's logprobs).
struct TokenLogprob {
  std::string token;  // its text
  float logprob = 0;
};

// How a generation ended, for the final chunk or the whole response.
struct Outcome {
  std::string text;                          // all of it (non-streamed responses), or the content outside tool calls
  std::string thinking;                      // a thinking model's reasoning, apart from text (non-streamed)
  std::vector<ToolCall> tool_calls;          // the calls the reply makes (chat routes with tools)
  FinishReason finish = FinishReason::none;
  int64_t prompt_tokens = 0, generated_tokens = 0;
  int64_t cached_tokens = 0;                 // of prompt_tokens, those read from the prompt cache
  double load_seconds = 0, total_seconds = 0;
  double prompt_seconds = 0, eval_seconds = 0;  // submission -> first token, first -> last token
  std::string error;                         // the engine failed or the request timed out
  // With logprobs: every token's (non-streamed), or those not yet sent with a piece (streamed:
  // a token whose text is held back, e.g. half a character, comes with a later piece or the end).
  std::vector<TokenLogprob> logprobs;
};

// One API's response shape.
class Format {
 public:
  virtual ~Format() = default;
  virtual const char* stream_content_type() const = 0;
  virtual std::string begin() { return ""; }                 // bytes before the first piece
  // One streamed piece of text, with the log-probabilities of the tokens it completes (empty
  // unless asked for).
  virtual std::string piece(const std::string& text, const std::vector<TokenLogprob>& logprobs) = 0;
  // One streamed piece of a thinking model's reasoning (runtime/chat/thinking.h), which comes
  // before any piece of the answer.
  virtual std::string thinking_piece(const std::string& text) = 0;
  virtual std::string end(const Outcome& o) = 0;            // the streamed end
  virtual std::string error(const std::string& message) = 0;  // an error mid-stream
  // Bytes a client ignores, written while a request waits for a slot so that a client that left
  // is noticed (a failed write) before its turn; "" when the format has none (NDJSON).
  virtual std::string keep_alive() { return ""; }
  virtual nlohmann::json whole(const Outcome& o) = 0;       // the non-streamed response
  // A load-only request (Ollama's empty prompt): the response, unload says keep_alive was 0.
  virtual nlohmann::json loaded(bool unload) { return nullptr; }
};

// Answers one generation request: parse errors, an unknown model, a prompt too long and a full
// queue as 4xx/5xx before anything streams; then the stream (or the whole response). A client
// that goes away mid-stream cancels its sequence.
void generate_response(Context& ctx, const GenerationRequest& req, std::shared_ptr<Format> format,
                       httplib::Response& res);

// "stop" or "length", the words both APIs use.
const char* finish_word(FinishReason r);

}  // namespace lowbit::server
