#include "convert/ggml_quants.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "convert/ggml_quants_blocks.h"
#include "kernels/error.h"
#include "kernels/thread_pool.h"

namespace lowbit {

using ggml_blocks::kIq4nlLevels;
using ggml_blocks::le16;
using ggml_blocks::le32;
using ggml_blocks::le_f16;

namespace {

std::string name_of(GgmlType t) { return ggml_type_name((uint32_t)t); }

// ---- Codes: where each weight's code sits in a block (used by both dequantize and repack) -----

// Q4_0, Q4_1, Q5_*, IQ4_NL: 16 bytes of nibbles; weight j < 16 is the low nibble of byte j,
// weight j + 16 the high nibble.
void unpack_nibbles32(const uint8_t* qs, uint8_t* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = qs[j] & 0xF;
    q[j + 16] = qs[j] >> 4;
  }
}

// Q5_0 / Q5_1: the fifth bit of weight j is bit j of the little-endian u32 qh.
void unpack_q5(const uint8_t* qh, const uint8_t* qs, uint8_t* q) {
  unpack_nibbles32(qs, q);
  const uint32_t h = le32(qh);
  for (int j = 0; j < 32; ++j) q[j] |= (uint8_t)(((h >> j) & 1u) << 4);
}

// TQ2_0: 2-bit q (level q - 1) for 256 weights in 64 bytes; weight i in byte 32*(i/128) + i%32
// at bits 2*((i/32)%4) (Q2_K's placement). q = 3 (level 2) is never written by ggml's quantizer
// but a byte can hold it.
void unpack_tq2(const uint8_t* qs, uint8_t* q) {
  for (int i = 0; i < 256; ++i) q[i] = (qs[32 * (i / 128) + i % 32] >> (2 * ((i / 32) % 4))) & 3;
}

// TQ1_0: base-3 digits q in {0, 1, 2} (level q - 1): 5 per byte of qs[48], then 4 per byte of
// qh[4]. A byte stores the digits' base-3 fraction scaled to 256 and rounded up, so digit n (most
// significant first) is the integer part of 3 * frac(byte * 3^n / 256): the uint8 product keeps
// exactly that fraction. Weights run digit-major: digit n of qs[m], m < 32, is weight 32n + m;
// of qs[32 + m], m < 16, weight 160 + 16n + m; of qh[m], weight 240 + 4n + m.
void unpack_tq1(const uint8_t* qs, const uint8_t* qh, uint8_t* q) {
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  auto digit = [](uint8_t byte, int n) { return (uint8_t)(((uint8_t)(byte * kPow3[n]) * 3) >> 8); };
  int i = 0;
  for (int n = 0; n < 5; ++n)
    for (int m = 0; m < 32; ++m) q[i++] = digit(qs[m], n);
  for (int n = 0; n < 5; ++n)
    for (int m = 0; m < 16; ++m) q[i++] = digit(qs[32 + m], n);
  for (int n = 0; n < 4; ++n)
    for (int m = 0; m < 4; ++m) q[i++] = digit(qh[m], n);
}

// ---- Dequantization of one block, ggml's expression per type ----------------------------------
// Offsets: ggml-common.h's block structs (fp16 fields are 2 bytes, little-endian).

void dequantize_q4_0(const uint8_t* b, float* y) {  // d, qs[16]
  uint8_t q[32];
  unpack_nibbles32(b + 2, q);
  const float d = le_f16(b);
  for (int j = 0; j < 32; ++j) y[j] = (float)(q[j] - 8) * d;
}

void dequantize_q4_1(const uint8_t* b, float* y) {  // d, m, qs[16]
  uint8_t q[32];
  unpack_nibbles32(b + 4, q);
  const float d = le_f16(b), m = le_f16(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = (float)q[j] * d + m;
}

void dequantize_q5_0(const uint8_t* b, float* y) {  // d, qh[4], qs[16]
  uint8_t q[32];
  unpack_q5(b + 2, b + 6, q);
  const float d = le_f16(b);
  for (int j = 0; j < 32; ++j) y[j] = (float)(q[j] - 16) * d;
}

void dequantize_q5_1(const uint8_t* b, float* y) {  // d, m, qh[4], qs[16]
  uint8_t q[32];
  unpack_q5(b + 4, b + 8, q);
  const float d = le_f16(b), m = le_f16(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = (float)q[j] * d + m;
}

void dequantize_q8_0(const uint8_t* b, float* y) {  // d, int8 qs[32]
  const float d = le_f16(b);
  for (int j = 0; j < 32; ++j) y[j] = (float)(int8_t)b[2 + j] * d;
}

void dequantize_iq4_nl(const uint8_t* b, float* y) {  // d, qs[16] indexing the IQ4_NL levels
  uint8_t q[32];
  unpack_nibbles32(b + 2, q);
  const float d = le_f16(b);
  for (int j = 0; j < 32; ++j) y[j] = d * (float)kIq4nlLevels[q[j]];
}

void dequantize_tq2_0(const uint8_t* b, float* y) {  // qs[64], d
  uint8_t q[256];
  unpack_tq2(b, q);
  const float d = le_f16(b + 64);
  for (int i = 0; i < 256; ++i) y[i] = (float)(q[i] - 1) * d;
}

void dequantize_tq1_0(const uint8_t* b, float* y) {  // qs[48], qh[4], d
  uint8_t q[256];
  unpack_tq1(b, b + 48, q);
  const float d = le_f16(b + 52);
  for (int i = 0; i < 256; ++i) y[i] = (float)(q[i] - 1) * d;
}

struct BlockDecoder {
  GgmlType type;
  void (*decode)(const uint8_t* block, float* y);  // block_weights floats
};

constexpr BlockDecoder kDecoders[] = {
    {GgmlType::q4_0, dequantize_q4_0},   {GgmlType::q4_1, dequantize_q4_1},
    {GgmlType::q5_0, dequantize_q5_0},   {GgmlType::q5_1, dequantize_q5_1},
    {GgmlType::q8_0, dequantize_q8_0},   {GgmlType::iq4_nl, dequantize_iq4_nl},
    {GgmlType::tq1_0, dequantize_tq1_0}, {GgmlType::tq2_0, dequantize_tq2_0},
    {GgmlType::q2_k, ggml_blocks::dequantize_q2_k},
    {GgmlType::q3_k, ggml_blocks::dequantize_q3_k},
    {GgmlType::q4_k, ggml_blocks::dequantize_q4_k},
    {GgmlType::q5_k, ggml_blocks::dequantize_q5_k},
    {GgmlType::q6_k, ggml_blocks::dequantize_q6_k},
    {GgmlType::iq4_xs, ggml_blocks::dequantize_iq4_xs},
};

const BlockDecoder* find_decoder(GgmlType t) {
  for (const BlockDecoder& d : kDecoders)
    if (d.type == t) return &d;
  return nullptr;
}

bool is_float(GgmlType t) { return t == GgmlType::f32 || t == GgmlType::f16 || t == GgmlType::bf16; }

// The type's block size, after checking that `n` weights are whole blocks of it.
GgmlTypeInfo whole_blocks(GgmlType t, int64_t n, const char* what) {
  const GgmlTypeInfo info = *ggml_type_info((uint32_t)t);
  if (n < 0 || n % info.block_weights != 0)
    throw Error(name_of(t) + ": " + what + " " + std::to_string(n) + " is not a whole number of " +
                std::to_string(info.block_weights) + "-weight blocks");
  return info;
}

// ---- Repacking: one ggml block as lowbit codes and fp16 scale (and minimum) -------------------

struct BlockCodes {
  uint8_t code[256];  // lowbit codes of the block's weights
  uint16_t d = 0;     // fp16 scale
  uint16_t m = 0;     // fp16 minimum (asymmetric types)
};

// Levels match one for one: Q8_0's int8 x is code x + 128 (level code - 128), Q4_0's nibble q is
// its own code (level q - 8 either way), Q4_1's (d, m, q) are lowbit's asymmetric (d, m, q).
// TQ*: d * (q - 1) as code q + 1 with the same d would need code 4 for TQ2_0's q = 3 (level 2,
// which no quantizer writes but a byte holds); as d * (q - 1) = (-d) * ((3 - q) - 2), the scale
// negated and code 3 - q (level code - 2), every q in 0..3 fits, exactly.
void repack_block(GgmlType t, const uint8_t* b, BlockCodes* out) {
  switch (t) {
    case GgmlType::q8_0:
      out->d = le16(b);
      for (int j = 0; j < 32; ++j) out->code[j] = b[2 + j] ^ 0x80;
      return;
    case GgmlType::q4_0:
      out->d = le16(b);
      unpack_nibbles32(b + 2, out->code);
      return;
    case GgmlType::q4_1:
      out->d = le16(b);
      out->m = le16(b + 2);
      unpack_nibbles32(b + 4, out->code);
      return;
    case GgmlType::tq2_0:
      out->d = le16(b + 64) ^ 0x8000;
      unpack_tq2(b, out->code);
      break;
    case GgmlType::tq1_0:
      out->d = le16(b + 52) ^ 0x8000;
      unpack_tq1(b, b + 48, out->code);
      break;
    default:
      throw Error(name_of(t) + " has no exact lowbit type");
  }
  for (uint8_t& c : out->code) c = (uint8_t)(3 - c);
}

// Work split for a pool: pieces large enough to dwarf a task's hand-off (~microseconds).
constexpr int64_t kDequantizeWeightsPerTask = 1 << 16;
constexpr int64_t kRepackRowsPerTask = 16;

// fn(begin, end) over [0, n) in pieces of `per_task`, on the pool or on this thread.
void for_ranges(int64_t n, int64_t per_task, ThreadPool* pool,
                const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t tasks = ceil_div(n, per_task);
  auto task = [&](int64_t k, int) { fn(k * per_task, std::min(n, (k + 1) * per_task)); };
  if (pool) {
    pool->run(tasks, task);
  } else {
    for (int64_t k = 0; k < tasks; ++k) task(k, 0);
  }
}

// put_code over a row, with the bit width a constant so that its divisions become shifts (Q8_0
// ~5x faster, Q4_* ~1.4x; the importer repacks every weight of a model at load).
template <int kBits>
void put_codes(uint8_t* row_codes, const uint8_t* q, int64_t n) {
  for (int64_t i = 0; i < n; ++i) put_code(row_codes, kBits, i, q[i]);
}

void put_codes(int bits, uint8_t* row_codes, const uint8_t* q, int64_t n) {
  switch (bits) {
    case 2: return put_codes<2>(row_codes, q, n);
    case 4: return put_codes<4>(row_codes, q, n);
    case 8: return put_codes<8>(row_codes, q, n);
    default: throw Error("no exact ggml type has " + std::to_string(bits) + "-bit codes");
  }
}

}  // namespace

bool ggml_can_dequantize(GgmlType t) { return is_float(t) || find_decoder(t) != nullptr; }

void ggml_dequantize(GgmlType t, const uint8_t* blocks, int64_t n, float* out, ThreadPool* pool) {
  if (!ggml_can_dequantize(t)) throw Error("cannot dequantize ggml type " + name_of(t));
  const GgmlTypeInfo info = whole_blocks(t, n, "weight count");
  const BlockDecoder* d = find_decoder(t);
  for_ranges(n / info.block_weights, kDequantizeWeightsPerTask / info.block_weights, pool,
             [&](int64_t b0, int64_t b1) {
    const uint8_t* in = blocks + b0 * info.block_bytes;
    float* y = out + b0 * info.block_weights;
    const int64_t count = (b1 - b0) * info.block_weights;  // float types: one weight per block
    if (t == GgmlType::f32) {
      for (int64_t i = 0; i < count; ++i) y[i] = f32_from_bits(le32(in + 4 * i));
    } else if (t == GgmlType::f16) {
      for (int64_t i = 0; i < count; ++i) y[i] = f16_to_f32(le16(in + 2 * i));
    } else if (t == GgmlType::bf16) {
      for (int64_t i = 0; i < count; ++i) y[i] = bf16_to_f32(le16(in + 2 * i));
    } else {
      for (int64_t b = 0; b < b1 - b0; ++b)
        d->decode(in + b * info.block_bytes, y + b * info.block_weights);
    }
  });
}

std::optional<QType> ggml_exact_type(GgmlType t) {
  switch (t) {
    case GgmlType::f32: return QType{Base::f32, 32};
    case GgmlType::f16: return QType{Base::f16, 16};
    case GgmlType::bf16: return QType{Base::bf16, 16};
    case GgmlType::q8_0: return QType{Base::q, 8, Scheme::sym, 32};
    case GgmlType::q4_0: return QType{Base::q, 4, Scheme::sym, 32};
    case GgmlType::q4_1: return QType{Base::q, 4, Scheme::asym, 32};
    case GgmlType::tq1_0:
    case GgmlType::tq2_0: return QType{Base::q, 2, Scheme::sym, 256};
    default: return std::nullopt;
  }
}

void ggml_repack(GgmlType t, const uint8_t* blocks, int64_t rows, int64_t cols, uint8_t* dst,
                 ThreadPool* pool) {
  const std::optional<QType> qt = ggml_exact_type(t);
  if (!qt) throw Error(name_of(t) + " has no exact lowbit type");
  const GgmlTypeInfo info = whole_blocks(t, cols, "row length");
  if (rows < 0) throw Error(name_of(t) + ": negative row count " + std::to_string(rows));
  const QLayout l = q_layout(*qt, rows, cols);
  if (is_float(t)) {  // the same little-endian elements, rows contiguous in both
    std::memcpy(dst, blocks, (size_t)l.bytes);
    return;
  }
  // One lowbit group per ggml block (the exact types' group is their block size).
  const int64_t per_row = cols / info.block_weights;
  std::memset(dst, 0, (size_t)l.bytes);  // padding, and the bits put_code leaves alone
  for_ranges(rows, kRepackRowsPerTask, pool, [&](int64_t r0, int64_t r1) {
    std::vector<uint8_t> row_codes(cols);
    BlockCodes bc;
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t g = 0; g < per_row; ++g) {
        repack_block(t, blocks + (r * per_row + g) * info.block_bytes, &bc);
        // Symmetric levels decode as d*q - z*d in lowbit and (q - z)*d in ggml: equal for finite
        // d, but an infinite d gives inf - inf = NaN where ggml gives +-inf.
        if (qt->scheme == Scheme::sym && (bc.d & 0x7c00) == 0x7c00)
          throw Error(name_of(t) + ": block " + std::to_string(g) + " of row " + std::to_string(r) +
                      " has a non-finite scale, which no lowbit type holds exactly");
        std::memcpy(row_codes.data() + g * info.block_weights, bc.code, info.block_weights);
        const int64_t at = 2 * (r * l.groups + g);
        std::memcpy(dst + l.scales_offset + at, &bc.d, 2);
        if (qt->scheme == Scheme::asym) std::memcpy(dst + l.mins_offset + at, &bc.m, 2);
      }
      put_codes(qt->bits, dst + r * l.row_bytes, row_codes.data(), cols);
    }
  });
}

}  // namespace lowbit
