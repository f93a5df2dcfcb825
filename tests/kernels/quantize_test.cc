// Quantize -> dequantize against fp32: each weight within what one quantization step allows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "kernels/error.h"
#include "kernels/quantize.h"
#include "tests/kernels/test_util.h"

namespace lowbit {
namespace {

using test::AlignedBytes;

constexpr float kF16Eps = 1.0f / 1024;  // fp16 relative rounding is at most 2^-11; doubled for safety margin of the product d*q

struct Case {
  QType type;
  int64_t k;
  Quantizer qz;
};

std::string case_name(const testing::TestParamInfo<Case>& info) {
  return type_name(info.param.type) + "_k" + std::to_string(info.param.k) + "_" +
         quantizer_name(info.param.qz);
}

void PrintTo(const Case& c, std::ostream* os) {
  *os << type_name(c.type) << " k=" << c.k << " " << quantizer_name(c.qz);
}

class QuantizeRoundTrip : public testing::TestWithParam<Case> {};

// Largest error RTN may make on one weight of a group, from the decode formula:
//  sym b>=2: the largest magnitude maps to level -z exactly; values of the other sign can reach
//            z*d but the top level is (z-1)*d, so one full step d; plus fp16 rounding of d times
//            the largest level z.
//  sym b=1:  not a step bound: each weight becomes sign(w)*mean|w|, checked separately.
//  asym:     half a step d/2 within [min, max], plus fp16 rounding of m and of d times the
//            largest code 2^b - 1.
float rtn_bound(const QType& t, float d, float m) {
  const float ad = std::fabs(d);
  if (t.scheme == Scheme::sym) return ad + sym_offset(t.bits) * ad * kF16Eps;
  return 0.5f * ad + std::fabs(m) * kF16Eps + ((1 << t.bits) - 1) * ad * kF16Eps;
}

TEST_P(QuantizeRoundTrip, WithinOneStep) {
  const auto [t, k, qz] = GetParam();
  const int64_t n = 9;
  auto w = test::random_matrix(n, k, 7 + (uint32_t)k);
  const QLayout l = q_layout(t, n, k);
  AlignedBytes buf(l.bytes);
  quantize(t, w.data(), n, k, buf.data(), qz);
  std::vector<float> back(n * k);
  dequantize(t, buf.data(), n, k, back.data());
  const QSections<const uint8_t> sec = q_sections(t, n, k, (const uint8_t*)buf.data());
  const int64_t gs = group_size(t, k);
  for (int64_t r = 0; r < n; ++r) {
    double err_sq = 0, ref_sq = 0;
    for (int64_t g = 0; g < l.groups; ++g) {
      const float d = f16_to_f32(sec.scale_at(r, g));
      const float m = f16_to_f32(sec.min_at(r, g));
      double mean_abs = 0;
      const int64_t b = g * gs, e = std::min(k, b + gs);
      for (int64_t i = b; i < e; ++i) mean_abs += std::fabs(w[r * k + i]) / (e - b);
      for (int64_t i = b; i < e; ++i) {
        const float x = w[r * k + i], y = back[r * k + i];
        err_sq += (double)(x - y) * (x - y);
        ref_sq += (double)x * x;
        if (qz != Quantizer::rtn) continue;
        if (t.scheme == Scheme::sym && t.bits == 1) {
          ASSERT_NEAR(y, x >= 0 ? d : -d, 1e-6f) << "row " << r << " col " << i;
          ASSERT_NEAR(d, mean_abs, mean_abs * kF16Eps);
        } else {
          // Coded scales: RTN's d and m are each off by at most one code step (D, M) from the
          // group's own, which moves the range's ends by (2^b - 1) D + M at most.
          const float coded = sec.coded() ? ((1 << t.bits) - 1) * bf16_to_f32(sec.factors[2 * r]) +
                                                std::fabs(bf16_to_f32(sec.factors[2 * r + 1]))
                                          : 0.0f;
          ASSERT_LE(std::fabs(x - y), (rtn_bound(t, d, m) + coded) * 1.0001f) << "row " << r << " col " << i;
        }
      }
    }
    if (qz == Quantizer::search && sec.coded()) {
      // Coded scales: the row factors come from the fp16 search, whose (d, m) rounded to the
      // nearest codes (each weight then at its nearest level) is one of the candidates, so the
      // coded search's squared error is never larger than that.
      QType t16 = t;
      t16.scales = ScaleCode::f16;
      AlignedBytes f16(q_layout(t16, 1, k).bytes);
      quantize(t16, w.data() + r * k, 1, k, f16.data(), Quantizer::search);
      const QSections<const uint8_t> s16 = q_sections(t16, 1, k, (const uint8_t*)f16.data());
      const float D = bf16_to_f32(sec.factors[2 * r]), M = bf16_to_f32(sec.factors[2 * r + 1]);
      double near_sq = 0;
      for (int64_t g = 0; g < l.groups; ++g) {
        const int dc = D > 0 ? std::clamp((int)std::nearbyint(f16_to_f32(s16.scale_at(0, g)) / D), 0, kMaxScaleCode) : 0;
        const int mc = M > 0 ? std::clamp((int)std::nearbyint(f16_to_f32(s16.min_at(0, g)) / M), -kMaxMinCode, kMaxMinCode) : 0;
        const float d = f16_to_f32(decode_scale(sec.factors[2 * r], dc)), m = f16_to_f32(decode_scale(sec.factors[2 * r + 1], mc));
        for (int64_t i = g * gs; i < std::min(k, (g + 1) * gs); ++i) {
          const float x = w[r * k + i];
          const int c = std::clamp((int)std::nearbyint(d != 0 ? (x - m) / d : 0.0f), 0, (1 << t.bits) - 1);
          near_sq += (double)(x - (d * c + m)) * (x - (d * c + m));
        }
      }
      EXPECT_LE(err_sq, near_sq * (1 + 1e-5) + 1e-12) << "row " << r;
    } else if (qz == Quantizer::search) {
      // The search keeps the RTN result as a candidate, so its squared error is never larger.
      AlignedBytes rtn(l.bytes);
      quantize(t, w.data() + r * k, 1, k, rtn.data(), Quantizer::rtn);
      std::vector<float> rb(k);
      dequantize(t, rtn.data(), 1, k, rb.data());
      double rtn_sq = 0;
      for (int64_t i = 0; i < k; ++i) rtn_sq += (double)(w[r * k + i] - rb[i]) * (w[r * k + i] - rb[i]);
      EXPECT_LE(err_sq, rtn_sq * (1 + 1e-6) + 1e-12) << "row " << r;
    }
    // The searched scales beat the all-zero matrix. (Min-max RTN need not at 1 bit: its two
    // levels are the group's extremes.)
    if (qz == Quantizer::search) EXPECT_LT(err_sq, ref_sq) << "row " << r;
  }
}

std::vector<Case> round_trip_cases() {
  std::vector<Case> out;
  for (const QType& t : test::all_quant_types())
    for (int64_t k : {32, 64, 172, 4096})
      for (Quantizer qz : {Quantizer::rtn, Quantizer::search}) out.push_back({t, k, qz});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Quantize, QuantizeRoundTrip, testing::ValuesIn(round_trip_cases()), case_name);

TEST(Quantize, FloatTypesRoundOnce) {
  const int64_t n = 3, k = 172;
  auto w = test::random_matrix(n, k, 3);
  for (const QType& t : test::float_types()) {
    AlignedBytes buf(q_layout(t, n, k).bytes);
    quantize(t, w.data(), n, k, buf.data());
    std::vector<float> back(n * k);
    dequantize(t, buf.data(), n, k, back.data());
    // Round to nearest: relative error at most half an ulp, 2^-24 (f32: exact), 2^-11, 2^-8.
    const float rel = t.base == Base::f32 ? 0.0f : t.base == Base::f16 ? 1.0f / 2048 : 1.0f / 256;
    for (int64_t i = 0; i < n * k; ++i) ASSERT_LE(std::fabs(back[i] - w[i]), std::fabs(w[i]) * rel) << type_name(t);
  }
}

TEST(Quantize, SpecialRows) {
  const int64_t k = 172;
  for (const QType& t : test::all_quant_types()) {
    std::vector<float> w(3 * k, 0.0f);
    for (int64_t i = 0; i < k; ++i) w[k + i] = 0.75f;                        // constant row
    for (int64_t i = 0; i < k; ++i) w[2 * k + i] = (i % 2 ? 1 : -1) * 3.0e3f * (1 + i % 5);  // large
    AlignedBytes buf(q_layout(t, 3, k).bytes);
    quantize(t, w.data(), 3, k, buf.data(), Quantizer::search);
    std::vector<float> back(3 * k);
    dequantize(t, buf.data(), 3, k, back.data());
    for (int64_t i = 0; i < k; ++i) ASSERT_EQ(back[i], 0.0f) << type_name(t) << " zero row";
    // Coded scales: the minimum 0.75 is a multiple of the row factor M, within half of M.
    const QSections<const uint8_t> sec = q_sections(t, 3, k, (const uint8_t*)buf.data());
    const float half_m = sec.coded() ? bf16_to_f32(sec.factors[2 * 1 + 1]) / 2 : 0.0f;
    for (int64_t i = 0; i < k; ++i)
      ASSERT_NEAR(back[k + i], 0.75f, 0.75f * kF16Eps * 2 + half_m) << type_name(t) << " constant row";
    double err = 0, ref = 0;
    for (int64_t i = 0; i < k; ++i) err += std::pow(back[2 * k + i] - w[2 * k + i], 2), ref += std::pow(w[2 * k + i], 2);
    EXPECT_LT(err, ref) << type_name(t) << " large row";
  }
}

TEST(Quantize, NonFiniteIsAnError) {
  const int64_t k = 64;
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    for (QType t : {parse_type("q4_g32_sym"), parse_type("q8_row_asym"), parse_type("f16")}) {
      auto w = test::random_matrix(2, k, 1);
      w[k + 17] = bad;
      AlignedBytes buf(q_layout(t, 2, k).bytes);
      try {
        quantize(t, w.data(), 2, k, buf.data());
        FAIL() << "no error for " << bad;
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("column 17"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("row 1"), std::string::npos) << e.what();
      }
    }
  }
}

// ---- importance-weighted search (quantize.h) ----------------------------------------------------

double weighted_sq_error(const QType& t, const std::vector<float>& w, int64_t n, int64_t k, const uint8_t* q,
                         const std::vector<float>* imp) {
  std::vector<float> back(n * k);
  dequantize(t, q, n, k, back.data());
  double e = 0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j)
      e += (imp ? (*imp)[j] : 1.0) * std::pow((double)back[r * k + j] - w[r * k + j], 2);
  return e;
}

