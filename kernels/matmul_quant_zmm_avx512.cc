// matmul_quant_avx512.cc's kernels with the lane kernel (M > 1: prefill and batched decoding) in
// 512-bit registers (matmul_lanes_x86.h, LOWBIT_LANES_ZMM = the weight rows per pass): for the
// hosts that run a 512-bit vpdpbusd at the 256-bit rate (isa.h zmm_full_rate). Decode (M = 1)
// stays in 256-bit registers: it waits on DRAM, not on the arithmetic.
#define LOWBIT_LANES_ZMM 4
#include "kernels/matmul_avx512.h"
#include "kernels/matmul_quant_x86.h"

namespace lowbit::avx512 {

void gemm_q_zmm(const QMatrix& w, const QuantizedActs& a, float* y, int64_t n0, int64_t n1) {
  x86::gemm_q_kernel(w, a, y, n0, n1);
}

}  // namespace lowbit::avx512
