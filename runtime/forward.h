// The forward pass: one routine per architecture family, written once against the backend
// (backend/backend.h), that runs a batch of tokens from one or several sequences through the
// model. Two families share one skeleton (runtime/decoder.h): Llama (runtime/llama.h: llama,
// mistral, qwen2, qwen3) and Gemma (runtime/gemma.h: gemma2, gemma3); a model with another layer shape
// (Phi-3's fused qkv projection) is a new family's layer, not more flags in one.
//
// A batch is a list of chunks, each a run of one sequence's tokens at its next positions: a
// prompt, part of a prompt, or the one token a decoding sequence feeds back. Every projection
// runs once over all the batch's rows (M = total tokens), attention per sequence over its own KV
// cache.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "models/arch.h"
#include "runtime/placement.h"

namespace lowbit {

class Manifest;

// Which of a chunk's rows go through the output head.
enum class LogitRows { none, last, all };

// One sequence's KV cache for a whole model: a part per stage of the model's placement, in that
// stage's backend, holding its layers (part i: layers [first_i, first_i + parts[i]->layers)).
// A model that moves layers to the CPU after a device ran out of memory (Model's fallback) moves
// a cache's parts when it next sees it, so `placement` names the placement the parts follow.
struct SeqCache {
  std::vector<std::unique_ptr<KvCache>> parts;
  std::vector<Backend*> backends;  // parts[i] lives in backends[i]
  int64_t capacity = 0;            // positions
  uint64_t placement = 0;
};

struct SeqChunk {
  SeqCache* cache = nullptr;
  const int32_t* tokens = nullptr;  // (n) ids, host memory
  int64_t n = 0;
  int64_t pos = 0;  // position of tokens[0]; the cache holds positions [0, pos)
  LogitRows logits = LogitRows::last;
};

// Sees the input of every matmul of a forward pass (for the accuracy harness's per-tensor
// error on real activations): the tensor's HF name, and x as (m, k) in host memory.
using MatmulObserver = std::function<void(const std::string& tensor, const float* x, int64_t m, int64_t k)>;

struct ForwardOptions {
  // Int8 activations for every quantized matmul (Backend::matmul's int8_acts), so that a row's
  // result depends on that row alone: a sequence gets the same logits whatever shares its steps
  // and however its prompt is cut into chunks. Batched decoding sets it; a single sequence's
  // prompt may leave it off for an ISA's faster large-M path.
  bool row_independent = false;
  const MatmulObserver* observer = nullptr;  // may be null
  // (rows, dim) host floats, may be null: every row's hidden state after the final norm (what the
  // output head reads), in batch order, for embeddings (the server's /api/embed pools them).
  float* hidden = nullptr;
};

// The scratch of forward passes: backend buffers that grow to the largest batch seen (and are
// reused, so steady decoding allocates nothing), and the host-side lists of one step. Belongs to
// one caller (a Session, a Scheduler) and one thread at a time. A model split across backends
// gets a set of slots in each, made when first asked for.
class Workspace {
 public:
  explicit Workspace(Backend& backend) : backend_(backend) {}
  // Slot `slot` of backend b (default: the one given at construction) viewed as (rows, cols);
  // its buffer is reallocated only when too small.
  Tensor get(size_t slot, int64_t rows, int64_t cols) { return get(backend_, slot, rows, cols); }
  Tensor get(Backend& b, size_t slot, int64_t rows, int64_t cols);
  Backend& backend() const { return backend_; }

  // Host-side lists a ForwardPass fills per step; cleared, never shrunk.
  std::vector<int32_t> ids;         // (rows) token ids of the batch
  std::vector<SeqRows> seqs;        // one per chunk, with the current stage's cache parts
  std::vector<int64_t> logit_rows;  // rows that go through the head, in chunk order
  std::vector<float> observed;      // an observer's copy of a matmul input
  std::vector<float> crossing;      // (rows, dim) activations passed from one stage to the next
  // A mixture-of-experts layer's routing: the router's logits, each expert's rows and weights.
  std::vector<float> moe_logits, moe_zeros;
  std::vector<std::vector<int64_t>> moe_rows;
  std::vector<std::vector<float>> moe_weights;
  std::vector<int64_t> moe_order;

 private:
  Backend& backend_;
  std::vector<std::pair<Backend*, std::vector<BufferPtr>>> buffers_;
};

class ForwardPass {
 public:
  virtual ~ForwardPass() = default;
  // Runs the chunks as one batch. logits (host): the rows the chunks ask for, in chunk order,
  // vocab_size floats each; may be null when none are asked for. Throws Error (invalid_argument)
  // on an empty batch, a token id outside the vocabulary or a chunk past its cache's capacity.
  virtual void run(std::span<const SeqChunk> chunks, Workspace& ws, float* logits,
                   const ForwardOptions& opt = {}) const = 0;
};

// The forward pass of c's architecture family, its weights taken from m and handed to each
// layer's stage's backend (stages cover the layers in order; see runtime/placement.h).
std::unique_ptr<ForwardPass> make_forward_pass(const ModelConfig& c, const Manifest& m, std::span<const Stage> stages);
std::unique_ptr<ForwardPass> make_forward_pass(const ModelConfig& c, const Manifest& m, Backend& b);

// Rows of logits the chunks ask for.
int64_t logit_rows(std::span<const SeqChunk> chunks);

}  // namespace lowbit