// A column whose importance dwarfs the rest of its group must come back as exactly as the fp16
// scale (and minimum) allow: minimizing sum_j imp_j (w_j - q_j)^2 fits it first. The column is
// each group's largest weight, so every scale the search tries gives it a nonzero level.
TEST(QuantizeImportance, DominantColumnIsKept) {
  const int64_t n = 8, k = 128;
  auto w = test::random_matrix(n, k, 21);
  for (const char* name : {"q2_g32_asym", "q2_g32_sym", "q4_g32_asym", "q4_g64_sym", "q8_g32_sym", "q2_g128_asym"}) {
    const QType t = parse_type(name);
    const int64_t gs = group_size(t, k);
    for (int64_t r = 0; r < n; ++r) {
      // The row's own dominant columns: its largest |w| in each group.
      std::vector<float> imp(k, 1.0f);
      std::vector<int64_t> cols;
      for (int64_t b = 0; b < k; b += gs) {
        int64_t j = b;
        for (int64_t i = b; i < b + gs; ++i)
          if (std::fabs(w[r * k + i]) > std::fabs(w[r * k + j])) j = i;
        imp[j] = 1e6f;
        cols.push_back(j);
      }
      AlignedBytes buf(q_layout(t, 1, k).bytes);
      quantize(t, w.data() + r * k, 1, k, buf.data(), Quantizer::search, nullptr, imp.data());
      std::vector<float> back(k);
      dequantize(t, buf.data(), 1, k, back.data());
      const QSections<const uint8_t> sec = q_sections(t, 1, k, (const uint8_t*)buf.data());
      for (int64_t j : cols) {
        const float d = std::fabs(f16_to_f32(sec.scale_at(0, j / gs)));
        const float m = std::fabs(f16_to_f32(sec.min_at(0, j / gs)));
        // fp16 rounding of d times the largest level, and of m.
        const float bound = ((1 << t.bits) * d + m) * kF16Eps;
        EXPECT_LE(std::fabs(back[j] - w[r * k + j]), bound) << name << " row " << r << " column " << j;
      }
    }
  }
}

