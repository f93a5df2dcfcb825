// CUDA matmul kernels: the GPU twin of matmul_scalar.cc, doing the same integer arithmetic.
//
// Quantized weights, for every bit width and scheme, decode as w = de * code + ce per group
// (quant_format.h). With x^ = s * q per 32-block, one block contributes
//     s * (de * dot(code, q) + ce * sum(q))
// and for the symmetric scheme both terms are integers times d:
//     s * d * (ka * dot(code, q) + kb * sum(q)),  (ka, kb) = (1, -z) for b >= 2, (2, -1) for b = 1,
// so codes stay unsigned bytes (u8 x s8 dot products) and no per-group activation sum is needed.
//
// Paths:
//  - quantize_acts_kernel: x (m, k) fp32 -> int8 per 32-block, scale amax/127, nearbyint of
//    x * (127/amax): bit-identical to quantize_acts() on the CPU.
//  - gemv_q_kernel (m <= 8): one warp per weight row, 16-byte streaming loads of codes, dp4a.
//    The activations are stored "plane-major" for the weight's bit width, so the 16 bytes of
//    activations matching a lane's 16 bytes of codes in plane p are contiguous across the warp.
//  - gemm_q_kernel (m > 8): int8 tensor cores (mma.sync m16n8k32, u8 codes x s8 activations,
//    s32 accumulate), one k-step per 32-block; four warps split K for a 16-row tile of W.
//  - gemv_f_kernel: float weights (f32/f16/bf16), fp32 FMA, up to 8 rows of x per pass.
#include <cuda_fp16.h>

#include <algorithm>

#include "kernels/matmul_cuda.h"

namespace lowbit::cuda {
namespace {

constexpr int kWarps = 4;  // warps per block of every matmul kernel
constexpr int kThreads = 32 * kWarps;
constexpr int kGemvUnroll = 4;  // 16-byte code loads in flight per lane
constexpr int kGemmUnroll = 4;  // 32-byte chunks per warp per step (two 8-byte loads each)

// ---- device helpers ---------------------------------------------------------------------

// u8 x s8 four-way dot product: codes are unsigned (up to 255 at 8 bits), activations signed.
__device__ __forceinline__ int dp4a_us(uint32_t codes, int acts, int c) {
  int d;
  asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(codes), "r"(acts), "r"(c));
  return d;
}

__device__ __forceinline__ int dp4a_ss(int a, int b, int c) {
  int d;
  asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

// D = A (16 x 32 u8, row) * B (32 x 8 s8, col), s32. Fragment ownership for lane (g = lane/4,
// t = lane%4): a0/a2 = row g, a1/a3 = row g+8, k = 4t..4t+3 (a0, a1) and 16+4t.. (a2, a3);
// b0/b1 = column g, the same k ranges; d0/d1 = row g, columns 2t and 2t+1, d2/d3 = row g+8.
__device__ __forceinline__ void mma_u8s8(int (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%10,%10,%10};"
      : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(0));
}

// Programmatic dependent launch (sm_90): the matmul kernel is launched while the activation
// quantizer still runs, issues its first weight loads (which do not depend on it), and waits
// here before touching the activations. Without the launch attribute both are no-ops.
__device__ __forceinline__ void wait_for_producer() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void allow_consumer() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}

// Weights are read once per matmul: stream them past L1 (evict-first) and keep the cache for
// the activations, which every warp re-reads.
__device__ __forceinline__ uint4 load_stream(const uint4* p) { return __ldcs(p); }
__device__ __forceinline__ uint2 load_stream(const uint2* p) { return __ldcs(p); }

