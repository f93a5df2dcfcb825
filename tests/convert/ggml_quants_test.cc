// convert/ggml_quants.h: hand-built ggml blocks decode to the values their format definition gives
// (worked out here from ggml-common.h's layouts, not from the code under test); the exact types
// repack into lowbit's layout so that lowbit's own dequantization (kernels/quantize.h) returns
// ggml's values bit for bit, with zero padding, on awkward shapes; unsupported types are refused
// by name. Agreement with an independent implementation (gguf-py) on every type, synthetic and
// real, is tests/python/test_ggml_dequant.py's job.
#include "convert/ggml_quants.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kernels/qtype.h"
#include "kernels/quantize.h"
#include "kernels/thread_pool.h"
#include "tests/error_of.h"

namespace lowbit {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = (uint8_t)(v & 0xff);
  b[at + 1] = (uint8_t)(v >> 8);
}

std::vector<float> dequant(GgmlType t, const Bytes& b, int64_t n) {
  std::vector<float> out(n);
  ggml_dequantize(t, b.data(), n, out.data());
  return out;
}

// fp16 constants spelled as bits, so expected values do not go through the code's conversions.
constexpr uint16_t kHalf = 0x3800, kQuarter = 0x3400, kOne = 0x3C00, kTwo = 0x4000;
constexpr uint16_t kMinusOneAndHalf = 0xBE00;

// ---- Hand-built blocks ------------------------------------------------------------------------

TEST(GgmlDequantize, q4_0_block_by_hand) {
  // d = 0.5; byte j of qs holds code j (low nibble: weight j) and 15 - j (high: weight j + 16).
  Bytes b(18);
  put16(b, 0, kHalf);
  for (int j = 0; j < 16; ++j) b[2 + j] = (uint8_t)(j | (15 - j) << 4);
  const std::vector<float> y = dequant(GgmlType::q4_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * (float)(j - 8)) << j;
    EXPECT_EQ(y[j + 16], 0.5f * (float)(7 - j)) << j;
  }
}

TEST(GgmlDequantize, q4_1_and_q8_0_blocks_by_hand) {
  Bytes q41(20);  // d = 0.25, m = -1.5, codes as above: w = 0.25 q - 1.5
  put16(q41, 0, kQuarter);
  put16(q41, 2, kMinusOneAndHalf);
  for (int j = 0; j < 16; ++j) q41[4 + j] = (uint8_t)(j | (15 - j) << 4);
  const std::vector<float> y = dequant(GgmlType::q4_1, q41, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.25f * (float)j - 1.5f);
    EXPECT_EQ(y[j + 16], 0.25f * (float)(15 - j) - 1.5f);
  }
  Bytes q80(34);  // d = 2, int8 x = 8j - 128 for weight j
  put16(q80, 0, kTwo);
  for (int j = 0; j < 32; ++j) q80[2 + j] = (uint8_t)(int8_t)(8 * j - 128);
  const std::vector<float> z = dequant(GgmlType::q8_0, q80, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(z[j], 2.0f * (float)(8 * j - 128));
}

TEST(GgmlDequantize, q5_0_block_by_hand) {
  // d = 1; low nibble of weight j is j % 16, fifth bit (bit j of qh) set for odd j: q - 16.
  Bytes b(22);
  put16(b, 0, kOne);
  for (int i = 0; i < 4; ++i) b[2 + i] = 0xAA;
  for (int j = 0; j < 16; ++j) b[6 + j] = (uint8_t)(j | j << 4);
  const std::vector<float> y = dequant(GgmlType::q5_0, b, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (float)((j % 16 | (j % 2) << 4) - 16)) << j;
}

