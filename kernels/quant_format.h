// The byte layout of every weight matrix lowbit stores: defined here once, compiled by C++ and
// CUDA, and documented byte for byte in docs/FORMAT.md. Nothing else in the tree may restate it.
//
// A matrix W is N rows x K columns, row-major (HF nn.Linear.weight). A quantized matrix is three
// sections, each starting on a 64-byte boundary of the matrix's own data:
//   codes  [N][code_row_bytes]   packed b-bit codes, rows padded to whole 32-byte chunks
//   scales [N][groups]           fp16 scale d per group
//   mins   [N][groups]           fp16 minimum m per group (asymmetric scheme only)
// or, with 6-bit scale codes (ScaleCode::c6, asymmetric only; names end in "_s6"):
//   scales  [N][coded_row_bytes] 6-bit code c_d per group, 0..63
//   mins    [N][coded_row_bytes] 6-bit code c_m + 32 per group, c_m in -31..31
//   factors [N][2]               bf16 row factors D, M
// where a group's scale and minimum are the fp16 values d = fp16(D * c_d), m = fp16(M * c_m)
// (products exact in fp32, rounded to nearest even), so every kernel computes with exactly the
// d and m an fp16-scaled matrix would hold. Code g of a row sits at bits [6g, 6g + 6) of the
// row's bytes read as one little-endian bit string (four codes in three bytes). A group of 32
// then costs 12 bits of scale and minimum instead of 32: 4.375 bits per weight at 4 bits, not
// 5.0, plus 32 bits per row (k-quants' Q4_K spends the same 12 bits, under fp16 factors per 256
// weights instead of per row).
// A 32-byte chunk holds 256/b consecutive weights of a row: weight j + 32*p of the chunk sits in
// byte j at bits [p*b, p*b + b). Shifting the 32 bytes right by p*b and masking therefore yields
// 32 consecutive weights, one per byte, which is exactly one 32-wide int8 activation block: the
// SIMD kernels unpack a plane with one shift and one AND, and never shuffle.
#pragma once

#include <stdint.h>

#include <type_traits>

#include "kernels/half.h"

