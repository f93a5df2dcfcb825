// How `lowbit run` prints a reply as it streams: as it comes, or, for a thinking model
// (runtime/chat/thinking.h), its reasoning first between "Thinking..." and "...done thinking."
// (dimmed on a terminal, left out with --hidethinking), then the answer, as `ollama run` does.
#pragma once

#include <cstdio>
#include <optional>
#include <string>

#include "runtime/chat/thinking.h"

namespace lowbit::cli {

class ReplyPrinter {
 public:
  // split: cut the reply into reasoning and answer; opens: the prompt opened the block; out: where
  // it goes (null: nowhere, e.g. for --json, which still wants the parts).
  ReplyPrinter(std::FILE* out, bool split, bool opens, bool hide_thinking);
  void piece(const std::string& text);
  void finish();  // at the end of the reply

  const std::string& thinking() const { return thinking_; }
  const std::string& content() const { return content_; }

 private:
  void print(const ThinkingSplitter::Parts& p);
  void write(const std::string& s);
  std::FILE* out_;
  bool hide_, tty_;
  std::optional<ThinkingSplitter> splitter_;
  bool in_thinking_ = false;  // "Thinking..." was printed, "...done thinking." not yet
  std::string thinking_, content_;
};

}  // namespace lowbit::cli
