// The int8-activation kernels for quantized weights on x86, in 256-bit registers: the
// arithmetic of gemm_q_scalar (matmul_scalar.cc). Built once per x86 ISA from this one source,
// included by matmul_quant_avx2.cc (AVX2: vpmaddubsw + vpmaddwd), matmul_quant_avx512.cc
// (AVX-512 VL + VNNI: vpdpbusd on 256-bit registers, see there why not 512-bit ones) and
// matmul_avxvnni.cc (AVX-VNNI: the same vpdpbusd, VEX-encoded, on AVX2-class CPUs); kVnni, set
// by the including file's compiler flags, picks the integer dot product. Everything has
// internal linkage (the unnamed namespace), so each ISA's copy is its own.
//
// y[c][n] = sum_g [ de_g * sum_{b in g} s_{c,b} * Q_{n,c,b} + ce_g * gsum_{c,g} ]
//
// The kernel turns that into one multiply-add per block: before a row's dot products it writes
// mult[c][b] = d_{g(b)} * s_{c,b} for every block (8 blocks per vector instruction, the scale
// expanded from groups to blocks by a permute), and folds ce into sum_g d_g gsum_g and
// sum_g m_g gsum_g (de and ce are fixed multiples of d, plus m when asymmetric). Per-row groups
// skip the table: the activation scales are the multipliers and d scales the row's sum. The loop
// then needs, per 32 weights: the plane unpack (one shift + one AND of the shared chunk),
// one vpmaddubsw (u8 code x s8 activation -> 16 x i16; with VNNI one vpdpbusd -> 8 x i32), and
// for every 4 blocks 6 unpacks, 3 adds, 1 vpmaddwd (not with VNNI), 1 vcvtdq2ps and 1 vfmadd
// with the 4 blocks' multipliers broadcast to both 128-bit lanes: the unpacks pack four blocks'
// integer sums into one vector before the conversion to float, so the fp work is paid once per
// 128 weights instead of once per 32.
//
// Integer ranges (AVX2): codes < 16, |act| <= 127, so a vpmaddubsw pair is <= 3810 and the i16
// sum of four pairs (quad_dot's first two levels) <= 15240 < 2^15. 8-bit codes reach 255, which
// would saturate vpmaddubsw: they are used as levels code - 128 (an XOR of 0x80) with the
// |w| x sign(a, w) identity, their pairs reach 32512, so the 8-bit path widens first
// (vpmaddwd) and adds in i32. The shift by 128 is returned through the group sums: 128 * de
// is added to ce. With VNNI every sum is i32 from the first instruction (a vpdpbusd lane is
// <= 4 x 255 x 127), so the 8-bit codes go in as they are (one instruction per block where
// AVX2 needs four) and the ce of quant_format.h stands unchanged.
//
// Tiles: M == 1 (decode) runs 4 weight rows per pass, sharing the activation loads (with groups
// of 32 to 256, gemv builds the multipliers inside that loop instead of in prepare()); M > 1 runs
// the lane kernel of matmul_lanes_x86.h (8 activation rows in the lanes of a vector) where the
// shape allows it (gemv's shapes, at least 4 rows in a panel), and tile<>
// for the rest: 2 weight rows x 4 activation rows, so each unpacked weight block feeds 4
// activation rows and each activation block feeds 2 weight rows, over panels of activation rows
// that stay in L2.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/codes_x86.h"
#include "kernels/matmul_avx2.h"

