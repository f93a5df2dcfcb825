#include "runtime/json_mode.h"

#include <algorithm>
#include <cmath>

#include "runtime/sampler.h"
#include "runtime/tokenizer/tokenizer.h"

namespace lowbit {
namespace {

bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_hex(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_escape(unsigned char c) {
  return c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't';
}

}  // namespace

bool JsonPrefix::feed(std::string_view s) {
  for (unsigned char c : s)
    if (!feed(c)) return false;
  return true;
}

bool JsonPrefix::feed(unsigned char c) {
  switch (mode_) {  // inside a token: a string, a number, a literal
    case Mode::string:
      if (c == '"') {
        mode_ = key_ ? Mode::colon : Mode::after_value;
        return true;
      }
      if (c == '\\') mode_ = Mode::escape;
      return c >= 0x20;  // control characters must be escaped
    case Mode::escape:
      if (c == 'u') {
        mode_ = Mode::unicode;
        left_ = 4;
        return true;
      }
      mode_ = Mode::string;
      return is_escape(c);
    case Mode::unicode:
      if (--left_ == 0) mode_ = Mode::string;
      return is_hex(c);
    case Mode::literal:
      if (c != (unsigned char)*literal_) return false;
      if (!*++literal_) mode_ = Mode::after_value;
      return true;
    case Mode::number:
      return number(c);
    case Mode::done:
      return false;
    default:
      break;
  }
  // Between tokens: bounded whitespace, or the next structural byte.
  if (is_space(c)) return ++whitespace_ <= kMaxWhitespace;
  whitespace_ = 0;
  switch (mode_) {
    case Mode::start:
      return c == '{' && value_start(c);
    case Mode::value:
      return value_start(c);
    case Mode::first_item:
      return c == ']' ? close() : value_start(c);
    case Mode::first_key:
      if (c == '}') return close();
      [[fallthrough]];
    case Mode::key:
      key_ = true;
      mode_ = Mode::string;
      return c == '"';
    case Mode::colon:
      mode_ = Mode::value;
      return c == ':';
    case Mode::after_value:
      if (c == ',') {
        mode_ = top_is_object() ? Mode::key : Mode::value;
        return true;
      }
      if (c == '}' || c == ']') return (c == '}') == top_is_object() && close();
      return false;
    default:
      return false;
  }
}

bool JsonPrefix::value_start(unsigned char c) {
  if (c == '{' || c == '[') {
    if (depth_ >= kMaxDepth) return false;
    const uint64_t bit = uint64_t(1) << depth_;
    objects_ = c == '{' ? objects_ | bit : objects_ & ~bit;
    ++depth_;
    mode_ = c == '{' ? Mode::first_key : Mode::first_item;
    return true;
  }
  if (c == '"') {
    key_ = false;
    mode_ = Mode::string;
    return true;
  }
  if (c == '-' || is_digit(c)) {
    mode_ = Mode::number;
    num_ = c == '-' ? Num::minus : c == '0' ? Num::zero : Num::integer;
    return true;
  }
  literal_ = c == 't' ? "rue" : c == 'f' ? "alse" : c == 'n' ? "ull" : nullptr;
  if (!literal_) return false;
  mode_ = Mode::literal;
  return true;
}

bool JsonPrefix::close() {  // the caller has matched the bracket against the open container
  --depth_;
  mode_ = depth_ == 0 ? Mode::done : Mode::after_value;
  return true;
}

bool JsonPrefix::number(unsigned char c) {
  const bool digit = is_digit(c);
  const bool e = c == 'e' || c == 'E';
  switch (num_) {
    case Num::minus:
      num_ = c == '0' ? Num::zero : Num::integer;
      return digit;
    case Num::zero:
      if (c == '.' || e) {
        num_ = e ? Num::e : Num::dot;
        return true;
      }
      break;
    case Num::integer:
    case Num::fraction:
      if (digit) return true;
      if (c == '.' && num_ == Num::integer) {
        num_ = Num::dot;
        return true;
      }
      if (e) {
        num_ = Num::e;
        return true;
      }
      break;
    case Num::dot:
      num_ = Num::fraction;
      return digit;
    case Num::e:
      if (c == '+' || c == '-') {
        num_ = Num::e_sign;
        return true;
      }
      num_ = Num::exponent;
      return digit;
    case Num::e_sign:
      num_ = Num::exponent;
      return digit;
    case Num::exponent:
      if (digit) return true;
      break;
  }
  // A complete number has ended: c belongs to what follows it.
  mode_ = Mode::after_value;
  return feed(c);
}

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

bool JsonConstraint::allows(int32_t id) const {
  if (tokens_->is_end(id)) return prefix_.complete();
  const std::string& t = tokens_->text(id);
  if (t.empty() || prefix_.complete()) return false;
  JsonPrefix next = prefix_;
  return next.feed(t);
}

void JsonConstraint::accept(int32_t id) {
  if (!tokens_->is_end(id)) prefix_.feed(tokens_->text(id));
}

int32_t JsonConstraint::sample(Sampler& sampler, float* logits, int64_t vocab, const std::vector<int32_t>& recent) {
  raw_.assign(logits, logits + vocab);
  const int32_t first = sampler.sample(logits, vocab, recent);
  if (allows(first)) return first;
  std::copy(raw_.begin(), raw_.end(), logits);
  bool any = false;
  for (int64_t id = 0; id < vocab; ++id) {
    if (allows((int32_t)id)) any = true;
    else logits[id] = -INFINITY;
  }
  // Every real vocabulary can continue a JSON prefix (its single bytes or characters can); one
  // that cannot gets the free draw, which the JSON check then shows.
  return any ? sampler.sample(logits, vocab, recent) : first;
}

}  // namespace lowbit
