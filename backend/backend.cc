#include "backend/backend.h"

#include "backend/cpu_backend.h"
#include "backend/cuda_backend.h"
#include "kernels/cuda_backend.h"
#include "kernels/error.h"

namespace lowbit {

Tensor Tensor::reshape(int64_t r, int64_t c) const {
  if (r < 0 || c < 0 || r * c != size())
    throw Error(ErrorCode::internal, "tensor of " + std::to_string(rows) + " x " + std::to_string(cols) +
                                         " reshaped to " + std::to_string(r) + " x " + std::to_string(c));
  return {buf, offset, r, c};
}

Tensor Backend::new_tensor(BufferPtr& owner, int64_t rows, int64_t cols) {
  owner = alloc(rows * cols);
  return {owner.get(), 0, rows, cols};
}

std::unique_ptr<KvCache> Backend::new_kv_cache(int64_t layers, int64_t capacity, int64_t kv_dim) {
  auto c = std::make_unique<KvCache>();
  c->layers = layers;
  c->capacity = capacity;
  c->kv_dim = kv_dim;
  c->k = alloc(layers * capacity * kv_dim);
  c->v = alloc(layers * capacity * kv_dim);
  return c;
}

void check_rope_table(const Tensor& inv_freq, int64_t head_dim) {
  if (inv_freq.rows != 1 || inv_freq.cols < 1 || 2 * inv_freq.cols > head_dim)
    throw Error(ErrorCode::internal, "rope: a table of (" + std::to_string(inv_freq.rows) + ", " +
                                         std::to_string(inv_freq.cols) + ") frequencies for heads of " +
                                         std::to_string(head_dim));
}

std::unique_ptr<Backend> make_backend(const BackendParams& params) { return std::make_unique<CpuBackend>(params); }

std::unique_ptr<Backend> make_device_backend(const BackendParams&, std::string* why_not) {
  std::string why;
  const CudaBackend* plugin = cuda_backend(&why);
  if (!plugin) {
    if (why_not) *why_not = why;
    return nullptr;
  }
  // Device 0; several devices (a stage per device) are the next step (docs/GPU.md).
  if (why_not) why_not->clear();
  return std::make_unique<GpuBackend>(*plugin, 0);
}

}  // namespace lowbit