namespace lowbit::x86 {
namespace {

#if (defined(__AVX512VNNI__) && defined(__AVX512VL__)) || defined(__AVXVNNI__)
constexpr bool kVnni = true;  // vpdpbusd on 256-bit registers
#else
constexpr bool kVnni = false;
#endif
// acc + the sums of four u8 x s8 products per i32 lane: vpdpbusd in the encoding the file is
// built for (EVEX with AVX-512 VL, VEX with AVX-VNNI). Only called where kVnni.
[[gnu::always_inline]] inline __m256i dpbusd(__m256i acc, __m256i u8, __m256i s8) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(acc, u8, s8);
#elif defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(acc, u8, s8);
#else
  return acc;
#endif
}
// Whether a quad's sums are added in i16 before one vpmaddwd widens them (AVX2 below 8 bits).
template <int BITS>
constexpr bool kI16Sums = !kVnni && BITS != 8;

using avx2::kRowTile;

constexpr int64_t kGemvRows = 4;   // weight rows per pass at M == 1
constexpr int kPipe = 4;           // items between an item's two halves in pipelined()
// Prefill at 1 bit runs unpipelined: 2 threads, M = 32, 3 alternating runs, 123, 123, 102
// GFLOP/s pipelined against 137, 139, 134 (at 8 bits, M = 512: 100, 103 against 87, 92).
template <int BITS>
constexpr int kGemmPipe = BITS == 1 ? 0 : kPipe;
#ifndef LOWBIT_AVX2_PREFETCH
#define LOWBIT_AVX2_PREFETCH 1
#endif
constexpr int kPrefetch = LOWBIT_AVX2_PREFETCH;  // row tiles ahead
constexpr int64_t kGemmRows = 2;   // weight rows per tile at M > 1
constexpr int64_t kGemmActs = 4;   // activation rows per tile at M > 1
constexpr int64_t kPanelActs = 64;  // activation rows per panel: 64 x 4 KiB at K = 4096 (L2)
static_assert(kRowTile % kGemvRows == 0 && kRowTile % kGemmRows == 0, "row tile");

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// n (1..8) fp16 values as fp32, the lanes past n zero; never reads past p[n - 1]. Inserted in
// registers: a copy through the stack read back as one vector stalls on store forwarding, and a
// row's tail (K = 576 at groups of 32: 2 groups) paid that stall on every row (20% of gemv).
inline __m256 load_f16(const uint16_t* p, int n) {
  if (n == 8) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  __m128i v = _mm_setzero_si128();
  switch (n) {
    case 7: v = _mm_insert_epi16(v, p[6], 6); [[fallthrough]];
    case 6: v = _mm_insert_epi16(v, p[5], 5); [[fallthrough]];
    case 5: v = _mm_insert_epi16(v, p[4], 4); [[fallthrough]];
    case 4: v = _mm_insert_epi16(v, p[3], 3); [[fallthrough]];
    case 3: v = _mm_insert_epi16(v, p[2], 2); [[fallthrough]];
    case 2: v = _mm_insert_epi16(v, p[1], 1); [[fallthrough]];
    default: v = _mm_insert_epi16(v, p[0], 0);
  }
  return _mm256_cvtph_ps(v);
}

inline __m256i lane_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Everything a tile needs about W and the activations; fixed for one matmul.
struct Ctx {
  const uint8_t* codes = nullptr;    // (n_rows, row_bytes)
  int64_t n_rows = 0;
  int64_t row_bytes = 0;
  const uint16_t* scales = nullptr;  // (n, groups) fp16 d, or rows srow0.. of them (see expanded)
  const uint16_t* mins = nullptr;    // (n, groups) fp16 m; null when symmetric
  int64_t groups = 0;
  // 6-bit scale codes: scales/mins hold the fp16 values of rows srow0 .. (expand_scales), and
  // the tiles' scale prefetches are off (the expanded rows are in L1).
  bool expanded = false;
  int64_t srow0 = 0;
  // ... or, at M = 1 with groups of one block, read as codes by gemv (CodedRow) from sec.
  bool coded = false;
  QSections<const uint8_t> sec;
  const uint16_t* row_sc(int64_t n) const { return scales + (n - srow0) * groups; }
  const uint16_t* row_mn(int64_t n) const { return mins ? mins + (n - srow0) * groups : nullptr; }
  int64_t gb = 0;    // activation blocks per group
  int64_t nbw = 0;   // blocks a row's codes cover (whole chunks): the blocks the loops visit
  int64_t nb8 = 0;   // nbw rounded up to 8: the length of one multiplier row
  float de_mul = 1;  // de = de_mul * d
  float cd_mul = 0;  // ce = cd_mul * d (+ m): the scheme's offset plus 128 de at 8 bits
  const int8_t* q = nullptr;       // activations (m, kp)
  const int8_t* qrot = nullptr;    // 2-bit gemv with VNNI: row 0's whole quads as rotate_quads() lays them out
  int64_t kp = 0;
  const float* ascale = nullptr;   // (m, ablocks)
  int64_t ablocks = 0;
  const float* gsum = nullptr;     // (m, groups)
  float* y = nullptr;  // (m, ldy)
  int64_t ldy = 0;
};

// 2^-plane_shift for the 8 blocks b..b+7 (b a multiple of 8: lane i holds plane i % (8/BITS)).
template <int BITS>
inline __m256 plane_factor() {
  if constexpr (BITS == 1) return _mm256_setr_ps(1.f, .5f, .25f, .125f, .0625f, .03125f, 1.f, .5f);
  else if constexpr (BITS == 2) return _mm256_setr_ps(1.f, .25f, 1.f, .25f, 1.f, .25f, 1.f, .25f);
  else return _mm256_set1_ps(1.f);
}

// One weight group per row spanning more than 8 blocks (per-row groups over K > 256, where
// gemv() never runs): the activation scales serve as the multipliers and d scales the row's sum.
template <int BITS>
inline bool row_scaled(const Ctx& x) {
  return x.groups == 1 && BITS > 2 && x.gb > 8;
}

// For weight row n and activation rows m0 .. m0+C-1: the group-sum terms sum_g ce_g gsum_{c,g}
// as two parts, ct[c] = cd_mul * sum_g d_g gsum_{c,g} and cm[c] = sum_g m_g gsum_{c,g}, which
// the caller adds in that order after the codes' sum, as gemv() does: the same fp32 sums in the
// same order, so a row's result does not depend on whether it ran at M = 1 or in a tile of M > 1
// (batched decoding relies on it). And the per-block multipliers: with row_scaled(), none (the
// activation scales serve as they are) and the returned d multiplies the row's sum; otherwise
// mult[c][b] = d_{g(b)} * s_{c,b} for b < nb8 (zero past the real blocks, whose activation
// scales are zero) and 1 is returned. dg: scratch for round_up(groups, 8) + 16 floats.
template <int BITS, int C>
float prepare(const Ctx& x, int64_t n, int64_t m0, float* mult, float* ct, float* cm, float* dg) {
  // Locals, not x's fields: the vector stores below may alias anything and would force reloads.
  const int64_t groups = x.groups, nb8 = x.nb8, ab = x.ablocks;
  const float* s0 = x.ascale + m0 * ab;
  const float* gs0 = x.gsum + m0 * groups;
  const uint16_t* sc = x.row_sc(n);
  const uint16_t* mn = x.row_mn(n);
  constexpr bool scaled_planes = BITS <= 2;
  if (row_scaled<BITS>(x)) {
    const float d = f16_to_f32(sc[0]), m = mn ? f16_to_f32(mn[0]) : 0.0f;
    for (int c = 0; c < C; ++c) ct[c] = (x.cd_mul * d + m) * gs0[c], cm[c] = 0.0f;
    return d;
  }
  const __m256 pf = plane_factor<BITS>();
  const bool per_block = x.gb == 1;  // g32: groups == blocks of the row, nb8 == round_up(groups, 8)
  __m256 accd[C], accm[C];
  for (int c = 0; c < C; ++c) accd[c] = accm[c] = _mm256_setzero_ps();
  auto eight = [&](int64_t g, __m256 d, __m256 m, int cnt) {
    const __m256i lanes = lane_mask(cnt);
    if (!per_block) _mm256_storeu_ps(dg + g, d);
    for (int c = 0; c < C; ++c) {
      const __m256 gs = cnt == 8 ? _mm256_loadu_ps(gs0 + c * groups + g) : _mm256_maskload_ps(gs0 + c * groups + g, lanes);
      if (x.cd_mul != 0.0f) accd[c] = _mm256_fmadd_ps(d, gs, accd[c]);  // 0 for asym below 8 bits
      if (mn) accm[c] = _mm256_fmadd_ps(m, gs, accm[c]);
      if (per_block)
        _mm256_storeu_ps(mult + c * nb8 + g, _mm256_mul_ps(scaled_planes ? _mm256_mul_ps(d, pf) : d,
                                                           _mm256_loadu_ps(s0 + c * ab + g)));
    }
  };
  int64_t g = 0;
  for (; g + 8 <= groups; g += 8)
    eight(g, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + g))),
          mn ? _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mn + g))) : _mm256_setzero_ps(), 8);
  if (g < groups) {
    const int cnt = (int)(groups - g);
    eight(g, load_f16(sc + g, cnt), mn ? load_f16(mn + g, cnt) : _mm256_setzero_ps(), cnt);
  }
  for (int c = 0; c < C; ++c) ct[c] = x.cd_mul * hsum(accd[c]), cm[c] = hsum(accm[c]);
  if (per_block) return 1.0f;

  const int64_t g8 = round_up(groups, 8);
  for (int64_t z = g8; z < g8 + 16; z += 8) _mm256_storeu_ps(dg + z, _mm256_setzero_ps());
  // d expanded from groups to blocks, 8 blocks at a time, times the activation scales.
  auto expand = [&](auto dv_of) {
    for (int64_t b = 0; b < nb8; b += 8) {
      const __m256 dv = scaled_planes ? _mm256_mul_ps(dv_of(b), pf) : dv_of(b);
      for (int c = 0; c < C; ++c)
        _mm256_storeu_ps(mult + c * nb8 + b, _mm256_mul_ps(dv, _mm256_loadu_ps(s0 + c * ab + b)));
    }
  };
  if (groups == 1) {
    expand([&](int64_t) { return _mm256_broadcast_ss(dg); });  // per row: past the row, s is zero
  } else if (x.gb == 2) {
    const __m256i by2 = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    expand([&](int64_t b) { return _mm256_permutevar8x32_ps(_mm256_loadu_ps(dg + b / 2), by2); });
  } else if (x.gb == 4) {
    const __m256i by4 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    expand([&](int64_t b) { return _mm256_permutevar8x32_ps(_mm256_loadu_ps(dg + b / 4), by4); });
  } else {  // gb == 8: one group per 8 blocks
    expand([&](int64_t b) { return _mm256_broadcast_ss(dg + b / 8); });
  }
  return 1.0f;
}

// A block's codes as the dot products take them: plane<>'s, except at 8 bits with VNNI, where
// vpdpbusd takes the unsigned codes as they are (see the top of the file).
template <int BITS, int P>
[[gnu::always_inline]] inline __m256i dot_codes(__m256i raw) {
  if constexpr (kVnni && BITS == 8) return raw;
  else return plane<BITS, P>(raw);
}

