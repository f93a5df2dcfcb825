// The AVX-512 (F/BW/VL + VNNI) kernel table: its own int8 kernels for quantized weights
// (matmul_quant_avx512.cc), and the AVX2 kernels for what VNNI does not change (float weights,
// the activation quantizer). A host that runs these runs AVX2, so sharing is safe.
#include "kernels/matmul_avx2.h"
#include "kernels/matmul_avx512.h"

namespace lowbit {

const CpuKernels& avx512_kernels() {
  // No fp32 prefill path (q_in_f32 null): it exists on AVX2 for 8-bit weights, whose int8 tile
  // pays four instructions per block there; with vpdpbusd the 8-bit tile costs what the 4-bit
  // one does (bench/README.md, AVX-512 section).
  static const CpuKernels k{"avx512", avx512::gemm_q, avx2::gemm_f, avx2::kRowTile, avx2::quantize_act_row,
                            nullptr, nullptr};
  return k;
}

}  // namespace lowbit