// Over many groups with importance spread over three orders of magnitude, the weighted search
// reaches a lower weighted error than the plain search (it optimizes that error; the plain one
// does not look at it), and the plain search a lower plain error than the weighted one.
TEST(QuantizeImportance, LowersTheWeightedError) {
  const int64_t n = 64, k = 256;
  auto w = test::random_matrix(n, k, 5);
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-1.5f, 1.5f);
  std::vector<float> imp(k);
  for (float& v : imp) v = std::pow(10.0f, u(rng));
  for (const char* name : {"q2_g32_asym", "q2_g32_sym", "q4_g32_asym", "q4_g128_asym", "q4_g32_sym", "q1_g32_sym",
                           "q1_g64_asym", "q8_g32_sym"}) {
    const QType t = parse_type(name);
    AlignedBytes plain(q_layout(t, n, k).bytes), weighted(q_layout(t, n, k).bytes);
    quantize(t, w.data(), n, k, plain.data(), Quantizer::search);
    quantize(t, w.data(), n, k, weighted.data(), Quantizer::search, nullptr, imp.data());
    const double wp = weighted_sq_error(t, w, n, k, plain.data(), &imp);
    const double ww = weighted_sq_error(t, w, n, k, weighted.data(), &imp);
    EXPECT_LT(ww, wp) << name;
    EXPECT_LE(weighted_sq_error(t, w, n, k, plain.data(), nullptr), weighted_sq_error(t, w, n, k, weighted.data(), nullptr))
        << name;
  }
}