__device__ __forceinline__ float half_bits_to_float(uint16_t h) {
  return __half2float(__ushort_as_half(h));
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <int BITS>
struct Bits {
  static constexpr int planes = 8 / BITS;  // 32-blocks per 32-byte chunk
  static constexpr uint32_t mask = BITS == 8 ? 0xffffffffu : ((1u << BITS) - 1u) * 0x01010101u;
  // Symmetric decode as integers: level = ka * code + kb.
  static constexpr int ka = BITS == 1 ? 2 : 1;
  static constexpr int kb = BITS == 1 ? -1 : -sym_offset(BITS);
};

// ---- activations ------------------------------------------------------------------------

// Where quantize_acts_kernel puts block b of activation row r.
//  gemv: planes = 8/bits; the chunk of 256/bits weights holding b is c = b / planes, its plane
//        p = b % planes. q[r][p][u][16] with u = 2c + half (16-byte unit of the code row),
//        scale[r][p][c]. A lane holding code unit u reads its plane-p activations at
//        q[r][p][u], consecutive across the warp.
//  gemm: q[r][kp] in natural order; sq[b][r] = {scale bits, sum of q} (int2), so the two rows
//        a lane needs for its accumulator columns are one 16-byte load.
struct ActLayout {
  bool gemm;
  int planes;        // gemv only
  int64_t kp;        // padded row: round_up(k, kMaxChunkWeights)
  int rows;          // rows written (m padded); rows >= m are zeros
};

// One warp per 32-block: lane i quantizes element i.
__global__ void __launch_bounds__(256) quantize_acts_kernel(const float* __restrict__ x, int64_t m,
                                                           int64_t k, ActLayout l,
                                                           int8_t* __restrict__ q,
                                                           float* __restrict__ scale,
                                                           int2* __restrict__ sq) {
  allow_consumer();
  const int lane = threadIdx.x & 31;
  const int64_t blocks = l.kp / kActBlock;
  const int64_t b = (int64_t)blockIdx.x * 8 + (threadIdx.x >> 5);
  const int64_t r = blockIdx.y;
  if (b >= blocks) return;
  const int64_t i = b * kActBlock + lane;
  const float v = (r < m && i < k) ? x[r * k + i] : 0.0f;
  float amax = fabsf(v);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  // IEEE division and rint (round half to even) as in quantize_acts(); no fast-math here.
  const float inv = amax > 0 ? 127.0f / amax : 0.0f;
  const int qi = (int)rintf(v * inv);
  const float s = amax / 127.0f;
  if (l.gemm) {
    q[r * l.kp + i] = (int8_t)qi;
    const int sum = __reduce_add_sync(0xffffffffu, qi);
    if (lane == 0) sq[b * l.rows + r] = make_int2(__float_as_int(s), sum);
  } else {
    const int64_t c = b / l.planes, p = b % l.planes;
    const int64_t plane_bytes = l.kp / l.planes;
    q[r * l.kp + p * plane_bytes + (2 * c + (lane >> 4)) * 16 + (lane & 15)] = (int8_t)qi;
    if (lane == 0) scale[r * blocks + p * (plane_bytes / 32) + c] = s;
  }
}

// ---- quantized GEMV ---------------------------------------------------------------------

struct QParams {
  const uint8_t* codes;    // (n, row_bytes)
  const uint16_t* scales;  // (n, groups) fp16
  const uint16_t* mins;    // (n, groups) fp16, asym only
  int64_t n, row_bytes;
  int groups;
  int group_shift;  // block -> group: b >> group_shift (30 for one group per row)
  int kb;           // blocks holding real weights: ceil(k / 32); later blocks are padding
  const int8_t* q;  // activations, ActLayout
  const float* scale;
  const int2* sq;
  int64_t kp;
  int m, rows;      // real and padded activation rows
  float* y;         // (m, n)
};

template <int BITS, bool ASYM, int M>
__global__ void __launch_bounds__(kThreads) gemv_q_kernel(const QParams p) {
  using B = Bits<BITS>;
  constexpr int P = B::planes;
  const int lane = threadIdx.x & 31;
  const int64_t n = (int64_t)blockIdx.x * kWarps + (threadIdx.x >> 5);
  if (n >= p.n) return;
  const int units = (int)(p.row_bytes / 16);  // 16-byte units of the code row; unit u is
                                              // half (u & 1) of chunk u >> 1
  const uint4* wrow = reinterpret_cast<const uint4*>(p.codes + n * p.row_bytes);
  const uint16_t* srow = p.scales + n * p.groups;
  const uint16_t* mrow = ASYM ? p.mins + n * p.groups : nullptr;
  const int64_t plane_bytes = p.kp / P;
  const int64_t blocks = p.kp / kActBlock;
  const int chunks_pad = (int)(plane_bytes / 32);

  float acc[M];
#pragma unroll
  for (int r = 0; r < M; ++r) acc[r] = 0.0f;

  for (int base = 0; base < units; base += 32 * kGemvUnroll) {
    uint4 w[kGemvUnroll];
#pragma unroll
    for (int j = 0; j < kGemvUnroll; ++j) {
      const int u = base + j * 32 + lane;
      w[j] = u < units ? load_stream(wrow + u) : make_uint4(0, 0, 0, 0);
    }
    if (base == 0) wait_for_producer();
#pragma unroll
    for (int j = 0; j < kGemvUnroll; ++j) {
      const int u = base + j * 32 + lane;
      if (u >= units) break;
      const int c = u >> 1;
      const uint32_t wv[4] = {w[j].x, w[j].y, w[j].z, w[j].w};
#pragma unroll
      for (int pl = 0; pl < P; ++pl) {
        const int blk = c * P + pl;
        if (blk >= p.kb) break;
        const int gi = blk >> p.group_shift;
        const float d = half_bits_to_float(__ldg(srow + gi));
        const float mn = ASYM ? half_bits_to_float(__ldg(mrow + gi)) : 0.0f;
        uint32_t cw[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) cw[e] = (wv[e] >> (pl * BITS)) & B::mask;
#pragma unroll
        for (int r = 0; r < M; ++r) {
          const int4 a = __ldg(reinterpret_cast<const int4*>(p.q + r * p.kp + pl * plane_bytes) + u);
          const float s = __ldg(p.scale + r * blocks + pl * chunks_pad + c);
          int dot = dp4a_us(cw[0], a.x, 0);
          dot = dp4a_us(cw[1], a.y, dot);
          dot = dp4a_us(cw[2], a.z, dot);
          dot = dp4a_us(cw[3], a.w, dot);
          int sum = dp4a_ss(0x01010101, a.x, 0);
          sum = dp4a_ss(0x01010101, a.y, sum);
          sum = dp4a_ss(0x01010101, a.z, sum);
          sum = dp4a_ss(0x01010101, a.w, sum);
          if constexpr (ASYM)
            acc[r] += s * (d * (float)dot + mn * (float)sum);
          else
            acc[r] += (s * d) * (float)(B::ka * dot + B::kb * sum);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < M; ++r) {
    const float v = warp_sum(acc[r]);
    if (lane == 0 && r < p.m) p.y[r * p.n + n] = v;
  }
}

// ---- quantized GEMM (int8 tensor cores) -------------------------------------------------

// Block: a tile of 16 weight rows x 8*MT activation rows; warp w takes chunks
// [w*U, w*U + U), [w*U + 4U, ...) of K and the warps' partial sums are added in shared memory.
// A lane (g, t) loads bytes [8t, 8t+8) of each chunk of rows g and g+8: one 32-byte sector per
// row and warp load. The mma's k order is permuted to match (logical k 4t..4t+3 <- bytes 8t..,
// 16+4t.. <- bytes 8t+4..), and the activation fragment uses the same permutation, which in
// natural order is again bytes [8t, 8t+8) of the block: one 8-byte load.
template <int BITS, bool ASYM, int MT>
__global__ void __launch_bounds__(kThreads) gemm_q_kernel(const QParams p) {
  using B = Bits<BITS>;
  constexpr int P = B::planes;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int64_t n0 = (int64_t)blockIdx.x * 16;
  const int m0 = blockIdx.y * 8 * MT;
  // Rows past n are clamped (read, computed, never stored) so every lane takes part in the mma.
  const int64_t ra = min(n0 + g, p.n - 1), rb = min(n0 + g + 8, p.n - 1);
  const uint8_t* wa = p.codes + ra * p.row_bytes + 8 * t;
  const uint8_t* wb = p.codes + rb * p.row_bytes + 8 * t;
  const uint16_t* sa = p.scales + ra * p.groups;
  const uint16_t* sb = p.scales + rb * p.groups;
  const uint16_t* ma = ASYM ? p.mins + ra * p.groups : nullptr;
  const uint16_t* mb = ASYM ? p.mins + rb * p.groups : nullptr;
  const int chunks = (int)(p.row_bytes / 32);

  float acc[MT][4];
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

  bool waited = false;
  for (int c0 = warp * kGemmUnroll; c0 < chunks; c0 += kWarps * kGemmUnroll) {
    uint2 ca[kGemmUnroll], cb[kGemmUnroll];
#pragma unroll
    for (int j = 0; j < kGemmUnroll; ++j) {
      const int c = c0 + j;
      ca[j] = c < chunks ? load_stream(reinterpret_cast<const uint2*>(wa + c * 32)) : make_uint2(0, 0);
      cb[j] = c < chunks ? load_stream(reinterpret_cast<const uint2*>(wb + c * 32)) : make_uint2(0, 0);
    }
    if (!waited) {
      wait_for_producer();
      waited = true;
    }
#pragma unroll
    for (int j = 0; j < kGemmUnroll; ++j) {
      const int c = c0 + j;
      if (c >= chunks) break;  // uniform across the warp, as mma.sync requires
#pragma unroll
      for (int pl = 0; pl < P; ++pl) {
        const int blk = c * P + pl;
        if (blk >= p.kb) break;  // uniform
        const int gi = blk >> p.group_shift;
        const float da = half_bits_to_float(__ldg(sa + gi));
        const float db = half_bits_to_float(__ldg(sb + gi));
        const float mna = ASYM ? half_bits_to_float(__ldg(ma + gi)) : 0.0f;
        const float mnb = ASYM ? half_bits_to_float(__ldg(mb + gi)) : 0.0f;
        const int sh = pl * BITS;
        const uint32_t a0 = (ca[j].x >> sh) & B::mask, a2 = (ca[j].y >> sh) & B::mask;
        const uint32_t a1 = (cb[j].x >> sh) & B::mask, a3 = (cb[j].y >> sh) & B::mask;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          const int mrow = m0 + mt * 8 + g;  // < rows: the activations are padded
          const uint2 bq = __ldg(reinterpret_cast<const uint2*>(p.q + mrow * p.kp + blk * 32 + 8 * t));
          int d[4];
          mma_u8s8(d, a0, a1, a2, a3, bq.x, bq.y);
          // Columns 2t and 2t+1 of this m8 tile: {scale, sum} each.
          const int4 ss = __ldg(reinterpret_cast<const int4*>(p.sq + blk * p.rows + m0 + mt * 8 + 2 * t));
          const float s0 = __int_as_float(ss.x), s1 = __int_as_float(ss.z);
          if constexpr (ASYM) {
            acc[mt][0] += s0 * (da * (float)d[0] + mna * (float)ss.y);
            acc[mt][1] += s1 * (da * (float)d[1] + mna * (float)ss.w);
            acc[mt][2] += s0 * (db * (float)d[2] + mnb * (float)ss.y);
            acc[mt][3] += s1 * (db * (float)d[3] + mnb * (float)ss.w);
          } else {
            acc[mt][0] += (s0 * da) * (float)(B::ka * d[0] + B::kb * ss.y);
            acc[mt][1] += (s1 * da) * (float)(B::ka * d[1] + B::kb * ss.w);
            acc[mt][2] += (s0 * db) * (float)(B::ka * d[2] + B::kb * ss.y);
            acc[mt][3] += (s1 * db) * (float)(B::ka * d[3] + B::kb * ss.w);
          }
        }
      }
    }
  }

  // The four warps' partial sums, added in a fixed order (deterministic results).
  __shared__ float part[kWarps][MT][4][32];  // [warp][m8 tile][accumulator][lane]
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < 4; ++i) part[warp][mt][i][lane] = acc[mt][i];
  __syncthreads();
  if (warp != 0) return;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float v = part[0][mt][i][lane];
#pragma unroll
      for (int w = 1; w < kWarps; ++w) v += part[w][mt][i][lane];
      const int64_t n = n0 + g + (i >> 1) * 8;
      const int m = m0 + mt * 8 + 2 * t + (i & 1);
      if (n < p.n && m < p.m) p.y[(int64_t)m * p.n + n] = v;
    }
}

// ---- float weights ----------------------------------------------------------------------

struct FParams {
  const uint8_t* w;  // (n, k) of f32 / f16 / bf16
  int64_t n, k;
  const float* x;    // (m, k)
  int m;             // <= M
  float* y;          // (m, ldy)
  int64_t ldy;
};

template <Base BASE>
__device__ __forceinline__ float load_weight(const uint8_t* row, int64_t i) {
  if constexpr (BASE == Base::f32) return __ldcs(reinterpret_cast<const float*>(row) + i);
  const uint16_t h = __ldcs(reinterpret_cast<const unsigned short*>(row) + i);
  if constexpr (BASE == Base::f16) return half_bits_to_float(h);
  return __uint_as_float((uint32_t)h << 16);
}

// Eight weights (16-bit) or four (f32) from one 16-byte load.
template <Base BASE>
__device__ __forceinline__ void unpack16(const uint4 v, float* out) {
  const uint32_t wv[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    if constexpr (BASE == Base::f32) {
      out[e] = __uint_as_float(wv[e]);
    } else if constexpr (BASE == Base::f16) {
      out[2 * e] = half_bits_to_float((uint16_t)(wv[e] & 0xffffu));
      out[2 * e + 1] = half_bits_to_float((uint16_t)(wv[e] >> 16));
    } else {
      out[2 * e] = __uint_as_float(wv[e] << 16);
      out[2 * e + 1] = __uint_as_float(wv[e] & 0xffff0000u);
    }
  }
}

// One warp per weight row. VEC: rows are whole 16-byte units and x rows 16-byte aligned.
template <Base BASE, int M, bool VEC>
__global__ void __launch_bounds__(kThreads) gemv_f_kernel(const FParams p) {
  const int lane = threadIdx.x & 31;
  const int64_t n = (int64_t)blockIdx.x * kWarps + (threadIdx.x >> 5);
  if (n >= p.n) return;
  constexpr int esize = BASE == Base::f32 ? 4 : 2;
  const uint8_t* row = p.w + n * p.k * esize;
  float acc[M];
#pragma unroll
  for (int r = 0; r < M; ++r) acc[r] = 0.0f;
  if constexpr (VEC) {
    constexpr int E = 16 / esize;
    for (int64_t i = (int64_t)lane * E; i < p.k; i += 32 * E) {
      float wf[E];
      unpack16<BASE>(load_stream(reinterpret_cast<const uint4*>(row + i * esize)), wf);
#pragma unroll
      for (int r = 0; r < M; ++r) {
        if (r >= p.m) break;
#pragma unroll
        for (int e = 0; e < E; e += 4) {
          const float4 xv = __ldg(reinterpret_cast<const float4*>(p.x + r * p.k + i + e));
          acc[r] += wf[e] * xv.x;
          acc[r] += wf[e + 1] * xv.y;
          acc[r] += wf[e + 2] * xv.z;
          acc[r] += wf[e + 3] * xv.w;
        }
      }
    }
  } else {
    for (int64_t i = lane; i < p.k; i += 32) {
      const float wf = load_weight<BASE>(row, i);
#pragma unroll
      for (int r = 0; r < M; ++r)
        if (r < p.m) acc[r] += wf * __ldg(p.x + r * p.k + i);
    }
  }
#pragma unroll
  for (int r = 0; r < M; ++r) {
    const float v = warp_sum(acc[r]);
    if (lane == 0 && r < p.m) p.y[r * p.ldy + n] = v;
  }
}

// ---- host side --------------------------------------------------------------------------

int gemv_rows(int64_t m) { return m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : 8; }
int gemm_tiles(int64_t m) { return m <= 16 ? 2 : 4; }  // m8 tiles per block

template <typename Kernel>
cudaError_t launch(Kernel kernel, dim3 grid, dim3 block, cudaStream_t stream, bool pdl,
                   const QParams& p) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, p);
}

