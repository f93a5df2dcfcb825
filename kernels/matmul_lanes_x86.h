// Prefill and batched decoding (M > 1): activation rows in lanes. A fragment of
// matmul_quant_x86.h (included there, after gemv(), whose Ctx, dot_codes, step_scales and
// plane_factor it uses), for every x86 ISA and width: with vpdpbusd (kVnni), or on AVX2 with
// vpmaddubsw (8 bits through the sign trick, see lane_dot).
//
// tile<> (the general M > 1 kernel) gives each (weight row, activation row) pair its own vector
// of 8 partial sums and pays, per block of 32 weights, a share of the unpacks that reduce them
// to one block sum before the fp32 multiply: ~4 instructions per 32 products. Here a vector's
// lanes are activation rows instead: the activations of a panel of 8 rows are laid out once per
// task as, per block b, j = 0..3 and sub-panel q (rows 4q .. 4q+3), one vector whose lanes 0-3
// hold those 4 rows' bytes 4j..4j+3 and lanes 4-7 their bytes 16+4j..16+4j+3. A weight row's
// block (one byte per code: unpacked once per group of panels, or decoded from the packed row
// where there is one panel) is loaded once, and vpshufd j * 0x55 turns it into
// [dword j x 4 | dword j+4 x 4] in a register, so one vpdpbusd does 32 products for 4 rows and
// both halves of the block (bytes 0-15 and 16-31, gemv's two 128-bit lanes) come out in separate
// lanes, ready for one convert and one FMA with their multipliers. Broadcasting each weight dword
// from memory instead (8 rows in the lanes) adds a load to every vpdpbusd's activation load, and
// loads then set the pace (simd_rate_bench's vpdpbusd_fed_by_* pair; bench/README.md).
//
// Each row's result is bit for bit what gemv() computes for it alone (batched decoding needs a
// row's result not to depend on the rows beside it; tests/kernels/matmul_test.cc
// RowResultsIndependentOfM): the same integer block sums, split in the same two halves (bytes
// 0-15 and 16-31 of the block: gemv's two 128-bit lanes), the same multipliers d_b * (s_b * pf),
// and the fp32 sums in gemv's order: 8 accumulators, one per (block mod 4, half), each
// summing its blocks in order, then hsum()'s tree; the group-sum terms are dot_f16's lanes and
// tree, and the last few scalar operations are gemv's own expression.
#pragma once

namespace lowbit::x86 {
namespace {

constexpr int64_t kLanes = 8;        // activation rows per panel: the lanes of a ymm
constexpr int64_t kLaneMinRows = 4;  // fewer rows left than this go to tile<>
// A group of one panel (batched decoding of up to 8 sequences) takes the weight codes straight
// from the packed rows, decoding a block in one or two instructions as it goes: unpacked to
// memory first, each code is stored and reloaded for just that one panel, and the row's loads
// come in one burst the kernel cannot overlap with arithmetic (bench/README.md, twenty-fourth
// session: two panels gain nothing measurable from it, so larger groups keep unpack_row).
constexpr int64_t kPackedPanels = 1;
// Weight rows per pass: 2 share each activation load, and their 16 accumulators and 8 spread
// weight vectors fit AVX-512's 32 vector registers; AVX-VNNI has 16. The zmm kernel's R rows
// hold 4 accumulators each (both sub-panels in one register) and spread the weights as it goes.
#if defined(LOWBIT_LANES_ZMM)
constexpr int kLaneRows = LOWBIT_LANES_ZMM;
#elif defined(__AVX512VL__)
constexpr int kLaneRows = 2;
#else
constexpr int kLaneRows = 1;
#endif

// One lanes_gemm call's scratch: the panels of one group of activation rows and kLaneRows
// unpacked weight rows, carved from one array of Lanes (lanes_gemm says where it lives).
struct alignas(32) Lanes {  // one ymm's worth (a std::vector of them is aligned by operator new)
  int32_t v[8];
};
struct LaneScratch {
  Lanes* acts;     // [panel][block][j][q] -> rows 4q..4q+3: dwords j | j + 4 (i32)
  Lanes* scales;   // [panel][block][q] -> rows 4q..4q+3: s_b * pf_b, twice (f32)
  Lanes* gsum;     // [panel][group] -> 8 rows' gsum (f32)
  int32_t* codes;  // [row][block][8 dwords]: the weight rows' codes, one per byte (unless packed)
  float* d;        // [row][group]: the weight rows' scales in fp32, rows round_up(groups, 8) apart
  float* mins;     // the same for the minima
};

inline __m256 lanes_f32(const Lanes& l) { return _mm256_load_ps(reinterpret_cast<const float*>(l.v)); }

// The 8 x 8 dwords of r transposed: r[j] lane c becomes r[c] lane j.
[[gnu::always_inline]] inline void transpose8x8_epi32(__m256i (&r)[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
  }
  // t[i] (i even): rows i, i+1 interleaved, dwords 0-1 | 4-5 per 128-bit half; t[i+1]: 2-3 | 6-7.
  for (int i = 0; i < 8; i += 4)
    for (int h = 0; h < 2; ++h) {
      u[i + 2 * h] = _mm256_unpacklo_epi64(t[i + h], t[i + h + 2]);
      u[i + 2 * h + 1] = _mm256_unpackhi_epi64(t[i + h], t[i + h + 2]);
    }
  // u[i + k]: dword k | dword k + 4 of rows i .. i+3; the halves of rows 0-3 and 4-7 meet here.
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x31);
  }
}

