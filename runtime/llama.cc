#include "runtime/llama.h"

namespace lowbit {

void LlamaForward::layer(Backend& b, const StageWeights& st, int64_t l, const Tensor& x, const Scratch& s,
                         Workspace& ws, const ForwardOptions& opt) const {
  const ModelConfig& c = c_;
  const Layer& w = layers_[l];
  b.rmsnorm(x, w.attn_norm, c.norm_eps, s.xb);
  mm(b, {{w.wq, Role::wq, s.q}, {w.wk, Role::wk, s.k}, {w.wv, Role::wv, s.v}}, l, s.xb, ws, opt);
  if (c.qkv_bias) {
    b.add_row(s.q, w.bq);
    b.add_row(s.k, w.bk);
    b.add_row(s.v, w.bv);
  }
  if (c.qk_norm) head_norms(b, w, s, x.rows);
  rope(b, st, l, s, ws);
  b.attention(l - st.stage.first, s.q, s.k, s.v, ws.seqs, attention_shape(l), s.att);
  mm(b, {{w.wo, Role::wo, s.tmp}}, l, s.att, ws, opt);
  if (c.residual_scale != 1) b.scale(s.tmp, c.residual_scale);  // Granite's
  b.add(x, s.tmp);

  b.rmsnorm(x, w.ffn_norm, c.norm_eps, s.xb);
  if (is_moe_layer(c, l)) {
    moe(b, l, s.xb, s.tmp, ws, opt);
  } else {
    mm(b, {{w.w_gate, Role::w_gate, s.gate}, {w.w_up, Role::w_up, s.up}}, l, s.xb, ws, opt);
    b.swiglu(s.gate, s.up);
    mm(b, {{w.w_down, Role::w_down, s.tmp}}, l, s.gate, ws, opt);
  }
  if (c.residual_scale != 1) b.scale(s.tmp, c.residual_scale);
  b.add(x, s.tmp);
}

void LlamaForward::embedded(Backend& b, const Tensor& x) const {
  if (c_.embed_scale != 1) b.scale(x, c_.embed_scale);  // Granite's embedding_multiplier
}

}  // namespace lowbit