template <int BITS, bool ASYM>
cudaError_t run_q(const QParams& p, bool gemm, cudaStream_t stream, bool pdl) {
  const dim3 block(kThreads);
  if (!gemm) {
    const dim3 grid((unsigned)ceil_div(p.n, kWarps));
    switch (p.rows) {
      case 1: return launch(gemv_q_kernel<BITS, ASYM, 1>, grid, block, stream, pdl, p);
      case 2: return launch(gemv_q_kernel<BITS, ASYM, 2>, grid, block, stream, pdl, p);
      case 4: return launch(gemv_q_kernel<BITS, ASYM, 4>, grid, block, stream, pdl, p);
      default: return launch(gemv_q_kernel<BITS, ASYM, 8>, grid, block, stream, pdl, p);
    }
  }
  const int mt = gemm_tiles(p.m);
  const dim3 grid((unsigned)ceil_div(p.n, 16), (unsigned)(p.rows / (8 * mt)));
  if (mt == 2) return launch(gemm_q_kernel<BITS, ASYM, 2>, grid, block, stream, pdl, p);
  return launch(gemm_q_kernel<BITS, ASYM, 4>, grid, block, stream, pdl, p);
}

template <bool ASYM>
cudaError_t run_q_bits(int bits, const QParams& p, bool gemm, cudaStream_t stream, bool pdl) {
  switch (bits) {
    case 1: return run_q<1, ASYM>(p, gemm, stream, pdl);
    case 2: return run_q<2, ASYM>(p, gemm, stream, pdl);
    case 4: return run_q<4, ASYM>(p, gemm, stream, pdl);
    case 8: return run_q<8, ASYM>(p, gemm, stream, pdl);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t grow(ActBuffer& acts, size_t bytes) {
  if (acts.bytes >= bytes) return cudaSuccess;
  if (acts.ptr) {
    // The buffer may still be read by queued work.
    if (cudaError_t e = cudaDeviceSynchronize(); e != cudaSuccess) return e;
    cudaFree(acts.ptr);
    acts.ptr = nullptr;
    acts.bytes = 0;
  }
  if (cudaError_t e = cudaMalloc(&acts.ptr, bytes); e != cudaSuccess) return e;
  acts.bytes = bytes;
  return cudaSuccess;
}

cudaError_t matmul_q(const DeviceMatrix& w, const float* x, int64_t m, float* y, ActBuffer& acts,
                     cudaStream_t stream, bool pdl) {
  const bool gemm = m > kGemvMaxM;
  const int bits = w.type.bits;
  ActLayout al;
  al.gemm = gemm;
  al.planes = 8 / bits;
  al.kp = round_up(w.k, kMaxChunkWeights);
  al.rows = gemm ? (int)round_up(m, 8 * gemm_tiles(m)) : gemv_rows(m);
  if (al.rows > 65535) return cudaErrorInvalidValue;  // grid.y; callers split larger batches
  const int64_t blocks = al.kp / kActBlock;
  const size_t q_bytes = round_up((int64_t)al.rows * al.kp, 256);
  const size_t s_bytes = (size_t)blocks * al.rows * (gemm ? sizeof(int2) : sizeof(float));
  if (cudaError_t e = grow(acts, q_bytes + s_bytes); e != cudaSuccess) return e;
  auto* q = static_cast<int8_t*>(acts.ptr);
  auto* s = reinterpret_cast<float*>(q + q_bytes);

  quantize_acts_kernel<<<dim3((unsigned)ceil_div(blocks, 8), (unsigned)al.rows), 256, 0, stream>>>(
      x, m, w.k, al, q, s, reinterpret_cast<int2*>(s));
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;

  QParams p{};
  const QSections<const uint8_t> sec = q_sections(w.type, w.n, w.k, w.data);
  p.codes = sec.codes;
  p.scales = sec.scales;
  p.mins = sec.mins;
  p.n = w.n;
  p.row_bytes = sec.row_bytes;
  p.groups = (int)sec.groups;
  const int64_t gblocks = group_size(w.type, w.k) / kActBlock;
  p.group_shift = w.type.group == 0 ? 30 : __builtin_ctzll(gblocks);
  p.kb = (int)ceil_div(w.k, kActBlock);
  p.q = q;
  p.scale = s;
  p.sq = reinterpret_cast<const int2*>(s);
  p.kp = al.kp;
  p.m = (int)m;
  p.rows = al.rows;
  p.y = y;
  if (w.type.scheme == Scheme::asym) return run_q_bits<true>(bits, p, gemm, stream, pdl);
  return run_q_bits<false>(bits, p, gemm, stream, pdl);
}

template <Base BASE, bool VEC>
cudaError_t run_f(const FParams& p, int rows, cudaStream_t stream) {
  const dim3 grid((unsigned)ceil_div(p.n, kWarps)), block(kThreads);
  switch (rows) {
    case 1: gemv_f_kernel<BASE, 1, VEC><<<grid, block, 0, stream>>>(p); break;
    case 2: gemv_f_kernel<BASE, 2, VEC><<<grid, block, 0, stream>>>(p); break;
    case 4: gemv_f_kernel<BASE, 4, VEC><<<grid, block, 0, stream>>>(p); break;
    default: gemv_f_kernel<BASE, 8, VEC><<<grid, block, 0, stream>>>(p); break;
  }
  return cudaGetLastError();
}

template <Base BASE>
cudaError_t matmul_f(const DeviceMatrix& w, const float* x, int64_t m, float* y, cudaStream_t stream) {
  constexpr int esize = BASE == Base::f32 ? 4 : 2;
  const bool vec = (w.k * esize) % 16 == 0 && w.k % 4 == 0 &&
                   reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(w.data) % 16 == 0;
  for (int64_t r0 = 0; r0 < m; r0 += kGemvMaxM) {
    FParams p{w.data, w.n, w.k, x + r0 * w.k, (int)std::min<int64_t>(kGemvMaxM, m - r0), y + r0 * w.n, w.n};
    const int rows = gemv_rows(p.m);
    const cudaError_t e = vec ? run_f<BASE, true>(p, rows, stream) : run_f<BASE, false>(p, rows, stream);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

}  // namespace

cudaError_t matmul_device(const DeviceMatrix& w, const float* x, int64_t m, float* y,
                          ActBuffer& acts, cudaStream_t stream, bool pdl) {
  if (m <= 0 || w.n <= 0) return cudaSuccess;
  switch (w.type.base) {
    case Base::q: return matmul_q(w, x, m, y, acts, stream, pdl);
    case Base::f32: return matmul_f<Base::f32>(w, x, m, y, stream);
    case Base::f16: return matmul_f<Base::f16>(w, x, m, y, stream);
    case Base::bf16: return matmul_f<Base::bf16>(w, x, m, y, stream);
  }
  return cudaErrorInvalidValue;
}

const char* matmul_path(const QType& t, int64_t m) {
  if (t.base != Base::q) return "gemv_f32fma";
  return m <= kGemvMaxM ? "gemv_dp4a" : "mma_s8_m16n8k32";
}

}  // namespace lowbit::cuda
