// Internal to the AVX-512 kernels (F/BW/VL + VNNI): their own entry points, which
// matmul_avx512.cc collects into its CpuKernels table beside the AVX2 kernels it shares. Only
// *_avx512.cc files include it.
#pragma once

#include <cstdint>

#include "kernels/matmul_impl.h"

namespace lowbit::avx512 {

// Quantized weights x int8 activations with vpdpbusd (matmul_quant_avx512.cc).
void gemm_q(const QMatrix& w, const QuantizedActs& a, float* y, int64_t n0, int64_t n1);
// The same with the M > 1 lane kernel in 512-bit registers (matmul_quant_zmm_avx512.cc).
void gemm_q_zmm(const QMatrix& w, const QuantizedActs& a, float* y, int64_t n0, int64_t n1);

}  // namespace lowbit::avx512
