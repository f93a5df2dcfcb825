// Y[M x N] = X[M x K] * W^T for every weight type: the hot path of lowbit.
//
// Quantized weights take int8 activations: X is quantized per 32-wide block (scale = absmax/127,
// round to nearest even) and each group's dot product runs in integers, as ggml does; except
// where an ISA runs prefill shapes faster with W dequantized to fp32 (AVX2: 8 bits with groups,
// from M = 128), which takes X as it is. Float weights (f32/f16/bf16) take fp32 activations.
// matmul_reference() is the scalar fp32/fp64 reference on the dequantized weights that every
// backend is tested against.
#pragma once

#include <cstdint>

#include "kernels/isa.h"
#include "kernels/qtype.h"

namespace lowbit {

class ThreadPool;
struct CpuKernels;  // one ISA's kernel table (matmul_impl.h)

// The kernels of isa (automatic: default_isa()), resolved and checked (an Error when this CPU
// cannot run them) once by the caller, e.g. when a model loads, and passed in
// MatmulOptions::kernels so that no matmul resolves the ISA again.
const CpuKernels& cpu_kernels(Isa isa);

// A weight matrix in place (typically inside an mmapped weights.bin); data is laid out by
// q_layout(type, n, k) and must be 32-byte aligned for quantized types.
struct QMatrix {
  QType type;
  int64_t n = 0;  // rows (output features)
  int64_t k = 0;  // columns (input features)
  const uint8_t* data = nullptr;
};

struct MatmulOptions {
  Isa isa = Isa::automatic;
  ThreadPool* pool = nullptr;  // nullptr: ThreadPool::global()
  // Quantized weights always take int8 activations (the decode arithmetic), also in the prefill
  // shapes an ISA would run in fp32: the accuracy harness measures with it, so its figures are
  // the same on every ISA and include the activation rounding generation pays.
  bool int8_acts = false;
  const CpuKernels* kernels = nullptr;  // from cpu_kernels(); when set, isa is not looked at
};

// x: (m, k) fp32 row-major; y: (m, n) fp32 row-major, overwritten.
void matmul(const QMatrix& w, const float* x, int64_t m, float* y, const MatmulOptions& opt = {});

// Several products of one input: y_i = x * W_i^T for W_i of equal k (a layer's q, k and v
// projections, or its gate and up). Same results as one matmul() per pair, but the activations
// are quantized once and all the rows go to the pool as one set of tasks, so the threads meet
// once instead of once per matrix. Pairs whose types need different activation group sums run
// as separate matmuls.
struct MatmulOut {
  QMatrix w;
  float* y = nullptr;  // (m, w.n)
};
void matmul_many(const MatmulOut* outs, int count, const float* x, int64_t m, const MatmulOptions& opt = {});

// The reference: dequantize each row, accumulate in double. Single-threaded, slow, exact.
void matmul_reference(const QMatrix& w, const float* x, int64_t m, float* y);

}  // namespace lowbit