// Round to nearest has no error to weigh, and a group whose importance is all 0 uses the plain
// error: both give the unweighted bytes exactly.
TEST(QuantizeImportance, IgnoredWhereThereIsNothingToWeigh) {
  const int64_t n = 4, k = 96;
  auto w = test::random_matrix(n, k, 8);
  std::vector<float> ones(k, 1.0f), zeros(k, 0.0f);
  for (int i = 0; i < k; ++i) ones[i] = 0.5f + (i % 7);
  for (const QType& t : test::all_quant_types()) {
    const size_t bytes = q_layout(t, n, k).bytes;
    AlignedBytes a(bytes), b(bytes);
    quantize(t, w.data(), n, k, a.data(), Quantizer::rtn);
    quantize(t, w.data(), n, k, b.data(), Quantizer::rtn, nullptr, ones.data());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), bytes), 0) << type_name(t) << " rtn";
    quantize(t, w.data(), n, k, a.data(), Quantizer::search);
    quantize(t, w.data(), n, k, b.data(), Quantizer::search, nullptr, zeros.data());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), bytes), 0) << type_name(t) << " search, importance 0";
  }
}

TEST(QuantizeImportance, BadValueIsAnError) {
  const int64_t k = 64;
  auto w = test::random_matrix(1, k, 1);
  for (float bad : {-1.0f, NAN, INFINITY}) {
    std::vector<float> imp(k, 1.0f);
    imp[3] = bad;
    AlignedBytes buf(q_layout(parse_type("q4"), 1, k).bytes);
    try {
      quantize(parse_type("q4"), w.data(), 1, k, buf.data(), Quantizer::search, nullptr, imp.data());
      FAIL() << "no error for " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("column 3"), std::string::npos) << e.what();
    }
  }
}

