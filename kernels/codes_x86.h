// Internal to the x86 SIMD kernels: the packed code layout of quant_format.h as 256-bit
// registers (a chunk's plane P is one activation block's 32 codes, one per byte), and
// compile-time loop unrolling. Shared by the int8-activation kernels (matmul_quant_x86.h, built
// once per x86 ISA) and the fp32 prefill path (matmul_qf32_avx2.cc). Only files compiled with an
// x86 ISA's flags (*_avx2.cc, *_avx512.cc) include it. Everything here has internal linkage (the
// unnamed namespace): each ISA's files get their own copy compiled with their own flags, so the
// linker can never keep an AVX-512 build of a helper for the AVX2 kernels (one definition of an
// inline function per program would allow exactly that).
#pragma once

#include <immintrin.h>

#include <utility>

#include "kernels/quant_format.h"

namespace lowbit::x86 {
namespace {

template <int... Is, class F>
[[gnu::always_inline]] inline void unroll_impl(std::integer_sequence<int, Is...>, F&& f) {
  (f(std::integral_constant<int, Is>{}), ...);
}
// f(std::integral_constant<int, i>) for i in [0, N): indices stay compile-time constants, so
// shift counts and plane numbers become immediates.
template <int N, class F>
[[gnu::always_inline]] inline void unroll(F&& f) {
  unroll_impl(std::make_integer_sequence<int, N>{}, f);
}

[[gnu::always_inline]] inline __m256i load32(const void* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// Plane P of a 32-byte chunk: the 32 codes of one activation block, one per byte, times
// 2^plane_shift(BITS, P). A 16-bit shift brings a plane to the low bits of every byte and the
// AND drops the bits the shift carried in from the neighbouring byte; at 1 and 2 bits most
// planes skip the shift and are taken in place, scaled by a power of two that the block's
// multiplier undoes exactly (plane_factor), as long as the scaled codes keep quad_dot's i16
// sums in range: it adds 4 vpmaddubsw pairs of a block, <= 8 * 127 * scaled code < 2^15 for
// scaled codes <= 32, the largest used (1 bit: planes 0-5 in place, 6-7 from one shift by 6;
// 2 bits: planes 0-1 in place, 2-3 from one shift by 4). At 8 bits: the level code - 128 as int8.
template <int BITS, int P>
constexpr int plane_shift() {
  if constexpr (BITS == 1) return P <= 5 ? P : P - 6;
  else if constexpr (BITS == 2) return P % 2 == 0 ? 0 : 2;
  else return 0;
}
// Below 8 bits, plane P is (raw >> plane_srl) & plane_mask, shifting 16-bit lanes.
template <int BITS, int P>
constexpr int plane_srl() {
  if constexpr (BITS == 4) return P == 0 ? 0 : 4;
  constexpr int in_place = BITS == 1 ? 6 : 2;  // planes taken without a shift
  return P < in_place ? 0 : in_place * BITS;
}
template <int BITS, int P>
constexpr char plane_mask() {
  return (char)(BITS == 4 ? 0x0f : ((1 << BITS) - 1) << plane_shift<BITS, P>());
}
template <int BITS, int P>
[[gnu::always_inline]] inline __m256i plane(__m256i raw) {
  if constexpr (BITS == 8) {
    return _mm256_xor_si256(raw, _mm256_set1_epi8((char)0x80));
  } else {
    const __m256i v = plane_srl<BITS, P>() ? _mm256_srli_epi16(raw, plane_srl<BITS, P>()) : raw;
    return _mm256_and_si256(v, _mm256_set1_epi8(plane_mask<BITS, P>()));
  }
}
#if defined(__AVX512BW__)
// The same in 512-bit registers (the lane kernel's zmm form takes codes straight from a row).
template <int BITS, int P>
[[gnu::always_inline]] inline __m512i plane(__m512i raw) {
  if constexpr (BITS == 8) {
    return _mm512_xor_si512(raw, _mm512_set1_epi8((char)0x80));
  } else {
    const __m512i v = plane_srl<BITS, P>() ? _mm512_srli_epi16(raw, plane_srl<BITS, P>()) : raw;
    return _mm512_and_si512(v, _mm512_set1_epi8(plane_mask<BITS, P>()));
  }
}
#endif

}  // namespace
}  // namespace lowbit::x86