// 8 x i32 partial sums of one block's 32 products, for the tail path.
template <int BITS>
[[gnu::always_inline]] inline __m256i block_dot(__m256i w, const int8_t* act, __m256i ones) {
  const __m256i av = load32(act);
  if constexpr (kVnni)
    return dpbusd(_mm256_setzero_si256(), w, av);
  else if constexpr (BITS == 8)
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(av, w)), ones);
  else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w, av), ones);
}

// The 4 blocks of step quarter QD (blocks 4 QD .. 4 QD + 3 of a step that starts at `chunk`):
// their codes one per byte, and at 8 bits without VNNI their absolute levels (shared by every
// activation row).
template <int BITS, int QD>
[[gnu::always_inline]] inline void unpack_quad(const uint8_t* chunk, __m256i (&w)[4], __m256i (&aw)[4]) {
  constexpr int CB = 8 / BITS;
  unroll<4>([&](auto j) {
    constexpr int blk = 4 * QD + j;  // block within the step
    w[j] = dot_codes<BITS, blk % CB>(load32(chunk + (blk / CB) * kChunkBytes));
    if constexpr (BITS == 8 && !kVnni) aw[j] = _mm256_abs_epi8(w[j]);
  });
}

// Sums of the 4 blocks' values in a and b per 128-bit half, in block order: a holds blocks 0 and
// 1, b blocks 2 and 3, interleaved in i32 lanes as [0, 1, 0, 1] (see quad_dot); each i32 lane of
// the result is one block's, as an i32 or, with I16, as two i16 partial sums.
// Unpacks and adds, not vphaddw/vphaddd: on Zen 3 those retire one per 2 cycles, an unpack two per
// cycle (bench/simd_rate_bench.cc).
template <bool I16>
[[gnu::always_inline]] inline __m256i quad_sums(__m256i a, __m256i b) {
  const __m256i lo = _mm256_unpacklo_epi64(a, b), hi = _mm256_unpackhi_epi64(a, b);
  return I16 ? _mm256_add_epi16(lo, hi) : _mm256_add_epi32(lo, hi);
}
// i32 lanes [x0 + x2, y0 + y2, x1 + x3, y1 + y3] per half, lanes of x and y taken as i32 (at
// below 8 bits each i32 of a vpmaddubsw result is a pair of i16 sums, added as i16).
template <bool I16>
[[gnu::always_inline]] inline __m256i pair_sums(__m256i x, __m256i y) {
  const __m256i lo = _mm256_unpacklo_epi32(x, y), hi = _mm256_unpackhi_epi32(x, y);
  return I16 ? _mm256_add_epi16(lo, hi) : _mm256_add_epi32(lo, hi);
}

// The integer dot products of 4 unpacked blocks with the activation blocks at `act`: lanes hold
// the 4 blocks' sums in order, in both 128-bit halves (the layout the multipliers are broadcast
// to). Below 8 bits both levels add vpmaddubsw's i16 pairs in i16 (4 pairs of a block: <= 15240
// at 4 bits, 32512 for the scaled 1-bit planes, see plane()) and one vpmaddwd widens at the end.
// With VNNI each block's products are i32 sums of four from the start (one vpdpbusd), added in i32.
// It comes in two halves, so the software pipelines below can interleave quads: quad_half_sums
// (the products and the first level of sums, two vectors per quad) and quad_total (the rest).
template <int BITS>
[[gnu::always_inline]] inline void quad_half_sums(const __m256i (&w)[4], const __m256i (&aw)[4], const int8_t* act,
                                                  __m256i ones, __m256i (&h)[2]) {
  __m256i p[4];
  if constexpr (kVnni) {
    unroll<4>([&](auto j) { p[j] = dpbusd(_mm256_setzero_si256(), w[j], load32(act + j * kActBlock)); });
  } else if constexpr (BITS == 8) {
    unroll<4>([&](auto j) {
      const __m256i av = load32(act + j * kActBlock);
      p[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(aw[j], _mm256_sign_epi8(av, w[j])), ones);
    });
  } else {
    unroll<4>([&](auto j) { p[j] = _mm256_maddubs_epi16(w[j], load32(act + j * kActBlock)); });
  }
  h[0] = pair_sums<kI16Sums<BITS>>(p[0], p[1]);
  h[1] = pair_sums<kI16Sums<BITS>>(p[2], p[3]);
}
template <int BITS>
[[gnu::always_inline]] inline __m256i quad_total(const __m256i (&h)[2], __m256i ones) {
  const __m256i q = quad_sums<kI16Sums<BITS>>(h[0], h[1]);
  return kI16Sums<BITS> ? _mm256_madd_epi16(q, ones) : q;
}
template <int BITS>
[[gnu::always_inline]] inline __m256i quad_dot(const __m256i (&w)[4], const __m256i (&aw)[4], const int8_t* act,
                                               __m256i ones) {
  __m256i h[2];
  quad_half_sums<BITS>(w, aw, act, ones, h);
  return quad_total<BITS>(h, ones);
}

// products(i) for items i in [0, N), each followed D items later by sums(i): the first half of
// item i + D is issued before the second half of item i, so the out-of-order core
// sees independent work in order instead of one quad's chain of ~20 cycles (vpmaddubsw,
// unpacks, vpmaddwd, convert, FMA) at a time. Per core at M = 1, 4 rows in L1
// (LOWBIT_BENCH_CORE_N=4), best of 5 alternating runs, G weights/s at 4 bits: 39.1 unpipelined;
// depth 1 to 4: 41.3, 42.5, 44.6, 46.2; 5 to 7: 45.0-45.5. At 8 bits 32.9 against 31.4.
// D = 0 is the plain order, each item whole.
template <int N, int D, class P, class S>
[[gnu::always_inline]] inline void pipelined(P&& products, S&& sums) {
  unroll<N + D>([&](auto i) {
    if constexpr (i < N) products(i);
    if constexpr (i >= D) sums(std::integral_constant<int, i - D>{});
  });
}

// Decode streams W from DRAM, and the hardware prefetcher alone leaves much of the bandwidth
// unused (4 bits, 2 threads: 0.55 of the probe without software prefetch). The codes of the R
// rows kPrefetch tiles ahead are one contiguous range, prefetched in one of two orders, chosen
// by alternating A/B runs of `lowbit bench matmul` at N = 14336, K = 4096:
// - below 8 bits, one forward stream: each step takes the share of the range that matches its
//   own progress through the current tile (4 bits: 0.83-0.92 of the probe, against 0.77-0.81
//   for the order below; 2 bits at group 32: 0.84-0.86 against 0.61-0.72);
// - at 8 bits, each quad takes the same place in the row R ahead of its own (0.91-0.95, against
//   0.78-0.88 for the forward stream).
// Their scales and minima are contiguous too: gemv() prefetches them the same way, the step's
// share, one line of each per step at groups of 32 (4 bits at g32: 0.92, 0.92, 0.92 of the
// probe against 0.82, 0.85, 0.94 for all of a tile's at its start, which tile<> still does).
// Builtin, not _mm_prefetch: GCC 12 silently drops the intrinsic's prefetch when its hint
// argument is not yet a constant where the call is expanded.
template <int64_t kBytes>
inline void prefetch_bytes(const uint8_t* p) {
  for (int64_t o = 0; o < kBytes; o += 64) __builtin_prefetch(p + o, 0, 3);
}
template <int R>
inline void prefetch_scales(const Ctx& x, int64_t n) {
  if (x.expanded) return;
  const int64_t g0 = (n + kPrefetch * R) * x.groups, g1 = g0 + R * x.groups;
  for (int64_t g = g0; g < g1; g += 32) {
    __builtin_prefetch(x.scales + g, 0, 3);
    if (x.mins) __builtin_prefetch(x.mins + g, 0, 3);
  }
}

