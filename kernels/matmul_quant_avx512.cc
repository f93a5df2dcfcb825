// AVX-512 kernels for quantized weights x int8 activations: matmul_quant_x86.h built with
// AVX-512 F/BW/VL + VNNI, so every block's 32 products are one vpdpbusd (u8 code x s8
// activation -> 8 x i32 sums of four), where AVX2 needs vpmaddubsw + vpmaddwd below 8 bits and
// four instructions at 8 bits (see the top of matmul_quant_x86.h).
//
// On 256-bit registers (EVEX-encoded through AVX-512 VL), not 512-bit ones: the chunk layout
// (quant_format.h) gives one activation block per 32-byte plane, so 512-bit registers would
// hold two blocks that are not neighbours in K and need their activations shuffled together,
// and the Zen 4 cores this was measured on run a 512-bit integer instruction as two 256-bit
// halves, at the same products per cycle (bench/simd_rate_bench.cc, bench/README.md). Where a
// 512-bit instruction runs at the full rate (Intel, Zen 5), avx512zmm runs the M > 1 lane kernel
// in zmm registers (matmul_quant_zmm_avx512.cc); decode stays here.
#include "kernels/matmul_avx512.h"
#include "kernels/matmul_quant_x86.h"

namespace lowbit::avx512 {

static_assert(x86::kVnni, "the AVX-512 kernels are built with AVX-512 VL + VNNI");

void gemm_q(const QMatrix& w, const QuantizedActs& a, float* y, int64_t n0, int64_t n1) {
  x86::gemm_q_kernel(w, a, y, n0, n1);
}

}  // namespace lowbit::avx512