TEST(GgmlDequantize, q4_k_block_by_hand) {
  // d = 1, dmin = 0.5; 6-bit scales/mins chosen to use the top bits of the packing; weight i of
  // sub-block j = i / 32 has code i % 16: w = sc_j * (i % 16) - 0.5 * m_j.
  const int sc[8] = {1, 2, 3, 63, 17, 33, 48, 5}, m[8] = {0, 1, 60, 7, 40, 9, 21, 63};
  Bytes b(144);
  put16(b, 0, kOne);
  put16(b, 2, kHalf);
  for (int j = 0; j < 4; ++j) {  // ggml-common.h: scales[12] packs 8 (scale, min) pairs
    b[4 + j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
    b[4 + j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
    b[4 + j + 8] = (uint8_t)((sc[j + 4] & 0xF) | (m[j + 4] & 0xF) << 4);
  }
  for (int i = 0; i < 256; ++i)  // byte 32*(i/64) + i%32 of qs, nibble (i/32) % 2
    b[16 + 32 * (i / 64) + i % 32] |= (uint8_t)((i % 16) << (4 * ((i / 32) % 2)));
  const std::vector<float> y = dequant(GgmlType::q4_k, b, 256);
  for (int i = 0; i < 256; ++i)
    EXPECT_EQ(y[i], (float)(sc[i / 32] * (i % 16)) - 0.5f * (float)m[i / 32]) << i;
}

TEST(GgmlDequantize, q6_k_block_by_hand) {
  // d = 0.5, int8 scale s - 8 for the 16 weights of sub-block s, code (i % 64) biased by 32.
  Bytes b(210);
  for (int i = 0; i < 256; ++i) {
    const int q = i % 64, half = i / 128, p = (i % 128) / 32, l = i % 32;
    b[64 * half + 32 * (p % 2) + l] |= (uint8_t)((q & 0xF) << (4 * (p / 2)));
    b[128 + 32 * half + l] |= (uint8_t)((q >> 4) << (2 * p));
  }
  for (int s = 0; s < 16; ++s) b[192 + s] = (uint8_t)(int8_t)(s - 8);
  put16(b, 208, kHalf);
  const std::vector<float> y = dequant(GgmlType::q6_k, b, 256);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], 0.5f * (float)((i / 16 - 8) * (i % 64 - 32))) << i;
}

TEST(GgmlDequantize, tq1_0_block_by_hand) {
  // Base-3 digits (2, 0, 1, 2, 1) -> 2*81 + 9 + 2*3 + 1 = 178 -> ceil(178 * 256 / 243) = 188 in
  // every qs byte; digits (2, 0, 1, 2) -> 2*81 + 9 + 2*3 = 177 -> 187 in every qh byte. d = 2.
  Bytes b(54);
  for (int i = 0; i < 48; ++i) b[i] = 188;
  for (int i = 0; i < 4; ++i) b[48 + i] = 187;
  put16(b, 52, kTwo);
  const int digits[5] = {2, 0, 1, 2, 1};
  std::vector<float> want;  // digit-major: qs[0..32) x 5 digits, qs[32..48) x 5, qh x 4
  for (int n = 0; n < 5; ++n) want.insert(want.end(), 32, 2.0f * (float)(digits[n] - 1));
  for (int n = 0; n < 5; ++n) want.insert(want.end(), 16, 2.0f * (float)(digits[n] - 1));
  for (int n = 0; n < 4; ++n) want.insert(want.end(), 4, 2.0f * (float)(digits[n] - 1));
  EXPECT_EQ(dequant(GgmlType::tq1_0, b, 256), want);
}

TEST(GgmlDequantize, float_types) {
  const Bytes f16 = {0x00, 0x3C, 0x00, 0xC0};  // 1, -2
  EXPECT_EQ(dequant(GgmlType::f16, f16, 2), (std::vector<float>{1.0f, -2.0f}));
  const Bytes bf16 = {0x80, 0x3F, 0x40, 0xC0};  // 1, -3
  EXPECT_EQ(dequant(GgmlType::bf16, bf16, 2), (std::vector<float>{1.0f, -3.0f}));
  const Bytes f32 = {0x00, 0x00, 0xC0, 0x3F};  // 1.5
  EXPECT_EQ(dequant(GgmlType::f32, f32, 1), (std::vector<float>{1.5f}));
}

TEST(GgmlDequantize, pool_gives_the_same_values) {
  // 2000 Q4_K blocks: 512,000 weights, several tasks of the pool.
  std::mt19937 rng(7);
  Bytes b(2000 * 144);
  for (auto& x : b) x = (uint8_t)(rng() & 0x3B);  // fp16 d/dmin exponents stay below 31
  std::vector<float> one(2000 * 256), many(2000 * 256);
  ggml_dequantize(GgmlType::q4_k, b.data(), (int64_t)one.size(), one.data());
  ThreadPool pool(3);
  ggml_dequantize(GgmlType::q4_k, b.data(), (int64_t)many.size(), many.data(), &pool);
  EXPECT_EQ(0, std::memcmp(one.data(), many.data(), one.size() * sizeof(float)));
}

// ---- Refusals ---------------------------------------------------------------------------------

TEST(GgmlDequantize, which_types) {
  for (GgmlType t : {GgmlType::f32, GgmlType::f16, GgmlType::bf16, GgmlType::q4_0, GgmlType::q4_1,
                     GgmlType::q5_0, GgmlType::q5_1, GgmlType::q8_0, GgmlType::q2_k, GgmlType::q3_k,
                     GgmlType::q4_k, GgmlType::q5_k, GgmlType::q6_k, GgmlType::tq1_0,
                     GgmlType::tq2_0, GgmlType::iq4_nl, GgmlType::iq4_xs})
    EXPECT_TRUE(ggml_can_dequantize(t)) << ggml_type_name((uint32_t)t);
  for (GgmlType t : {GgmlType::q8_1, GgmlType::q8_k, GgmlType::iq2_xxs, GgmlType::iq1_m,
                     GgmlType::i8, GgmlType::f64, GgmlType::mxfp4})
    EXPECT_FALSE(ggml_can_dequantize(t)) << ggml_type_name((uint32_t)t);
}

