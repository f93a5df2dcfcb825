// The compute backend: where a model's weights, KV caches and scratch live, and the operations a
// transformer layer is made of, on that memory.
//
// Why a layer of its own, between runtime/ and kernels/: kernels/ knows bytes and numbers in host
// memory, one operation at a time; runtime/ knows models (manifests, architectures, sequences).
// The forward pass in runtime/ is written once per architecture family against this interface,
// and each backend maps the operations onto its own kernels: the CPU backend (cpu_backend.h)
// onto kernels/ with the ISA and thread pool it owns; a CUDA backend, later, onto the plugin of
// kernels/cuda_backend.h with device memory. Neither side should own that seam, and it knows no
// file formats and no model names. Includes flow runtime/ -> backend/ -> kernels/.
//
// Memory. Activations, KV caches and scratch are Buffers the backend allocated in its own address
// space (host memory for the CPU, device memory for CUDA). Callers hold Tensors, views of buffers
// (rows x cols fp32), hand them back to the operations and never dereference them; data crosses
// the boundary only through write() and read(). Weights are handed over once, at load, and come
// back as handles (Matrix, or a Tensor for vectors). Per-row metadata (token ids, which rows
// belong to which sequence at which positions) are small host arrays in the signatures, which a
// device backend copies with its launch.
//
// Thread safety: one backend serves one model and every thread using it. Operations on disjoint
// tensors and KV caches may run on several threads at once (the CPU backend's pool runs one job
// at a time, so concurrent callers take turns inside each operation); the caller makes sure no
// two calls write the same tensor or cache at once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "kernels/isa.h"
#include "kernels/matmul.h"

namespace lowbit {

// Memory a backend allocated; opaque to everyone else.
class Buffer {
 public:
  virtual ~Buffer() = default;
  int64_t size() const { return size_; }  // fp32 values

 protected:
  explicit Buffer(int64_t size) : size_(size) {}

 private:
  int64_t size_;
};
using BufferPtr = std::unique_ptr<Buffer>;

// A view of fp32 values in rows: element (r, j) is at offset + r * cols + j of buf.
struct Tensor {
  Buffer* buf = nullptr;
  int64_t offset = 0;
  int64_t rows = 0, cols = 0;
  Tensor slice(int64_t row0, int64_t n) const { return {buf, offset + row0 * cols, n, cols}; }
  // The same values in rows of another width (r * c == size()), e.g. a row of heads as one row per head.
  Tensor reshape(int64_t r, int64_t c) const;
  int64_t size() const { return rows * cols; }
};

// A weight matrix (n rows of k, HF nn.Linear order) where the backend keeps it.
struct Matrix {
  QType type;
  int64_t n = 0, k = 0;
  const void* handle = nullptr;  // the backend's own reference; the CPU's is the bytes in place
};

// One sequence's keys and values, (layers, capacity, kv_dim) each, rows in position order.
// Which positions hold data is the owner's to track; attention() writes them.
struct KvCache {
  BufferPtr k, v;
  int64_t layers = 0, capacity = 0, kv_dim = 0;
};

// Rows [row0, row0 + rows) of a batch are one sequence's tokens at positions pos .. pos + rows - 1
// of its cache. The rows of a batch's sequences are disjoint and together cover it.
struct SeqRows {
  KvCache* cache = nullptr;
  int64_t row0 = 0, rows = 0, pos = 0;
};

struct AttentionShape {
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0;  // query heads n_heads / n_kv_heads per KV head
  int64_t sliding_window = 0;                         // a token sees this many positions; 0: all
  float scale = 1.0f;                                 // on q . k
  float softcap = 0;                                  // > 0: scores become softcap * tanh(s / softcap)
};

// y = x W^T for one matrix of a matmul: y has x's rows and w->n columns.
struct Projection {
  const Matrix* w = nullptr;
  Tensor y;
};

struct BackendParams {
  int threads = 0;          // CPU: the pool's threads; 0: all cores
  Isa isa = Isa::automatic; // CPU: the kernel set, resolved once here
  // Quantized matmuls always take int8 activations (MatmulOptions::int8_acts), on top of what a
  // call asks for.
  bool int8_acts = false;
  // Test-only: >= 0 makes the CPU backend stand in for a device of this many bytes: it copies
  // weights into memory of its own (as a device uploads them) and every allocation past the
  // budget throws Error (out_of_memory), as cudaMalloc fails on a full device; free_bytes()
  // reports what is left. It is how CI exercises layer placement, the memory planner and the
  // out-of-memory fallback (runtime/placement.h) without a GPU. -1: no budget.
  int64_t test_memory_budget = -1;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // e.g. "cpu avx2, 2 threads"

