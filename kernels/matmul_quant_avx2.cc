// AVX2 kernels for quantized weights x int8 activations: matmul_quant_x86.h built with -mavx2
// -mfma -mf16c (vpmaddubsw + vpmaddwd products).
#include "kernels/matmul_quant_x86.h"

namespace lowbit::avx2 {

static_assert(!x86::kVnni, "the AVX2 kernels are built without VNNI");

void gemm_q(const QMatrix& w, const QuantizedActs& a, float* y, int64_t n0, int64_t n1) {
  x86::gemm_q_kernel(w, a, y, n0, n1);
}

}  // namespace lowbit::avx2
