#include "runtime/json_mode.h"

#include <algorithm>
#include <cmath>

#include "runtime/sampler.h"
#include "runtime/tokenizer/tokenizer.h"

namespace lowbit {

JsonTokens::JsonTokens(const Tokenizer& tok) : end_(tok.eos_ids()) {
  // A token's text after an ordinary one: SentencePiece drops the leading space of a text's
  // first piece, so decoding a token alone would lose it.
  std::vector<int32_t> ids = tok.encode("a", false);
  const std::string base = tok.decode(ids);
  ids.push_back(0);
  text_.resize(std::max<int32_t>(0, tok.vocab_size()));
  for (int32_t id = 0; id < (int32_t)text_.size(); ++id) {
    ids.back() = id;
    const std::string s = tok.decode(ids);
    if (s.size() > base.size() && s.compare(0, base.size(), base) == 0) text_[id] = s.substr(base.size());
  }
}

const std::string& JsonTokens::text(int32_t id) const {
  return id >= 0 && id < (int32_t)text_.size() ? text_[id] : none_;
}

bool JsonTokens::is_end(int32_t id) const { return std::find(end_.begin(), end_.end(), id) != end_.end(); }

bool JsonConstraint::fits(JsonPrefix& p, std::string_view text) const {
  for (unsigned char c : text) {
    if (!p.feed(c)) return false;
    if (!trigger_.empty() && p.complete()) return true;  // the value closed: the rest is free text
  }
  return true;
}

bool JsonConstraint::allows(int32_t id) const {
  if (!held_) return true;
  if (tokens_->is_end(id)) return prefix_.complete();
  const std::string& t = tokens_->text(id);
  if (t.empty()) return false;
  JsonPrefix next = prefix_;
  return fits(next, t);
}

void JsonConstraint::accept(int32_t id) {
  if (tokens_->is_end(id)) return;
  std::string_view t = tokens_->text(id);
  if (held_) {
    if (trigger_.empty()) {
      prefix_.feed(t);
      return;
    }
    // Up to the byte that closes the value; what follows in the token is free text.
    size_t i = 0;
    while (i < t.size() && !prefix_.complete()) prefix_.feed((unsigned char)t[i++]);
    if (!prefix_.complete()) return;
    held_ = false;
    prefix_ = JsonPrefix(schema_ ? *schema_ : JsonSchema::any_object());
    window_.clear();
    t = t.substr(i);
  }
  // Free text: look for the trigger across token boundaries; the bytes after it in this token
  // are the value's first ones (if they cannot be, the value is left unheld: text as written).
  window_.append(t);
  const size_t at = window_.find(trigger_);
  if (at == std::string::npos) {
    if (window_.size() > trigger_.size()) window_.erase(0, window_.size() - trigger_.size());
    return;
  }
  JsonPrefix next = prefix_;
  if (!fits(next, std::string_view(window_).substr(at + trigger_.size()))) {
    window_.clear();
    return;
  }
  held_ = !next.complete();
  if (held_) prefix_ = std::move(next);
  window_.clear();
}

int32_t JsonConstraint::sample(Sampler& sampler, float* logits, int64_t vocab, const std::vector<int32_t>& recent) {
  if (!held_) return sampler.sample(logits, vocab, recent);
  raw_.assign(logits, logits + vocab);
  const int32_t first = sampler.sample(logits, vocab, recent);
  if (allows(first)) return first;
  std::copy(raw_.begin(), raw_.end(), logits);
  // Which bytes may come next, tried once: a token whose first byte may not is out without
  // copying the state (with a schema most of a vocabulary is, at most steps).
  bool byte_ok[256];
  for (int b = 0; b < 256; ++b) {
    JsonPrefix next = prefix_;
    byte_ok[b] = next.feed((unsigned char)b);
  }
  bool any = false;
  for (int64_t id = 0; id < vocab; ++id) {
    const std::string& t = tokens_->text((int32_t)id);
    if ((t.empty() || byte_ok[(unsigned char)t[0]]) && allows((int32_t)id)) any = true;
    else logits[id] = -INFINITY;
  }
  // Every real vocabulary can continue a JSON prefix (its single bytes or characters can); one
  // that cannot gets the free draw, which the JSON check then shows.
  return any ? sampler.sample(logits, vocab, recent) : first;
}

}  // namespace lowbit
