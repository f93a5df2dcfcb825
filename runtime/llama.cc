#include "runtime/llama.h"

#include <cmath>

#include "kernels/error.h"
#include "runtime/manifest.h"

namespace lowbit {

namespace {

// The workspace slots of one step.
enum Slot : size_t { kX, kXb, kQ, kK, kV, kAtt, kGate, kUp, kTmp, kHead, kLogits, kHidden };

}  // namespace

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int64_t half = c.head_dim / 2;
  std::vector<float> inv(half);
  const RopeScaling& rs = c.rope_scaling;
  for (int64_t i = 0; i < half; ++i) {
    double f = std::pow((double)c.rope_theta, -2.0 * (double)i / (double)c.head_dim);
    if (rs.type == "linear") {
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
    } else if (rs.type == "factors") {
      f /= rs.freq_factors[i];  // llama.cpp's rope freq_factors divide theta the same way
    }
    inv[i] = (float)f;
  }
  return inv;
}

LlamaForward::LlamaForward(const ModelConfig& c, const Manifest& mf, std::span<const Stage> stages) : c_(c) {
  int64_t next = 0;
  for (const Stage& s : stages) {
    if (!s.backend || s.first != next || s.layers < 0)
      throw Error(ErrorCode::internal, "llama: stages do not cover the layers in order");
    next += s.layers;
  }
  if (stages.empty() || next != c.n_layers) throw Error(ErrorCode::internal, "llama: stages do not cover the layers");
  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  Backend& first = *stages.front().backend;
  Backend& last = *stages.back().backend;
  embed_ = first.upload_matrix(mf.matrix(tensor_name(c, Role::embed)));
  if (!c.tie_embeddings)
    lm_head_ = last.upload_matrix(mf.matrix(tensor_name(c, Role::lm_head)));
  else
    lm_head_ = &last == &first ? embed_ : last.upload_matrix(mf.matrix(tensor_name(c, Role::embed)));
  final_norm_ = last.upload_vector(mf.vector(tensor_name(c, Role::final_norm)), c.dim);
  const std::vector<float> inv = rope_inv_freq(c);
  for (const Stage& s : stages) {
    Backend& b = *s.backend;
    stages_.push_back({s, b.upload_vector(inv.data(), (int64_t)inv.size())});
    auto matrix = [&](Role r, int l) { return b.upload_matrix(mf.matrix(tensor_name(c, r, l))); };
    auto vector = [&](Role r, int l, int64_t n) { return b.upload_vector(mf.vector(tensor_name(c, r, l)), n); };
    for (int l = (int)s.first; l < s.first + s.layers; ++l) {
      Layer w;
      w.attn_norm = vector(Role::attn_norm, l, c.dim);
      w.wq = matrix(Role::wq, l);
      w.wk = matrix(Role::wk, l);
      w.wv = matrix(Role::wv, l);
      w.wo = matrix(Role::wo, l);
      if (c.qkv_bias) {
        w.bq = vector(Role::bq, l, q_dim);
        w.bk = vector(Role::bk, l, kv_dim);
        w.bv = vector(Role::bv, l, kv_dim);
      }
      if (c.qk_norm) {
        w.q_norm = vector(Role::q_norm, l, c.head_dim);
        w.k_norm = vector(Role::k_norm, l, c.head_dim);
      }
      w.ffn_norm = vector(Role::ffn_norm, l, c.dim);
      w.w_gate = matrix(Role::w_gate, l);
      w.w_up = matrix(Role::w_up, l);
      w.w_down = matrix(Role::w_down, l);
      layers_.push_back(w);
    }
  }
}

void LlamaForward::mm(Backend& b, std::initializer_list<Proj> projs, int64_t layer, const Tensor& x, Workspace& ws,
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
      (*opt.observer)(tensor_name(c_, r, (int)layer), ws.observed.data(), x.rows, x.cols);
    }
    out[count++] = {&p.w, p.y};
  }
  b.matmul(x, std::span<const Projection>(out, count), opt.row_independent);
}

void LlamaForward::run(std::span<const SeqChunk> chunks, Workspace& ws, float* logits, const ForwardOptions& opt) const {
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

  const AttentionShape shape{c.n_heads, c.n_kv_heads, hd, c.sliding_window, 1.0f / std::sqrt((float)hd)};
  Backend* prev = nullptr;
  Tensor x;  // (n, dim) the residual stream, in the current stage's backend
  for (size_t si = 0; si < stages_.size(); ++si) {
    const StageWeights& st = stages_[si];
    Backend& b = *st.stage.backend;
    if (!prev) {
      x = ws.get(b, kX, n, dim);
      b.embed(embed_, ws.ids, x);
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
    const Tensor xb = ws.get(b, kXb, n, dim);  // the residual stream's norm
    const Tensor q = ws.get(b, kQ, n, q_dim), k = ws.get(b, kK, n, kv_dim), v = ws.get(b, kV, n, kv_dim);
    const Tensor att = ws.get(b, kAtt, n, q_dim), tmp = ws.get(b, kTmp, n, dim);
    const Tensor gate = ws.get(b, kGate, n, c.ffn_dim), up = ws.get(b, kUp, n, c.ffn_dim);
    for (int64_t l = st.stage.first; l < st.stage.first + st.stage.layers; ++l) {
      const Layer& w = layers_[l];
      b.rmsnorm(x, w.attn_norm, c.norm_eps, xb);
      mm(b, {{w.wq, Role::wq, q}, {w.wk, Role::wk, k}, {w.wv, Role::wv, v}}, l, xb, ws, opt);
      if (c.qkv_bias) {
        b.add_row(q, w.bq);
        b.add_row(k, w.bk);
        b.add_row(v, w.bv);
      }
      if (c.qk_norm) {  // each head's hd values one row
        const Tensor qh = q.reshape(n * c.n_heads, hd), kh = k.reshape(n * c.n_kv_heads, hd);
        b.rmsnorm(qh, w.q_norm, c.norm_eps, qh);
        b.rmsnorm(kh, w.k_norm, c.norm_eps, kh);
      }
      b.rope(q, c.n_heads, hd, st.inv_freq, ws.seqs);
      b.rope(k, c.n_kv_heads, hd, st.inv_freq, ws.seqs);
      b.attention(l - st.stage.first, q, k, v, ws.seqs, shape, att);
      mm(b, {{w.wo, Role::wo, tmp}}, l, att, ws, opt);
      b.add(x, tmp);

      b.rmsnorm(x, w.ffn_norm, c.norm_eps, xb);
      mm(b, {{w.w_gate, Role::w_gate, gate}, {w.w_up, Role::w_up, up}}, l, xb, ws, opt);
      b.swiglu(gate, up);
      mm(b, {{w.w_down, Role::w_down, tmp}}, l, gate, ws, opt);
      b.add(x, tmp);
    }
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
}

}  // namespace lowbit