// R weight rows from n x C activation rows from m0. prefetch: this tile brings the weight rows
// kPrefetch tiles ahead into cache (the first tile of each weight row in a panel of activation
// rows does, so a panel streams W at gemv()'s pace; without it, batches of 2 to 16 rows read
// W at 0.3-0.5 of DRAM's bandwidth and ran no faster in aggregate than M = 1).
template <int BITS, int R, int C>
void tile(const Ctx& x, int64_t n, int64_t m0, bool prefetch) {
  constexpr int CB = 8 / BITS;          // blocks per chunk
  constexpr int S = BITS == 1 ? 8 : 4;  // blocks per step of the main loop: whole chunks
  constexpr int64_t kChunkPerBlock = kChunkBytes / CB;  // code bytes per block
  const int64_t nb8 = x.nb8, nbw = x.nbw;

  if (kPrefetch > 0 && prefetch) prefetch_scales<R>(x, n);
  // The multipliers on the stack (rows up to K ~ 29k at the 2 x 4 tile): a thread_local vector
  // would be sized the first time a worker meets a shape, which may be in any later decode step
  // (decode allocates nothing per token: tests/runtime/alloc_test.cc). Longer rows use one.
  constexpr size_t kStackFloats = 8192;
  alignas(32) float stack_scratch[kStackFloats];
  thread_local std::vector<float> heap_scratch;
  const size_t need = (size_t)(R * C * nb8 + round_up(x.groups, 8) + 16);
  float* scratch = stack_scratch;
  if (need > kStackFloats) {
    if (heap_scratch.size() < need) heap_scratch.resize(need);
    scratch = heap_scratch.data();
  }
  float* mult = scratch;  // (R, C, nb8)
  float* dg = mult + R * C * nb8;
  float ct[R][C], cm[R][C], post[R];
  const float* mrow[R][C];  // per-block multipliers of (r, c)
  for (int r = 0; r < R; ++r) {
    post[r] = prepare<BITS, C>(x, n + r, m0, mult + r * C * nb8, ct[r], cm[r], dg);
    for (int c = 0; c < C; ++c)
      mrow[r][c] = row_scaled<BITS>(x) ? x.ascale + (m0 + c) * x.ablocks : mult + (r * C + c) * nb8;
  }

  const uint8_t* row[R];
  for (int r = 0; r < R; ++r) row[r] = x.codes + (n + r) * x.row_bytes;
  const int8_t* act[C];
  for (int c = 0; c < C; ++c) act[c] = x.q + (m0 + c) * x.kp;
  __m256 acc[R][C];
  unroll<R>([&](auto r) { unroll<C>([&](auto c) { acc[r][c] = _mm256_setzero_ps(); }); });
  const __m256i ones = _mm256_set1_epi16(1);

  int64_t b = 0;
  const uint8_t* next = row[0] + kPrefetch * R * x.row_bytes;  // the codes kPrefetch tiles ahead
  for (; b + S <= nbw; b += S) {
    if (kPrefetch > 0 && prefetch) prefetch_bytes<R * S * kChunkPerBlock>(next + b * kChunkPerBlock * R);
    // Items (quad, r, c), c innermost: a weight row's quad is unpacked once for its C items.
    __m256i w[4], aw[4], h[kGemmPipe<BITS> + 1][2];
    pipelined<S / 4 * R * C, kGemmPipe<BITS>>(
        [&](auto i) {
          constexpr int qd = i / (R * C), r = i / C % R, c = i % C;
          if constexpr (c == 0) unpack_quad<BITS, qd>(row[r] + b * kChunkPerBlock, w, aw);
          quad_half_sums<BITS>(w, aw, act[c] + (b + 4 * qd) * kActBlock, ones, h[i % (kGemmPipe<BITS> + 1)]);
        },
        [&](auto i) {
          constexpr int qd = i / (R * C), r = i / C % R, c = i % C;
          const __m256 mv = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(mrow[r][c] + b + 4 * qd));
          acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(quad_total<BITS>(h[i % (kGemmPipe<BITS> + 1)], ones)), mv,
                                      acc[r][c]);
        });
  }
  // Rows whose chunk count leaves fewer than S blocks (4 bits: an odd chunk count; 8 bits: any
  // count): one chunk at a time.
  if constexpr (BITS >= 4) {
    for (; b < nbw; b += CB) {
      unroll<R>([&](auto r) {
        const __m256i raw = load32(row[r] + b * kChunkPerBlock);
        unroll<CB>([&](auto p) {
          const __m256i w = dot_codes<BITS, p>(raw);
          unroll<C>([&](auto c) {
            const __m256i q = block_dot<BITS>(w, act[c] + (b + p) * kActBlock, ones);
            acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), _mm256_broadcast_ss(mrow[r][c] + b + p), acc[r][c]);
          });
        });
      });
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c)
      x.y[(m0 + c) * x.ldy + n + r] = x.de_mul * post[r] * hsum(acc[r][c]) + ct[r][c] + cm[r][c];
}

// 2^-plane_shift of the 4 blocks of step quarter QD (blocks 4 QD .. 4 QD + 3 of a step).
template <int BITS, int QD>
[[gnu::always_inline]] inline __m128 plane_factor4() {
  constexpr int CB = 8 / BITS;
  constexpr float f0 = 1.0f / (1 << plane_shift<BITS, (4 * QD + 0) % CB>());
  constexpr float f1 = 1.0f / (1 << plane_shift<BITS, (4 * QD + 1) % CB>());
  constexpr float f2 = 1.0f / (1 << plane_shift<BITS, (4 * QD + 2) % CB>());
  constexpr float f3 = 1.0f / (1 << plane_shift<BITS, (4 * QD + 3) % CB>());
  return _mm_setr_ps(f0, f1, f2, f3);
}

// sum_g v_g * gsum_g over one row's groups, v in fp16 (the row's scales or minima): lane i of
// one accumulator sums groups i, i + 8, ... in order, then hsum()'s tree. gemv() runs the first
// g0 groups' FMAs (g0 a multiple of 8) in its step loop and passes their accumulator.
inline float dot_f16(const uint16_t* v, const float* gsum, int64_t groups, __m256 acc = _mm256_setzero_ps(),
                     int64_t g0 = 0) {
  int64_t g = g0;
  for (; g + 8 <= groups; g += 8)
    acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + g))),
                          _mm256_loadu_ps(gsum + g), acc);
  if (g < groups) {
    const int cnt = (int)(groups - g);
    acc = _mm256_fmadd_ps(load_f16(v + g, cnt), _mm256_maskload_ps(gsum + g, lane_mask(cnt)), acc);
  }
  return hsum(acc);
}

