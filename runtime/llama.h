// The Llama family's layer: llama, mistral, qwen2 and qwen3, the same pre-norm decoder (RMSNorm,
// rotate-half RoPE, grouped-query attention with an optional sliding window, SwiGLU MLP) with the
// same module names, differing only in qwen2's q/k/v biases, qwen3's per-head RMSNorm of q and k
// before RoPE, and mistral's window: each an optional step on the same data, where a new layer
// shape (fused projections, norms around the sublayers) is a new family (runtime/gemma.h).
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
};

}  // namespace lowbit
