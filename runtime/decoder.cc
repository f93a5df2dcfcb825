#include "runtime/decoder.h"

#include <algorithm>
#include <cmath>

#include "kernels/error.h"
#include "kernels/ops.h"
#include "runtime/manifest.h"

namespace lowbit {

namespace {

// The workspace slots of one step.
enum Slot : size_t { kX, kXb, kQ, kK, kV, kAtt, kGate, kUp, kTmp, kHead, kLogits, kHidden,
                    kRouter, kExpertX, kExpertGate, kExpertUp, kExpertY };

}  // namespace

std::vector<float> rope_inv_freq(const ModelConfig& c, bool local) {
  const int64_t dims = rotary_dims(c), half = dims / 2;
  std::vector<float> inv(half);
  const RopeScaling& rs = c.rope_scaling;
  for (int64_t i = 0; i < half; ++i) {
    const double theta = local ? c.rope_local_theta : c.rope_theta;
    double f = std::pow(theta, -2.0 * (double)i / (double)dims);
    if (local) {
      // the windowed layers of a model with a base of their own take no scaling (Gemma 3's)
    } else if (rs.type == "linear") {
      f /= rs.factor;
    } else if (rs.type == "llama3") {
      // Llama 3.1 scaling: long wavelengths are slowed by `factor`, short ones kept, and the band
      // between blended linearly in 1/wavelength (transformers' _compute_llama3_parameters).
      const double wavelen = 2 * M_PI / f;
      const double low_wavelen = rs.original_max_position / rs.low_freq_factor;
      const double high_wavelen = rs.original_max_position / rs.high_freq_factor;
      if (wavelen > low_wavelen) {
        f /= rs.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (rs.original_max_position / wavelen - rs.low_freq_factor) /
                              (rs.high_freq_factor - rs.low_freq_factor);
        f = (1 - smooth) * f / rs.factor + smooth * f;
      }
    } else if (rs.type == "factors" || rs.type == "longrope") {
      f /= rs.freq_factors[i];  // llama.cpp's rope freq_factors divide theta the same way
    }
    inv[i] = (float)f;
  }
  return inv;
}

DecoderForward::DecoderForward(const ModelConfig& c, const Manifest& mf, std::span<const Stage> stages) : c_(c) {
  int64_t next = 0;
  for (const Stage& s : stages) {
    if (!s.backend || s.first != next || s.layers < 0)
      throw Error(ErrorCode::internal, "forward: stages do not cover the layers in order");
    next += s.layers;
  }
  if (stages.empty() || next != c.n_layers) throw Error(ErrorCode::internal, "forward: stages do not cover the layers");
  Backend& first = *stages.front().backend;
  Backend& last = *stages.back().backend;
  embed_ = first.upload_matrix(mf.matrix(tensor_name(c, Role::embed)));
  if (!c.tie_embeddings)
    lm_head_ = last.upload_matrix(mf.matrix(tensor_name(c, Role::lm_head)));
  else
    lm_head_ = &last == &first ? embed_ : last.upload_matrix(mf.matrix(tensor_name(c, Role::embed)));
  final_norm_ = last.upload_vector(mf.vector(tensor_name(c, Role::final_norm)), c.dim);
  const std::vector<float> inv = rope_inv_freq(c), inv_local = c.rope_local_theta > 0 ? rope_inv_freq(c, true) : inv;
  std::vector<std::vector<TensorSpec>> by_layer((size_t)c.n_layers);
  for (const TensorSpec& t : expected_tensors(c))
    if (t.layer >= 0) by_layer[(size_t)t.layer].push_back(t);
  for (const Stage& s : stages) {
    Backend& b = *s.backend;
    stages_.push_back({s, b.upload_vector(inv.data(), (int64_t)inv.size()),
                       b.upload_vector(inv_local.data(), (int64_t)inv_local.size())});
    for (int l = (int)s.first; l < s.first + s.layers; ++l) {
      Layer w;
      for (const TensorSpec& t : by_layer[(size_t)l]) {
        auto vec = [&](Tensor& into) { into = b.upload_vector(mf.vector(t.name), t.shape[0]); };
        auto mat = [&](Matrix& into) { into = b.upload_matrix(mf.matrix(t.name)); };
        auto expert = [&](std::vector<Matrix>& into) {
          into.resize((size_t)c.n_experts);
          mat(into[(size_t)t.expert]);
        };
        switch (t.role) {
          case Role::attn_norm: vec(w.attn_norm); break;
          case Role::ffn_norm: vec(w.ffn_norm); break;
          case Role::post_attn_norm: vec(w.post_attn_norm); break;
          case Role::post_ffn_norm: vec(w.post_ffn_norm); break;
          case Role::q_norm: vec(w.q_norm); break;
          case Role::k_norm: vec(w.k_norm); break;
          case Role::bq: vec(w.bq); break;
          case Role::bk: vec(w.bk); break;
          case Role::bv: vec(w.bv); break;
          case Role::wq: mat(w.wq); break;
          case Role::wk: mat(w.wk); break;
          case Role::wv: mat(w.wv); break;
          case Role::wo: mat(w.wo); break;
          case Role::w_gate: mat(w.w_gate); break;
          case Role::w_up: mat(w.w_up); break;
          case Role::w_down: mat(w.w_down); break;
          case Role::router: mat(w.router); break;
          case Role::e_gate: expert(w.e_gate); break;
          case Role::e_up: expert(w.e_up); break;
          case Role::e_down: expert(w.e_down); break;
          case Role::embed: case Role::final_norm: case Role::lm_head:
            throw Error(ErrorCode::internal, "forward: a global tensor listed in layer " + std::to_string(l));
        }
      }
      layers_.push_back(w);
    }
  }
}

void DecoderForward::mm(Backend& b, std::initializer_list<Proj> projs, int64_t layer, const Tensor& x, Workspace& ws,
                      const ForwardOptions& opt) const {
  constexpr size_t kMax = 3;  // q, k and v at most: a fixed array on the per-token path
  Projection out[kMax];
  size_t count = 0;
  if (opt.observer && *opt.observer) {
    ws.observed.resize((size_t)x.size());
    b.read(x, ws.observed.data());
  }
  for (const Proj& p : projs) {
    if (count == kMax) throw Error(ErrorCode::internal, "llama: more than 3 projections in one matmul");
    if (opt.observer && *opt.observer) {
      const Role r = p.role == Role::lm_head && c_.tie_embeddings ? Role::embed : p.role;
      (*opt.observer)(tensor_name(c_, r, (int)layer, p.expert), ws.observed.data(), x.rows, x.cols);
    }
    out[count++] = {&p.w, p.y};
  }
  b.matmul(x, std::span<const Projection>(out, count), opt.row_independent);
}

AttentionShape DecoderForward::attention_shape(int64_t l) const {
  const bool windowed = c_.sliding_layers.empty() || c_.sliding_layers[(size_t)l];
  const float scale = c_.query_scale > 0 ? c_.query_scale : 1.0f / std::sqrt((float)c_.head_dim);
  return {c_.n_heads, c_.n_kv_heads, c_.head_dim, windowed ? c_.sliding_window : 0, scale, c_.attn_softcap};
}

void DecoderForward::rope(Backend& b, const StageWeights& st, int64_t l, const Scratch& s, const Workspace& ws) const {
  if (!c_.nope_layers.empty() && c_.nope_layers[(size_t)l]) return;  // SmolLM3's layers without RoPE
  const bool local = c_.rope_local_theta > 0 && !c_.sliding_layers.empty() && c_.sliding_layers[(size_t)l];
  const Tensor& inv = local ? st.inv_freq_local : st.inv_freq;
  // LongRoPE's attention factor scales cos and sin (so the rotated part of q and k); Gemma 3's
  // windowed layers take no scaling.
  const float scale = local ? 1.0f : c_.rope_scaling.attention_factor;
  b.rope(s.q, c_.n_heads, c_.head_dim, inv, scale, ws.seqs);
  b.rope(s.k, c_.n_kv_heads, c_.head_dim, inv, scale, ws.seqs);
}

void DecoderForward::head_norms(Backend& b, const Layer& w, const Scratch& s, int64_t n) const {
  const Tensor qh = s.q.reshape(n * c_.n_heads, c_.head_dim), kh = s.k.reshape(n * c_.n_kv_heads, c_.head_dim);
  b.rmsnorm(qh, w.q_norm, c_.norm_eps, qh);
  b.rmsnorm(kh, w.k_norm, c_.norm_eps, kh);
}

void DecoderForward::moe(Backend& b, int64_t l, const Tensor& x, const Tensor& out, Workspace& ws,
                         const ForwardOptions& opt) const {
  const Layer& w = layers_[l];
  const int64_t n = x.rows, experts = c_.n_experts, used = c_.n_experts_used;
  const Tensor logits = ws.get(b, kRouter, n, experts);
  mm(b, {{w.router, Role::router, logits}}, l, x, ws, opt);
  ws.moe_logits.resize((size_t)(n * experts));
  b.read(logits, ws.moe_logits.data());
  // Per row: the `used` experts of largest logit (ties to the lower number, as a stable sort), each
  // weighted by its softmax probability (in double), renormalized over the chosen when the model
  // says so (then the softmax of the chosen logits alone).
  ws.moe_rows.resize((size_t)experts);
  ws.moe_weights.resize((size_t)experts);
  for (int64_t e = 0; e < experts; ++e) ws.moe_rows[(size_t)e].clear(), ws.moe_weights[(size_t)e].clear();
  ws.moe_order.resize((size_t)experts);
  for (int64_t r = 0; r < n; ++r) {
    const float* z = &ws.moe_logits[(size_t)(r * experts)];
    for (int64_t e = 0; e < experts; ++e) ws.moe_order[(size_t)e] = e;
    std::partial_sort(ws.moe_order.begin(), ws.moe_order.begin() + used, ws.moe_order.end(),
                      [&](int64_t a, int64_t c) { return z[a] > z[c] || (z[a] == z[c] && a < c); });
    const double top = z[ws.moe_order[0]];
    double norm = 0;  // the softmax's denominator: over the chosen, or over every expert
    for (int64_t i = 0; i < (c_.moe_norm_topk ? used : experts); ++i)
      norm += std::exp((double)z[c_.moe_norm_topk ? ws.moe_order[(size_t)i] : i] - top);
    for (int64_t i = 0; i < used; ++i) {
      const int64_t e = ws.moe_order[(size_t)i];
      ws.moe_rows[(size_t)e].push_back(r);
      ws.moe_weights[(size_t)e].push_back((float)(std::exp((double)z[e] - top) / norm));
    }
  }
  ws.moe_zeros.resize((size_t)out.size());
  b.write(out, ws.moe_zeros.data());
  for (int64_t e = 0; e < experts; ++e) {
    const std::vector<int64_t>& rows = ws.moe_rows[(size_t)e];
    if (rows.empty()) continue;
    const int64_t m = (int64_t)rows.size();
    const Tensor xe = ws.get(b, kExpertX, m, c_.dim), gate = ws.get(b, kExpertGate, m, c_.moe_ffn_dim),
                 up = ws.get(b, kExpertUp, m, c_.moe_ffn_dim), y = ws.get(b, kExpertY, m, c_.dim);
    b.gather_rows(x, rows, xe);
    mm(b, {{w.e_gate[(size_t)e], Role::e_gate, gate, (int)e}, {w.e_up[(size_t)e], Role::e_up, up, (int)e}}, l, xe, ws, opt);
    b.swiglu(gate, up);
    mm(b, {{w.e_down[(size_t)e], Role::e_down, y, (int)e}}, l, gate, ws, opt);
    b.add_rows(y, rows, ws.moe_weights[(size_t)e], out);
  }
}

void DecoderForward::run(std::span<const SeqChunk> chunks, Workspace& ws, float* logits, const ForwardOptions& opt) const {
  const ModelConfig& c = c_;
  const int64_t dim = c.dim, hd = c.head_dim, q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd;

  // The batch: rows of every chunk in order, each chunk one sequence's run of positions.
  ws.ids.clear();
  ws.seqs.clear();
  ws.logit_rows.clear();
  int64_t n = 0;
  for (const SeqChunk& s : chunks) {
    if (s.n <= 0 || !s.tokens || !s.cache)
      throw Error(ErrorCode::invalid_argument, "forward: a chunk without tokens or KV cache");
    if (s.pos < 0 || s.pos + s.n > s.cache->capacity)
      throw Error(ErrorCode::context_full, "forward: positions " + std::to_string(s.pos) + " .. " +
                                               std::to_string(s.pos + s.n - 1) + " outside a KV cache of " +
                                               std::to_string(s.cache->capacity));
    ws.ids.insert(ws.ids.end(), s.tokens, s.tokens + s.n);
    ws.seqs.push_back({nullptr, n, s.n, s.pos});  // the cache part: per stage, below
    if (s.logits == LogitRows::all)
      for (int64_t t = 0; t < s.n; ++t) ws.logit_rows.push_back(n + t);
    else if (s.logits == LogitRows::last)
      ws.logit_rows.push_back(n + s.n - 1);
    n += s.n;
  }
  if (n == 0) throw Error(ErrorCode::invalid_argument, "forward: no tokens");

  for (const SeqChunk& s : chunks)
    if (s.cache->parts.size() != stages_.size())
      throw Error(ErrorCode::internal, "forward: a KV cache made for another placement of the model");

  Backend* prev = nullptr;
  Tensor x;  // (n, dim) the residual stream, in the current stage's backend
  for (size_t si = 0; si < stages_.size(); ++si) {
    const StageWeights& st = stages_[si];
    Backend& b = *st.stage.backend;
    if (!prev) {
      x = ws.get(b, kX, n, dim);
      b.embed(embed_, ws.ids, x);
      embedded(b, x);
    } else if (prev != &b) {
      // Crossing to another backend: the residual stream goes through the host.
      ws.crossing.resize((size_t)(n * dim));
      prev->read(x, ws.crossing.data());
      x = ws.get(b, kX, n, dim);
      b.write(x, ws.crossing.data());
    }
    prev = &b;
    if (st.stage.layers == 0) continue;
    for (size_t i = 0; i < chunks.size(); ++i) {
      const KvCache* part = chunks[i].cache->parts[si].get();
      if (part->layers != st.stage.layers)
        throw Error(ErrorCode::internal, "forward: a KV cache made for another placement of the model");
      ws.seqs[i].cache = chunks[i].cache->parts[si].get();
    }
    const Scratch s{ws.get(b, kXb, n, dim),        ws.get(b, kQ, n, q_dim),      ws.get(b, kK, n, kv_dim),
                    ws.get(b, kV, n, kv_dim),      ws.get(b, kAtt, n, q_dim),    ws.get(b, kTmp, n, dim),
                    ws.get(b, kGate, n, c.ffn_dim), ws.get(b, kUp, n, c.ffn_dim)};
    for (int64_t l = st.stage.first; l < st.stage.first + st.stage.layers; ++l) layer(b, st, l, x, s, ws, opt);
  }

  Backend& b = *prev;  // the last stage's
  if (opt.hidden) {
    const Tensor hn = ws.get(b, kHidden, n, dim);
    b.rmsnorm(x, final_norm_, c.norm_eps, hn);
    b.read(hn, opt.hidden);
  }
  // Only the rows whose logits are wanted go through the (large) head, on the last stage.
  const int64_t rows = (int64_t)ws.logit_rows.size();
  if (rows == 0) return;
  if (!logits) throw Error(ErrorCode::invalid_argument, "forward: logits asked for but no buffer given");
  const Tensor h = ws.get(b, kHead, rows, dim), out = ws.get(b, kLogits, rows, c.vocab_size);
  b.gather_rows(x, ws.logit_rows, h);
  b.rmsnorm(h, final_norm_, c.norm_eps, h);
  mm(b, {{lm_head_, Role::lm_head, out}}, -1, h, ws, opt);
  b.read(out, logits);
  if (c.final_softcap > 0) softcap(logits, rows * c.vocab_size, c.final_softcap);  // Gemma 2's, on the host copy
  if (c.logit_divisor != 1)  // Granite's logits_scaling, divided as transformers does
    for (int64_t i = 0; i < rows * c.vocab_size; ++i) logits[i] /= c.logit_divisor;
}

}  // namespace lowbit
