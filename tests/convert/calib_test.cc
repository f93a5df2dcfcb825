// GPTQ's input moments (convert/calib.h) on stories260K at fp32: every projection's H against a
// plain double-precision X^T X of the same activations, its diagonal against the per-channel
// statistics (which tests/python/test_calib.py holds against an independent numpy forward), and
// which projections share one H.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <vector>

#include "convert/calib.h"
#include "convert/convert.h"
#include "kernels/error.h"
#include "runtime/manifest.h"
#include "runtime/model.h"
#include "tests/convert/hf_test_util.h"

namespace lowbit {
namespace {

std::unique_ptr<Model> load_f32(const std::string& source) { return load_f32_model(source, 1); }

CalibSources text_source(const std::string& text, int64_t tokens, int64_t ctx) {
  CalibSources s;
  s.text_file = text;
  s.text_tokens = tokens;
  s.ctx = ctx;
  return s;
}

TEST(InputMoments, EqualXtXOfTheSameActivations) {
  const std::string src = test::kModels + "/stories260K";
  const std::string text = test::kModels + "/../corpus/tinystories_sample.txt";
  const std::unique_ptr<Model> model = load_f32(src);
  const CalibStats st = collect_calibration(*model, text_source(text, 200, 64));  // windows of 64, 64, 64, 8
  ASSERT_EQ(st.windows.size(), 4u);
  const InputMoments mo = collect_input_moments(*model, st.windows);
  EXPECT_EQ(mo.rows, st.tokens);

  // The same activations, summed in double by the plain definition, per projection.
  std::map<std::string, std::vector<double>> ref;
  Session s(*model);
  s.set_observer([&](const std::string& name, const float* x, int64_t m, int64_t k) {
    std::vector<double>& h = ref[name];
    h.resize((size_t)(k * k));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t a = 0; a < k; ++a)
        for (int64_t b = 0; b < k; ++b) h[a * k + b] += (double)x[i * k + a] * x[i * k + b];
  });
  std::vector<float> logits;
  for (const auto& w : st.windows) {
    logits.resize(w.size() * (size_t)model->config().vocab_size);
    s.reset();
    s.eval(w.data(), (int64_t)w.size(), logits.data(), true);
  }
  ASSERT_EQ(mo.h.size(), ref.size());
  ASSERT_EQ(ref.size(), 5u * 7 + 1);  // 5 layers x 7 projections, and the head (the tied embedding)
  for (const auto& [name, r] : ref) {
    const std::vector<float>* h = mo.of(name);
    ASSERT_NE(h, nullptr) << name;
    ASSERT_EQ(h->size(), r.size()) << name;
    const int64_t k = (int64_t)std::lround(std::sqrt((double)r.size()));
    const std::vector<float>& diag = *st.importance(name);
    for (int64_t a = 0; a < k; ++a) {
      // The window products are summed in fp32 (the matmul kernels) and the windows added in
      // fp32: each entry carries at most (rows + windows) * 2^-24 of the sum of |products|,
      // bounded by Cauchy-Schwarz through the two diagonals.
      const double bound_a = (mo.rows + 4) * std::ldexp(1.0, -24);
      for (int64_t b = 0; b < k; ++b) {
        const double mag = std::sqrt(r[a * k + a] * r[b * k + b]);
        EXPECT_NEAR((*h)[a * k + b], r[a * k + b], bound_a * mag + 1e-30) << name << " (" << a << ", " << b << ")";
      }
      EXPECT_NEAR((*h)[a * k + a] / (double)mo.rows, diag[a], 1e-5 * diag[a] + 1e-30) << name << " column " << a;
    }
  }
  // q, k and v read one input, as do gate and up: one matrix each; o and down have their own.
  for (int l = 0; l < 5; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    EXPECT_EQ(mo.of(p + "self_attn.q_proj.weight"), mo.of(p + "self_attn.k_proj.weight"));
    EXPECT_EQ(mo.of(p + "self_attn.q_proj.weight"), mo.of(p + "self_attn.v_proj.weight"));
    EXPECT_EQ(mo.of(p + "mlp.gate_proj.weight"), mo.of(p + "mlp.up_proj.weight"));
    EXPECT_NE(mo.of(p + "self_attn.q_proj.weight"), mo.of(p + "self_attn.o_proj.weight"));
    EXPECT_NE(mo.of(p + "mlp.gate_proj.weight"), mo.of(p + "mlp.down_proj.weight"));
  }
}

// The calibration pass's moments are collect_input_moments' on the windows it fed, exactly: the
// same activations summed by the same kernels in the same order.
TEST(InputMoments, CollectedInTheCalibrationPassEqualASeparatePass) {
  const std::unique_ptr<Model> model = load_f32(test::kModels + "/stories260K");
  InputMoments in_pass;
  const CalibStats st =
      collect_calibration(*model, text_source(test::kModels + "/../corpus/tinystories_sample.txt", 150, 64), &in_pass);
  const InputMoments separate = collect_input_moments(*model, st.windows);
  EXPECT_EQ(in_pass.rows, separate.rows);
  ASSERT_EQ(in_pass.h.size(), separate.h.size());
  for (const auto& [name, h] : separate.h) {
    ASSERT_NE(in_pass.of(name), nullptr) << name;
    EXPECT_EQ(*in_pass.of(name), *h) << name;
  }
  EXPECT_EQ(in_pass.of("model.layers.0.self_attn.q_proj.weight"), in_pass.of("model.layers.0.self_attn.v_proj.weight"));
}

TEST(InputMoments, NoWindowsIsAnError) {
  const std::unique_ptr<Model> model = load_f32(test::kModels + "/stories260K");
  EXPECT_THROW(collect_input_moments(*model, {}), Error);
}

}  // namespace
}  // namespace lowbit
