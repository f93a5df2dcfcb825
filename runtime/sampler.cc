#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/error.h"

namespace lowbit {

std::optional<InvalidSetting> invalid_setting(const SamplerParams& p) {
  // Written so that NaN fails every test.
  if (!(p.temperature >= 0)) return InvalidSetting{"temperature", ">= 0"};
  if (p.top_k < 0) return InvalidSetting{"top_k", ">= 0"};
  if (!(p.top_p > 0 && p.top_p <= 1)) return InvalidSetting{"top_p", "in (0, 1]"};
  if (!(p.min_p >= 0 && p.min_p <= 1)) return InvalidSetting{"min_p", "in [0, 1]"};
  if (!(p.repetition_penalty > 0)) return InvalidSetting{"repetition_penalty", "> 0"};
  if (p.repetition_window < 0) return InvalidSetting{"repetition_window", ">= 0"};
  if (!(p.presence_penalty >= -2 && p.presence_penalty <= 2)) return InvalidSetting{"presence_penalty", "in [-2, 2]"};
  if (!(p.frequency_penalty >= -2 && p.frequency_penalty <= 2))
    return InvalidSetting{"frequency_penalty", "in [-2, 2]"};
  return std::nullopt;
}

namespace {

// A key whose unsigned order is the float's order reversed (larger floats first): positive
// floats order as their bits, negative ones reversed, and the sign bit puts the positives above.
inline uint32_t descending_key(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return ~((u & 0x80000000u) ? ~u : (u | 0x80000000u));
}

}  // namespace

// cand_ holds (logit / temperature, id) for every id; sorts it best first. A stable radix sort
// (three passes of 11 bits over the keys) rather than std::sort: with no top-k the whole
// vocabulary is sorted every token, and std::sort's ~16 hard-to-predict comparisons per logit
// made one sample() over SmolLM2's 49152 take 3.4 ms (about half that model's decode step on 2
// threads); with this sort it takes 0.5 ms (temperature 0.8, top-p off or 0.95). The order is the same except among exactly equal logits, which come
// in id order here and in std::sort's arbitrary one before; equal logits have equal
// probabilities, so the sums below and the distribution of choices are unchanged.
void Sampler::sort_all(int64_t vocab) {
  constexpr int kBits = 11, kBuckets = 1 << kBits, kPasses = 3;  // 33 bits cover the 32
  keys_.resize(vocab), keys_tmp_.resize(vocab), ids_.resize(vocab), ids_tmp_.resize(vocab);
  uint32_t start[kPasses][kBuckets] = {};  // counts, then each bucket's next slot
  for (int64_t i = 0; i < vocab; ++i) {
    const uint32_t k = keys_[i] = descending_key(cand_[i].first);
    ids_[i] = (int32_t)i;
    for (int p = 0; p < kPasses; ++p) ++start[p][(k >> (p * kBits)) & (kBuckets - 1)];
  }
  for (int p = 0; p < kPasses; ++p) {
    uint32_t at = 0;
    for (uint32_t& c : start[p]) {
      const uint32_t n = c;
      c = at;
      at += n;
    }
    for (int64_t i = 0; i < vocab; ++i) {
      const uint32_t to = start[p][(keys_[i] >> (p * kBits)) & (kBuckets - 1)]++;
      keys_tmp_[to] = keys_[i];
      ids_tmp_[to] = ids_[i];
    }
    keys_.swap(keys_tmp_);
    ids_.swap(ids_tmp_);
  }
  cand_tmp_.resize(vocab);
  for (int64_t i = 0; i < vocab; ++i) cand_tmp_[i] = cand_[ids_[i]];
  cand_.swap(cand_tmp_);
}

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {
  if (const auto bad = invalid_setting(p))
    throw Error(ErrorCode::invalid_argument, bad->field + " must be " + bad->requirement);
}

// Each distinct token of the last repetition_window: the repetition penalty once, then its count
// times the frequency penalty and the presence penalty once. window_ keeps its capacity, so a
// token allocates nothing once the window is full.
void Sampler::penalize(float* logits, int64_t vocab, const std::vector<int32_t>& recent) {
  const size_t from = recent.size() > (size_t)p_.repetition_window ? recent.size() - p_.repetition_window : 0;
  window_.assign(recent.begin() + (std::ptrdiff_t)from, recent.end());
  std::sort(window_.begin(), window_.end());
  for (size_t i = 0; i < window_.size();) {
    const int32_t t = window_[i];
    size_t j = i;
    while (j < window_.size() && window_[j] == t) ++j;
    const float count = (float)(j - i);
    i = j;
    if (t < 0 || t >= vocab) continue;
    float& l = logits[t];
    if (p_.repetition_penalty != 1.0f) l = l > 0 ? l / p_.repetition_penalty : l * p_.repetition_penalty;
    l -= count * p_.frequency_penalty + p_.presence_penalty;
  }
}

int32_t Sampler::sample(float* logits, int64_t vocab, const std::vector<int32_t>& recent) {
  if (p_.repetition_penalty != 1.0f || p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f)
    penalize(logits, vocab, recent);
  if (p_.temperature == 0.0f) return (int32_t)(std::max_element(logits, logits + vocab) - logits);

  cand_.resize(vocab);
  for (int64_t i = 0; i < vocab; ++i) cand_[i] = {logits[i] / p_.temperature, (int32_t)i};
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first; };
  int64_t n = vocab;
  if (p_.top_k > 0 && p_.top_k < n) {
    std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), by_logit);
    n = p_.top_k;
  } else {
    sort_all(vocab);
  }
  // Softmax over the survivors (sorted, so cand_[0] is the max).
  const float mx = cand_[0].first;
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    cand_[i].first = std::exp(cand_[i].first - mx);
    sum += cand_[i].first;
  }
  for (int64_t i = 0; i < n; ++i) cand_[i].first = (float)(cand_[i].first / sum);
  if (p_.min_p > 0) {
    const float cut = p_.min_p * cand_[0].first;
    int64_t keep = 1;
    while (keep < n && cand_[keep].first >= cut) ++keep;
    n = keep;
  }
  if (p_.top_p < 1) {
    double cum = 0;
    int64_t keep = 0;
    while (keep < n) {
      cum += cand_[keep++].first;
      if (cum >= p_.top_p) break;
    }
    n = keep;
  }
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += cand_[i].first;
  const double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) {
    acc += cand_[i].first;
    if (r < acc) return cand_[i].second;
  }
  return cand_[n - 1].second;
}

}  // namespace lowbit
