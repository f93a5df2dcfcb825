// The CPU backend: buffers in host memory, operations on kernels/ with one ISA's kernel table,
// resolved when the backend is made (never per matmul), and a thread pool of its own.
//
// Thread safety as Backend (backend.h). Attention's per-thread score scratch is thread_local, so
// callers on different threads never share it.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "kernels/thread_pool.h"

namespace lowbit {

// A test budget's accounting (BackendParams::test_memory_budget), shared with the buffers.
struct CpuBudget {
  int64_t limit = 0;
  std::atomic<int64_t> used{0};
  void take(int64_t bytes);  // throws Error (out_of_memory) past the limit
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendParams& params);

  std::string name() const override;
  Isa isa() const { return isa_; }
  ThreadPool& pool() const { return *pool_; }
  // What this backend passes to kernels/ matmuls: its ISA's table, its pool.
  MatmulOptions matmul_options(bool int8_acts = false) const {
    return {isa_, pool_.get(), int8_acts || int8_acts_, kernels_};
  }
  // The host address of a tensor of this backend (throws for another backend's).
  float* data(const Tensor& t) const;

  BufferPtr alloc(int64_t floats) override;
  int64_t free_bytes() const override;
  Matrix upload_matrix(const QMatrix& w) override;
  Tensor upload_vector(const float* host, int64_t n) override;
  void write(const Tensor& dst, const float* host) override;
  void read(const Tensor& src, float* host) override;

  void embed(const Matrix& table, std::span<const int32_t> ids, const Tensor& out) override;
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) override;
  void add(const Tensor& out, const Tensor& x) override;
  void add_row(const Tensor& out, const Tensor& bias) override;
  void swiglu(const Tensor& gate, const Tensor& up) override;
  void geglu(const Tensor& gate, const Tensor& up) override;
  void scale(const Tensor& x, float s) override;
  void gather_rows(const Tensor& src, std::span<const int64_t> rows, const Tensor& dst) override;
  void add_rows(const Tensor& src, std::span<const int64_t> rows, std::span<const float> weights,
                const Tensor& dst) override;
  void rope(const Tensor& x, int64_t n_heads, int64_t head_dim, const Tensor& inv_freq, float scale,
            std::span<const SeqRows> seqs) override;
  void attention(int64_t layer, const Tensor& q, const Tensor& k, const Tensor& v, std::span<const SeqRows> seqs,
                 const AttentionShape& shape, const Tensor& out) override;
  void matmul(const Tensor& x, std::span<const Projection> projs, bool int8_acts = false) override;

 private:
  Isa isa_;
  const CpuKernels* kernels_;
  bool int8_acts_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<BufferPtr> vectors_;  // upload_vector's copies (and upload_matrix's, under a budget)
  std::shared_ptr<CpuBudget> budget_;  // null: no test budget
};

}  // namespace lowbit
