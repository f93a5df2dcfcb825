#include "runtime/model.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>

#include "kernels/error.h"
#include "kernels/ops.h"
#include "kernels/quantize.h"

namespace lowbit {

namespace {

// MemAvailable from /proc/meminfo in bytes; -1 when unknown (non-Linux).
int64_t available_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kb;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return -1;
}

std::string mib(int64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

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
    }
    inv[i] = (float)f;
  }
  return inv;
}

MemoryEstimate Model::estimate(const ModelConfig& c, int64_t weights_bytes, int64_t ctx, int64_t batch) {
  MemoryEstimate e;
  e.weights = weights_bytes;
  e.kv_cache = 2 * c.n_layers * ctx * c.n_kv_heads * c.head_dim * (int64_t)sizeof(float);
  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  e.scratch = batch * (3 * c.dim + q_dim + 2 * kv_dim + 2 * c.ffn_dim + c.vocab_size) * (int64_t)sizeof(float) +
              batch * ctx * (int64_t)sizeof(float);
  return e;
}

std::unique_ptr<Model> Model::load(const std::string& dir, const LoadParams& params) {
  std::unique_ptr<Model> m(new Model());
  m->manifest_ = Manifest::open(dir);
  m->params_ = params;
  const ModelConfig& c = m->manifest_.config();
  m->ctx_ = params.ctx > 0 ? params.ctx : c.max_ctx;
  if (m->ctx_ <= 0) throw Error(ErrorCode::invalid_argument, dir + ": context length must be positive");

  // A prompt batch is at most 512 tokens at a time (see Session::eval).
  const MemoryEstimate need = estimate(c, (int64_t)m->manifest_.weights_bytes(), m->ctx_, 512);
  const int64_t avail = available_memory();
  if (avail >= 0 && need.total() > avail)
    throw Error(ErrorCode::out_of_memory, dir + ": needs about " + mib(need.total()) + " (weights " + mib(need.weights) +
                ", KV cache for " + std::to_string(m->ctx_) + " positions " + mib(need.kv_cache) +
                ") but only " + mib(avail) + " is available; try a smaller --ctx or fewer bits");

  resolve_isa(params.isa);  // fail now, not inside the first matmul
  m->pool_ = std::make_unique<ThreadPool>(params.threads);
  const Manifest& mf = m->manifest_;
  m->embed_ = mf.matrix(tensor_name(c, Role::embed));
  m->lm_head_ = c.tie_embeddings ? m->embed_ : mf.matrix(tensor_name(c, Role::lm_head));
  m->final_norm_ = mf.vector(tensor_name(c, Role::final_norm));
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights w;
    w.attn_norm = mf.vector(tensor_name(c, Role::attn_norm, l));
    w.wq = mf.matrix(tensor_name(c, Role::wq, l));
    w.wk = mf.matrix(tensor_name(c, Role::wk, l));
    w.wv = mf.matrix(tensor_name(c, Role::wv, l));
    w.wo = mf.matrix(tensor_name(c, Role::wo, l));
    if (c.qkv_bias) {
      w.bq = mf.vector(tensor_name(c, Role::bq, l));
      w.bk = mf.vector(tensor_name(c, Role::bk, l));
      w.bv = mf.vector(tensor_name(c, Role::bv, l));
    }
    w.ffn_norm = mf.vector(tensor_name(c, Role::ffn_norm, l));
    w.w_gate = mf.matrix(tensor_name(c, Role::w_gate, l));
    w.w_up = mf.matrix(tensor_name(c, Role::w_up, l));
    w.w_down = mf.matrix(tensor_name(c, Role::w_down, l));
    m->layers_.push_back(w);
  }
  m->inv_freq_ = lowbit::rope_inv_freq(c);
  if (params.load_tokenizer) m->tokenizer_ = load_tokenizer(dir);
  return m;
}

const Tokenizer& Model::tokenizer() const {
  if (!tokenizer_) throw Error(ErrorCode::invalid_argument, manifest_.dir() + ": model was loaded without a tokenizer");
  return *tokenizer_;
}

