#include "runtime/generate.h"

#include <optional>
#include <chrono>

#include "kernels/error.h"

namespace lowbit {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Length of the longest suffix of text that is a proper prefix of some stop string: that much
// must be held back, since the next token may complete the stop string.
size_t held_back(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const std::string& s : stops)
    for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k)
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  return hold;
}

}  // namespace

std::optional<InvalidSetting> invalid_setting(const GenerateParams& p) {
  if (p.max_tokens < 0) return InvalidSetting{"max_tokens", ">= 0"};
  for (const std::string& s : p.stop)
    if (s.empty()) return InvalidSetting{"stop", "non-empty"};
  return invalid_setting(p.sampler);
}

TextStream::TextStream(const Tokenizer& tok, std::vector<std::string> stop, std::vector<int32_t> context)
    : decode_(tok, std::move(context)), stop_(std::move(stop)) {
  for (const std::string& s : stop_)
    if (s.empty()) throw Error(ErrorCode::invalid_argument, "stop strings must not be empty");
}

bool TextStream::push(int32_t id) {
  full_ += decode_.push(id);
  bool stopped = false;
  for (const std::string& s : stop_) {
    const size_t at = full_.find(s);
    if (at != std::string::npos) {
      full_.resize(at);
      stopped = true;
    }
  }
  if (stopped) open_ = false;
  return stopped;
}

void TextStream::finish() {
  if (open_) full_ += decode_.flush();
  open_ = false;
}

std::string TextStream::take() {
  const size_t upto = open_ ? full_.size() - held_back(full_, stop_) : full_.size();
  if (upto <= shown_) return {};
  std::string piece = full_.substr(shown_, upto - shown_);
  shown_ = upto;
  return piece;
}

GenerateResult generate(Session& session, const std::string& prompt, const GenerateParams& params,
                        const TokenCallback& on_token) {
  return generate(session, session.model().tokenizer().encode(prompt, params.add_bos), params, on_token);
}

GenerateResult generate(Session& session, std::vector<int32_t> prompt_ids, const GenerateParams& params,
                        const TokenCallback& on_token, const std::vector<int32_t>& before) {
  const Model& model = session.model();
  const Tokenizer& tok = model.tokenizer();
  const int64_t vocab = model.config().vocab_size;
  if (const auto bad = invalid_setting(params))
    throw Error(ErrorCode::invalid_argument, bad->field + " must be " + bad->requirement);
  GenerateResult r;
  r.prompt_ids = std::move(prompt_ids);
  if (r.prompt_ids.empty())
    throw Error(ErrorCode::invalid_argument, "empty prompt and the tokenizer adds no BOS: nothing to start from");
  const int64_t room = model.ctx() - session.position();
  if ((int64_t)r.prompt_ids.size() > room)
    throw Error(ErrorCode::context_full,
                "the prompt is " + std::to_string(r.prompt_ids.size()) + " tokens but the context has room for " +
                    std::to_string(room) + " (" + std::to_string(model.ctx()) + " positions, " +
                    std::to_string(session.position()) + " in use); load the model with a longer context");
  // Seeded with the prompt, so the first piece reads as it does after the prompt: SentencePiece
  // drops the leading space of a text's first piece ("▁was" alone is "was"), not of a later one.
  TextStream text(tok, params.stop, r.prompt_ids);

  Sampler sampler(params.sampler);
  std::optional<JsonConstraint> json;
  if (params.json) json.emplace(params.json, params.schema);
  std::vector<float> logits(vocab);
  std::vector<int32_t> history = before;
  history.insert(history.end(), r.prompt_ids.begin(), r.prompt_ids.end());
  auto t0 = std::chrono::steady_clock::now();
  session.eval(r.prompt_ids.data(), (int64_t)r.prompt_ids.size(), logits.data());
  r.prompt_seconds = seconds_since(t0);

  // Hands the text not yet shown to the callback; false when the callback says stop.
  auto deliver = [&](int32_t id) {
    const std::string piece = text.take();
    return piece.empty() || !on_token || on_token(piece, id);
  };

  t0 = std::chrono::steady_clock::now();
  r.stop_reason = "length";
  while ((int64_t)r.ids.size() < params.max_tokens) {
    const int32_t id = json ? json->sample(sampler, logits.data(), vocab, history)
                            : sampler.sample(logits.data(), vocab, history);
    if (json) json->accept(id);
    if (tok.is_eos(id) || (params.stop_on_bos && id == tok.bos_id())) {
      r.stop_reason = "eos";
      r.end_id = id;
      break;
    }
    r.ids.push_back(id);
    history.push_back(id);
    if (text.push(id)) {
      deliver(id);
      r.stop_reason = "stop";
      break;
    }
    if (!deliver(id)) {
      r.stop_reason = "callback";
      break;
    }
    if ((int64_t)r.ids.size() >= params.max_tokens) break;
    if (session.position() >= model.ctx()) {
      r.stop_reason = "context";
      break;
    }
    session.eval(&id, 1, logits.data());
  }
  if (r.stop_reason != "stop" && r.stop_reason != "callback") {
    text.finish();
    deliver(-1);
  }
  r.gen_seconds = seconds_since(t0);
  r.text = r.stop_reason == "callback" ? text.text().substr(0, text.shown()) : text.text();
  return r;
}

}  // namespace lowbit