TEST(GgmlDequantize, refuses_by_name) {
  const Bytes b(4096);
  std::vector<float> out(1024);
  EXPECT_THAT(test::error_of([&] { ggml_dequantize(GgmlType::iq2_xxs, b.data(), 256, out.data()); }),
              HasSubstr("IQ2_XXS"));
  EXPECT_THAT(test::error_of([&] { ggml_dequantize(GgmlType::q4_k, b.data(), 100, out.data()); }),
              AllOf(HasSubstr("Q4_K"), HasSubstr("100"), HasSubstr("256-weight blocks")));
  EXPECT_THAT(test::error_of([&] { ggml_repack(GgmlType::q5_0, b.data(), 1, 32, nullptr); }),
              AllOf(HasSubstr("Q5_0"), HasSubstr("no exact lowbit type")));
  EXPECT_THAT(test::error_of([&] { ggml_repack(GgmlType::q8_0, b.data(), 1, 48, nullptr); }),
              AllOf(HasSubstr("Q8_0"), HasSubstr("48")));
}

TEST(GgmlRepack, refuses_a_non_finite_symmetric_scale) {
  Bytes b(2 * 18);  // two Q4_0 blocks in one row, the second with d = +inf
  put16(b, 0, kOne);
  put16(b, 18, 0x7C00);
  Bytes dst(q_layout(*ggml_exact_type(GgmlType::q4_0), 1, 64).bytes);
  EXPECT_THAT(test::error_of([&] { ggml_repack(GgmlType::q4_0, b.data(), 1, 64, dst.data()); }),
              AllOf(HasSubstr("Q4_0"), HasSubstr("block 1 of row 0"), HasSubstr("non-finite")));
}

TEST(GgmlRepack, exact_types) {
  EXPECT_EQ(type_name(*ggml_exact_type(GgmlType::f32)), "f32");
  EXPECT_EQ(type_name(*ggml_exact_type(GgmlType::f16)), "f16");
  EXPECT_EQ(type_name(*ggml_exact_type(GgmlType::bf16)), "bf16");
  EXPECT_EQ(type_name(*ggml_exact_type(GgmlType::q8_0)), "q8_g32_sym");
  EXPECT_EQ(type_name(*ggml_exact_type(GgmlType::q4_0)), "q4_g32_sym");
  EXPECT_EQ(type_name(*ggml_exact_type(GgmlType::q4_1)), "q4_g32_asym");
  EXPECT_EQ(type_name(*ggml_exact_type(GgmlType::tq1_0)), "q2_g256_sym");
  EXPECT_EQ(type_name(*ggml_exact_type(GgmlType::tq2_0)), "q2_g256_sym");
  for (GgmlType t : {GgmlType::q5_0, GgmlType::q4_k, GgmlType::q6_k, GgmlType::iq4_nl})
    EXPECT_FALSE(ggml_exact_type(t).has_value()) << ggml_type_name((uint32_t)t);
}

// ---- Repack: lowbit's dequantization of the result == ggml's, on random blocks ----------------

// Byte offsets of each exact type's fp16 d (and m) in its block: ggml-common.h.
struct ExactCase {
  GgmlType type;
  std::vector<int> f16_fields;
};

const ExactCase kExact[] = {
    {GgmlType::f32, {}},        {GgmlType::f16, {}},        {GgmlType::bf16, {}},
    {GgmlType::q8_0, {0}},      {GgmlType::q4_0, {0}},      {GgmlType::q4_1, {0, 2}},
    {GgmlType::tq2_0, {64}},    {GgmlType::tq1_0, {52}},
};

// Random blocks: random bytes, every float finite (fp16 fields: any sign, subnormals and zero
// included; f32 / bf16 / f16 elements likewise).
Bytes random_blocks(const ExactCase& c, int64_t n_blocks, uint32_t seed) {
  const GgmlTypeInfo info = *ggml_type_info((uint32_t)c.type);
  std::mt19937 rng(seed);
  Bytes b(n_blocks * info.block_bytes);
  for (auto& x : b) x = (uint8_t)rng();
  // An all-ones exponent (inf/NaN) loses its top bit; fp16's and bf16's both sit at 0x4000.
  auto finite16 = [&](uint8_t* p, uint16_t exp_mask) {
    uint16_t v = (uint16_t)(p[0] | p[1] << 8);
    if ((v & exp_mask) == exp_mask) v &= 0xBFFF;
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
  };
  for (int64_t k = 0; k < n_blocks; ++k) {
    uint8_t* p = b.data() + k * info.block_bytes;
    if (c.type == GgmlType::f16) finite16(p, 0x7C00);
    if (c.type == GgmlType::bf16) finite16(p, 0x7F80);
    if (c.type == GgmlType::f32) finite16(p + 2, 0x7F80);  // the top half holds the exponent
    for (int off : c.f16_fields) finite16(p + off, 0x7C00);
  }
  return b;
}

