// The interactive chat of `lowbit run MODEL` (no prompt, stdin a terminal): a conversation kept
// as a list of messages, rendered with the model's own chat template, the reply streamed.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/chat/chat_template.h"
#include "runtime/generate.h"
#include "runtime/model.h"

namespace lowbit::cli {

struct ChatOptions {
  GenerateParams gen;               // sampling, stop strings, add_bos
  bool max_tokens_given = false;    // -n was given; else a reply may fill the context
  std::string system;               // a system message to start with ("" for the template's default)
  bool verbose = false;             // the prompt and generation rates after each reply (/set verbose)
  std::string model_label;          // for the banner and messages
  std::optional<bool> think;        // --think[=false]: a thinking model reasons first, or not (/set think, nothink)
  bool hide_thinking = false;       // --hidethinking: print its answers without the reasoning
};

// The template variables that carry a --think choice to a thinking model's template
// ({"enable_thinking": ...}), or null when there is none to carry.
nlohmann::json thinking_vars(bool template_thinks, std::optional<bool> think);

// The tokens the model reads for a conversation: the system message (when not empty), then the
// messages, rendered by the template with the assistant's turn opened (vars: more template
// variables) and encoded as every chat front end encodes (encode_conversation); rendered, when
// given, receives the text. The chat and `lowbit run MODEL PROMPT` share it.
std::vector<int32_t> conversation_ids(const Tokenizer& tok, const ChatTemplate& tmpl, const std::string& system,
                                      const nlohmann::json& messages, bool add_bos,
                                      const nlohmann::json& vars = nullptr, std::string* rendered = nullptr);

// Reads lines from stdin until /bye or end of input; returns the exit status (0). Throws
// Error(not_found) before reading anything when the model has no chat template.
int run_chat(const Model& model, const ChatOptions& opt);

}  // namespace lowbit::cli
