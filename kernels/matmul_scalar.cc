// Scalar kernels: the portable twin of the SIMD kernels, doing the same integer arithmetic in
// the same grouping, so LOWBIT_ISA=scalar runs everywhere and checks the SIMD versions.
#include <cstring>

#include "kernels/matmul_impl.h"

namespace lowbit {
namespace {

void gemm_q_scalar(const QMatrix& w, const QuantizedActs& a, float* y, int64_t n0, int64_t n1) {
  const QSections<const uint8_t> l = q_sections(w.type, w.n, w.k, w.data);
  const int bits = w.type.bits;
  const int64_t kb = ceil_div(w.k, kActBlock);  // blocks holding real weights
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* codes = l.row_codes(n);
    for (int64_t r = 0; r < a.m; ++r) {
      const int8_t* q = a.q.data() + r * a.kp;
      const float* s = a.scale.data() + r * a.blocks;
      float acc = 0;
      for (int64_t g = 0; g < l.groups; ++g) {
        const GroupCoeffs c = group_coeffs(w.type, l.scale_at(n, g), l.min_at(n, g));
        float sq = 0;
        const int64_t b_end = std::min(kb, (g + 1) * a.group_blocks);
        for (int64_t b = g * a.group_blocks; b < b_end; ++b) {
          int32_t dot = 0;
          for (int64_t i = b * kActBlock; i < (b + 1) * kActBlock; ++i)
            dot += (int32_t)get_code(codes, bits, i) * q[i];
          sq += s[b] * (float)dot;
        }
        acc += c.de * sq + c.ce * a.gsum[r * a.groups + g];
      }
      y[r * w.n + n] = acc;
    }
  }
}

template <Base B>
float load(const uint8_t* row, int64_t i) {
  if constexpr (B == Base::f32) {
    float v;
    std::memcpy(&v, row + 4 * i, 4);
    return v;
  } else {
    uint16_t h;
    std::memcpy(&h, row + 2 * i, 2);
    return B == Base::f16 ? f16_to_f32(h) : bf16_to_f32(h);
  }
}

template <Base B>
void gemm_f_rows(const QMatrix& w, const float* x, int64_t m, float* y, int64_t n0, int64_t n1) {
  const int64_t row_bytes = w.k * float_bytes(B);
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* row = w.data + n * row_bytes;
    for (int64_t r = 0; r < m; ++r) {
      float acc = 0;
      for (int64_t i = 0; i < w.k; ++i) acc += load<B>(row, i) * x[r * w.k + i];
      y[r * w.n + n] = acc;
    }
  }
}

void gemm_f_scalar(const QMatrix& w, const float* x, int64_t m, float* y, int64_t n0, int64_t n1) {
  switch (w.type.base) {
    case Base::f32: return gemm_f_rows<Base::f32>(w, x, m, y, n0, n1);
    case Base::f16: return gemm_f_rows<Base::f16>(w, x, m, y, n0, n1);
    default: return gemm_f_rows<Base::bf16>(w, x, m, y, n0, n1);
  }
}

}  // namespace

const CpuKernels& scalar_kernels() {
  static const CpuKernels k{"scalar", gemm_q_scalar, gemm_f_scalar, 4, quantize_act_row_scalar, nullptr, nullptr};
  return k;
}

}  // namespace lowbit
