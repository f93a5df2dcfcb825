// A model's chat template: the Jinja source its tokenizer_config.json (`chat_template`) or GGUF
// (`tokenizer.chat_template`, kept in the imported tokenizer_config.json) carries, rendered over
// a conversation the way transformers' apply_chat_template renders it with jinja2, by lowbit's
// own Jinja subset (runtime/chat/jinja.h).
//
// Thread safety: a ChatTemplate is immutable after construction; render() may be called from
// any number of threads at once.
#pragma once

#include <stdint.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lowbit {

class Tokenizer;

class ChatTemplate {
 public:
  // Parses the template. Throws Error(bad_format) naming the line and column of a syntax error.
  // bos_token/eos_token: the strings the template sees as bos_token and eos_token.
  ChatTemplate(const std::string& source, std::string bos_token, std::string eos_token);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // messages: a JSON array of objects with "role" and "content" (and whatever else the template
  // reads, e.g. "tool_calls"); tools: an array, or null (then `tools` is none in the template, as
  // transformers passes tools=None). As apply_chat_template does, keys whose value is null are
  // dropped from each message, and a reasoning text under "reasoning_content", "thinking" or
  // "reasoning" is offered under "reasoning_content" and "thinking" too. Throws
  // Error(invalid_argument) carrying the template's own message when it calls raise_exception (a
  // conversation the model does not accept), and Error(invalid_argument) naming line and column
  // on an error while rendering (e.g. a message without "content").
  // vars: null, or an object whose keys are more variables for the template, as the keyword
  // arguments of apply_chat_template (e.g. {"enable_thinking": false}); one named like a variable
  // set here (messages, tools, documents, add_generation_prompt, bos_token, eos_token) is an
  // Error(invalid_argument).
  std::string render(const nlohmann::json& messages, bool add_generation_prompt,
                     const nlohmann::json& tools = nullptr, const nlohmann::json& vars = nullptr) const;
  // The same, keeping the key order of the caller's objects (nlohmann::json sorts keys), which
  // tojson shows, e.g. in tool schemas: what a server that parses requests with ordered_json uses.
  std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                     const nlohmann::ordered_json& tools = nullptr, const nlohmann::ordered_json& vars = nullptr) const;

  const std::string& source() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The template the tokenizer was loaded with (bos/eos strings from its vocabulary), or nullptr
// when the model has none. Throws Error(bad_format) when the template does not parse.
std::unique_ptr<ChatTemplate> chat_template_of(const Tokenizer& tok);

// The token tmpl ends an assistant's turn with, when it writes one that the tokenizer reads as a
// single control token (Gemma's <end_of_turn>, ChatML's <|im_end|>, Llama 3's <|eot_id|>), else
// nullopt (a turn that ends in text, or a template that refuses the probe). Learned by rendering
// one answered question, as tool calling learns its syntax, so no family is named here; a model's
// load adds it to the end tokens when its files leave it out (llama.cpp keeps a list of such
// names for the same reason).
std::optional<int32_t> end_of_turn_token(const ChatTemplate& tmpl, const Tokenizer& tok);

// The tokens of a rendered conversation, as every chat front end (the REPL, the server, chat
// calibration) feeds them: encoded with the tokenizer's own specials when add_special (BOS where
// the model's convention adds one), and with one BOS, not two, when the template wrote bos_token
// itself. This is llama.cpp's rule; transformers' apply_chat_template adds no specials, which
// differs only for a model whose tokenizer adds BOS and whose template does not write it
// (TinyLlama's), whose tokenizer puts BOS before every text it encodes.
std::vector<int32_t> encode_conversation(const Tokenizer& tok, const std::string& rendered, bool add_special = true);

// A conversation cut to a token budget, as a chat outgrows its context: every system message
// stays, and the oldest others go, whole turns at a time (the kept part starts at a user message,
// or is the last message alone), so no template sees an assistant message first. The earliest
// such start whose rendering (with the generation prompt) is at most `budget` tokens is taken;
// when none is, the shortest (system messages and the last message). Each candidate is rendered
// and encoded as encode_conversation does; a candidate the template refuses counts as not
// fitting, except the last, whose refusal is thrown. Binary search: O(log n) renderings.
// The tokens a conversation may take in a context of ctx positions, leaving room for the reply:
// max_tokens when given (>= 0; at most half the context), else a quarter of the context; at
// least one position. What every chat front end passes fit_conversation as its budget.
int64_t conversation_budget(int64_t ctx, int64_t max_tokens);

struct FittedConversation {
  std::vector<int32_t> ids;   // the kept conversation's tokens
  std::string text;           // their text, as rendered (with reply_start)
  size_t dropped = 0;         // how many of the oldest non-system messages were left out
};
// vars: as render() takes them, for every candidate.
FittedConversation fit_conversation(const Tokenizer& tok, const ChatTemplate& tmpl, const nlohmann::json& messages,
                                    int64_t budget, bool add_special = true, const nlohmann::json& vars = nullptr);
// The same over messages and tools in the caller's key order (render's second form). tools: as
// render() takes them, shown in every candidate; reply_start: text the assistant's reply is made
// to begin with (a forced tool call's opening), after the generation prompt and counted in it.
FittedConversation fit_conversation(const Tokenizer& tok, const ChatTemplate& tmpl,
                                    const nlohmann::ordered_json& messages, int64_t budget, bool add_special,
                                    const nlohmann::ordered_json& tools, const std::string& reply_start = "",
                                    const nlohmann::ordered_json& vars = nullptr);

}  // namespace lowbit