// acc + the products of 4 codes (u8, the same in every lane) with each lane's 4 activations
// (s8): with VNNI one vpdpbusd into i32 lanes; on AVX2 below 8 bits vpmaddubsw's two i16 pair
// sums per lane added in i16: a half's 4 steps add 8 products per i16, <= 8 x 127 x 32 < 2^15
// for the scaled codes plane() gives (as quad_dot's i16 sums), widened after the 4th (kI16Sums).
// AVX2's 8-bit codes are levels (code - 128 as int8): quad_dot's |w| x sign(a, w) identity, each
// pair (<= 2 x 128 x 127) widened at once by vpmaddwd and added in i32.
template <int BITS>
[[gnu::always_inline]] inline __m256i lane_dot(__m256i acc, __m256i codes, __m256i acts) {
  if constexpr (kVnni) {
    return dpbusd(acc, codes, acts);
  } else if constexpr (BITS == 8) {
    const __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(codes), _mm256_sign_epi8(acts, codes));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  } else {
    return _mm256_add_epi16(acc, _mm256_maddubs_epi16(codes, acts));
  }
}

// Activation rows m0 .. m0 + rows - 1 (rows <= kLanes; the missing lanes are zero) as panel p.
template <int BITS>
void build_panel(const Ctx& x, LaneScratch& s, int64_t p, int64_t m0, int64_t rows) {
  const int64_t nbw = x.nbw, groups = x.groups;
  __m256i* acts = reinterpret_cast<__m256i*>(s.acts + p * nbw * 8);
  for (int64_t b = 0; b < nbw; ++b) {
    __m256i r[8];
    for (int c = 0; c < 8; ++c) r[c] = c < rows ? load32(x.q + (m0 + c) * x.kp + b * kActBlock) : _mm256_setzero_si256();
    transpose8x8_epi32(r);  // r[j]: the 8 rows' dword j of block b (lanes of r[c] were its dwords)
    for (int j = 0; j < 4; ++j) {  // (j, q) order: a zmm kernel loads both sub-panels of a j at once
      _mm256_store_si256(acts + b * 8 + 2 * j, _mm256_permute2x128_si256(r[j], r[j + 4], 0x20));
      _mm256_store_si256(acts + b * 8 + 2 * j + 1, _mm256_permute2x128_si256(r[j], r[j + 4], 0x31));
    }
  }
  alignas(32) float pf[8];
  _mm256_store_ps(pf, plane_factor<BITS>());
  for (int64_t b = 0; b < nbw; ++b) {
    alignas(32) float v[16] = {};
    for (int c = 0; c < rows; ++c) {
      const float a = x.ascale[(m0 + c) * x.ablocks + b];
      const float sc = BITS <= 2 ? a * pf[b % 8] : a;  // gemv's s8 = ascale * plane_factor
      v[(c / 4) * 8 + c % 4] = v[(c / 4) * 8 + 4 + c % 4] = sc;
    }
    std::memcpy(&s.scales[(p * nbw + b) * 2], v, sizeof v);
  }
  for (int64_t g = 0; g < groups; ++g) {
    alignas(32) float v[8] = {};
    for (int c = 0; c < rows; ++c) v[c] = x.gsum[(m0 + c) * groups + g];
    std::memcpy(&s.gsum[p * groups + g], v, sizeof v);
  }
}

