// The Llama family's forward pass: llama, mistral and qwen2, the same pre-norm decoder (RMSNorm,
// rotate-half RoPE, grouped-query attention with an optional sliding window, SwiGLU MLP) with
// the same module names, differing only in qwen2's q/k/v biases and mistral's window.
#pragma once

#include <vector>

#include "runtime/forward.h"

namespace lowbit {

class LlamaForward final : public ForwardPass {
 public:
  // Hands every weight of the manifest to the backend (in place on the CPU).
  LlamaForward(const ModelConfig& c, const Manifest& m, Backend& b);

  void run(std::span<const SeqChunk> chunks, Workspace& ws, float* logits,
           const ForwardOptions& opt = {}) const override;

 private:
  struct Layer {
    Tensor attn_norm, ffn_norm;  // (1, dim)
    Tensor bq, bk, bv;           // (1, q_dim), (1, kv_dim) x 2; qwen2 only
    Matrix wq, wk, wv, wo, w_gate, w_up, w_down;
  };
  // One matmul of x (rows, k) into the projections, telling the observer about x first.
  struct Proj {
    const Matrix& w;
    Role role;
    Tensor y;
  };
  void mm(std::initializer_list<Proj> projs, int64_t layer, const Tensor& x, Workspace& ws,
          const ForwardOptions& opt) const;

  ModelConfig c_;
  Backend& b_;
  Matrix embed_, lm_head_;
  Tensor final_norm_;  // (1, dim)
  Tensor inv_freq_;    // (1, head_dim / 2)
  std::vector<Layer> layers_;
};

// RoPE inverse frequencies for head_dim, with Llama 3 / linear rope_scaling applied.
std::vector<float> rope_inv_freq(const ModelConfig& c);

}  // namespace lowbit