  // ---- memory ----
  // Allocations (alloc, upload_matrix, upload_vector, new_kv_cache) throw Error (out_of_memory)
  // when the backend's memory is full, leaving the backend as it was: the caller may free
  // something or place the work elsewhere (runtime/placement.h's fallback).
  virtual BufferPtr alloc(int64_t floats) = 0;  // contents undefined
  // Bytes the backend can still allocate; -1 when it does not know or has no limit of its own
  // (the CPU: host memory, checked once at load by Model::load).
  virtual int64_t free_bytes() const { return -1; }
  // A weight matrix laid out by q_layout(w.type, w.n, w.k). The CPU backend uses it in place, so
  // the bytes must outlive the backend; a device backend copies them.
  virtual Matrix upload_matrix(const QMatrix& w) = 0;
  // n fp32 values (norm weights, biases, tables), copied into memory the backend owns for its
  // lifetime; returned as one row.
  virtual Tensor upload_vector(const float* host, int64_t n) = 0;
  virtual void write(const Tensor& dst, const float* host) = 0;  // dst.size() values
  virtual void read(const Tensor& src, float* host) = 0;         // src.size() values
  std::unique_ptr<KvCache> new_kv_cache(int64_t layers, int64_t capacity, int64_t kv_dim);
  Tensor new_tensor(BufferPtr& owner, int64_t rows, int64_t cols);  // allocates owner

  // ---- operations (fp32, row by row unless said) ----
  // out row t = row ids[t] of table, dequantized.
  virtual void embed(const Matrix& table, std::span<const int32_t> ids, const Tensor& out) = 0;
  // out = x / rms(x) * w per row, rms = sqrt(mean(x^2) + eps); w is one row; out may be x.
  virtual void rmsnorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) = 0;
  virtual void add(const Tensor& out, const Tensor& x) = 0;        // out += x (residual)
  virtual void add_row(const Tensor& out, const Tensor& bias) = 0;  // every row of out += bias
  virtual void swiglu(const Tensor& gate, const Tensor& up) = 0;   // gate = silu(gate) * up
  virtual void geglu(const Tensor& gate, const Tensor& up) = 0;    // gate = gelu(gate) * up (tanh form)
  virtual void scale(const Tensor& x, float s) = 0;                 // x *= s
  // dst row i = src row rows[i].
  virtual void gather_rows(const Tensor& src, std::span<const int64_t> rows, const Tensor& dst) = 0;
  // dst row rows[i] += weights[i] * src row i, the rows distinct (a mixture of experts' combine).
  virtual void add_rows(const Tensor& src, std::span<const int64_t> rows, std::span<const float> weights,
                        const Tensor& dst) = 0;
  // Rotary embedding (HF rotate-half) of x's n_heads heads per row, row r of sequence s at its
  // position, over the first 2 * inv_freq.cols values of each head (partial rotary passes the
  // rest through), cos and sin times scale (LongRoPE's attention factor); inv_freq: at most
  // head_dim / 2 values.
  virtual void rope(const Tensor& x, int64_t n_heads, int64_t head_dim, const Tensor& inv_freq, float scale,
                    std::span<const SeqRows> seqs) = 0;
  // For each sequence: stores its rows of k and v (n_kv_heads * head_dim each) at their positions
  // in layer `layer` of its cache, then out row r = causal attention of q row r over positions
  // [max(0, p + 1 - sliding_window), p] of the cache, p the row's position (GQA: query head h
  // reads KV head h / (n_heads / n_kv_heads)). Sequences never see each other's rows.
  virtual void attention(int64_t layer, const Tensor& q, const Tensor& k, const Tensor& v,
                         std::span<const SeqRows> seqs, const AttentionShape& shape, const Tensor& out) = 0;
  // Every projection's y = x W^T, the input shared (quantized once on the int8 path). int8_acts:
  // quantized weights take int8 activations at every M, also where an ISA would run large M in
  // fp32; then a row's result depends on that row alone, never on the other rows of x.
  virtual void matmul(const Tensor& x, std::span<const Projection> projs, bool int8_acts = false) = 0;
};

// Throws Error (internal) unless inv_freq is a RoPE table for heads of head_dim: one row of 1 to
// head_dim / 2 values (Backend::rope).
void check_rope_table(const Tensor& inv_freq, int64_t head_dim);

// The CPU backend; throws Error (invalid_argument) when params.isa cannot run here.
std::unique_ptr<Backend> make_backend(const BackendParams& params);

// The backend for the layers a model places on a device (LoadParams::gpu_layers): the CUDA
// backend (backend/cuda_backend.h) on device 0, or null with the reason in *why_not (no plugin,
// no driver, no device).
std::unique_ptr<Backend> make_device_backend(const BackendParams& params, std::string* why_not);

}  // namespace lowbit
