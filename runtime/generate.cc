#include "runtime/generate.h"

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

GenerateResult generate(Session& session, const std::string& prompt, const GenerateParams& params,
                        const TokenCallback& on_token) {
  const Model& model = session.model();
  const Tokenizer& tok = model.tokenizer();
  const int64_t vocab = model.config().vocab_size;
  for (const std::string& s : params.stop)
    if (s.empty()) throw Error(ErrorCode::invalid_argument, "stop strings must not be empty");
  GenerateResult r;
  r.prompt_ids = tok.encode(prompt, params.add_bos);
  if (r.prompt_ids.empty()) throw Error(ErrorCode::invalid_argument, "empty prompt and the tokenizer adds no BOS: nothing to start from");

  Sampler sampler(params.sampler);
  std::vector<float> logits(vocab);
  std::vector<int32_t> history = r.prompt_ids;
  auto t0 = std::chrono::steady_clock::now();
  session.eval(r.prompt_ids.data(), (int64_t)r.prompt_ids.size(), logits.data());
  r.prompt_seconds = seconds_since(t0);

  DecodeStream stream(tok);
  std::string full;      // all generated text so far
  size_t delivered = 0;  // bytes of `full` handed to the callback
  auto deliver = [&](size_t upto, int32_t id) {
    if (upto <= delivered) return true;
    const std::string piece = full.substr(delivered, upto - delivered);
    delivered = upto;
    return on_token ? on_token(piece, id) : true;
  };

  t0 = std::chrono::steady_clock::now();
  r.stop_reason = "length";
  while ((int64_t)r.ids.size() < params.max_tokens) {
    const int32_t id = sampler.sample(logits.data(), vocab, history);
    if (tok.is_eos(id) || (params.stop_on_bos && id == tok.bos_id())) {
      r.stop_reason = "eos";
      break;
    }
    r.ids.push_back(id);
    history.push_back(id);
    full += stream.push(id);
    bool stopped = false;
    for (const std::string& s : params.stop) {
      const size_t at = full.find(s);
      if (at != std::string::npos) {
        full.resize(at);
        stopped = true;
      }
    }
    if (stopped) {
      deliver(full.size(), id);
      r.stop_reason = "stop";
      break;
    }
    if (!deliver(full.size() - held_back(full, params.stop), id)) {
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
    full += stream.flush();
    deliver(full.size(), -1);
  }
  r.gen_seconds = seconds_since(t0);
  r.text = full.substr(0, r.stop_reason == "callback" ? delivered : full.size());
  return r;
}

}  // namespace lowbit