// The weight scales d of blocks b .. b+7 of a row (b a multiple of 8) as fp32, at GB blocks per
// group; reads only those blocks' groups.
template <int GB>
[[gnu::always_inline]] inline __m256 step_scales(const uint16_t* sc, int64_t b) {
  if constexpr (GB == 1) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + b)));
  } else if constexpr (GB == 2) {
    const __m128 d4 = _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc + b / 2)));
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d4), _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
  } else if constexpr (GB == 4) {
    uint32_t two;
    std::memcpy(&two, sc + b / 4, 4);
    const __m128 d2 = _mm_cvtph_ps(_mm_cvtsi32_si128((int)two));
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d2), _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
  } else {
    return _mm256_cvtph_ps(_mm_set1_epi16((short)sc[b / 8]));
  }
}
// The same for blocks b .. b+3 (b a multiple of 4; GB < 8, as rows of 8-block groups end on steps).
template <int GB>
[[gnu::always_inline]] inline __m128 quad_scales(const uint16_t* sc, int64_t b) {
  if constexpr (GB == 1) {
    return _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc + b)));
  } else if constexpr (GB == 2) {
    uint32_t two;
    std::memcpy(&two, sc + b / 2, 4);
    return _mm_permute_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)two)), 0x50);  // d0 d0 d1 d1
  } else {
    return _mm_cvtph_ps(_mm_set1_epi16((short)sc[b / GB]));
  }
}

// 8 packed 6-bit codes (six bytes at p) as 8 int32 lanes: codes 0-4 lie in the first 32 bits,
// codes 4-7 in the 32 bits from bit 24. Loads 8 bytes: a codes section is followed by at least
// 2 more bytes of the matrix (the mins section, or the factors after it). The bytes stay in
// registers: a 6-byte memcpy went through the stack and stalled store forwarding.
inline __m256i scale_codes8(const uint8_t* p) {
  const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  const __m256i both = _mm256_blend_epi32(_mm256_broadcastd_epi32(v), _mm256_broadcastd_epi32(_mm_srli_epi64(v, 24)), 0xf0);
  return _mm256_and_si256(_mm256_srlv_epi32(both, _mm256_setr_epi32(0, 6, 12, 18, 0, 6, 12, 18)), _mm256_set1_epi32(63));
}

