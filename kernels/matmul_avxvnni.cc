// The AVX-VNNI kernel table, for AVX2-class CPUs with the VEX-encoded vpdpbusd and no AVX-512
// (Intel Alder Lake and later client cores): matmul_quant_x86.h built with -mavxvnni, the same
// arithmetic as the avx512 set (matmul_quant_avx512.cc), and the AVX2 kernels for everything
// else, with the fp32 prefill path taking no shape, as for avx512 (matmul_avx512.cc).
#include "kernels/matmul_avx2.h"
#include "kernels/matmul_quant_x86.h"

namespace lowbit {
namespace avxvnni {

static_assert(x86::kVnni, "the AVX-VNNI kernels are built with -mavxvnni");

void gemm_q(const QMatrix& w, const QuantizedActs& a, float* y, int64_t n0, int64_t n1) {
  x86::gemm_q_kernel(w, a, y, n0, n1);
}

}  // namespace avxvnni

const CpuKernels& avxvnni_kernels() {
  static const CpuKernels k{"avxvnni", avxvnni::gemm_q, avx2::gemm_f, avx2::kRowTile, avx2::quantize_act_row,
                            [](const QType&, int64_t) { return false; }, avx2::gemm_q_f32};
  return k;
}

}  // namespace lowbit