// For 8 rows in lanes and R weight rows at once (sharing each load of gsum): dot_f16(v_r,
// gsum_c, groups) of each, with dot_f16's association: lane position i of its accumulator sums
// groups i, i + 8, ... in order; then hsum()'s tree. v_r = v + r * stride. (dot_f16 per
// activation row instead, with its fp16 conversions and a horizontal sum each, ran slower.)
template <int R>
void lanes_dot(const float* v, int64_t stride, const Lanes* gsum, int64_t groups, __m256 (&out)[R]) {
  __m256 a[R][8];
  unroll<R>([&](auto r) { unroll<8>([&](auto i) { a[r][i] = _mm256_setzero_ps(); }); });
  int64_t g = 0;
  for (; g + 8 <= groups; g += 8)
    unroll<8>([&](auto i) {
      const __m256 gs = lanes_f32(gsum[g + i]);
      unroll<R>([&](auto r) { a[r][i] = _mm256_fmadd_ps(_mm256_set1_ps(v[r * stride + g + i]), gs, a[r][i]); });
    });
  unroll<8>([&](auto i) {
    if (g + i < groups)
      unroll<R>([&](auto r) { a[r][i] = _mm256_fmadd_ps(_mm256_set1_ps(v[r * stride + g + i]), lanes_f32(gsum[g + i]), a[r][i]); });
  });
  unroll<R>([&](auto r) {
    const __m256 t0 = _mm256_add_ps(a[r][0], a[r][4]), t1 = _mm256_add_ps(a[r][1], a[r][5]);
    const __m256 t2 = _mm256_add_ps(a[r][2], a[r][6]), t3 = _mm256_add_ps(a[r][3], a[r][7]);
    out[r] = _mm256_add_ps(_mm256_add_ps(t0, t2), _mm256_add_ps(t1, t3));
  });
}

// [dword j x 4 | dword j + 4 x 4] of a block's 8 dwords of codes.
template <int J>
[[gnu::always_inline]] inline __m256i spread(__m256i w) { return _mm256_shuffle_epi32(w, J * 0x55); }

