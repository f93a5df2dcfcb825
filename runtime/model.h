// A loaded model (immutable weights, mmapped from a manifest, handed to the backend chosen at
// load) and a Session (one sequence's KV cache and scratch). One Model serves any number of
// Sessions, and of Schedulers (runtime/batch.h) that advance many sequences per step.
//
// Thread safety: a Model may be shared by any number of threads once loaded; forward() may run
// on several threads at once with different workspaces and caches (the CPU backend's pool runs
// one job at a time, so they take turns inside each operation). A Session is used by one thread
// at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "kernels/isa.h"
#include "kernels/matmul.h"
#include "kernels/thread_pool.h"
#include "models/arch.h"
#include "runtime/forward.h"
#include "runtime/manifest.h"
#include "runtime/tokenizer/tokenizer.h"

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

class Model {
 public:
  // Opens the manifest, checks memory (fails with needed vs available instead of being killed),
  // maps the weights and loads the tokenizer from the manifest directory.
  static std::unique_ptr<Model> load(const std::string& manifest_dir, const LoadParams& params = {});
  // The same from a Manifest already open (one imported in memory: convert/load.h); the tokenizer
  // comes from its directory, or from its in-memory files.
  static std::unique_ptr<Model> load(Manifest manifest, const LoadParams& params = {});

  const ModelConfig& config() const { return manifest_.config(); }
  const Manifest& manifest() const { return manifest_; }
  const Tokenizer& tokenizer() const;  // throws if loaded without one
  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  const LoadParams& params() const { return params_; }
  int64_t ctx() const { return ctx_; }

  // The backend the model runs on, chosen at load.
  Backend& backend() const { return *backend_; }
  // The CPU backend's thread pool and matmul options (its ISA resolved at load), for callers
  // that run kernels/ themselves beside the model (the accuracy harness, the benchmarks).
  ThreadPool& pool() const;
  MatmulOptions matmul_options() const;

  // A KV cache for one sequence of up to `capacity` positions (at most ctx()).
  std::unique_ptr<KvCache> new_kv_cache(int64_t capacity) const;
  // Runs a batch of chunks of one or several sequences (runtime/forward.h).
  void forward(std::span<const SeqChunk> chunks, Workspace& ws, float* logits, const ForwardOptions& opt = {}) const {
    forward_->run(chunks, ws, logits, opt);
  }

  static MemoryEstimate estimate(const ModelConfig& c, int64_t weights_bytes, int64_t ctx, int64_t batch);

 private:
  Model() = default;
  // Declared in this order so they are destroyed in the reverse: the forward pass holds the
  // backend's handles, which point into the manifest's mapping.
  Manifest manifest_;
  LoadParams params_;
  int64_t ctx_ = 0;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<ForwardPass> forward_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

class Session {
 public:
  explicit Session(const Model& model);

  void set_observer(MatmulObserver observer) { observer_ = std::move(observer); }

  // Feeds tokens at positions position() .. position() + n - 1 and advances. logits: (n, vocab)
  // when all_logits, else (vocab) for the last token. Throws Error when the context would
  // overflow (context_full) or on an id outside the vocabulary (invalid_argument).
  void eval(const int32_t* tokens, int64_t n, float* logits, bool all_logits = false);

  int64_t position() const { return pos_; }
  void reset() { pos_ = 0; }
  // Forget positions >= pos (e.g. to re-run from a shared prefix).
  void truncate(int64_t pos);
  const Model& model() const { return model_; }

 private:
  const Model& model_;
  MatmulObserver observer_;
  int64_t pos_ = 0;
  std::unique_ptr<KvCache> cache_;  // ctx positions
  Workspace ws_;
};

}  // namespace lowbit