namespace lowbit {

enum class Base : uint8_t { f32 = 0, f16 = 1, bf16 = 2, q = 3 };
enum class Scheme : uint8_t { sym = 0, asym = 1 };
enum class ScaleCode : uint8_t { f16 = 0, c6 = 1 };
constexpr int kScaleCodeBits = 6;
constexpr int kMaxScaleCode = 63;  // c_d
constexpr int kMaxMinCode = 31;    // |c_m|; stored with +32

// A weight type. For Base::q, bits is 1/2/4/8 and group is 32/64/128/256, or 0 for one group
// spanning the whole row ("per row"). For float bases bits is 32/16/16 and group/scheme unused.
struct QType {
  Base base = Base::f32;
  uint8_t bits = 32;
  Scheme scheme = Scheme::sym;
  uint32_t group = 0;
  ScaleCode scales = ScaleCode::f16;  // quantized types only; c6 needs asym and a group size
};

constexpr int kActBlock = 32;        // int8 activation block; every group is a multiple of it
constexpr int kChunkBytes = 32;      // one packed chunk of codes
constexpr int kSectionAlign = 64;    // alignment of each section inside a matrix
constexpr int kMaxChunkWeights = 256;  // 1-bit chunk: activations are padded to a multiple

LOWBIT_HD constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
LOWBIT_HD constexpr int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

LOWBIT_HD constexpr int64_t chunk_weights(int bits) { return 256 / bits; }

static_assert(chunk_weights(1) * 1 == kChunkBytes * 8, "1-bit chunk is 32 bytes");
static_assert(chunk_weights(2) * 2 == kChunkBytes * 8, "2-bit chunk is 32 bytes");
static_assert(chunk_weights(4) * 4 == kChunkBytes * 8, "4-bit chunk is 32 bytes");
static_assert(chunk_weights(8) * 8 == kChunkBytes * 8, "8-bit chunk is 32 bytes");
static_assert(kMaxChunkWeights % kActBlock == 0, "a chunk is whole activation blocks");
static_assert(sizeof(uint16_t) == 2, "fp16 scales are 2 bytes");

LOWBIT_HD constexpr int64_t code_row_bytes(int bits, int64_t k) {
  return ceil_div(k, chunk_weights(bits)) * kChunkBytes;
}

// Weights per group; a per-row group spans K rounded up to the activation block.
LOWBIT_HD constexpr int64_t group_size(const QType& t, int64_t k) {
  return t.group == 0 ? round_up(k, kActBlock) : (int64_t)t.group;
}
LOWBIT_HD constexpr int64_t groups_per_row(const QType& t, int64_t k) {
  return t.group == 0 ? 1 : ceil_div(k, t.group);
}

LOWBIT_HD constexpr int64_t coded_row_bytes(int64_t groups) { return ceil_div(groups * kScaleCodeBits, 8); }

// 6-bit code g of a row of packed codes (bits [6g, 6g + 6)); reads no byte past the code's own.
LOWBIT_HD unsigned get_scale_code(const uint8_t* row, int64_t g) {
  const int64_t bit = g * kScaleCodeBits, byte = bit / 8;
  const int shift = (int)(bit % 8);
  const unsigned two = shift + kScaleCodeBits > 8 ? row[byte] | (unsigned)row[byte + 1] << 8 : row[byte];
  return (two >> shift) & 63u;
}

LOWBIT_HD void put_scale_code(uint8_t* row, int64_t g, unsigned code) {
  const int64_t bit = g * kScaleCodeBits, byte = bit / 8;
  const int shift = (int)(bit % 8);
  const unsigned v = (code & 63u) << shift, mask = 63u << shift;
  row[byte] = (uint8_t)((row[byte] & ~mask) | (v & 0xffu));
  if (shift + kScaleCodeBits > 8) row[byte + 1] = (uint8_t)((row[byte + 1] & ~(mask >> 8)) | (v >> 8));
}

struct QLayout {
  int64_t row_bytes = 0;    // codes per row (quantized) or elements x size (float)
  int64_t groups = 0;       // groups per row (quantized only)
  int64_t codes_offset = 0;
  int64_t scales_offset = 0;
  int64_t mins_offset = 0;  // == scales_offset + ... only when asymmetric; else 0
  int64_t factors_offset = 0;  // ScaleCode::c6 only; else 0
  int64_t bytes = 0;        // total size of the matrix's data
};

LOWBIT_HD constexpr int float_bytes(Base b) { return b == Base::f32 ? 4 : 2; }

LOWBIT_HD QLayout q_layout(const QType& t, int64_t n, int64_t k) {
  QLayout l;
  if (t.base != Base::q) {
    l.row_bytes = k * float_bytes(t.base);
    l.bytes = n * l.row_bytes;
    return l;
  }
  l.row_bytes = code_row_bytes(t.bits, k);
  l.groups = groups_per_row(t, k);
  // A row's scales (or minima): fp16 each, or packed 6-bit codes.
  const int64_t scale_row = t.scales == ScaleCode::c6 ? coded_row_bytes(l.groups) : 2 * l.groups;
  l.scales_offset = round_up(n * l.row_bytes, kSectionAlign);
  int64_t end = l.scales_offset + n * scale_row;
  if (t.scheme == Scheme::asym) {
    l.mins_offset = round_up(end, kSectionAlign);
    end = l.mins_offset + n * scale_row;
  }
  if (t.scales == ScaleCode::c6) {
    l.factors_offset = round_up(end, kSectionAlign);
    end = l.factors_offset + n * 2 * 2;
  }
  l.bytes = end;
  return l;
}

// The fp16 value of a coded scale or minimum: fp16(factor * code) (see the top of this file).
LOWBIT_HD uint16_t decode_scale(uint16_t factor_bf16, int code) {
  return f32_to_f16(bf16_to_f32(factor_bf16) * (float)code);
}

// A matrix's sections as pointers into its data (laid out by q_layout(t, n, k)), and each row's
// part of them: what the kernels, the quantizer and the tests read and write, worked out here
// once. Byte is const uint8_t to read, uint8_t to write. Float matrices have codes only (their
// rows of elements); scales and mins are null there, and mins for the symmetric scheme. With
// 6-bit scale codes, scales and mins are null and scale_codes, min_codes and factors hold the
// sections; scale_at(r, g) and min_at(r, g) give a group's fp16 d and m under either encoding.
template <class Byte>
struct QSections {
  using U16 = std::conditional_t<std::is_const_v<Byte>, const uint16_t, uint16_t>;
  Byte* codes = nullptr;  // (n, row_bytes)
  U16* scales = nullptr;  // (n, groups) fp16 d
  U16* mins = nullptr;    // (n, groups) fp16 m
  Byte* scale_codes = nullptr;  // (n, coded_row_bytes(groups)) c_d
  Byte* min_codes = nullptr;    // (n, coded_row_bytes(groups)) c_m + 32
  U16* factors = nullptr;       // (n, 2) bf16 D, M
  int64_t row_bytes = 0, groups = 0, code_row = 0;
  LOWBIT_HD Byte* row_scale_codes(int64_t r) const { return scale_codes + r * code_row; }
  LOWBIT_HD Byte* row_min_codes(int64_t r) const { return min_codes + r * code_row; }
  LOWBIT_HD Byte* row_codes(int64_t r) const { return codes + r * row_bytes; }
  LOWBIT_HD U16* row_scales(int64_t r) const { return scales ? scales + r * groups : nullptr; }
  LOWBIT_HD U16* row_mins(int64_t r) const { return mins ? mins + r * groups : nullptr; }
  LOWBIT_HD bool coded() const { return factors != nullptr; }
  LOWBIT_HD uint16_t scale_at(int64_t r, int64_t g) const {
    return coded() ? decode_scale(factors[2 * r], (int)get_scale_code(row_scale_codes(r), g)) : scales[r * groups + g];
  }
  LOWBIT_HD uint16_t min_at(int64_t r, int64_t g) const {
    if (coded()) return decode_scale(factors[2 * r + 1], (int)get_scale_code(row_min_codes(r), g) - 32);
    return mins ? mins[r * groups + g] : 0;
  }
};

template <class Byte>
LOWBIT_HD QSections<Byte> q_sections(const QType& t, int64_t n, int64_t k, Byte* data) {
  using U16 = typename QSections<Byte>::U16;
  const QLayout l = q_layout(t, n, k);
  QSections<Byte> s;
  s.row_bytes = l.row_bytes;
  s.groups = l.groups;
  s.codes = data + l.codes_offset;
  if (t.base == Base::q && t.scales == ScaleCode::c6) {
    s.code_row = coded_row_bytes(l.groups);
    s.scale_codes = data + l.scales_offset;
    s.min_codes = data + l.mins_offset;
    s.factors = reinterpret_cast<U16*>(data + l.factors_offset);
  } else if (t.base == Base::q) {
    s.scales = reinterpret_cast<U16*>(data + l.scales_offset);
    if (t.scheme == Scheme::asym) s.mins = reinterpret_cast<U16*>(data + l.mins_offset);
  }
  return s;
}

// Code i of a row (0 <= i < K): chunk i / (256/b), byte i % 32 of it, plane (i % (256/b)) / 32.
LOWBIT_HD unsigned get_code(const uint8_t* row_codes, int bits, int64_t i) {
  const int64_t cw = chunk_weights(bits);
  const int64_t r = i % cw;
  const uint8_t byte = row_codes[(i / cw) * kChunkBytes + (r % 32)];
  return (byte >> ((r / 32) * bits)) & ((1u << bits) - 1u);
}

LOWBIT_HD void put_code(uint8_t* row_codes, int bits, int64_t i, unsigned code) {
  const int64_t cw = chunk_weights(bits);
  const int64_t r = i % cw;
  uint8_t& byte = row_codes[(i / cw) * kChunkBytes + (r % 32)];
  const int shift = (int)(r / 32) * bits;
  const unsigned mask = ((1u << bits) - 1u) << shift;
  byte = (uint8_t)((byte & ~mask) | ((code << shift) & mask));
}

// Offset of the symmetric scheme: level = code - z, so b bits span [-2^(b-1), 2^(b-1) - 1].
// 1-bit symmetric is a sign code, level = 2*code - 1 (that is +-1).
LOWBIT_HD constexpr int sym_offset(int bits) { return bits == 1 ? 0 : 1 << (bits - 1); }

// Every quantized weight decodes as w = de * code + ce, with (de, ce) fixed per group:
//   sym, b >= 2: de = d,   ce = -z * d
//   sym, b == 1: de = 2 d, ce = -d
//   asym:        de = d,   ce = m
// Kernels fold ce into a per-group sum of the activations, so one formula serves every type.
struct GroupCoeffs {
  float de;
  float ce;
};

LOWBIT_HD GroupCoeffs group_coeffs(const QType& t, uint16_t scale_f16, uint16_t min_f16) {
  const float d = f16_to_f32(scale_f16);
  if (t.scheme == Scheme::asym) return {d, f16_to_f32(min_f16)};
  if (t.bits == 1) return {2.0f * d, -d};
  return {d, -(float)sym_offset(t.bits) * d};
}

}  // namespace lowbit
