// The chat's `/set parameter NAME VALUE` and `/show parameters`, under Ollama's parameter names
// (a user of `ollama run` types the same words): temperature, top_k, top_p, min_p, seed,
// num_predict, repeat_penalty, repeat_last_n, stop.
#pragma once

#include <string>

#include "runtime/generate.h"

namespace lowbit::cli {

struct ChatSettings {
  GenerateParams gen;
  bool max_tokens_given = false;  // num_predict set; else a reply may fill the context
  bool verbose = false;           // /set verbose: the prompt and generation rates after each reply
};

// Applies `/set parameter` to its arguments (the text after "parameter "): NAME and VALUE, or for
// stop the stop strings, separated by spaces. Returns what to tell the user ("Set parameter
// 'top_k' to '40'"); on a name it does not know, a value that does not parse or one out of
// range, s is unchanged and the message says which (and starts with "error: ").
std::string set_parameter(ChatSettings& s, const std::string& args);

// `/show parameters`: one "NAME VALUE" line per parameter, as they are now.
std::string show_parameters(const ChatSettings& s);

}  // namespace lowbit::cli