// Weight rows n .. n + R - 1 (unpacked into slots 0 .. R - 1 of s) against panel p: rows m0 ..
// m0 + rows - 1 of y. R rows share each load of the panel's activations. gemv's accumulator
// (block mod 4 = l, half h) of row 4q + c is lane c + 4h of acc[r][l][q].
#if !defined(LOWBIT_LANES_ZMM)
// PACKED: the weight codes come straight from the packed rows (unpack_row left them there); a
// block's plane is then known at compile time within a quad (blocks b .. b + 3, b a multiple
// of 4: chunk (b + l) / CB, plane l % CB for CB <= 4), so 1 bit (8 planes a chunk) is not PACKED.
template <int BITS, bool ASYM, int GB, int R, bool PACKED>
void lane_rows(const Ctx& x, const LaneScratch& s, int64_t n, int64_t p, int64_t m0, int64_t rows) {
  static_assert(!PACKED || BITS > 1);
  // The d terms carry the symmetric offsets and, at 8 bits without VNNI, the levels' shift by 128.
  constexpr bool kNeedD = !ASYM || (!kVnni && BITS == 8);
  constexpr int CB = 8 / BITS;
  const int64_t nbw = x.nbw, gstride = round_up(x.groups, 8);
  const __m256i* acts = reinterpret_cast<const __m256i*>(s.acts + p * nbw * 8);
  const Lanes* sc = s.scales + p * nbw * 2;
  const __m256i* codes = reinterpret_cast<const __m256i*>(s.codes);
  const uint8_t* row0 = x.codes + n * x.row_bytes;
  // Block bb's codes of weight row r as dot_codes gives them, plane l % CB when PACKED.
  auto codes_of = [&](auto r, int64_t bb, auto l) {
    if constexpr (PACKED) return dot_codes<BITS, l % CB>(load32(row0 + r * x.row_bytes + bb / CB * kChunkBytes));
    else return _mm256_loadu_si256(codes + r * nbw + bb);
  };
  __m256 acc[R][4][2];
  unroll<R>([&](auto r) { unroll<4>([&](auto l) { acc[r][l][0] = acc[r][l][1] = _mm256_setzero_ps(); }); });
  // Sub-panel 1 holds rows 4-7: with 4 rows or fewer its lanes are empty and its work is skipped.
  // (The zmm kernel below holds both sub-panels in one register, so it has nothing to skip.)
  const bool sub1 = rows > 4;
  // Block bb into accumulators l: each (q, j) vector's products, summed in i32 (exact, so in any
  // order), then one convert and FMA per (row, sub-panel).
  auto block = [&](int64_t bb, auto l) {
    const __m256i* a = acts + bb * 8;
    __m256i w[R][4];
    unroll<R>([&](auto r) {
      const __m256i c = codes_of(r, bb, l);
      unroll<4>([&](auto j) { w[r][j] = spread<j>(c); });
    });
    __m256i sum[R][2];  // R x 2 independent chains of 4 vpdpbusd each
    unroll<R>([&](auto r) { sum[r][0] = sum[r][1] = _mm256_setzero_si256(); });
    unroll<4>([&](auto j) {
      unroll<2>([&](auto q) {
        if (q == 1 && !sub1) return;
        __m256i av = _mm256_load_si256(a + 2 * j + q);
        if constexpr (R > 1) asm("" : "+v"(av));  // one load for all R rows, not one each
        unroll<R>([&](auto r) { sum[r][q] = lane_dot<BITS>(sum[r][q], w[r][j], av); });
      });
    });
    if constexpr (kI16Sums<BITS>) {  // widen the i16 sums once per block
      const __m256i ones = _mm256_set1_epi16(1);
      unroll<R>([&](auto r) { unroll<2>([&](auto q) { sum[r][q] = _mm256_madd_epi16(sum[r][q], ones); }); });
    }
    unroll<2>([&](auto q) {
      if (q == 1 && !sub1) return;
      const __m256 sv = lanes_f32(sc[bb * 2 + q]);
      unroll<R>([&](auto r) {
        const __m256 m = _mm256_mul_ps(_mm256_set1_ps(s.d[r * gstride + bb / GB]), sv);
        acc[r][l][q] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[r][q]), m, acc[r][l][q]);
      });
    });
  };
  int64_t b = 0;
  for (; b + 4 <= nbw; b += 4) unroll<4>([&](auto l) { block(b + l, l); });
  // Blocks short of a quad (4 and 8 bits): gemv's tail puts dword i's sum in lane i of its
  // accumulator, that is (l, h) = (i % 4, i / 4): vector (q, j) holds exactly dwords j and j + 4.
  for (; b < nbw; ++b) {
    const __m256i* a = acts + b * 8;
    unroll<R>([&](auto r) {
      __m256i c = _mm256_setzero_si256();
      if constexpr (PACKED)
        unroll<CB>([&](auto pl) { if (b % CB == pl) c = codes_of(r, b, pl); });  // b's plane as a constant
      else
        c = codes_of(r, b, std::integral_constant<int, 0>{});
      const float d = s.d[r * gstride + b / GB];
      unroll<2>([&](auto q) {
        if (q == 1 && !sub1) return;
        const __m256 m = _mm256_mul_ps(_mm256_set1_ps(d), lanes_f32(sc[b * 2 + q]));
        unroll<4>([&](auto j) {
          __m256i t = lane_dot<BITS>(_mm256_setzero_si256(), spread<j>(c), _mm256_load_si256(a + 2 * j + q));
          if constexpr (kI16Sums<BITS>) t = _mm256_madd_epi16(t, _mm256_set1_epi16(1));
          acc[r][j][q] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), m, acc[r][j][q]);
        });
      });
    });
  }
  const Lanes* gs = s.gsum + p * x.groups;
  __m256 dd[R], dm[R];
  if constexpr (kNeedD) lanes_dot<R>(s.d, gstride, gs, x.groups, dd);
  if constexpr (ASYM) lanes_dot<R>(s.mins, gstride, gs, x.groups, dm);
  for (int r = 0; r < R; ++r) {
    // Per sub-panel: t_l = half 0 + half 1 (gemv's acc[l][0] + acc[l][1]), then hsum()'s tree.
    alignas(32) float h[8], hd[8], hm[8];
    for (int q = 0; q < 2; ++q) {
      __m256 t[4];
      for (int l = 0; l < 4; ++l) t[l] = _mm256_add_ps(acc[r][l][q], _mm256_permute2f128_ps(acc[r][l][q], acc[r][l][q], 0x01));
      _mm_store_ps(h + 4 * q, _mm256_castps256_ps128(_mm256_add_ps(_mm256_add_ps(t[0], t[2]), _mm256_add_ps(t[1], t[3]))));
    }
    if constexpr (kNeedD) _mm256_store_ps(hd, dd[r]);
    if constexpr (ASYM) _mm256_store_ps(hm, dm[r]);
    for (int64_t c = 0; c < rows; ++c) {
      float y = x.de_mul * h[c];  // gemv's expression, term by term
      if constexpr (kNeedD) y += x.cd_mul * hd[c];
      if constexpr (ASYM) y += hm[c];
      x.y[(m0 + c) * x.ldy + n + r] = y;
    }
  }
}
#endif

