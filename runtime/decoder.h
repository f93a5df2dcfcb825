// What every decoder-only family's forward pass shares: the batch's rows and sequences, the
// embedding lookup, the stages of a model split across backends (the residual stream crossing
// between them), the final norm and the output head on the rows asked for, the layer weights
// handed to each stage's backend, and the per-layer attention shape and RoPE table. A family
// (runtime/llama.h, runtime/gemma.h) writes only its layer: which norms, projections and
// activation in which order.
#pragma once

#include <vector>

#include "runtime/forward.h"

namespace lowbit {

class DecoderForward : public ForwardPass {
 public:
  void run(std::span<const SeqChunk> chunks, Workspace& ws, float* logits,
           const ForwardOptions& opt = {}) const final;

 protected:
  // Hands every layer's weights of the manifest to its stage's backend (in place on the CPU), the
  // embedding to the first stage's, the final norm and head to the last one's: every tensor the
  // architecture has (models/arch.h expected_tensors), each under its role.
  DecoderForward(const ModelConfig& c, const Manifest& m, std::span<const Stage> stages);

  struct Layer {
    Tensor attn_norm, ffn_norm;             // (1, dim)
    Tensor post_attn_norm, post_ffn_norm;   // (1, dim): Gemma's norms after the sublayers
    Tensor q_norm, k_norm;                  // (1, head_dim): per-head norms (Qwen3, Gemma 3)
    Tensor bq, bk, bv;                      // (1, q_dim), (1, kv_dim) x 2: Qwen2's biases
    Matrix wq, wk, wv, wo, w_gate, w_up, w_down;
    Matrix router;                              // a mixture-of-experts layer's (its MLP is then these:)
    std::vector<Matrix> e_gate, e_up, e_down;   // one per expert
  };
  struct StageWeights {
    Stage stage;
    Tensor inv_freq;        // (1, head_dim / 2) in this stage's backend
    Tensor inv_freq_local;  // the windowed layers' when they have a base of their own (Gemma)
  };
  // One stage's scratch for a batch of n rows, reused by each of its layers.
  struct Scratch {
    Tensor xb;                 // (n, dim): a norm of the residual stream
    Tensor q, k, v, att, tmp;  // (n, q_dim), (n, kv_dim) x 2, (n, q_dim), (n, dim)
    Tensor gate, up;           // (n, ffn_dim)
  };

  // Layer l over the residual stream x (n rows) in stage st's backend.
  virtual void layer(Backend& b, const StageWeights& st, int64_t l, const Tensor& x, const Scratch& s,
                     Workspace& ws, const ForwardOptions& opt) const = 0;
  // After the embedding lookup (Gemma scales the rows); nothing by default.
  virtual void embedded(Backend& b, const Tensor& x) const {}

  // One matmul of x (rows, k) into the projections, telling the observer about x first.
  struct Proj {
    const Matrix& w;
    Role role;
    Tensor y;
    int expert = -1;
  };
  void mm(Backend& b, std::initializer_list<Proj> projs, int64_t layer, const Tensor& x, Workspace& ws,
          const ForwardOptions& opt) const;
  // Layer l's attention: its window (none on a global layer) and score scale.
  AttentionShape attention_shape(int64_t l) const;
  // RoPE of layer l over q and k, with its table in stage st.
  void rope(Backend& b, const StageWeights& st, int64_t l, const Scratch& s, const Workspace& ws) const;
  // q and k through the per-head norms (Qwen3, Gemma 3): each head's head_dim values one row.
  void head_norms(Backend& b, const Layer& w, const Scratch& s, int64_t n) const;
  // Layer l's mixture of experts over x (n rows) into out (n, dim): the router's choice per row
  // (on the host), then each chosen expert's SwiGLU over the rows that chose it, added into out
  // weighted. A row's sum runs over its experts in expert order, so it does not depend on the
  // rows beside it.
  void moe(Backend& b, int64_t l, const Tensor& x, const Tensor& out, Workspace& ws, const ForwardOptions& opt) const;

  ModelConfig c_;
  std::vector<Layer> layers_;

 private:
  std::vector<StageWeights> stages_;
  Matrix embed_, lm_head_;  // in the first stage's backend, the last one's
  Tensor final_norm_;       // (1, dim), the last stage's
};

// RoPE inverse frequencies for the rotated dims of a head (rotary_dims), with rope_scaling's
// per-frequency change applied (Llama 3, linear, factors, LongRoPE's factors); local: the windowed
// layers' (rope_local_theta, no scaling).
std::vector<float> rope_inv_freq(const ModelConfig& c, bool local = false);

}  // namespace lowbit
