// Internal interface between the CUDA kernels (matmul.cu) and the plugin around them
// (cuda_plugin.cu). Compiled by nvcc only; not part of liblowbit.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/quant_format.h"

namespace lowbit::cuda {

// A weight matrix in device memory, laid out by q_layout(type, n, k).
struct DeviceMatrix {
  QType type;
  int64_t n = 0, k = 0;
  QLayout layout;
  const uint8_t* data = nullptr;  // device
};

// Scratch for the quantized activations; grown (never shrunk) by matmul_device.
struct ActBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
};

// y (m, n) = x (m, k) * W^T, x and y in device memory, queued on `stream`. Quantized weights:
// x is quantized to int8 per 32-block on the device (same rounding as quantize_acts on the CPU),
// then M <= kGemvMaxM runs the dp4a GEMV and larger M the int8 tensor-core GEMM. Float weights:
// fp32 FMA GEMV, eight rows of x per pass. `pdl` lets the matmul kernel start while the
// activation quantizer runs (programmatic dependent launch, compute capability 9.0 and up).
// Returns the first CUDA error (launch or allocation).
cudaError_t matmul_device(const DeviceMatrix& w, const float* x, int64_t m, float* y,
                          ActBuffer& acts, cudaStream_t stream, bool pdl);

// The kernel family matmul_device uses for this type and m.
const char* matmul_path(const QType& t, int64_t m);

constexpr int kGemvMaxM = 8;

}  // namespace lowbit::cuda
