// The generation loop: prompt -> streamed text, stopping on EOS, a token budget, a stop string,
// or the callback's say-so.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/json_mode.h"
#include "runtime/model.h"
#include "runtime/sampler.h"

namespace lowbit {

struct GenerateParams {
  int64_t max_tokens = 256;           // new tokens at most (0: run the prompt only)
  SamplerParams sampler;
  std::vector<std::string> stop;      // stop strings (not included in the output)
  bool add_bos = true;                // let the tokenizer add BOS as its config says
  // Also stop when the model emits BOS. llama2.c's run.c does this, and its published outputs
  // for the test models are produced that way.
  bool stop_on_bos = true;
  // Set: JSON mode, the text one JSON object (runtime/json_mode.h); the model's tokens' texts.
  std::shared_ptr<const JsonTokens> json;
  // With json: the text one value of this schema instead (runtime/json_schema.h).
  std::shared_ptr<const JsonSchema> schema;
};

struct GenerateResult {
  std::string text;
  std::vector<int32_t> prompt_ids, ids;  // ids: generated tokens
  std::string stop_reason;               // "eos", "length", "stop", "callback", "context"
  int32_t end_id = -1;                   // on "eos": the end token sampled (not in ids)
  double prompt_seconds = 0, gen_seconds = 0;
  double prompt_tokens_per_s() const { return prompt_seconds > 0 ? prompt_ids.size() / prompt_seconds : 0; }
  double gen_tokens_per_s() const { return gen_seconds > 0 ? ids.size() / gen_seconds : 0; }
};

// The first setting of p outside its range (max_tokens, the sampler's, an empty stop string),
// if any: generate() throws on it; front ends check first to name their own flag or argument.
std::optional<InvalidSetting> invalid_setting(const GenerateParams& p);

// Called with each new piece of text as soon as it is complete UTF-8; return false to stop.
using TokenCallback = std::function<bool(const std::string& piece, int32_t id)>;

// A generation's text as its tokens arrive: complete UTF-8 only, cut before the first stop
// string, and holding back a tail that may still grow into one. generate() and the Scheduler
// (runtime/batch.h) both stream through it, so they stop and show text alike.
class TextStream {
 public:
  // Throws Error (invalid_argument) on an empty stop string. context: the prompt's ids, so the
  // first piece decodes as it reads after the prompt (its leading space kept).
  TextStream(const Tokenizer& tok, std::vector<std::string> stop, std::vector<int32_t> context = {});
  // Adds a token's text. True when a stop string appeared: the text now ends before it, and all
  // of it may be shown.
  bool push(int32_t id);
  // The sequence ended another way: the decoder's pending bytes join the text and nothing is
  // held back any more.
  void finish();
  // The text that may be shown now and was not yet ("" when none).
  std::string take();
  const std::string& text() const { return full_; }
  size_t shown() const { return shown_; }  // bytes of text() that take() has returned

 private:
  DecodeStream decode_;
  std::vector<std::string> stop_;
  std::string full_;
  size_t shown_ = 0;
  bool open_ = true;  // neither stopped nor finished: a stop string's prefix is held back
};

// Runs from the session's current position (normally 0; call session.reset() first to reuse).
// Throws lowbit::Error before evaluating anything when a setting is out of range or the prompt
// does not fit in the context left. The text continues the prompt: its first piece keeps the
// leading space it has after the prompt (" was" after "The dog"), so prompt + text reads as
// decode(prompt ids + generated ids).
GenerateResult generate(Session& session, const std::string& prompt, const GenerateParams& params,
                        const TokenCallback& on_token = nullptr);
// The same from prompt ids, for a front end that has encoded the prompt (with
// tokenizer().encode(prompt, params.add_bos)) to check its length first. before: the tokens
// already in the session (a chat turn that reuses the cached prefix of the conversation), which
// the penalties' window sees ahead of the prompt, so a turn samples as it would from position 0.
GenerateResult generate(Session& session, std::vector<int32_t> prompt_ids, const GenerateParams& params,
                        const TokenCallback& on_token = nullptr, const std::vector<int32_t>& before = {});

}  // namespace lowbit