Session::Session(const Model& model) : model_(model) {
  const ModelConfig& c = model.config();
  const int64_t kv = c.n_layers * model.ctx() * c.n_kv_heads * c.head_dim;
  k_cache_.assign(kv, 0.0f);
  v_cache_.assign(kv, 0.0f);
}

void Session::truncate(int64_t pos) {
  if (pos < 0 || pos > pos_) throw Error(ErrorCode::invalid_argument, "truncate: position " + std::to_string(pos) + " outside [0, " + std::to_string(pos_) + "]");
  pos_ = pos;
}

void Session::mm(const QMatrix& w, Role role, int64_t layer, const float* x, int64_t m, float* y) {
  mm_many({{w, role, y}}, layer, x, m);
}

void Session::mm_many(std::initializer_list<Proj> projs, int64_t layer, const float* x, int64_t m) {
  // On the per-token path: a fixed array, no allocation (a layer has at most q, k, v at once).
  constexpr int kMax = 3;
  MatmulOut outs[kMax];
  int count = 0;
  const ModelConfig& c = model_.config();
  for (const Proj& p : projs) {
    if (count == kMax) throw Error("mm_many: more than 3 projections");
    if (observer_) {
      const Role r = p.role == Role::lm_head && c.tie_embeddings ? Role::embed : p.role;
      observer_(tensor_name(c, r, (int)layer), x, m, p.w.k);
    }
    outs[count++] = {p.w, p.y};
  }
  matmul_many(outs, count, x, m, model_.matmul_options());
}

void Session::eval(const int32_t* tokens, int64_t n, float* logits, bool all_logits) {
  if (n <= 0) throw Error(ErrorCode::invalid_argument, "eval: no tokens");
  const ModelConfig& c = model_.config();
  if (pos_ + n > model_.ctx())
    throw Error(ErrorCode::context_full, "context full: " + std::to_string(pos_) + " + " + std::to_string(n) +
                " tokens exceed the context of " + std::to_string(model_.ctx()) + " (use a larger --ctx)");
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
      throw Error(ErrorCode::invalid_argument, "token id " + std::to_string(tokens[i]) + " outside the vocabulary [0, " +
                  std::to_string(c.vocab_size) + ")");
  // Prompts go in batches of up to 512 tokens: the GEMM kernels are as fast by then, and the
  // scratch stays bounded for long prompts.
  constexpr int64_t kMaxBatch = 512;
  for (int64_t done = 0; done < n;) {
    const int64_t b = std::min(kMaxBatch, n - done);
    const bool last = done + b == n;
    float* out = all_logits ? logits + done * c.vocab_size : (last ? logits : nullptr);
    forward_batch(tokens + done, b, out, all_logits);
    done += b;
  }
}

