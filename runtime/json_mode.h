// JSON mode: a generation held to one JSON object (RFC 8259 text whose top level is an object),
// what Ollama's "format": "json" and OpenAI's response_format {"type": "json_object"} ask for;
// or to one value of a JSON schema (runtime/json_schema.h: "format": {schema}, "json_schema").
// Each step only tokens whose text keeps the output a prefix of such a value may be sampled (the
// recognizer: runtime/json_prefix.h); an end token only once the value is complete.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/json_prefix.h"
#include "runtime/json_schema.h"

namespace lowbit {

class Sampler;
class Tokenizer;

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

// A model's JsonTokens, built by the first generation that asks for JSON (a fraction of a second
// to seconds, one decode per token) and shared after: what each front end keeps beside a model.
// Thread safety: get() may be called from any number of threads at once.
class LazyJsonTokens {
 public:
  explicit LazyJsonTokens(const Tokenizer& tok) : tok_(&tok) {}
  const std::shared_ptr<const JsonTokens>& get() const {
    std::call_once(once_, [this] { tokens_ = std::make_shared<const JsonTokens>(*tok_); });
    return tokens_;
  }

 private:
  const Tokenizer* tok_;
  mutable std::once_flag once_;
  mutable std::shared_ptr<const JsonTokens> tokens_;
};

// One sequence's JSON mode. With a trigger, the text is free until it writes the trigger; then
// it is held to one value of the schema, and once that value closes it is free again, until the
// next trigger: a tool call the model opens by itself ("<tool_call>\n" then the call object).
class JsonConstraint {
 public:
  // schema: null for any JSON object.
  explicit JsonConstraint(std::shared_ptr<const JsonTokens> tokens, std::shared_ptr<const JsonSchema> schema = nullptr,
                          std::string trigger = "")
      : tokens_(std::move(tokens)), schema_(std::move(schema)), trigger_(std::move(trigger)),
        prefix_(schema_ ? *schema_ : JsonSchema::any_object()), held_(trigger_.empty()) {}
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
  // Feeds a token's text to p: false when a byte cannot come. With a trigger, bytes after the
  // value closes are free.
  bool fits(JsonPrefix& p, std::string_view text) const;

  std::shared_ptr<const JsonTokens> tokens_;
  std::shared_ptr<const JsonSchema> schema_;
  std::string trigger_;  // "": held from the first byte to the end
  JsonPrefix prefix_;
  bool held_;            // the text is being held to the value now
  std::string window_;   // with a trigger, while free: the latest text, to find it in
  std::vector<float> raw_;  // the step's logits before the first draw
};

}  // namespace lowbit