#if defined(LOWBIT_LANES_ZMM)
// lane_rows in 512-bit registers, for hosts that run them at the 256-bit instruction rate (twice
// the products per cycle; kernels/isa.h avx512zmm). One zmm holds what lane_rows keeps in the
// two sub-panels' ymm of a j (the panel's [j][q] order makes that one load): the weight block's
// 8 dwords broadcast to both 256-bit halves and spread by vpshufd per 128-bit lane give
// [dword j x 4 | dword j+4 x 4] twice, so one vpdpbusd does 64 products for 8 rows. Lane
// 8q + 4h + c is lane_rows' lane 4h + c of sub-panel q: the same integer sums, multipliers and
// fp32 accumulation order per row, so the results are lane_rows' bit for bit.
// (The all-lanes maskz forms: GCC 12's unmasked ones start from an "undefined" register and warn
// -Wmaybe-uninitialized; the instructions are the same.)
template <int J>
[[gnu::always_inline]] inline __m512i spread_zmm(__m512i w) {
  return _mm512_maskz_shuffle_epi32(0xffff, w, (_MM_PERM_ENUM)(J * 0x55));
}
[[gnu::always_inline]] inline __m512 cvt_zmm(__m512i v) { return _mm512_maskz_cvtepi32_ps(0xffff, v); }
// A weight block's 8 dwords in both 256-bit halves.
[[gnu::always_inline]] inline __m512i block_twice(const __m256i* p) { return _mm512_maskz_broadcast_i64x4(0xff, _mm256_loadu_si256(p)); }
// The zmm accumulators' fp32 sums into u[16]: per 256-bit half, t_l = half 0 + half 1 (lanes
// 4h + c), then gemv's tree (t0 + t2) + (t1 + t3); lane 8q + c of u is row c of that half.
[[gnu::always_inline]] inline void lane_tree(const __m512 (&acc)[4], float* u) {
  __m512 t[4];
  for (int l = 0; l < 4; ++l)
    t[l] = _mm512_add_ps(acc[l], _mm512_maskz_shuffle_f32x4(0xffff, acc[l], acc[l], _MM_SHUFFLE(2, 3, 0, 1)));
  _mm512_store_ps(u, _mm512_add_ps(_mm512_add_ps(t[0], t[2]), _mm512_add_ps(t[1], t[3])));
}
// lo in the low 256 bits, hi in the high ones.
[[gnu::always_inline]] inline __m512i two_halves(__m256i lo, __m256i hi) {
  return _mm512_mask_broadcast_i64x4(_mm512_maskz_broadcast_i64x4(0xff, lo), 0xf0, hi);
}
// The same straight from the packed row: plane P of the 32-byte chunk at p (dot_codes' codes:
// at 8 bits vpdpbusd takes the unsigned codes as they are).
template <int BITS, int P>
[[gnu::always_inline]] inline __m512i packed_block_twice(const uint8_t* p) {
  const __m512i raw = block_twice(reinterpret_cast<const __m256i*>(p));
  if constexpr (BITS == 8) return raw;
  else return plane<BITS, P>(raw);
}

// PACKED as in the 256-bit lane_rows.
template <int BITS, bool ASYM, int GB, int R, bool PACKED>
void lane_rows(const Ctx& x, const LaneScratch& s, int64_t n, int64_t p, int64_t m0, int64_t rows) {
  static_assert(!PACKED || BITS > 1);
  constexpr bool kNeedD = !ASYM;
  constexpr int CB = 8 / BITS;
  const int64_t nbw = x.nbw, gstride = round_up(x.groups, 8);
  const __m256i* acts = reinterpret_cast<const __m256i*>(s.acts + p * nbw * 8);
  const float* sc = reinterpret_cast<const float*>(s.scales + p * nbw * 2);
  const __m256i* codes = reinterpret_cast<const __m256i*>(s.codes);
  const uint8_t* row0 = x.codes + n * x.row_bytes;
  // Block bb's codes of weight row r, plane l % CB when PACKED (bb = b + l in a quad).
  auto codes_of = [&](auto r, int64_t bb, auto l) {
    if constexpr (PACKED) return packed_block_twice<BITS, l % CB>(row0 + r * x.row_bytes + bb / CB * kChunkBytes);
    else return block_twice(codes + r * nbw + bb);
  };
  __m512 acc[R][4];
  unroll<R>([&](auto r) { unroll<4>([&](auto l) { acc[r][l] = _mm512_setzero_ps(); }); });
  auto block = [&](int64_t bb, auto l) {
    __m512i c[R], sum[R];
    unroll<R>([&](auto r) {
      c[r] = codes_of(r, bb, l);
      sum[r] = _mm512_setzero_si512();
    });
    unroll<4>([&](auto j) {
      __m512i av = _mm512_loadu_si512(acts + bb * 8 + 2 * j);
      if constexpr (R > 1) asm("" : "+v"(av));  // one load for all R rows
      unroll<R>([&](auto r) { sum[r] = _mm512_dpbusd_epi32(sum[r], spread_zmm<j>(c[r]), av); });
    });
    const __m512 sv = _mm512_loadu_ps(sc + bb * 16);
    unroll<R>([&](auto r) {
      const __m512 m = _mm512_mul_ps(_mm512_set1_ps(s.d[r * gstride + bb / GB]), sv);
      acc[r][l] = _mm512_fmadd_ps(cvt_zmm(sum[r]), m, acc[r][l]);
    });
  };
  int64_t b = 0;
  for (; b + 4 <= nbw; b += 4) unroll<4>([&](auto l) { block(b + l, l); });
  for (; b < nbw; ++b) {  // lane_rows' tail: dword i's sum into accumulator i % 4, half i / 4
    unroll<R>([&](auto r) {
      __m512i c = _mm512_setzero_si512();
      if constexpr (PACKED)
        unroll<CB>([&](auto pl) { if (b % CB == pl) c = codes_of(r, b, pl); });  // b's plane as a constant
      else
        c = codes_of(r, b, std::integral_constant<int, 0>{});
      const __m512 m = _mm512_mul_ps(_mm512_set1_ps(s.d[r * gstride + b / GB]), _mm512_loadu_ps(sc + b * 16));
      unroll<4>([&](auto j) {
        const __m512i t = _mm512_dpbusd_epi32(_mm512_setzero_si512(), spread_zmm<j>(c), _mm512_loadu_si512(acts + b * 8 + 2 * j));
        acc[r][j] = _mm512_fmadd_ps(cvt_zmm(t), m, acc[r][j]);
      });
    });
  }
  const Lanes* gs = s.gsum + p * x.groups;
  __m256 dd[R], dm[R];
  if constexpr (kNeedD) lanes_dot<R>(s.d, gstride, gs, x.groups, dd);
  if constexpr (ASYM) lanes_dot<R>(s.mins, gstride, gs, x.groups, dm);
  for (int r = 0; r < R; ++r) {
    alignas(64) float u[16], hd[8], hm[8];
    lane_tree(acc[r], u);
    if constexpr (kNeedD) _mm256_store_ps(hd, dd[r]);
    if constexpr (ASYM) _mm256_store_ps(hm, dm[r]);
    for (int64_t c = 0; c < rows; ++c) {
      float y = x.de_mul * u[(c / 4) * 8 + c % 4];
      if constexpr (kNeedD) y += x.cd_mul * hd[c];
      if constexpr (ASYM) y += hm[c];
      x.y[(m0 + c) * x.ldy + n + r] = y;
    }
  }
}

