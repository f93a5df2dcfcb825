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
#include <functional>
#include <memory>
#include <shared_mutex>
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
#include "runtime/placement.h"
#include "runtime/tokenizer/tokenizer.h"

namespace lowbit {

struct LoadParams {
  int threads = 0;        // 0: all cores
  int64_t ctx = 0;        // context length the sessions get; 0: the model's max_position
  Isa isa = Isa::automatic;
  bool load_tokenizer = true;
  bool int8_acts = false;  // MatmulOptions::int8_acts for every matmul of the model
  // The first gpu_layers layers on the device backend (make_device_backend), the rest on the
  // CPU; kGpuLayersAll, or kGpuLayersAuto for the memory planner's choice (runtime/placement.h).
  // A count > 0 or "all" without a device fails (invalid_argument, saying why); "auto" then
  // places nothing on a device.
  int64_t gpu_layers = 0;
  // KV caches of ctx positions the planner keeps device room for (a server's sequences at once).
  int64_t plan_sequences = 1;
  // Test seam: makes the device backend instead of make_device_backend (e.g. a CPU backend with
  // BackendParams::test_memory_budget); called again for a fresh one when a load falls back.
  std::function<std::unique_ptr<Backend>()> device;
  // Receives the out-of-memory fallback's one warning; null: stderr ("lowbit: warning: ...").
  std::function<void(const std::string&)> warn;
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

  // The CPU backend: the layers not on a device, the fallback, and the home of a Workspace (which
  // makes slots in the other backends as the forward pass asks).
  Backend& backend() const { return *cpu_; }
  // Layers on the device now (0 after a fallback moved the model to the CPU), and the stages as
  // text: "layers 0-3 on <device backend>, 4-7 on <cpu backend>".
  int64_t device_layers() const;
  std::string placement() const;
  // How the layer count was chosen: the planner's arithmetic (gpu_layers auto), the count asked
  // for, and any fallback.
  const std::string& plan() const { return plan_; }
  // The CPU backend's thread pool and matmul options (its ISA resolved at load), for callers
  // that run kernels/ themselves beside the model (the accuracy harness, the benchmarks).
  ThreadPool& pool() const;
  MatmulOptions matmul_options() const;

  // A KV cache for one sequence of up to `capacity` positions (at most ctx()), a part per stage.
  // When the device has no room for its part, the model moves to the CPU (see forward) and the
  // cache is made there.
  std::unique_ptr<SeqCache> new_kv_cache(int64_t capacity) const;
  // Positions [0, n) of src's keys and values into dst (n at most either's capacity), layer by
  // layer through the host, whatever placement each was made for: what lets a later sequence that
  // begins with the same n tokens start from a finished one's cache (Scheduler's prompt cache).
  void copy_kv(const SeqCache& src, SeqCache& dst, int64_t n) const;
  // Runs a batch of chunks of one or several sequences (runtime/forward.h). Out of memory on the
  // device (a workspace growing for a larger batch) moves the whole model to the CPU with one
  // warning and runs the batch again there: a rerun writes the same cache rows with the same
  // values, so nothing is lost. Caches made for the old placement are moved when next seen.
  void forward(std::span<const SeqChunk> chunks, Workspace& ws, float* logits, const ForwardOptions& opt = {}) const;

  static MemoryEstimate estimate(const ModelConfig& c, int64_t weights_bytes, int64_t ctx, int64_t batch);

 private:
  Model() = default;
  // Places the first n layers on device_ (a fresh one per try), falling back to fewer when the
  // device runs out of memory while the weights go up.
  void place(int64_t n);
  // With mutex_ held exclusively: every layer to the CPU, after the device ran out of memory.
  void fall_back_to_cpu(const std::string& why) const;
  std::unique_ptr<SeqCache> make_cache(int64_t capacity) const;  // mutex_ held (shared)
  void migrate(SeqCache& cache) const;                          // to the current placement
  void copy_rows(const SeqCache& src, SeqCache& dst, int64_t n) const;  // copy_kv, mutex_ held (shared)
  void warn(const std::string& message) const;
  int64_t device_layers_locked() const;  // mutex_ held

  // Declared in this order so they are destroyed in the reverse: the forward pass holds the
  // backends' handles, which point into the manifest's mapping (CPU) or device memory.
  Manifest manifest_;
  LoadParams params_;
  int64_t ctx_ = 0;
  std::unique_ptr<Backend> cpu_;
  std::unique_ptr<Backend> device_;  // null: nothing was placed on a device
  std::string plan_;
  // The placement may change once after load (the fallback), under an exclusive lock; forward
  // passes and cache allocations hold it shared.
  mutable std::shared_mutex mutex_;
  mutable std::vector<Stage> stages_;
  mutable std::unique_ptr<ForwardPass> forward_;
  mutable uint64_t placement_ = 1;  // bumped when stages_ change (SeqCache::placement)
  mutable bool warned_ = false;
  std::unique_ptr<Tokenizer> tokenizer_;
};

class Session {
 public:
  explicit Session(const Model& model);

  void set_observer(MatmulObserver observer) { observer_ = std::move(observer); }
  // Int8 activations for prompts of every length (ForwardOptions::row_independent), as batched
  // decoding reads them: a position's K/V then do not depend on how the tokens before it were cut
  // into calls, so a later turn may continue this session's cache and get what a fresh session
  // reading the whole conversation gets, on every ISA (without it, AVX2 reads long 8-bit prompts
  // in fp32, which rounds otherwise).
  void set_row_independent(bool on) { row_independent_ = on; }

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
  bool row_independent_ = false;
  int64_t pos_ = 0;
  std::unique_ptr<SeqCache> cache_;  // ctx positions
  Workspace ws_;
};

}  // namespace lowbit
