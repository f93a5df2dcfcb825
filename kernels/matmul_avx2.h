// Internal to the AVX2 kernels: the entry points of the per-concern files (quantized weights in
// matmul_quant_avx2.cc, float weights in matmul_float_avx2.cc, quantized weights through fp32 in
// matmul_qf32_avx2.cc) that matmul_avx2.cc collects into its CpuKernels table, and the AVX-512
// table (matmul_avx512.cc) shares where it has no kernel of its own. Declarations only, so files
// built with any x86 ISA's flags may include it (*_avx2.cc, *_avx512.cc).
#pragma once

#include <cstdint>

#include "kernels/matmul_impl.h"

namespace lowbit::avx2 {

// Rows of W per task the driver hands out: a multiple of the quantized kernels' row tiles (4 at
// M = 1, 2 above), so only a matrix's last task runs their one-row remainder path.
constexpr int64_t kRowTile = 4;

void gemm_q(const QMatrix& w, const QuantizedActs& a, float* y, int64_t n0, int64_t n1);  // matmul_quant_avx2.cc
void gemm_f(const QMatrix& w, const float* x, int64_t m, float* y, int64_t n0, int64_t n1);
// Quantized weights dequantized to fp32, fp32 activations (matmul_qf32_avx2.cc): prefill shapes.
bool q_in_f32(const QType& t, int64_t m);
void gemm_q_f32(const QMatrix& w, const float* x, int64_t m, float* y, int64_t n0, int64_t n1);
void quantize_act_row(const float* x, int64_t k, int8_t* q, float* scale, int32_t* bsum);

}  // namespace lowbit::avx2