void Session::forward_batch(const int32_t* tokens, int64_t n, float* logits, bool all_logits) {
  const Model& m = model_;
  const ModelConfig& c = m.config();
  const int64_t dim = c.dim, hd = c.head_dim, q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd;
  const int64_t ctx = m.ctx(), group = c.n_heads / c.n_kv_heads;
  auto grow = [](std::vector<float>& v, int64_t size) {
    if ((int64_t)v.size() < size) v.resize(size);
  };
  grow(x_, n * dim), grow(xb_, n * dim), grow(q_, n * q_dim), grow(k_, n * kv_dim);
  grow(v_, n * kv_dim), grow(att_, n * q_dim), grow(ffn_g_, n * c.ffn_dim);
  grow(ffn_u_, n * c.ffn_dim), grow(tmp_, n * dim);
  grow(scores_, (int64_t)m.pool().size() * group * ctx);

  for (int64_t t = 0; t < n; ++t)
    dequantize_row(m.embed().type, m.embed().data, m.embed().n, m.embed().k, tokens[t], &x_[t * dim]);

  const float scale = 1.0f / std::sqrt((float)hd);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& w = m.layer(l);
    float* kc = k_cache_.data() + l * ctx * kv_dim;  // (ctx, kv_dim)
    float* vc = v_cache_.data() + l * ctx * kv_dim;
    for (int64_t t = 0; t < n; ++t) rmsnorm(&x_[t * dim], w.attn_norm, dim, c.norm_eps, &xb_[t * dim]);
    mm_many({{w.wq, Role::wq, q_.data()}, {w.wk, Role::wk, k_.data()}, {w.wv, Role::wv, v_.data()}}, l, xb_.data(), n);
    for (int64_t t = 0; t < n; ++t) {
      if (w.bq) {
        add_inplace(&q_[t * q_dim], w.bq, q_dim);
        add_inplace(&k_[t * kv_dim], w.bk, kv_dim);
        add_inplace(&v_[t * kv_dim], w.bv, kv_dim);
      }
      rope(&q_[t * q_dim], c.n_heads, hd, pos_ + t, m.rope_inv_freq().data());
      rope(&k_[t * kv_dim], c.n_kv_heads, hd, pos_ + t, m.rope_inv_freq().data());
      std::copy_n(&k_[t * kv_dim], kv_dim, kc + (pos_ + t) * kv_dim);
      std::copy_n(&v_[t * kv_dim], kv_dim, vc + (pos_ + t) * kv_dim);
    }
    // Causal attention: token t sees positions [first, pos_ + t], first > 0 only with a
    // sliding window. One task per (token, KV head, part of its query heads): the query heads
    // of a KV head share its reads of the cache (heads of KV head kvh: kvh * group ..
    // kvh * group + group - 1). A prompt's tokens give plenty of tasks; a decode step's few
    // KV heads are cut into parts until there are ~16 tasks per thread, which evens out the
    // threads' finish better than the shared reads save: TinyLlama shape (4 KV heads of 8),
    // 1000-token context, 2 threads, generation tokens/s against one task per head: 4 tasks
    // 6% slower, 8 tasks 7% slower, 32 tasks (one head each) the same; the 1000-token prompt
    // gains 3-10% (85-92 -> 89-97 tokens/s).
    int64_t parts = 1;
    while (group % (parts * 2) == 0 && n * c.n_kv_heads * parts < 16 * (int64_t)m.pool().size()) parts *= 2;
    const int64_t heads = group / parts;  // query heads per task
    auto attend_task = [&](int64_t task, int thread) {
      const int64_t t = task / (c.n_kv_heads * parts), kvh = task / parts % c.n_kv_heads;
      const int64_t h0 = kvh * group + task % parts * heads;
      const int64_t end = pos_ + t + 1;
      const int64_t first = c.sliding_window > 0 ? std::max<int64_t>(0, end - c.sliding_window) : 0;
      attend(&q_[t * q_dim + h0 * hd], heads, kc + kvh * hd, vc + kvh * hd, kv_dim, end, first, hd, scale,
             &scores_[thread * group * ctx], &att_[t * q_dim + h0 * hd]);
    };
    // Short contexts of small models are cheaper on this thread than waking the pool.
    const int64_t tasks = n * c.n_kv_heads * parts;
    if (n * c.n_heads * (pos_ + n) * hd < (int64_t(1) << 16)) {
      for (int64_t task = 0; task < tasks; ++task) attend_task(task, 0);
    } else {
      m.pool().run(tasks, attend_task);
    }
    mm(w.wo, Role::wo, l, att_.data(), n, tmp_.data());
    add_inplace(x_.data(), tmp_.data(), n * dim);

    for (int64_t t = 0; t < n; ++t) rmsnorm(&x_[t * dim], w.ffn_norm, dim, c.norm_eps, &xb_[t * dim]);
    mm_many({{w.w_gate, Role::w_gate, ffn_g_.data()}, {w.w_up, Role::w_up, ffn_u_.data()}}, l, xb_.data(), n);
    swiglu(ffn_g_.data(), ffn_u_.data(), n * c.ffn_dim);
    mm(w.w_down, Role::w_down, l, ffn_g_.data(), n, tmp_.data());
    add_inplace(x_.data(), tmp_.data(), n * dim);
  }
  pos_ += n;
  if (!logits) return;
  // Only the rows whose logits are wanted go through the (large) head.
  const int64_t first = all_logits ? 0 : n - 1, rows = n - first;
  for (int64_t t = first; t < n; ++t) rmsnorm(&x_[t * dim], m.final_norm(), dim, c.norm_eps, &xb_[(t - first) * dim]);
  mm(m.lm_head(), Role::lm_head, -1, xb_.data(), rows, logits);
}

}  // namespace lowbit