// v rounded to fp16 and back: the d and m of 6-bit scale codes (quant_format.h's decode_scale).
[[gnu::always_inline]] inline __m256 round_f16(__m256 v) {
  return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
[[gnu::always_inline]] inline __m128 round_f16(__m128 v) {
  return _mm_cvtph_ps(_mm_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// A row's group scales (or minima) as gemv reads them: fp16 values (F16Row), or 6-bit codes with
// their row factor (CodedRow, groups of one block only) decoded where they are used, to the same
// fp16 values, so a row sums alike either way.
struct F16Row {
  const uint16_t* v;
  template <int GB>
  __m256 step(int64_t b) const { return step_scales<GB>(v, b); }
  template <int GB>
  __m128 quad(int64_t b) const { return quad_scales<GB>(v, b); }
  float at(int64_t g) const { return f16_to_f32(v[g]); }
  __m256 eight(int64_t g) const { return step_scales<1>(v, g); }  // groups g .. g+7, g a multiple of 8
  float dot(const float* gsum, int64_t groups, __m256 acc, int64_t g0) const { return dot_f16(v, gsum, groups, acc, g0); }
};
struct CodedRow {
  const uint8_t* codes;
  uint16_t factor;  // bf16
  int bias;         // 0 for scales, 32 for minima
  __m256 eight(int64_t g) const {  // groups g .. g+7, g a multiple of 8
    const __m256i c = _mm256_sub_epi32(scale_codes8(codes + g / 8 * 6), _mm256_set1_epi32(bias));
    return round_f16(_mm256_mul_ps(_mm256_cvtepi32_ps(c), _mm256_set1_ps(bf16_to_f32(factor))));
  }
  template <int GB>
  __m256 step(int64_t b) const {
    static_assert(GB == 1, "coded scales in the loop: groups of one block");
    return eight(b);
  }
  template <int GB>
  __m128 quad(int64_t b) const {  // groups b .. b+3, b a multiple of 4: 24 bits from byte 3b/4
    static_assert(GB == 1, "coded scales in the loop: groups of one block");
    uint32_t v = 0;
    std::memcpy(&v, codes + b / 4 * 3, 3);
    const __m128i c = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32((int)v), _mm_setr_epi32(0, 6, 12, 18)), _mm_set1_epi32(63));
    return round_f16(_mm_mul_ps(_mm_cvtepi32_ps(_mm_sub_epi32(c, _mm_set1_epi32(bias))), _mm_set1_ps(bf16_to_f32(factor))));
  }
  float at(int64_t g) const { return f16_to_f32(decode_scale(factor, (int)get_scale_code(codes, g) - bias)); }
  float dot(const float* gsum, int64_t groups, __m256 acc, int64_t g0) const {  // dot_f16's order
    int64_t g = g0;
    for (; g + 8 <= groups; g += 8) acc = _mm256_fmadd_ps(eight(g), _mm256_loadu_ps(gsum + g), acc);
    if (g < groups) {  // the last groups, in registers (see load_f16)
      auto rest = [&](int64_t i) { return g + i < groups ? at(g + i) : 0.0f; };
      const __m256 v = _mm256_setr_ps(rest(0), rest(1), rest(2), rest(3), rest(4), rest(5), rest(6), rest(7));
      acc = _mm256_fmadd_ps(v, _mm256_maskload_ps(gsum + g, lane_mask((int)(groups - g))), acc);
    }
    return hsum(acc);
  }
};

// 2-bit decode with VNNI (gemv's kRot): a quad's 4 blocks (one 32-byte chunk of codes) go into
// ONE vpdpbusd accumulator, block j in i32 lane j of each 128-bit half, which is where quad_total
// leaves block j's sum, so the unpack tree (9 of a quad's ~20 uops) is gone. Lane j keeps block j
// by masking its own 2 bits (code x 4^j <= 192: still a u8) of the chunk's dwords rotated by r =
// 0..3 (vpshufd), so over the 4 products it meets all 4 dwords of block j's half; the activations
// come rotated to match (rotate_quads, once per call) and the multipliers carry 4^-j (rot_factor),
// so each lane's product with its multiplier is the same real number as gemv's other path, and
// the fp32 results are bit for bit the same.
inline void rotate_quads(const int8_t* q, int64_t quads, int8_t* out) {
  for (int64_t i = 0; i < quads; ++i) {
    const int8_t* a = q + i * 4 * kActBlock;
    // y_j: block j's dwords rotated by j in each half; then a 4 x 4 dword transpose per half
    // gives A_r, dword j = y_j's dword r = block j's dword (j + r) % 4.
    const __m256i y0 = load32(a), y1 = _mm256_shuffle_epi32(load32(a + 32), 0x39);
    const __m256i y2 = _mm256_shuffle_epi32(load32(a + 64), 0x4e), y3 = _mm256_shuffle_epi32(load32(a + 96), 0x93);
    const __m256i t0 = _mm256_unpacklo_epi32(y0, y1), t1 = _mm256_unpackhi_epi32(y0, y1);
    const __m256i t2 = _mm256_unpacklo_epi32(y2, y3), t3 = _mm256_unpackhi_epi32(y2, y3);
    __m256i* o = reinterpret_cast<__m256i*>(out + i * 4 * kActBlock);
    _mm256_storeu_si256(o + 0, _mm256_unpacklo_epi64(t0, t2));
    _mm256_storeu_si256(o + 1, _mm256_unpackhi_epi64(t0, t2));
    _mm256_storeu_si256(o + 2, _mm256_unpacklo_epi64(t1, t3));
    _mm256_storeu_si256(o + 3, _mm256_unpackhi_epi64(t1, t3));
  }
}
// One chunk of 2-bit codes against its rotated activations: lane j of each half = 4^j x block j's sum.
[[gnu::always_inline]] inline __m256i rot_quad_dot(const uint8_t* chunk, const int8_t* arot) {
  const __m256i raw = load32(chunk);
  const __m256i mask = _mm256_setr_epi32(0x03030303, 0x0c0c0c0c, 0x30303030, (int)0xc0c0c0c0, 0x03030303, 0x0c0c0c0c,
                                         0x30303030, (int)0xc0c0c0c0);
  __m256i s = dpbusd(_mm256_setzero_si256(), _mm256_and_si256(raw, mask), load32(arot));
  s = dpbusd(s, _mm256_and_si256(_mm256_shuffle_epi32(raw, 0x39), mask), load32(arot + 32));
  s = dpbusd(s, _mm256_and_si256(_mm256_shuffle_epi32(raw, 0x4e), mask), load32(arot + 64));
  return dpbusd(s, _mm256_and_si256(_mm256_shuffle_epi32(raw, 0x93), mask), load32(arot + 96));
}
inline __m256 rot_factor() { return _mm256_setr_ps(1.f, .25f, .0625f, .015625f, 1.f, .25f, .0625f, .015625f); }

// The d of blocks b .. b+7 of a row padded past its last scale (gemv_padded; b inside the
// scales, b a multiple of 4): the row's last groups, zero past them, built in registers, not
// through the stack (see load_f16). fp16 scales: one load_f16 and step_scales' expansion; 6-bit
// codes: one by one.
template <int GB, class Scales>
inline __m256 partial_scales(const Scales& sc, int64_t b, int64_t scaled_blocks) {
  if constexpr (std::is_same_v<Scales, F16Row>) {
    const __m256 d = load_f16(sc.v + b / GB, (int)std::min<int64_t>(8, (scaled_blocks - b) / GB));
    if constexpr (GB == 1) return d;
    else if constexpr (GB == 2) return _mm256_permutevar8x32_ps(d, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
    else if constexpr (GB == 4) return _mm256_permutevar8x32_ps(d, _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
    else return _mm256_permutevar8x32_ps(d, _mm256_setzero_si256());
  } else {
    auto at = [&](int i) { return b + i < scaled_blocks ? sc.at((b + i) / GB) : 0.0f; };
    return _mm256_setr_ps(at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7));
  }
}

// Decode (M = 1) with groups of GB activation blocks (GB = 1, 2, 4, 8: groups of 32 to 256) and
// rows of whole quads: tile<>'s arithmetic with prepare() folded into the loop. Each step
// expands the row's scales to its 8 blocks (one fp16 convert, and a permute or broadcast when
// groups span blocks) and multiplies them by the 8 activation scales; each half of that vector
// is the multiplier of one quad, read back to both 128-bit lanes by a broadcast load. The step's
// 2R quads go through pipelined(). The group-sum terms (minima or scales times gsum) do not
// depend on the codes: dot_f16's FMAs, in its order, ride along in the steps (a chain of them
// after the loop ended every row; bench/README.md, fifteenth session), and its
// tail after the loop. So a row costs no table pass and no per-row call (at K = 2048 prepare()
// was a quarter of the row's instructions).
// Needs nbw == groups * GB, or below 4 bits nbw > groups * GB with GB < 8 (gemv_padded: rows of
// whole chunks past the last scale, e.g. K = 576 at groups of 32 or 64): the step or quad that
// crosses the last scale reads the row's scales one by one (partial_scales), zero past them,
// where the codes and the activations are zero too. Below 4 bits rows are whole quads anyway (a
// chunk is 4 or 8 blocks), at 4 and 8 bits the blocks past the last quad take tile<>'s tail.
// CODED: 6-bit scale codes read as they are (x.coded; asymmetric, GB == 1), not expanded.
template <int BITS, int R, bool ASYM, int GB, bool CODED = false>
void gemv(const Ctx& x, int64_t n) {
  constexpr int CB = 8 / BITS;
  constexpr int64_t kChunkPerBlock = kChunkBytes / CB;
  constexpr bool kNeedD = !ASYM || (BITS == 8 && !kVnni);  // cd_mul != 0: sym offsets, 8-bit's 128
  constexpr bool kRot = kVnni && BITS == 2;  // rot_quad_dot (x.qrot set by try_gemv)
  const int64_t nbw = x.nbw, groups = x.groups, scaled_blocks = groups * GB;
  using Scales = std::conditional_t<CODED, CodedRow, F16Row>;
  const uint8_t* row[R];
  Scales sc[R], mn[R];
  for (int r = 0; r < R; ++r) {
    row[r] = x.codes + (n + r) * x.row_bytes;
    if constexpr (CODED) {
      sc[r] = {x.sec.row_scale_codes(n + r), x.sec.factors[2 * (n + r)], 0};
      mn[r] = {x.sec.row_min_codes(n + r), x.sec.factors[2 * (n + r) + 1], 32};
    } else {
      sc[r] = {x.row_sc(n + r)};
      mn[r] = {x.row_mn(n + r)};
    }
  }
  const int8_t* act = x.q;
  __m256 acc[R], accd[R], accm[R];  // the codes' sums; the group-sum terms' (dot_f16's) accumulators
  for (int r = 0; r < R; ++r) acc[r] = accd[r] = accm[r] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  const uint8_t* next = row[0] + kPrefetch * R * x.row_bytes;  // the codes kPrefetch tiles ahead
  // A step's share of `next` is 2R quads' bytes. From 4 bits up each quad of the step prefetches
  // one quad's worth, so the prefetches are spread over the step rather than issued as one burst
  // (at 8 bits a burst of 16 lines per step read ~8% less of DRAM's bandwidth); below 4 bits the
  // share is a few lines, taken at the start of the step. Always in address order through the R
  // rows ahead, never row by row as the rows are read: R rows read in step, a line of each in
  // turn, get ~0.6 of one sequential stream's bandwidth unless the prefetches run ahead in
  // address order (bench/dram_pattern_bench; 8 bits prefetched row by row before).
  constexpr int64_t kQuadBytes = 4 * kChunkPerBlock;
  int64_t b = 0;
  for (; b + 8 <= nbw; b += 8) {
    if constexpr (kQuadBytes < 64) {
      if constexpr (kPrefetch > 0) prefetch_bytes<2 * R * kQuadBytes>(next + b * kChunkPerBlock * R);
    }
    if (kPrefetch > 0 && !x.expanded && !CODED) {  // the step's share of the next rows' scales and minima
      const int64_t o = (n + kPrefetch * R) * groups + b * R / GB;
      __builtin_prefetch(x.scales + o, 0, 3);
      if constexpr (ASYM) __builtin_prefetch(x.mins + o, 0, 3);
    }
    // The group-sum terms' FMAs for the 8 groups from b / GB, at the first step of each whole 8:
    // dot_f16's operations in its order, issued here so they overlap the codes' work instead of
    // ending the row with a chain of dependent FMAs. The steps reach every whole 8 (b + 8 <= nbw).
    if ((b / GB) % 8 == 0 && b / GB + 8 <= groups) {
      const __m256 gs = _mm256_loadu_ps(x.gsum + b / GB);
      unroll<R>([&](auto r) {
        if constexpr (kNeedD) accd[r] = _mm256_fmadd_ps(sc[r].eight(b / GB), gs, accd[r]);
        if constexpr (ASYM) accm[r] = _mm256_fmadd_ps(mn[r].eight(b / GB), gs, accm[r]);
      });
    }
    __m256 s8 = _mm256_loadu_ps(x.ascale + b);
    if constexpr (BITS <= 2) s8 = _mm256_mul_ps(s8, kRot ? rot_factor() : plane_factor<BITS>());
    alignas(32) float m8s[R][8];
    if (b + 8 <= scaled_blocks) {
      unroll<R>([&](auto r) { _mm256_store_ps(m8s[r], _mm256_mul_ps(sc[r].template step<GB>(b), s8)); });
    } else {
      for (int r = 0; r < R; ++r) _mm256_store_ps(m8s[r], _mm256_mul_ps(partial_scales<GB>(sc[r], b, scaled_blocks), s8));
    }
    // Items (quad, r), r inner.
    __m256i h[kPipe + 1][2];
    pipelined<2 * R, kPipe>(
        [&](auto i) {
          constexpr int qd = i / R, r = i % R;
          if constexpr (kQuadBytes >= 64 && kPrefetch > 0) {
            prefetch_bytes<kQuadBytes>(next + b * kChunkPerBlock * R + i * kQuadBytes);
          }
          if constexpr (kRot) {
            h[i % (kPipe + 1)][0] = rot_quad_dot(row[r] + b * kChunkPerBlock + qd * kChunkBytes, x.qrot + (b + 4 * qd) * kActBlock);
          } else {
            __m256i w[4], aw[4];
            unpack_quad<BITS, qd>(row[r] + b * kChunkPerBlock, w, aw);
            quad_half_sums<BITS>(w, aw, act + (b + 4 * qd) * kActBlock, ones, h[i % (kPipe + 1)]);
          }
        },
        [&](auto i) {
          constexpr int qd = i / R, r = i % R;
          const __m256 mv = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(m8s[r] + 4 * qd));
          const __m256i q = kRot ? h[i % (kPipe + 1)][0] : quad_total<BITS>(h[i % (kPipe + 1)], ones);
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), mv, acc[r]);
        });
  }
  if constexpr (BITS > 1 && GB < 8) {
    if (b + 4 <= nbw) {  // nbw % 8 >= 4: one last quad (planes as in a step's first quad)
      __m128 s4 = _mm_loadu_ps(x.ascale + b);
      if constexpr (BITS <= 2) s4 = _mm_mul_ps(s4, plane_factor4<BITS, 0>());
      unroll<R>([&](auto r) {
        if constexpr (kPrefetch > 0) {
          prefetch_bytes<kQuadBytes>(next + b * kChunkPerBlock * R + r * kQuadBytes);
        }
        __m256i w[4], aw[4];
        unpack_quad<BITS, 0>(row[r] + b * kChunkPerBlock, w, aw);
        const __m256i q = quad_dot<BITS>(w, aw, act + b * kActBlock, ones);
        const __m128 d4 = b + 4 <= scaled_blocks ? sc[r].template quad<GB>(b)
                                                 : _mm256_castps256_ps128(partial_scales<GB>(sc[r], b, scaled_blocks));
        const __m128 m4 = _mm_mul_ps(d4, s4);
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), _mm256_set_m128(m4, m4), acc[r]);
      });
      b += 4;
    }
  }
  if constexpr (BITS >= 4) {
    // Blocks short of a quad (4 bits: rows of an odd chunk count, e.g. K = 576; 8 bits: any count
    // not a multiple of 4): a chunk at a time, each block's 8 dword sums into the 8 lanes with its
    // multiplier broadcast, exactly as tile<>'s tail does (so a row's result is the same there).
    for (; b < nbw; b += 8 / BITS) {
      unroll<R>([&](auto r) {
        const __m256i raw = load32(row[r] + b * kChunkPerBlock);
        unroll<8 / BITS>([&](auto p) {
          const __m256i q = block_dot<BITS>(dot_codes<BITS, p>(raw), act + (b + p) * kActBlock, ones);
          const float m = sc[r].at((b + p) / GB) * x.ascale[b + p];
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), _mm256_set1_ps(m), acc[r]);
        });
      });
    }
  }
  for (int r = 0; r < R; ++r) {
    float y = x.de_mul * hsum(acc[r]);
    if constexpr (kNeedD) y += x.cd_mul * sc[r].dot(x.gsum, groups, accd[r], groups / 8 * 8);
    if constexpr (ASYM) y += mn[r].dot(x.gsum, groups, accm[r], groups / 8 * 8);
    x.y[n + r] = y;
  }
}