// A lone panel of at most 4 activation rows (batched decoding of 4 sequences; sub-panel 0 alone):
// lane_rows (PACKED) with the two 256-bit halves of a zmm given to two weight rows instead of two
// sub-panels, so no product goes to empty lanes. Sub-panel 0's activations of a j are broadcast
// to both halves; lane 8k + 4h + c is activation row c, half h, weight row 2i + k of pair i. Per
// (weight row, activation row) the integer sums, multipliers and fp32 order are lane_rows', so
// the results are too, bit for bit. (One body for both, with this as a flag, measured ~5% slower
// at M = 512 and ~10% faster at M = 8 than the two apart; bench/README.md, twenty-fourth session.)
template <int BITS, bool ASYM, int GB, int R>
void lane_pairs(const Ctx& x, const LaneScratch& s, int64_t n, int64_t p, int64_t m0, int64_t rows) {
  static_assert(R % 2 == 0 && BITS > 1);
  constexpr bool kNeedD = !ASYM;
  constexpr int CB = 8 / BITS, P2 = R / 2;
  const int64_t nbw = x.nbw, gstride = round_up(x.groups, 8);
  const __m256i* acts = reinterpret_cast<const __m256i*>(s.acts + p * nbw * 8);
  const float* sc = reinterpret_cast<const float*>(s.scales + p * nbw * 2);
  const uint8_t* row0 = x.codes + n * x.row_bytes;
  // Block bb's codes of weight rows 2i (low half) and 2i + 1 (high half), plane l % CB.
  auto codes_of = [&](auto i, int64_t bb, auto l) {
    const uint8_t* lo = row0 + 2 * i * x.row_bytes + bb / CB * kChunkBytes;
    const __m512i raw = two_halves(load32(lo), load32(lo + x.row_bytes));
    if constexpr (BITS == 8) return raw;  // vpdpbusd takes the unsigned codes as they are
    else return plane<BITS, l % CB>(raw);
  };
  // Sub-panel 0's activation scales of block bb in both halves, and pair i's multipliers: d of
  // each weight row times those.
  auto scales_of = [&](int64_t bb) { return _mm512_castsi512_ps(block_twice(reinterpret_cast<const __m256i*>(sc + bb * 16))); };
  auto mult = [&](auto i, int64_t bb, __m512 sv) {
    return _mm512_mul_ps(_mm512_mask_blend_ps(0xff00, _mm512_set1_ps(s.d[2 * i * gstride + bb / GB]),
                                              _mm512_set1_ps(s.d[(2 * i + 1) * gstride + bb / GB])), sv);
  };
  __m512 acc[P2][4];
  unroll<P2>([&](auto i) { unroll<4>([&](auto l) { acc[i][l] = _mm512_setzero_ps(); }); });
  auto block = [&](int64_t bb, auto l) {
    __m512i c[P2], sum[P2];
    unroll<P2>([&](auto i) {
      c[i] = codes_of(i, bb, l);
      sum[i] = _mm512_setzero_si512();
    });
    unroll<4>([&](auto j) {
      __m512i av = block_twice(acts + bb * 8 + 2 * j);
      if constexpr (P2 > 1) asm("" : "+v"(av));  // one load for every pair
      unroll<P2>([&](auto i) { sum[i] = _mm512_dpbusd_epi32(sum[i], spread_zmm<j>(c[i]), av); });
    });
    const __m512 sv = scales_of(bb);
    unroll<P2>([&](auto i) { acc[i][l] = _mm512_fmadd_ps(cvt_zmm(sum[i]), mult(i, bb, sv), acc[i][l]); });
  };
  int64_t b = 0;
  for (; b + 4 <= nbw; b += 4) unroll<4>([&](auto l) { block(b + l, l); });
  for (; b < nbw; ++b) {  // lane_rows' tail: dword i's sum into accumulator i % 4, half i / 4
    unroll<P2>([&](auto i) {
      __m512i c = _mm512_setzero_si512();
      unroll<CB>([&](auto pl) { if (b % CB == pl) c = codes_of(i, b, pl); });  // b's plane as a constant
      const __m512 m = mult(i, b, scales_of(b));
      unroll<4>([&](auto j) {
        const __m512i t = _mm512_dpbusd_epi32(_mm512_setzero_si512(), spread_zmm<j>(c), block_twice(acts + b * 8 + 2 * j));
        acc[i][j] = _mm512_fmadd_ps(cvt_zmm(t), m, acc[i][j]);
      });
    });
  }
  const Lanes* gs = s.gsum + p * x.groups;
  __m256 dd[R], dm[R];
  if constexpr (kNeedD) lanes_dot<R>(s.d, gstride, gs, x.groups, dd);
  if constexpr (ASYM) lanes_dot<R>(s.mins, gstride, gs, x.groups, dm);
  for (int i = 0; i < P2; ++i) {
    alignas(64) float u[16], hd[8], hm[8];
    lane_tree(acc[i], u);
    for (int k = 0; k < 2; ++k) {
      const int r = 2 * i + k;
      if constexpr (kNeedD) _mm256_store_ps(hd, dd[r]);
      if constexpr (ASYM) _mm256_store_ps(hm, dm[r]);
      for (int64_t c = 0; c < rows; ++c) {
        float y = x.de_mul * u[8 * k + c];
        if constexpr (kNeedD) y += x.cd_mul * hd[c];
        if constexpr (ASYM) y += hm[c];
        x.y[(m0 + c) * x.ldy + n + r] = y;
      }
    }
  }
}
#endif