class Repack : public ::testing::TestWithParam<std::tuple<int, int64_t, int64_t>> {};

TEST_P(Repack, lowbit_dequantize_equals_ggml) {
  const auto [which, rows, blocks_per_row] = GetParam();
  const ExactCase& c = kExact[which];
  const GgmlTypeInfo info = *ggml_type_info((uint32_t)c.type);
  const int64_t cols = blocks_per_row * info.block_weights;
  const QType qt = *ggml_exact_type(c.type);
  const QLayout l = q_layout(qt, rows, cols);
  const Bytes src = random_blocks(c, rows * blocks_per_row, (uint32_t)(1000 * which + rows + cols));

  std::vector<float> want(rows * cols);
  ggml_dequantize(c.type, src.data(), rows * cols, want.data());

  // Written over a non-zero fill with a guard behind: every byte of the layout is written, and
  // nothing past it.
  constexpr uint8_t kFill = 0xA5;
  Bytes dst(l.bytes + 64, kFill);
  ggml_repack(c.type, src.data(), rows, cols, dst.data());
  for (int64_t i = l.bytes; i < (int64_t)dst.size(); ++i) ASSERT_EQ(dst[i], kFill) << "past the end";

  // A pool splits the rows and changes no byte.
  ThreadPool pool(3);
  Bytes pooled(l.bytes);
  ggml_repack(c.type, src.data(), rows, cols, pooled.data(), &pool);
  ASSERT_TRUE(std::equal(pooled.begin(), pooled.end(), dst.begin()));

  std::vector<float> got(rows * cols);
  dequantize(qt, dst.data(), rows, cols, got.data());
  // Bit patterns, except that a symmetric zero level may be +0 in lowbit where ggml has -0
  // (ggml_quants.h); asymmetric and float types compute ggml's own expression, so not even that.
  const bool zero_sign_may_differ = is_quantized(qt) && qt.scheme == Scheme::sym;
  int64_t zero_signs = 0;
  for (int64_t i = 0; i < rows * cols; ++i) {
    const uint32_t g = f32_bits(got[i]), w = f32_bits(want[i]);
    if (g == w) continue;
    if (zero_sign_may_differ && got[i] == 0.0f && want[i] == 0.0f) {
      ++zero_signs;
      continue;
    }
    ADD_FAILURE() << "row " << i / cols << " col " << i % cols << ": lowbit " << got[i] << " (0x"
                  << std::hex << g << ") ggml " << want[i] << " (0x" << w << ")" << std::dec;
    return;
  }
  RecordProperty("zero_signs", (int)zero_signs);

  if (!is_quantized(qt)) return;  // float layouts have no padding
  // Padding is zero: codes past cols in each row, and the gaps between and after sections.
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = cols; i < l.row_bytes * 8 / qt.bits; ++i)
      ASSERT_EQ(get_code(dst.data() + r * l.row_bytes, qt.bits, i), 0u) << "row " << r << " code " << i;
  const int64_t scales_end = l.scales_offset + 2 * rows * l.groups;
  const int64_t gap_end = qt.scheme == Scheme::asym ? l.mins_offset : l.bytes;
  for (int64_t i = rows * l.row_bytes; i < l.scales_offset; ++i) ASSERT_EQ(dst[i], 0) << i;
  for (int64_t i = scales_end; i < gap_end; ++i) ASSERT_EQ(dst[i], 0) << i;
}

std::string repack_name(const ::testing::TestParamInfo<Repack::ParamType>& p) {
  const auto [which, rows, blocks] = p.param;
  std::string name(ggml_type_info((uint32_t)kExact[which].type)->name);
  for (char& ch : name) ch = (char)std::tolower(ch);
  return name + "_r" + std::to_string(rows) + "_b" + std::to_string(blocks);
}

INSTANTIATE_TEST_SUITE_P(GgmlRepack, Repack,
                         ::testing::Combine(::testing::Range(0, (int)std::size(kExact)),
                                            ::testing::Values<int64_t>(1, 2, 7),
                                            ::testing::Values<int64_t>(1, 3, 8)),
                         repack_name);

}  // namespace
}  // namespace lowbit
