// JSON mode: a generation held to one JSON object (RFC 8259 text whose top level is an object),
// what Ollama's "format": "json" and OpenAI's response_format {"type": "json_object"} ask for.
// Each step only tokens whose text keeps the output a prefix of some JSON object may be sampled;
// an end token only once the object is complete, and then nothing else.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

class Sampler;
class Tokenizer;

// Whether the bytes fed so far can still grow into one JSON object. Whitespace between tokens
// is allowed in runs of at most kMaxWhitespace bytes (a model in JSON mode can otherwise emit
// whitespace until its budget runs out; llama.cpp's JSON grammar bounds it the same way), and
// nesting to kMaxDepth levels.
class JsonPrefix {
 public:
  static constexpr int kMaxWhitespace = 32;
  static constexpr int kMaxDepth = 64;

  // False: c cannot come next; the state is then unspecified (feed a copy to test a byte).
  bool feed(unsigned char c);
  bool feed(std::string_view s);
  // The top-level object has closed: nothing but the end may follow.
  bool complete() const { return mode_ == Mode::done; }

 private:
  enum class Mode : uint8_t { start, value, first_key, key, colon, after_value, first_item, string, escape,
                              unicode, number, literal, done };
  enum class Num : uint8_t { minus, zero, integer, dot, fraction, e, e_sign, exponent };
  bool value_start(unsigned char c);
  bool close();
  bool number(unsigned char c);
  bool top_is_object() const { return (objects_ >> (depth_ - 1)) & 1; }

  Mode mode_ = Mode::start;
  Num num_ = Num::minus;
  bool key_ = false;            // the open string is an object key
  uint8_t depth_ = 0;           // open containers
  uint8_t whitespace_ = 0;      // whitespace bytes in a row
  uint8_t left_ = 0;            // hex digits of \uXXXX, or letters of a literal, still to come
  const char* literal_ = "";    // the rest of "true", "false" or "null"
  uint64_t objects_ = 0;        // bit d: the container at depth d is an object (else an array)
};

// Each token's text as it reads after other text ("▁the" is " the"), for one tokenizer: what JSON
// mode checks. Built once per model (one decode per token) and shared by its sequences.
class JsonTokens {
 public:
  explicit JsonTokens(const Tokenizer& tok);
  // "" for special tokens (and ids past the tokenizer's vocabulary), which JSON mode never allows.
  const std::string& text(int32_t id) const;
  bool is_end(int32_t id) const;

 private:
  std::vector<std::string> text_;
  std::vector<int32_t> end_;
  std::string none_;
};

// One sequence's JSON mode.
class JsonConstraint {
 public:
  explicit JsonConstraint(std::shared_ptr<const JsonTokens> tokens) : tokens_(std::move(tokens)) {}
  bool allows(int32_t id) const;
  void accept(int32_t id);
  // A token as sampler.sample(logits, vocab, recent) draws it, from the allowed ones: drawn
  // freely first, and only when that token is not allowed drawn again with every other token
  // masked. For plain temperature sampling that is exactly the masked distribution (a free draw
  // that lands on an allowed token has the masked odds); with top-k/top-p the first draw's
  // truncation sees the unmasked logits, as llama.cpp's grammar sampling does. logits is
  // overwritten, as by sample().
  int32_t sample(Sampler& sampler, float* logits, int64_t vocab, const std::vector<int32_t>& recent);

 private:
  std::shared_ptr<const JsonTokens> tokens_;
  JsonPrefix prefix_;
  std::vector<float> raw_;  // the step's logits before the first draw
};

}  // namespace lowbit