// Weight row n's codes one per byte (dot_codes, as gemv takes them; only if `codes`, else the
// lane kernel reads them packed) and its scales and minima in fp32 (exact: every fp16 is an
// fp32), into slot `slot` of s.
template <int BITS>
void unpack_row(const Ctx& x, LaneScratch& s, int64_t n, int slot, bool codes) {
  constexpr int CB = 8 / BITS;
  const int64_t gstride = round_up(x.groups, 8);
  const uint8_t* row = x.codes + n * x.row_bytes;
  // Batches of a few rows stream W from DRAM once, at the pace of this loop: fetch the row
  // kPrefetch * kLaneRows ahead (as tile<> does) so the next rows are on their way.
  if (n + kPrefetch * kLaneRows < x.n_rows) {
    const uint8_t* ahead = row + kPrefetch * kLaneRows * x.row_bytes;
    for (int64_t o = 0; o < x.row_bytes; o += 64) __builtin_prefetch(ahead + o, 0, 3);
    const int64_t g = (n + kPrefetch * kLaneRows) * x.groups;
    for (int64_t o = 0; o < x.groups && !x.expanded; o += 32) {
      __builtin_prefetch(x.scales + g + o, 0, 3);
      if (x.mins) __builtin_prefetch(x.mins + g + o, 0, 3);
    }
  }
  __m256i* out = reinterpret_cast<__m256i*>(s.codes + slot * x.nbw * 8);
  for (int64_t ch = 0; codes && ch < x.nbw / CB; ++ch) {
    const __m256i raw = load32(row + ch * kChunkBytes);
    unroll<CB>([&](auto p) { _mm256_storeu_si256(out + ch * CB + p, dot_codes<BITS, p>(raw)); });
  }
  auto to_f32 = [&](const uint16_t* h, float* f) {
    for (int64_t g = 0; g < x.groups; g += 8) _mm256_storeu_ps(f + g, load_f16(h + g, (int)std::min<int64_t>(8, x.groups - g)));
  };
  to_f32(x.row_sc(n), s.d + slot * gstride);
  if (x.mins) to_f32(x.row_mn(n), s.mins + slot * gstride);
}

