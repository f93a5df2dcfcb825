// The AVX-512 (F/BW/VL + VNNI) kernel table: its own int8 kernels for quantized weights
// (matmul_quant_avx512.cc), and the AVX2 kernels for what VNNI does not change (float weights,
// the activation quantizer). A host that runs these runs AVX2, so sharing is safe.
#include "kernels/matmul_avx2.h"
#include "kernels/matmul_avx512.h"

namespace lowbit {

const CpuKernels& avx512_kernels() {
  // The fp32 prefill path is AVX2's, and no shape takes it: AVX2 runs 8-bit weights with groups
  // through it from M = 128 because its int8 tile pays four instructions per block at 8 bits;
  // with vpdpbusd the 8-bit tile costs what the 4-bit one does and is the faster of the two
  // (bench/README.md, AVX-512 section). gemm_q_f32 stays in the table so matmul_bench's core/
  // benchmarks time both paths in one process.
  static const CpuKernels k{"avx512", avx512::gemm_q, avx2::gemm_f, avx2::kRowTile, avx2::quantize_act_row,
                            [](const QType&, int64_t) { return false; }, avx2::gemm_q_f32};
  return k;
}

const CpuKernels& avx512zmm_kernels() {
  static const CpuKernels k{"avx512zmm", avx512::gemm_q_zmm, avx2::gemm_f, avx2::kRowTile, avx2::quantize_act_row,
                            [](const QType&, int64_t) { return false; }, avx2::gemm_q_f32};
  return k;
}

}  // namespace lowbit
