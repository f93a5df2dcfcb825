// Next-token choice from logits: greedy, or temperature sampling filtered by top-k, top-p and
// min-p, with a repetition penalty and OpenAI's presence and frequency penalties. Same seed,
// same choices.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace lowbit {

struct SamplerParams {
  float temperature = 0.0f;       // 0: greedy (argmax)
  int top_k = 0;                  // 0: off
  float top_p = 1.0f;             // 1: off
  float min_p = 0.0f;             // 0: off; keep tokens with p >= min_p * p_max
  float repetition_penalty = 1.0f;  // 1: off; CTRL-style: divide positive logits, multiply negative
  int repetition_window = 64;     // how many recent tokens the penalties look at
  // OpenAI's: a token seen c times in the window loses c * frequency_penalty + (c > 0) *
  // presence_penalty from its logit, after the repetition penalty (as llama.cpp orders them).
  float presence_penalty = 0.0f;   // 0: off; in [-2, 2]
  float frequency_penalty = 0.0f;  // 0: off; in [-2, 2]
  uint64_t seed = 0;
};

// A setting outside its range: the field's name ("top_p", as in SamplerParams and
// GenerateParams, which the Python and C APIs share) and the range it must lie in ("in (0, 1]").
struct InvalidSetting {
  std::string field;
  std::string requirement;
};

// The first setting of p outside its range, if any. The Sampler throws on it ("top_p must be in
// (0, 1]"); a front end calls it first to report the setting under its own name (--top-p).
std::optional<InvalidSetting> invalid_setting(const SamplerParams& p);

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p);
  // logits: (vocab); modified in place by the penalty. recent: tokens so far (prompt included).
  int32_t sample(float* logits, int64_t vocab, const std::vector<int32_t>& recent);

 private:
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // (logit / temperature, id), best first
  // sort_all()'s scratch, (vocab) each: kept so a token allocates nothing
  std::vector<uint32_t> keys_, keys_tmp_;
  std::vector<int32_t> ids_, ids_tmp_;
  std::vector<std::pair<float, int32_t>> cand_tmp_;
  std::vector<int32_t> window_;  // the penalties' window, sorted: each token's run is its count
  void sort_all(int64_t vocab);
  void penalize(float* logits, int64_t vocab, const std::vector<int32_t>& recent);
};

}  // namespace lowbit
