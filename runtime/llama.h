// The Llama family's forward pass: llama, mistral, qwen2 and qwen3, the same pre-norm decoder
// (RMSNorm, rotate-half RoPE, grouped-query attention with an optional sliding window, SwiGLU MLP)
// with the same module names, differing only in qwen2's q/k/v biases, qwen3's per-head RMSNorm of
// q and k before RoPE, and mistral's window: each an optional step on the same data, where a new
// layer shape (fused projections, norms around the sublayers) would be a new ForwardPass.
#pragma once

#include <vector>

#include "runtime/forward.h"

namespace lowbit {

class LlamaForward final : public ForwardPass {
 public:
  // Hands every layer's weights of the manifest to its stage's backend (in place on the CPU), the
  // embedding to the first stage's, the final norm and head to the last one's.
  LlamaForward(const ModelConfig& c, const Manifest& m, std::span<const Stage> stages);

  void run(std::span<const SeqChunk> chunks, Workspace& ws, float* logits,
           const ForwardOptions& opt = {}) const override;

 private:
  struct Layer {
    Tensor attn_norm, ffn_norm;  // (1, dim)
    Tensor bq, bk, bv;           // (1, q_dim), (1, kv_dim) x 2; qwen2 only
    Tensor q_norm, k_norm;       // (1, head_dim); qwen3 only
    Matrix wq, wk, wv, wo, w_gate, w_up, w_down;
  };
  // One matmul of x (rows, k) into the projections, telling the observer about x first.
  struct Proj {
    const Matrix& w;
    Role role;
    Tensor y;
  };
  void mm(Backend& b, std::initializer_list<Proj> projs, int64_t layer, const Tensor& x, Workspace& ws,
          const ForwardOptions& opt) const;

  struct StageWeights {
    Stage stage;
    Tensor inv_freq;  // (1, head_dim / 2) in this stage's backend
  };

  ModelConfig c_;
  std::vector<StageWeights> stages_;
  Matrix embed_, lm_head_;  // in the first stage's backend, the last one's
  Tensor final_norm_;       // (1, dim), the last stage's
  std::vector<Layer> layers_;
};

// RoPE inverse frequencies for head_dim, with Llama 3 / linear rope_scaling applied.
std::vector<float> rope_inv_freq(const ModelConfig& c);

}  // namespace lowbit
