// Thinking (reasoning) models: Qwen3, DeepSeek-R1, QwQ and SmolLM3 write their reasoning between
// <think> and </think> before the answer, and their chat templates render it that way for the
// turns they show (Qwen3 also reads `enable_thinking`, which, when false, writes an empty block
// into the generation prompt so the model answers at once). The front ends hand the reasoning to
// their clients apart from the answer, as Ollama's `thinking` and OpenAI-compatible servers'
// `reasoning_content` do; this is where a reply is cut in two.
//
// Thread safety: free functions are pure; a ThinkingSplitter belongs to one reply.
#pragma once

#include <string>

namespace lowbit {

class ChatTemplate;

inline constexpr const char* kThinkOpen = "<think>";
inline constexpr const char* kThinkClose = "</think>";

// Whether a template is a thinking model's: its source writes the closing tag (each family above
// renders or strips `</think>` in its history; a template that never names it cannot show one).
bool template_thinks(const ChatTemplate& tmpl);

// Whether a rendered prompt leaves the reply inside a thinking block: its last opening tag comes
// after its last closing one (DeepSeek-R1's generation prompt ends with "<think>\n", so its
// replies start with the reasoning and only close the block).
bool prompt_opens_thinking(const std::string& prompt);

// Cuts a reply, as it streams in pieces, into its reasoning and its answer. A reply that starts
// (after white space) with <think> has its reasoning up to </think>, or up to its end when it
// never closes; one that does not start with it is all answer (a tag later in the text is the
// answer's own). White space next to the tags is not part of either (Qwen3 writes
// "<think>\n...\n</think>\n\n"). Text that may be the start of a tag, or white space that may
// end the reasoning, is held until the next piece tells.
class ThinkingSplitter {
 public:
  // in_thinking: the prompt opened the block (prompt_opens_thinking), so the reply starts in it.
  explicit ThinkingSplitter(bool in_thinking = false);

  struct Parts {
    std::string thinking, content;
  };
  // The parts of the text so far that are now certain, in order (reasoning comes first).
  Parts feed(const std::string& piece);
  // The rest, at the end of the reply.
  Parts finish();

 private:
  enum class State { start, thinking, after_close, content };
  Parts drain(bool end);
  State state_;
  std::string pending_;  // received, not yet given out
  bool thought_ = false;  // some reasoning text was given out (so white space inside it counts)
};

// A whole reply's parts (a ThinkingSplitter fed it all at once).
ThinkingSplitter::Parts split_thinking(const std::string& reply, bool in_thinking = false);

}  // namespace lowbit