// The shapes gemv<> (and the lane kernel, which sums as it does) take: groups of 1, 2, 4 or 8
// whole blocks and no padding blocks past the scales (see gemv's comment). If x has one, calls
// fn(asym, gb) with both as compile-time constants and returns true.
template <int BITS>
bool gemv_shape(const Ctx& x) {
  constexpr int64_t kQuad = BITS == 1 ? 8 : 4;  // the smallest step below 4 bits (whole chunks)
  return x.nbw == x.groups * x.gb && (BITS > 2 || x.nbw % kQuad == 0) && x.gb <= 8 && (x.gb & (x.gb - 1)) == 0;
}
// The padded rows gemv<> takes too (at M = 1 only: see gemv's comment).
template <int BITS>
bool gemv_padded(const Ctx& x) {
  return BITS <= 2 && x.nbw > x.groups * x.gb && x.gb < 8 && (x.gb & (x.gb - 1)) == 0;
}
template <int BITS, class Fn>
bool with_gemv_shape(const Ctx& x, Fn&& fn, bool padded_ok = false) {
  if (!gemv_shape<BITS>(x) && !(padded_ok && gemv_padded<BITS>(x))) return false;
  auto with_gb = [&](auto asym) {
    switch (x.gb) {
      case 1: fn(asym, std::integral_constant<int, 1>{}); return true;
      case 2: fn(asym, std::integral_constant<int, 2>{}); return true;
      case 4: fn(asym, std::integral_constant<int, 4>{}); return true;
      case 8: fn(asym, std::integral_constant<int, 8>{}); return true;
      default: return false;
    }
  };
  return x.mins || x.coded ? with_gb(std::true_type{}) : with_gb(std::false_type{});
}

// gemv<> over rows [n0, n1) when the shape allows it; false otherwise.
template <int BITS>
bool try_gemv(const Ctx& x0, int64_t n0, int64_t n1) {
  if (!gemv_shape<BITS>(x0) && !gemv_padded<BITS>(x0)) return false;
  Ctx x = x0;
  // kRot's activations: on the stack up to K = 16384 (decode allocates nothing per token), else
  // a thread_local buffer sized once.
  constexpr int64_t kStackBytes = 16384;
  alignas(32) int8_t stack_rot[kVnni && BITS == 2 ? kStackBytes : 1];
  if constexpr (kVnni && BITS == 2) {
    const int64_t quads = x.nbw / 8 * 2;  // the steps' quads (gemv's last odd quad reads x.q)
    int8_t* rot = stack_rot;
    thread_local std::vector<int8_t> heap_rot;
    if (quads * 4 * kActBlock > kStackBytes) {
      if ((int64_t)heap_rot.size() < quads * 4 * kActBlock) heap_rot.resize(quads * 4 * kActBlock);
      rot = heap_rot.data();
    }
    rotate_quads(x.q, quads, rot);
    x.qrot = rot;
  }
  return with_gemv_shape<BITS>(x, [&](auto asym, auto gb) {
    int64_t n = n0;
    if constexpr (asym && gb == 1) {
      if (x.coded) {
        for (; n + kGemvRows <= n1; n += kGemvRows) gemv<BITS, kGemvRows, asym, gb, true>(x, n);
        for (; n < n1; ++n) gemv<BITS, 1, asym, gb, true>(x, n);
        return;
      }
    }
    for (; n + kGemvRows <= n1; n += kGemvRows) gemv<BITS, kGemvRows, asym, gb>(x, n);
    for (; n < n1; ++n) gemv<BITS, 1, asym, gb>(x, n);
  }, /*padded_ok=*/true);
}

}  // namespace
}  // namespace lowbit::x86