TEST(QType, NamesRoundTrip) {
  for (const QType& t : test::all_quant_types()) {
    const QType p = parse_type(type_name(t));
    EXPECT_EQ(type_name(p), type_name(t));
  }
  EXPECT_EQ(type_name(parse_type("q8")), "q8_g32_sym");
  EXPECT_EQ(type_name(parse_type("q4")), "q4_g32_asym");
  EXPECT_THROW(parse_type("q3_g32_sym"), Error);
  EXPECT_THROW(parse_type("q4_g48_sym"), Error);
  EXPECT_EQ(parse_type("q2_g64_asym_s6").scales, ScaleCode::c6);
  EXPECT_THROW(parse_type("q4_g32_sym_s6"), Error);   // coded scales need asym
  EXPECT_THROW(parse_type("q4_row_asym_s6"), Error);  // and a group size
  EXPECT_THROW(parse_type("q4_g32_asym_s8"), Error);
  EXPECT_THROW(parse_type("int4"), Error);
}

TEST(Format, LayoutSizes) {
  // 4-bit, K=172: 172 weights need 3 chunks of 64 -> 96 bytes a row; groups of 32 -> 6 a row.
  const QLayout l = q_layout(parse_type("q4_g32_asym"), 5, 172);
  EXPECT_EQ(l.row_bytes, 96);
  EXPECT_EQ(l.groups, 6);
  EXPECT_EQ(l.scales_offset, 512);  // 480 rounded up to 64
  EXPECT_EQ(l.mins_offset, 576);    // 512 + 5*6*2 = 572 -> 576
  EXPECT_EQ(l.bytes, 636);
  // The same sections as pointers, row by row.
  uint8_t base[640];
  const QSections<uint8_t> sec = q_sections(parse_type("q4_g32_asym"), 5, 172, base);
  EXPECT_EQ(sec.row_codes(2) - base, 2 * 96);
  EXPECT_EQ((uint8_t*)sec.row_scales(3) - base, 512 + 3 * 6 * 2);
  EXPECT_EQ((uint8_t*)sec.row_mins(4) - base, 576 + 4 * 6 * 2);
  EXPECT_EQ(q_sections(parse_type("q4_g32_sym"), 5, 172, base).mins, nullptr);
  EXPECT_EQ(q_sections(parse_type("f16"), 5, 172, base).scales, nullptr);
  // 1-bit per row, K=4096: 16 chunks of 256 weights, one group.
  const QLayout l1 = q_layout(parse_type("q1_row_sym"), 2, 4096);
  EXPECT_EQ(l1.row_bytes, 512);
  EXPECT_EQ(l1.groups, 1);
  EXPECT_EQ(l1.bytes, 1024 + 4);
  // 6-bit scale codes: 6 groups -> 36 bits -> 5 bytes a row for d and for m, then 2 bf16 row
  // factors.
  const QLayout l6 = q_layout(parse_type("q4_g32_asym_s6"), 5, 172);
  EXPECT_EQ(l6.scales_offset, 512);
  EXPECT_EQ(l6.mins_offset, 576);    // 512 + 5*5 = 537 -> 576
  EXPECT_EQ(l6.factors_offset, 640); // 576 + 25 = 601 -> 640
  EXPECT_EQ(l6.bytes, 660);
  uint8_t base6[660];
  const QSections<uint8_t> s6 = q_sections(parse_type("q4_g32_asym_s6"), 5, 172, base6);
  EXPECT_EQ(s6.scales, nullptr);
  EXPECT_EQ(s6.row_scale_codes(2) - base6, 512 + 2 * 5);
  EXPECT_EQ(s6.row_min_codes(3) - base6, 576 + 3 * 5);
  EXPECT_EQ((uint8_t*)s6.factors - base6, 640);
  // A 4096 x 4096 matrix at 4 bits, groups of 32: 4.375 bits per weight plus 32 bits a row.
  EXPECT_NEAR(bits_per_weight(parse_type("q4_g32_asym_s6"), 4096, 4096), 4.375 + 32.0 / 4096, 1e-3);
}

