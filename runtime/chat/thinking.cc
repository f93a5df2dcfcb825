#include "runtime/chat/thinking.h"

#include <cstring>

#include "runtime/chat/chat_template.h"

namespace lowbit {
namespace {

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

size_t skip_space(const std::string& s, size_t i = 0) {
  while (i < s.size() && is_space(s[i])) ++i;
  return i;
}

// Whether s[from..] is a proper start of tag (so more text may complete it).
bool starts_tag(const std::string& s, size_t from, const char* tag) {
  const size_t n = s.size() - from, len = std::strlen(tag);
  return n < len && s.compare(from, n, tag, n) == 0;
}

}  // namespace

bool template_thinks(const ChatTemplate& tmpl) { return tmpl.source().find(kThinkClose) != std::string::npos; }

bool prompt_opens_thinking(const std::string& prompt) {
  const size_t open = prompt.rfind(kThinkOpen);
  if (open == std::string::npos) return false;
  const size_t close = prompt.rfind(kThinkClose);
  return close == std::string::npos || close < open;
}

ThinkingSplitter::ThinkingSplitter(bool in_thinking) : state_(in_thinking ? State::thinking : State::start) {}

ThinkingSplitter::Parts ThinkingSplitter::feed(const std::string& piece) {
  pending_ += piece;
  return drain(false);
}

ThinkingSplitter::Parts ThinkingSplitter::finish() { return drain(true); }

ThinkingSplitter::Parts split_thinking(const std::string& reply, bool in_thinking) {
  ThinkingSplitter s(in_thinking);
  ThinkingSplitter::Parts a = s.feed(reply);
  const ThinkingSplitter::Parts b = s.finish();
  a.thinking += b.thinking;
  a.content += b.content;
  return a;
}

ThinkingSplitter::Parts ThinkingSplitter::drain(bool end) {
  Parts out;
  for (bool progress = true; progress;) {
    progress = false;
    switch (state_) {
      case State::start: {
        const size_t i = skip_space(pending_);
        const size_t open = std::strlen(kThinkOpen);
        if (pending_.compare(i, open, kThinkOpen) == 0) {
          pending_.erase(0, i + open);
          state_ = State::thinking;
          progress = true;
        } else if (!end && (i == pending_.size() || starts_tag(pending_, i, kThinkOpen))) {
          // all white space, or a tag's beginning: the next piece tells
        } else {
          state_ = State::content;
          progress = true;
        }
        break;
      }
      case State::thinking: {
        if (!thought_) pending_.erase(0, skip_space(pending_));  // after <think>
        const size_t close = pending_.find(kThinkClose);
        size_t give = close != std::string::npos ? close : pending_.size();
        if (close == std::string::npos && !end) {
          // Hold a tail that may begin the tag, and white space that may be the reasoning's last.
          size_t keep = give;
          const size_t lt = pending_.rfind('<');
          if (lt != std::string::npos && starts_tag(pending_, lt, kThinkClose)) keep = lt;
          while (keep > 0 && is_space(pending_[keep - 1])) --keep;
          give = keep;
        } else {
          size_t trimmed = give;  // white space before </think> or the end belongs to neither
          while (trimmed > 0 && is_space(pending_[trimmed - 1])) --trimmed;
          out.thinking += pending_.substr(0, trimmed);
          thought_ = thought_ || trimmed > 0;
          pending_.erase(0, close != std::string::npos ? close + std::strlen(kThinkClose) : pending_.size());
          if (close != std::string::npos) {
            state_ = State::after_close;
            progress = true;
          }
          break;
        }
        out.thinking += pending_.substr(0, give);
        thought_ = thought_ || give > 0;
        pending_.erase(0, give);
        break;
      }
      case State::after_close: {
        const size_t i = skip_space(pending_);
        pending_.erase(0, i);
        if (!pending_.empty()) {
          state_ = State::content;
          progress = true;
        }
        break;
      }
      case State::content:
        out.content += pending_;
        pending_.clear();
        break;
    }
  }
  return out;
}

}  // namespace lowbit