#include "kernels/matmul_lanes_x86.h"  // try_lanes: M > 1 with VNNI, activation rows in lanes

namespace lowbit::x86 {
namespace {

// All activation rows of [p0, p1) against weight rows n .. n+R-1.
template <int BITS, int R>
void act_tiles(const Ctx& x, int64_t n, int64_t p0, int64_t p1) {
  int64_t m = p0;
  for (; m + kGemmActs <= p1; m += kGemmActs) tile<BITS, R, kGemmActs>(x, n, m, m == p0);
  switch (p1 - m) {
    case 3: tile<BITS, R, 3>(x, n, m, m == p0); break;
    case 2: tile<BITS, R, 2>(x, n, m, m == p0); break;
    case 1: tile<BITS, R, 1>(x, n, m, m == p0); break;
    default: break;
  }
}

template <int BITS>
void gemm_bits(const Ctx& x, const QuantizedActs& a, int64_t n0, int64_t n1) {
  const int64_t m = a.m;
  if (m == 1 && try_gemv<BITS>(x, n0, n1)) return;
  if (m == 1) {
    int64_t n = n0;
    for (; n + kGemvRows <= n1; n += kGemvRows) tile<BITS, kGemvRows, 1>(x, n, 0, true);
    for (; n < n1; ++n) tile<BITS, 1, 1>(x, n, 0, true);
    return;
  }
  // The lane kernel where it runs, tile<> for the rows it leaves (all of them at 8 bits on AVX2).
  for (int64_t p0 = m > 1 ? try_lanes<BITS>(x, m, n0, n1) : 0; p0 < m; p0 += kPanelActs) {
    const int64_t p1 = std::min(m, p0 + kPanelActs);
    int64_t n = n0;
    for (; n + kGemmRows <= n1; n += kGemmRows) act_tiles<BITS, kGemmRows>(x, n, p0, p1);
    for (; n < n1; ++n) act_tiles<BITS, 1>(x, n, p0, p1);
  }
}

// 6-bit scale codes of rows [r0, r1) as the fp16 d and m they stand for, into d and m
// ((r1 - r0) x groups each), 8 groups at a time through CodedRow (already fp16 values, so the
// conversion back to fp16 is exact).
void expand_scales(const QSections<const uint8_t>& sec, int64_t r0, int64_t r1, uint16_t* d, uint16_t* m) {
  const int64_t groups = sec.groups;
  for (int64_t r = r0; r < r1; ++r) {
    const CodedRow sc{sec.row_scale_codes(r), sec.factors[2 * r], 0};
    const CodedRow mn{sec.row_min_codes(r), sec.factors[2 * r + 1], 32};
    uint16_t* od = d + (r - r0) * groups;
    uint16_t* om = m + (r - r0) * groups;
    int64_t g = 0;
    for (; g + 8 <= groups; g += 8) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(od + g), _mm256_cvtps_ph(sc.eight(g), _MM_FROUND_TO_NEAREST_INT));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(om + g), _mm256_cvtps_ph(mn.eight(g), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; g < groups; ++g) od[g] = sec.scale_at(r, g), om[g] = sec.min_at(r, g);
  }
}

// The kernel table's gemm_q, for the ISA this file is compiled for.
void gemm_q_kernel(const QMatrix& w, const QuantizedActs& a, float* y, int64_t n0, int64_t n1) {
  const QType& t = w.type;
  const QSections<const uint8_t> sec = q_sections(t, w.n, w.k, w.data);
  Ctx x;
  x.codes = sec.codes;
  x.n_rows = w.n;
  x.row_bytes = sec.row_bytes;
  x.scales = sec.scales;
  x.mins = sec.mins;
  x.groups = sec.groups;
  x.gb = a.group_blocks;
  x.nbw = sec.row_bytes / kChunkBytes * (8 / t.bits);
  x.nb8 = round_up(x.nbw, 8);
  // group_coeffs (quant_format.h) as multiples of d.
  const bool asym = t.scheme == Scheme::asym;
  x.de_mul = (!asym && t.bits == 1) ? 2.0f : 1.0f;
  float ce_mul = asym ? 0.0f : (t.bits == 1 ? -1.0f : -(float)sym_offset(t.bits));
  if (t.bits == 8 && !kVnni) ce_mul += 128.0f * x.de_mul;  // levels are code - 128
  x.cd_mul = ce_mul;
  x.q = a.q.data();
  x.kp = a.kp;
  x.ascale = a.scale.data();
  x.ablocks = a.blocks;
  x.gsum = a.gsum.data();
  x.y = y;
  x.ldy = w.n;
  auto rows = [&](int64_t r0, int64_t r1) {
    switch (t.bits) {
      case 1: return gemm_bits<1>(x, a, r0, r1);
      case 2: return gemm_bits<2>(x, a, r0, r1);
      case 4: return gemm_bits<4>(x, a, r0, r1);
      default: return gemm_bits<8>(x, a, r0, r1);
    }
  };
  if (!sec.coded()) return rows(n0, n1);
  const bool gemv_ok = t.bits == 1   ? gemv_shape<1>(x) || gemv_padded<1>(x)
                       : t.bits == 2 ? gemv_shape<2>(x) || gemv_padded<2>(x)
                       : t.bits == 4 ? gemv_shape<4>(x)
                                     : gemv_shape<8>(x);
  if (a.m == 1 && x.gb == 1 && gemv_ok) {  // gemv decodes the codes in its loop
    x.coded = true;
    x.sec = sec;
    return rows(n0, n1);
  }
  // 6-bit scale codes: the kernels run unchanged on fp16 scales expanded a slice of rows at a
  // time, small enough to stay in L1 while decode streams the codes; at M > 1 larger, since the
  // lane kernel builds its activation panels once per call. A decode step (one sequence or a
  // batch within one lane panel) expands on the stack, its slice halved until it fits (64 rows at
  // least): a thread_local buffer is sized the first time a worker meets a shape, which may be in
  // any later step, and decode allocates nothing per token (tests/runtime/alloc_test.cc).
  int64_t slice = a.m == 1 ? 64 : 512;
  constexpr int64_t kStackHalves = 16384;  // d and m: 2 x 32 KiB
  alignas(32) uint16_t stack_d[kStackHalves], stack_m[kStackHalves];
  thread_local std::vector<uint16_t> dbuf, mbuf;
  if (a.m <= kLanes)
    while (slice > 64 && slice * sec.groups > kStackHalves) slice /= 2;
  uint16_t* d = stack_d;
  uint16_t* mn = stack_m;
  if (a.m > kLanes || slice * sec.groups > kStackHalves) {
    dbuf.resize(std::max<size_t>(dbuf.size(), slice * sec.groups));
    mbuf.resize(std::max<size_t>(mbuf.size(), slice * sec.groups));
    d = dbuf.data(), mn = mbuf.data();
  }
  x.expanded = true;
  x.scales = d;
  x.mins = mn;
  for (int64_t r0 = n0; r0 < n1; r0 += slice) {
    const int64_t r1 = std::min(n1, r0 + slice);
    expand_scales(sec, r0, r1, d, mn);
    x.srow0 = r0;
    rows(r0, r1);
  }
}

}  // namespace
}  // namespace lowbit::x86
