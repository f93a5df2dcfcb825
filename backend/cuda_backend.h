// The CUDA backend of the compute-backend seam (backend/backend.h): buffers, weights and KV
// caches in device memory, every layer operation on the device through the CUDA plugin
// (kernels/cuda_backend.h: matmuls in matmul.cu, the rest in layer_ops.cu). Plain C++: the plugin
// is loaded at run time, so liblowbit links no CUDA library.
//
// What stays on the host: the embedding lookup's dequantization (a few rows per step, read from
// the mapped weights and written to the device), and the per-row arrays of each call (positions,
// the rows' caches), which the plugin copies with the launch.
//
// Out of memory: an allocation the device refuses throws Error (out_of_memory), which the
// runtime turns into its fallback to the CPU (runtime/placement.h).
//
// Thread safety as Backend. The plugin serializes the calls that share its per-device scratch.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "kernels/cuda_backend.h"

namespace lowbit {

class GpuBackend final : public Backend {
 public:
  // On device `device` of the loaded plugin; throws Error (invalid_argument) when it is absent.
  GpuBackend(const CudaBackend& plugin, int device);
  ~GpuBackend() override;

  std::string name() const override;
  int device() const { return device_; }

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
  struct Uploaded;  // a matrix in device memory, with its host bytes for embed()
  float* ptr(const Tensor& t) const;
  void ok(int rc, const char* what) const;  // throws Error for rc != 0 (out_of_memory for -2)

  const CudaBackend& be_;
  int device_;
  std::string device_name_;
  std::vector<BufferPtr> vectors_;                  // upload_vector's copies
  std::vector<std::unique_ptr<Uploaded>> matrices_;  // upload_matrix's
  std::mutex host_mutex_;                           // guards the host scratch below
  std::vector<float> host_rows_;                    // embed's dequantized rows
  std::vector<int64_t> host_pos_;                   // rope's positions
  std::vector<LowbitCudaAttnRow> host_attn_;        // attention's rows
};

}  // namespace lowbit
