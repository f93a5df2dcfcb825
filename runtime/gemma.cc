#include "runtime/gemma.h"

#include <cmath>

namespace lowbit {

void GemmaForward::embedded(Backend& b, const Tensor& x) const {
  // transformers rounds this factor to the checkpoint's dtype (34.0 for bf16 1152); llama.cpp
  // multiplies by sqrtf(n_embd), as here.
  b.scale(x, std::sqrt((float)c_.dim));
}

void GemmaForward::layer(Backend& b, const StageWeights& st, int64_t l, const Tensor& x, const Scratch& s,
                         Workspace& ws, const ForwardOptions& opt) const {
  const ModelConfig& c = c_;
  const Layer& w = layers_[l];
  b.rmsnorm(x, w.attn_norm, c.norm_eps, s.xb);
  mm(b, {{w.wq, Role::wq, s.q}, {w.wk, Role::wk, s.k}, {w.wv, Role::wv, s.v}}, l, s.xb, ws, opt);
  if (c.qk_norm) head_norms(b, w, s, x.rows);  // Gemma 3's
  rope(b, st, l, s, ws);
  b.attention(l - st.stage.first, s.q, s.k, s.v, ws.seqs, attention_shape(l), s.att);
  mm(b, {{w.wo, Role::wo, s.tmp}}, l, s.att, ws, opt);
  b.rmsnorm(s.tmp, w.post_attn_norm, c.norm_eps, s.tmp);
  b.add(x, s.tmp);

  b.rmsnorm(x, w.ffn_norm, c.norm_eps, s.xb);
  mm(b, {{w.w_gate, Role::w_gate, s.gate}, {w.w_up, Role::w_up, s.up}}, l, s.xb, ws, opt);
  b.geglu(s.gate, s.up);
  mm(b, {{w.w_down, Role::w_down, s.tmp}}, l, s.gate, ws, opt);
  b.rmsnorm(s.tmp, w.post_ffn_norm, c.norm_eps, s.tmp);
  b.add(x, s.tmp);
}

}  // namespace lowbit
