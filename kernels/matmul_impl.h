// Internal interface between the matmul driver (matmul.cc) and the per-ISA kernels
// (matmul_scalar.cc, matmul_avx2.cc, matmul_avxvnni.cc, matmul_avx512.cc, matmul_neon.cc). Not
// installed.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/matmul.h"

namespace lowbit {

// X quantized to int8 in 32-wide blocks. Rows are padded with zeros to a multiple of
// kMaxChunkWeights so kernels always read whole chunks of codes.
struct QuantizedActs {
  int64_t m = 0;
  int64_t k = 0;
  int64_t kp = 0;       // padded row length: round_up(k, kMaxChunkWeights)
  int64_t blocks = 0;   // kp / kActBlock
  std::vector<int8_t> q;       // (m, kp)
  std::vector<float> scale;    // (m, blocks): x ~= scale * q
  std::vector<int32_t> bsum;   // (m, blocks): sum of q over the block
  // Per weight group: sum over the group's blocks of scale * bsum, which multiplies the group's
  // ce coefficient (quant_format.h). Filled by group_sums() for one group size.
  int64_t group_blocks = 0;    // blocks per group
  int64_t groups = 0;          // groups per row
  std::vector<float> gsum;     // (m, groups)
};

struct CpuKernels;
// The reference quantization (scalar); the overload runs an ISA's row quantizer, which must
// give identical bytes (same products, round-half-even conversion).
void quantize_acts(const float* x, int64_t m, int64_t k, QuantizedActs& out);
void quantize_acts(const float* x, int64_t m, int64_t k, QuantizedActs& out, const CpuKernels& kern);
// One row of X: q[0, k) and, per 32-block b, scale[b] = absmax / 127 and bsum[b] = sum of q.
void quantize_act_row_scalar(const float* x, int64_t k, int8_t* q, float* scale, int32_t* bsum);
void group_sums(const QType& t, QuantizedActs& a);

// One ISA's kernels. Each computes rows [n0, n1) of W into columns [n0, n1) of every row of y.
struct CpuKernels {
  const char* name;
  void (*gemm_q)(const QMatrix& w, const QuantizedActs& a, float* y, int64_t n0, int64_t n1);
  void (*gemm_f)(const QMatrix& w, const float* x, int64_t m, float* y, int64_t n0, int64_t n1);
  // Rows of W per task the driver should hand out (a multiple of the kernel's row tile).
  int64_t row_tile;
  void (*quantize_act_row)(const float* x, int64_t k, int8_t* q, float* scale, int32_t* bsum);
  // Quantized weights with fp32 activations (no int8 step), for the (type, M) that q_in_f32
  // accepts; both null where the ISA has no such path.
  bool (*q_in_f32)(const QType& t, int64_t m);
  void (*gemm_q_f32)(const QMatrix& w, const float* x, int64_t m, float* y, int64_t n0, int64_t n1);
};
// Whether kern runs (t, m) through gemm_q_f32.
inline bool runs_q_in_f32(const CpuKernels& kern, const QType& t, int64_t m) {
  return t.base == Base::q && kern.q_in_f32 && kern.q_in_f32(t, m);
}

const CpuKernels& scalar_kernels();
#ifdef LOWBIT_HAVE_AVX2
const CpuKernels& avx2_kernels();
#endif
#ifdef LOWBIT_HAVE_AVX512
const CpuKernels& avx512_kernels();
const CpuKernels& avx512zmm_kernels();
#endif
#ifdef LOWBIT_HAVE_AVXVNNI
const CpuKernels& avxvnni_kernels();
#endif
#ifdef LOWBIT_HAVE_NEON
const CpuKernels& neon_kernels();
#endif
const CpuKernels& kernels_for(Isa isa);  // isa already resolved

}  // namespace lowbit
