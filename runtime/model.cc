#include "runtime/model.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <string>

#include "backend/cpu_backend.h"
#include "kernels/error.h"

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

int64_t mib_up(int64_t bytes) { return (bytes >> 20) + ((bytes & ((1 << 20) - 1)) != 0); }
std::string mib(int64_t bytes) { return std::to_string(mib_up(bytes)) + " MiB"; }

// a * b * ..., saturating at INT64_MAX: a context of 2^40 positions must be refused, not wrap
// round to a small figure that passes the memory check.
int64_t product(std::initializer_list<int64_t> factors) {
  long double p = 1;
  for (int64_t f : factors) p *= (long double)f;
  return p >= (long double)INT64_MAX ? INT64_MAX : (int64_t)p;
}

int64_t sum(std::initializer_list<int64_t> terms) {
  int64_t s = 0;
  for (int64_t t : terms) s = t > INT64_MAX - s ? INT64_MAX : s + t;
  return s;
}

}  // namespace

MemoryEstimate Model::estimate(const ModelConfig& c, int64_t weights_bytes, int64_t ctx, int64_t batch) {
  MemoryEstimate e;
  e.weights = weights_bytes;
  e.kv_cache = product({2, c.n_layers, ctx, c.n_kv_heads, c.head_dim, (int64_t)sizeof(float)});
  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  e.scratch = sum({batch * (3 * c.dim + q_dim + 2 * kv_dim + 2 * c.ffn_dim + c.vocab_size) * (int64_t)sizeof(float),
                   product({batch, ctx, (int64_t)sizeof(float)})});
  return e;
}

std::unique_ptr<Model> Model::load(const std::string& dir, const LoadParams& params) {
  return load(Manifest::open(dir), params);
}

std::unique_ptr<Model> Model::load(Manifest manifest, const LoadParams& params) {
  std::unique_ptr<Model> m(new Model());
  m->manifest_ = std::move(manifest);
  m->params_ = params;
  const std::string& dir = m->manifest_.dir();
  const ModelConfig& c = m->manifest_.config();
  m->ctx_ = params.ctx > 0 ? params.ctx : c.max_ctx;
  if (m->ctx_ <= 0) throw Error(ErrorCode::invalid_argument, dir + ": context length must be positive");

  // A prompt batch is at most 512 tokens at a time (see Session::eval).
  const MemoryEstimate need = estimate(c, (int64_t)m->manifest_.weights_bytes(), m->ctx_, 512);
  const int64_t avail = available_memory();
  if (avail >= 0 && sum({need.weights, need.kv_cache, need.scratch}) > avail) {
    // The total printed is the sum of the parts printed, each rounded up to whole MiB.
    const int64_t parts[] = {mib_up(need.weights), mib_up(need.kv_cache), mib_up(need.scratch)};
    throw Error(ErrorCode::out_of_memory,
                dir + ": needs about " + std::to_string(parts[0] + parts[1] + parts[2]) + " MiB (weights " +
                    std::to_string(parts[0]) + " MiB + KV cache for " + std::to_string(m->ctx_) + " positions " +
                    std::to_string(parts[1]) + " MiB + scratch for a 512-token prompt batch " +
                    std::to_string(parts[2]) + " MiB) but only " + mib(avail) +
                    " is available; use a shorter context or fewer bits");
  }

  // The ISA is resolved here, once (an unsupported one fails now, not inside the first matmul).
  m->backend_ = make_backend({params.threads, params.isa, params.int8_acts});
  m->forward_ = make_forward_pass(c, m->manifest_, *m->backend_);
  if (params.load_tokenizer)
    m->tokenizer_ = m->manifest_.in_memory() ? load_tokenizer_files(m->manifest_.tokenizer_data(), dir)
                                             : load_tokenizer(dir);
  return m;
}

const Tokenizer& Model::tokenizer() const {
  if (!tokenizer_) throw Error(ErrorCode::invalid_argument, manifest_.dir() + ": model was loaded without a tokenizer");
  return *tokenizer_;
}

namespace {

const CpuBackend& cpu(const Backend& b) {
  const auto* c = dynamic_cast<const CpuBackend*>(&b);
  if (!c) throw Error(ErrorCode::invalid_argument, "the model does not run on the CPU backend");
  return *c;
}

}  // namespace

ThreadPool& Model::pool() const { return cpu(*backend_).pool(); }

MatmulOptions Model::matmul_options() const { return cpu(*backend_).matmul_options(); }

std::unique_ptr<KvCache> Model::new_kv_cache(int64_t capacity) const {
  if (capacity <= 0 || capacity > ctx_)
    throw Error(ErrorCode::invalid_argument, "KV cache of " + std::to_string(capacity) + " positions outside [1, " +
                                                 std::to_string(ctx_) + "]");
  const ModelConfig& c = config();
  return backend_->new_kv_cache(c.n_layers, capacity, c.n_kv_heads * c.head_dim);
}

Session::Session(const Model& model) : model_(model), cache_(model.new_kv_cache(model.ctx())), ws_(model.backend()) {}

void Session::truncate(int64_t pos) {
  if (pos < 0 || pos > pos_) throw Error(ErrorCode::invalid_argument, "truncate: position " + std::to_string(pos) + " outside [0, " + std::to_string(pos_) + "]");
  pos_ = pos;
}

void Session::eval(const int32_t* tokens, int64_t n, float* logits, bool all_logits) {
  if (n <= 0) throw Error(ErrorCode::invalid_argument, "eval: no tokens");
  const ModelConfig& c = model_.config();
  if (pos_ + n > model_.ctx())
    throw Error(ErrorCode::context_full, "context full: " + std::to_string(pos_) + " + " + std::to_string(n) +
                " tokens exceed the context of " + std::to_string(model_.ctx()) +
                " positions (load the model with a longer context)");
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
      throw Error(ErrorCode::invalid_argument, "token id " + std::to_string(tokens[i]) + " outside the vocabulary [0, " +
                  std::to_string(c.vocab_size) + ")");
  // Prompts go in batches of up to 512 tokens: the GEMM kernels are as fast by then, and the
  // scratch stays bounded for long prompts.
  constexpr int64_t kMaxBatch = 512;
  const ForwardOptions opt{false, observer_ ? &observer_ : nullptr};
  for (int64_t done = 0; done < n;) {
    const int64_t b = std::min(kMaxBatch, n - done);
    const bool last = done + b == n;
    const LogitRows rows = !logits ? LogitRows::none : all_logits ? LogitRows::all : last ? LogitRows::last : LogitRows::none;
    SeqChunk chunk{cache_.get(), tokens + done, b, pos_, rows};
    model_.forward({&chunk, 1}, ws_, all_logits ? logits + done * c.vocab_size : logits, opt);
    pos_ += b;
    done += b;
  }
}

}  // namespace lowbit