// Rows [n0, n1) x activation rows [0, m1) through the lane kernel, in groups of kPanelActs
// activation rows (the panels of a group stay in L2 while every weight row passes over them);
// m1 is a multiple of kLanes or leaves >= kLaneMinRows in the last panel.
template <int BITS, bool ASYM, int GB>
void lanes_gemm(const Ctx& x, int64_t m1, int64_t n0, int64_t n1) {
  // The scratch on the stack where it fits (batched decoding of a few sequences at the usual K):
  // a thread_local vector is sized the first time a worker meets a shape, which may be in any
  // later decode step, and decode allocates nothing per token (tests/runtime/alloc_test.cc).
  // Larger calls (prefill) use a per-thread vector that only grows, as tile<>'s heap scratch.
  const int64_t panels_max = std::min(kPanelActs, round_up(m1, kLanes)) / kLanes;
  const bool one_panel_packed = BITS > 1 && panels_max <= kPackedPanels;
  const int64_t row_lanes = round_up(x.groups, 8) / 8;  // one weight row's d (or mins), in Lanes
  const int64_t n_acts = panels_max * x.nbw * 8, n_scales = panels_max * x.nbw * 2, n_gsum = panels_max * x.groups;
  const int64_t n_codes = one_panel_packed ? 0 : kLaneRows * x.nbw;
  const int64_t need = n_acts + n_scales + n_gsum + n_codes + 2 * kLaneRows * row_lanes;
  constexpr int64_t kStackLanes = 3072;  // 96 KiB: one panel up to K ~ 8000
  Lanes stack[kStackLanes];
  thread_local std::vector<Lanes> heap;
  Lanes* base = stack;
  if (need > kStackLanes) {
    if ((int64_t)heap.size() < need) heap.resize(need);
    base = heap.data();
  }
  LaneScratch s;
  s.acts = base;
  s.scales = s.acts + n_acts;
  s.gsum = s.scales + n_scales;
  s.codes = reinterpret_cast<int32_t*>(s.gsum + n_gsum);
  s.d = reinterpret_cast<float*>(s.gsum + n_gsum + n_codes);
  s.mins = s.d + kLaneRows * row_lanes * 8;
  for (int64_t g0 = 0; g0 < m1; g0 += kPanelActs) {
    const int64_t g1 = std::min(m1, g0 + kPanelActs), panels = ceil_div(g1 - g0, kLanes);
    for (int64_t p = 0; p < panels; ++p) build_panel<BITS>(x, s, p, g0 + p * kLanes, std::min(kLanes, g1 - g0 - p * kLanes));
    int64_t n = n0;
    const bool packed = BITS > 1 && panels <= kPackedPanels;  // implies one_panel_packed
    auto rows_of = [&](auto r) {  // r weight rows from n against every panel of the group
      for (int64_t p = 0; p < panels; ++p) {
        const int64_t m0 = g0 + p * kLanes, rows = std::min(kLanes, g1 - m0);
        if constexpr (BITS > 1)
          if (packed) {
#if defined(LOWBIT_LANES_ZMM)
            if constexpr (r % 2 == 0)
              if (rows <= 4) {
                lane_pairs<BITS, ASYM, GB, r>(x, s, n, p, m0, rows);
                continue;
              }
#endif
            lane_rows<BITS, ASYM, GB, r, true>(x, s, n, p, m0, rows);
            continue;
          }
        lane_rows<BITS, ASYM, GB, r, false>(x, s, n, p, m0, rows);
      }
    };
    for (; n + kLaneRows <= n1; n += kLaneRows) {
      for (int r = 0; r < kLaneRows; ++r) unpack_row<BITS>(x, s, n + r, r, !packed);
      rows_of(std::integral_constant<int, kLaneRows>{});
    }
    for (; n < n1; ++n) {
      unpack_row<BITS>(x, s, n, 0, !packed);
      rows_of(std::integral_constant<int, 1>{});
    }
  }
}

// The lane kernel for the activation rows it suits (whole panels, and a last one of at least
// kLaneMinRows); returns the first row it left to tile<> (0: the shape is not for it).
template <int BITS>
int64_t try_lanes(const Ctx& x, int64_t m, int64_t n0, int64_t n1) {
  const int64_t m1 = m % kLanes >= kLaneMinRows ? m : m - m % kLanes;
  if (m1 < kLaneMinRows) return 0;
  return with_gemv_shape<BITS>(x, [&](auto asym, auto gb) { lanes_gemm<BITS, asym, gb>(x, m1, n0, n1); }) ? m1 : 0;
}

}  // namespace
}  // namespace lowbit::x86
