// A loaded model (immutable weights, mmapped from a manifest) and a Session (KV cache and
// scratch for one sequence). One Model can serve several Sessions.
//
// Thread safety: a Model may be shared by any number of threads once loaded; its thread pool runs
// one matmul at a time, so sessions of one model on different threads take turns inside each
// matmul. A Session is used by one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "kernels/isa.h"
#include "kernels/matmul.h"
#include "kernels/thread_pool.h"
#include "models/arch.h"
#include "runtime/manifest.h"
#include "runtime/tokenizer.h"

namespace lowbit {

struct LoadParams {
  int threads = 0;        // 0: all cores
  int64_t ctx = 0;        // context length the sessions get; 0: the model's max_position
  Isa isa = Isa::automatic;
  bool load_tokenizer = true;
  bool int8_acts = false;  // MatmulOptions::int8_acts for every matmul of the model
};

struct MemoryEstimate {
  int64_t weights = 0;    // weights.bin (mmapped, paged in as used)
  int64_t kv_cache = 0;   // per session
  int64_t scratch = 0;    // activations of one batch of prompt tokens
  int64_t total() const { return weights + kv_cache + scratch; }
};

struct LayerWeights {
  const float* attn_norm;
  QMatrix wq, wk, wv, wo;
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr;  // Qwen2 only
  const float* ffn_norm;
  QMatrix w_gate, w_up, w_down;
};

class Model {
 public:
  // Opens the manifest, checks memory (fails with needed vs available instead of being killed),
  // maps the weights and loads the tokenizer from the manifest directory.
  static std::unique_ptr<Model> load(const std::string& manifest_dir, const LoadParams& params = {});
  // The same from a Manifest already open (one imported in memory: convert/load.h).
  static std::unique_ptr<Model> load(Manifest manifest, const LoadParams& params = {});

  const ModelConfig& config() const { return manifest_.config(); }
  const Manifest& manifest() const { return manifest_; }
  const Tokenizer& tokenizer() const;  // throws if loaded without one
  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  const LoadParams& params() const { return params_; }
  int64_t ctx() const { return ctx_; }
  ThreadPool& pool() const { return *pool_; }
  MatmulOptions matmul_options() const { return {params_.isa, pool_.get(), params_.int8_acts}; }

  const QMatrix& embed() const { return embed_; }
  const QMatrix& lm_head() const { return lm_head_; }
  const float* final_norm() const { return final_norm_; }
  const LayerWeights& layer(int64_t l) const { return layers_[l]; }
  const std::vector<float>& rope_inv_freq() const { return inv_freq_; }

  static MemoryEstimate estimate(const ModelConfig& c, int64_t weights_bytes, int64_t ctx, int64_t batch);

 private:
  Model() = default;
  Manifest manifest_;
  LoadParams params_;
  int64_t ctx_ = 0;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Tokenizer> tokenizer_;
  QMatrix embed_, lm_head_;
  const float* final_norm_ = nullptr;
  std::vector<LayerWeights> layers_;
  std::vector<float> inv_freq_;  // (head_dim / 2)
};

// RoPE inverse frequencies for head_dim, with Llama 3 / linear rope_scaling applied.
std::vector<float> rope_inv_freq(const ModelConfig& c);

// Sees the input of every matmul of a forward pass (for the accuracy harness's per-tensor
// error on real activations): the tensor's HF name, and x as (m, k).
using MatmulObserver = std::function<void(const std::string& tensor, const float* x, int64_t m, int64_t k)>;

class Session {
 public:
  explicit Session(const Model& model);

  void set_observer(MatmulObserver observer) { observer_ = std::move(observer); }

  // Feeds tokens at positions position() .. position() + n - 1 and advances. Prompt batches go
  // through the M > 1 kernels, single tokens through M = 1. logits: (n, vocab) when all_logits,
  // else (vocab) for the last token. Throws when the context would overflow.
  void eval(const int32_t* tokens, int64_t n, float* logits, bool all_logits = false);

  int64_t position() const { return pos_; }
  void reset() { pos_ = 0; }
  // Forget positions >= pos (e.g. to re-run from a shared prefix).
  void truncate(int64_t pos);
  const Model& model() const { return model_; }

 private:
  void forward_batch(const int32_t* tokens, int64_t n, float* logits, bool all_logits);

  // y = x W^T through the kernels, reporting x to the observer first.
  void mm(const QMatrix& w, Role role, int64_t layer, const float* x, int64_t m, float* y);
  // Several projections of the same input (q/k/v, gate/up) in one matmul_many call.
  struct Proj {
    const QMatrix& w;
    Role role;
    float* y;
  };
  void mm_many(std::initializer_list<Proj> projs, int64_t layer, const float* x, int64_t m);

  const Model& model_;
  MatmulObserver observer_;
  int64_t pos_ = 0;
  std::vector<float> k_cache_, v_cache_;  // (layer, ctx, kv_dim)
  // Scratch, sized for the largest batch seen.
  std::vector<float> x_, xb_, q_, k_, v_, att_, ffn_g_, ffn_u_, tmp_, scores_;
};

}  // namespace lowbit
