// The Llama family's layer: llama, mistral, qwen2, qwen3, phi3, smollm3 and granite, the same
// pre-norm decoder (RMSNorm, rotate-half RoPE, grouped-query attention with an optional sliding
// window, SwiGLU MLP), differing only in qwen2's q/k/v biases, qwen3's per-head RMSNorm of q and k
// before RoPE, mistral's and phi3's window, smollm3's layers without RoPE and granite's
// multipliers: each an optional step on the same data (phi3's fused projections are split on
// import, models/arch.h stored_slice), where a new layer shape (norms around the sublayers) is a
// new family (runtime/gemma.h).
#pragma once

#include "runtime/decoder.h"

namespace lowbit {

class LlamaForward final : public DecoderForward {
 public:
  LlamaForward(const ModelConfig& c, const Manifest& m, std::span<const Stage> stages)
      : DecoderForward(c, m, stages) {}

 private:
  void layer(Backend& b, const StageWeights& st, int64_t l, const Tensor& x, const Scratch& s, Workspace& ws,
             const ForwardOptions& opt) const override;
  void embedded(Backend& b, const Tensor& x) const override;
};

}  // namespace lowbit
