// The AVX2 + FMA + F16C kernel table. The kernels live per concern in matmul_quant_avx2.cc
// (int8 activations x 1/2/4/8-bit codes), matmul_float_avx2.cc (f32/f16/bf16 weights) and
// matmul_qf32_avx2.cc (codes dequantized to fp32, for the prefill shapes q_in_f32 names).
#include "kernels/matmul_avx2.h"

namespace lowbit {

const CpuKernels& avx2_kernels() {
  static const CpuKernels k{"avx2", avx2::gemm_q, avx2::gemm_f, avx2::kRowTile, avx2::quantize_act_row,
                            avx2::q_in_f32, avx2::gemm_q_f32};
  return k;
}

}  // namespace lowbit
