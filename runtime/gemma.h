// The Gemma family's layer (Gemma 2, Gemma 3's text model): RMSNorm both before and after each
// sublayer (the output of attention and of the MLP is normed before it joins the residual
// stream), a GELU-gated MLP (tanh approximation), embeddings scaled by sqrt(hidden_size), and,
// Gemma 3's, per-head RMSNorm of q and k before RoPE. The norms' weights arrive as factors (the
// converter adds Gemma's 1); the windowed layers, their RoPE base and Gemma 2's soft-capping are
// the shared attention_shape, inv_freq and head's.
#pragma once

#include "runtime/decoder.h"

namespace lowbit {

class GemmaForward final : public DecoderForward {
 public:
  GemmaForward(const ModelConfig& c, const Manifest& m, std::span<const Stage> stages)
      : DecoderForward(c, m, stages) {}

 private:
  void layer(Backend& b, const StageWeights& st, int64_t l, const Tensor& x, const Scratch& s, Workspace& ws,
             const ForwardOptions& opt) const override;
  void embedded(Backend& b, const Tensor& x) const override;
};

}  // namespace lowbit