TEST(Format, ScaleCodesPackFourInThreeBytes) {
  // Codes 1, 2, 3, 63 at bits 0, 6, 12, 18: 1 | 2 << 6 | 3 << 12 | 63 << 18 = 0xfc3081.
  uint8_t row[4] = {0, 0, 0, 0xee};
  const unsigned codes[4] = {1, 2, 3, 63};
  for (int g = 0; g < 4; ++g) put_scale_code(row, g, codes[g]);
  EXPECT_EQ(row[0], 0x81);
  EXPECT_EQ(row[1], 0x30);
  EXPECT_EQ(row[2], 0xfc);
  EXPECT_EQ(row[3], 0xee);  // the next byte untouched
  for (int g = 0; g < 4; ++g) EXPECT_EQ(get_scale_code(row, g), codes[g]);
  put_scale_code(row, 1, 0);  // rewriting one code leaves its neighbours
  EXPECT_EQ(get_scale_code(row, 0), 1u);
  EXPECT_EQ(get_scale_code(row, 1), 0u);
  EXPECT_EQ(get_scale_code(row, 2), 3u);
}

TEST(Format, CodedScalesDecodeToFp16) {
  // d = fp16(D * c): 0.0078125 (bf16 0x3c00) * 200 = 1.5625, exact; rounding to nearest even
  // in fp16: 1/3 in bf16 is 0.333984375, times 255 = 85.166..., whose fp16 neighbours are 85.125
  // and 85.1875.
  EXPECT_EQ(f16_to_f32(decode_scale(0x3c00, 200)), 1.5625f);
  EXPECT_EQ(f16_to_f32(decode_scale(f32_to_bf16(1.0f / 3), 255)), 85.1875f);
  EXPECT_EQ(f16_to_f32(decode_scale(0x3c00, -127)), -0.9921875f);
}

TEST(Format, CodePlanes) {
  // Weight j + 32p of a chunk sits in byte j, bits [p*b, p*b+b).
  uint8_t row[64] = {};
  put_code(row, 4, 33, 0xA);  // chunk 0, byte 1, plane 1
  EXPECT_EQ(row[1], 0xA0);
  put_code(row, 2, 128 + 70, 3);  // chunk 1, r = 70: byte 6, plane 2
  EXPECT_EQ(row[32 + 6], 3 << 4);
  EXPECT_EQ(get_code(row, 2, 198), 3u);
  EXPECT_EQ(get_code(row, 4, 33), 0xAu);
}

TEST(Half, KnownValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);            // rounds to inf
  EXPECT_EQ(f32_to_f16(5.9604645e-08f), 0x0001);      // smallest subnormal
  EXPECT_EQ(f32_to_f16(2.9802322e-08f), 0x0000);      // half of it: ties to even
  EXPECT_EQ(f32_to_f16(1.0009765625f), 0x3c01);       // exactly 1 + 2^-10
  EXPECT_EQ(f32_to_f16(1.00048828125f), 0x3c00);      // 1 + 2^-11: tie to even
  EXPECT_EQ(f16_to_f32(0x3555), 0.333251953125f);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);        // 1 + 2^-8: tie to even
  for (uint32_t h = 0; h < 0x7c00; ++h) ASSERT_EQ(f32_to_f16(f16_to_f32((uint16_t)h)), h);
}

}  // namespace
}  // namespace lowbit
