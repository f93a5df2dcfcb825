#include "cli/reply_printer.h"

#include <unistd.h>

namespace lowbit::cli {

namespace {
constexpr const char* kDim = "\x1b[2m";
constexpr const char* kPlain = "\x1b[0m";
}  // namespace

ReplyPrinter::ReplyPrinter(std::FILE* out, bool split, bool opens, bool hide_thinking)
    : out_(out), hide_(hide_thinking), tty_(out && isatty(fileno(out))) {
  if (split) splitter_.emplace(opens);
}

void ReplyPrinter::write(const std::string& s) {
  if (!out_ || s.empty()) return;
  std::fwrite(s.data(), 1, s.size(), out_);
  std::fflush(out_);
}

void ReplyPrinter::print(const ThinkingSplitter::Parts& p) {
  if (!p.thinking.empty()) {
    thinking_ += p.thinking;
    if (!hide_) {
      if (!in_thinking_) write(tty_ ? std::string(kDim) + "Thinking...\n" : "Thinking...\n");
      in_thinking_ = true;
      write(p.thinking);
    }
  }
  if (!p.content.empty()) {
    if (in_thinking_) write(tty_ ? std::string("\n...done thinking.\n\n") + kPlain : "\n...done thinking.\n\n");
    in_thinking_ = false;
    content_ += p.content;
    write(p.content);
  }
}

void ReplyPrinter::piece(const std::string& text) {
  if (splitter_) return print(splitter_->feed(text));
  content_ += text;
  write(text);
}

void ReplyPrinter::finish() {
  if (splitter_) print(splitter_->finish());
  if (in_thinking_) write(tty_ ? std::string("\n...done thinking.\n") + kPlain : "\n...done thinking.\n");
  in_thinking_ = false;
}

}  // namespace lowbit::cli
