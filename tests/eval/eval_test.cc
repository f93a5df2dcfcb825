// Tests of eval/eval.h: the statistics on a hand-computed example, the fp32 model against
// itself (exactly zero divergence), an outside reference NLL for stories260K, the gates, the
// reference log-prob files, the per-tensor errors and a one-row sweep.
#include "eval/eval.h"
#include "runtime/mapped_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "convert/convert.h"
#include "kernels/error.h"

namespace {

namespace fs = std::filesystem;
using namespace lowbit;

const std::string kShared = LOWBIT_SOURCE_DIR "/../shared";
const std::string kStories = kShared + "/models/stories260K";
const std::string kText = kShared + "/corpus/tinystories_sample.txt";
constexpr int64_t kCtx = 256;
constexpr int64_t kMaxTokens = 2000;

// Converted once for the suite: fp32, 8-bit groups of 32 (round to nearest), 1-bit per row.
class EvalModels : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("lowbit_eval_test_" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    auto make = [](const std::string& name, int bits, uint32_t group, Quantizer qz) {
      ConvertOptions o;
      o.bits = bits;
      o.group = group;
      o.quantizer = qz;
      o.threads = 1;
      convert_model(kStories, (*dir_ / name).string(), o);
      return Model::load((*dir_ / name).string(), eval_load_params(1, kCtx)).release();
    };
    f32_ = make("f32", 32, 32, Quantizer::rtn);
    q8_ = make("q8", 8, 32, Quantizer::rtn);
    q1_ = make("q1row", 1, 0, Quantizer::search);
    windows_ = new EvalWindows(make_windows(f32_->tokenizer(), read_file(kText, "the text file"), kText, kCtx, kMaxTokens));
  }
  static void TearDownTestSuite() {
    delete f32_;
    delete q8_;
    delete q1_;
    delete windows_;
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
  }
  static fs::path* dir_;
  static Model *f32_, *q8_, *q1_;
  static EvalWindows* windows_;
};
fs::path* EvalModels::dir_ = nullptr;
Model* EvalModels::f32_ = nullptr;
Model* EvalModels::q8_ = nullptr;
Model* EvalModels::q1_ = nullptr;
EvalWindows* EvalModels::windows_ = nullptr;

// ---- statistics, by hand -----------------------------------------------------------------------

TEST(EvalMath, LogSoftmaxOfKnownDistribution) {
  const float logits[3] = {std::log(2.0f) + 5, 5, 5};  // softmax: 0.5, 0.25, 0.25
  float out[3];
  log_softmax(logits, 3, out);
  EXPECT_NEAR(out[0], std::log(0.5), 1e-6);
  EXPECT_NEAR(out[1], std::log(0.25), 1e-6);
  EXPECT_NEAR(out[2], std::log(0.25), 1e-6);
}

TEST(EvalMath, KlNllTopOneOnTwoTokens) {
  // Token 1: P = (1/2, 1/4, 1/4), Q = (1/4, 1/2, 1/4), target 0.
  //   KL(P||Q) = 1/2 ln 2 + 1/4 ln(1/2) = ln(2) / 4; NLL_P = ln 2, NLL_Q = ln 4; top tokens differ.
  // Token 2: P = Q = (1/2, 1/4, 1/4), target 1: KL 0, both NLL ln 4, same top token.
  const float p[3] = {std::log(0.5f), std::log(0.25f), std::log(0.25f)};
  const float q[3] = {std::log(0.25f), std::log(0.5f), std::log(0.25f)};
  TokenStats s;
  add_token(p, q, 3, 0, s);
  add_token(p, p, 3, 1, s);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_NEAR(s.kl[0], std::log(2.0) / 4, 1e-7);
  EXPECT_EQ(s.kl[1], 0.0);
  EXPECT_NEAR(s.nll_ref[0], std::log(2.0), 1e-7);
  EXPECT_NEAR(s.nll_quant[0], std::log(4.0), 1e-7);

  const EvalResult r = summarize(s);
  const double l2 = std::log(2.0), z = 1.959963984540054;
  // Mean NLL: ref (ln2 + ln4)/2 = 1.5 ln2, quant ln4 = 2 ln2; ppl = exp of those.
  EXPECT_NEAR(r.ppl_ref.value, std::exp(1.5 * l2), 1e-6);
  EXPECT_NEAR(r.ppl_quant.value, 4.0, 1e-6);
  // Paired differences d = (ln2, 0): mean ln2/2, sample sd ln2/sqrt2, se = sd/sqrt2 = ln2/2.
  const double md = l2 / 2, se = l2 / 2;
  EXPECT_NEAR(r.delta_ppl_pct.value, 100 * (std::exp(md) - 1), 1e-6);
  EXPECT_NEAR(r.delta_ppl_pct.lo, 100 * (std::exp(md - z * se) - 1), 1e-6);
  EXPECT_NEAR(r.delta_ppl_pct.hi, 100 * (std::exp(md + z * se) - 1), 1e-6);
  EXPECT_NEAR(r.delta_ppl.value, r.ppl_quant.value - r.ppl_ref.value, 1e-6);
  // NLL quant is ln4 for both tokens: zero spread, so the ppl interval is a point.
  EXPECT_NEAR(r.ppl_quant.lo, 4.0, 1e-6);
  EXPECT_NEAR(r.ppl_quant.hi, 4.0, 1e-6);
  EXPECT_NEAR(r.kl_mean.value, l2 / 8, 1e-7);
  EXPECT_NEAR(r.kl_mean.hi - r.kl_mean.value, z * l2 / 8, 1e-7);  // sd (l2/4)/sqrt2, se l2/8
  EXPECT_NEAR(r.kl_max, l2 / 4, 1e-7);
  EXPECT_DOUBLE_EQ(r.top1_pct.value, 50.0);
  // se = sqrt(0.25 / 2) = 0.354: the interval 0.5 -+ 0.69 is clamped to [0, 100]%.
  EXPECT_EQ(r.top1_pct.lo, 0.0);
  EXPECT_EQ(r.top1_pct.hi, 100.0);
}

TEST(EvalMath, GatesNameEachFailure) {
  EvalResult r;
  r.kl_mean.value = 0.12;
  r.delta_ppl_pct.value = 3.0;
  r.top1_pct.value = 90.0;
  Gates g;
  EXPECT_TRUE(check_gates(r, g).empty());  // no gate set
  g.max_kld = 0.001;
  g.max_ppl_delta_pct = 5.0;
  g.min_top1_pct = 95.0;
  const auto failed = check_gates(r, g);
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_EQ(failed[0], "kld 0.12 > max 0.001");
  EXPECT_EQ(failed[1], "top1 90% < min 95%");
  g.max_kld = 0.12;  // equal to the budget passes
  g.min_top1_pct = 90.0;
  EXPECT_TRUE(check_gates(r, g).empty());
  r.kl_mean.value = NAN;  // a NaN never passes
  EXPECT_EQ(check_gates(r, g).size(), 1u);
}

// ---- windows ---------------------------------------------------------------------------------------

TEST_F(EvalModels, WindowsStartWithBosAndFollowTheStream) {
  const EvalWindows& w = *windows_;
  ASSERT_EQ(w.ctx, kCtx);
  EXPECT_EQ(w.first, kCtx / 2);
  EXPECT_EQ(w.total_scored, kMaxTokens);
  EXPECT_EQ(w.windows(), (kMaxTokens + kCtx / 2 - 1) / (kCtx / 2));
  const std::vector<int32_t> stream = f32_->tokenizer().encode(read_file(kText, "the text file"), false);
  for (int64_t i = 0; i < w.windows(); ++i) {
    EXPECT_EQ(w.window(i)[0], f32_->tokenizer().bos_id());
    for (int64_t j = 1; j < kCtx; ++j) ASSERT_EQ(w.window(i)[j], stream[i * (kCtx - 1) + j - 1]);
  }
  EXPECT_EQ(w.scored.back(), kMaxTokens - (w.windows() - 1) * (kCtx / 2));
  EXPECT_THROW(make_windows(f32_->tokenizer(), "too short", "x", kCtx, 0), Error);
}

// ---- the fp32 model ----------------------------------------------------------------------------------

TEST_F(EvalModels, Fp32AgainstItselfIsExact) {
  const EvalResult r = evaluate(*f32_, f32_, *windows_);
  EXPECT_EQ(r.tokens, kMaxTokens);
  EXPECT_EQ(r.kl_mean.value, 0.0);
  EXPECT_EQ(r.kl_max, 0.0);
  EXPECT_EQ(r.kl_p99.value, 0.0);
  EXPECT_EQ(r.top1_pct.value, 100.0);
  EXPECT_EQ(r.delta_ppl.value, 0.0);
  EXPECT_EQ(r.delta_ppl_pct.value, 0.0);
  EXPECT_EQ(r.ppl_quant.value, r.ppl_ref.value);
}

// The README's protocol (../shared/models/README.md): the first 12 stories of the sample, newlines
// replaced by spaces, BOS + encoding, at most 256 tokens each, every position scored. 1.513 nats
// per token comes from an independent numpy forward.
TEST_F(EvalModels, Stories260KReferenceNll) {
  const std::string text = read_file(kText, "the text file");
  std::vector<std::string> stories;
  size_t pos = 0;
  while (stories.size() < 12 && pos < text.size()) {
    size_t end = text.find("\n\n", pos);
    if (end == std::string::npos) end = text.size();
    std::string s = text.substr(pos, end - pos);
    for (char& c : s)
      if (c == '\n') c = ' ';
    if (!s.empty()) stories.push_back(s);
    pos = end + 2;
  }
  ASSERT_EQ(stories.size(), 12u);
  Session session(*f32_);
  const int64_t vocab = f32_->config().vocab_size;
  std::vector<float> logits(kCtx * vocab), logp(vocab);
  double nll = 0;
  int64_t n = 0;
  for (const std::string& s : stories) {
    std::vector<int32_t> ids = f32_->tokenizer().encode(s, true);
    ASSERT_EQ(ids[0], f32_->tokenizer().bos_id());
    if ((int64_t)ids.size() > kCtx) ids.resize(kCtx);
    session.reset();
    session.eval(ids.data(), (int64_t)ids.size(), logits.data(), true);
    for (size_t t = 1; t < ids.size(); ++t) {
      log_softmax(logits.data() + (t - 1) * vocab, vocab, logp.data());
      nll -= logp[ids[t]];
      ++n;
    }
  }
  EXPECT_NEAR(nll / (double)n, 1.513, 0.001) << n << " tokens";
}

// ---- gates on real quantized models ----------------------------------------------------------------

TEST_F(EvalModels, OneBitPerRowFailsAnEightBitBudget) {
  const EvalResult r = evaluate(*q1_, f32_, *windows_);
  Gates g;
  g.max_kld = 0.01;
  g.max_ppl_delta_pct = 2.0;
  g.min_top1_pct = 90.0;
  const auto failed = check_gates(r, g);
  ASSERT_EQ(failed.size(), 3u) << r.kl_mean.value;
  EXPECT_EQ(failed[0].rfind("kld ", 0), 0u);
  EXPECT_EQ(failed[1].rfind("ppl delta ", 0), 0u);
  EXPECT_EQ(failed[2].rfind("top1 ", 0), 0u);
}

TEST_F(EvalModels, EightBitGroupsPassASafeBudget) {
  const EvalResult r = evaluate(*q8_, f32_, *windows_);
  // Clearly-safe budgets (see docs/ACCURACY.md for the measured values, which are far below).
  Gates g;
  g.max_kld = 0.01;
  g.max_ppl_delta_pct = 2.0;
  g.min_top1_pct = 90.0;
  EXPECT_TRUE(check_gates(r, g).empty()) << r.kl_mean.value << " " << r.delta_ppl_pct.value << " "
                                         << r.top1_pct.value;
  EXPECT_GT(r.kl_mean.value, 0.0);  // not the same model
  EXPECT_LE(r.kl_mean.lo, r.kl_mean.value);
  EXPECT_GE(r.kl_p99.value, r.kl_mean.value);
}

// The harness loads models with int8 activations everywhere (eval_load_params), so an 8-bit
// model scores the same on every ISA up to the order of fp32 sums, which flips the int8
// rounding of a few activations downstream and moves the mean KL by a few percent (2.5% between
// scalar and AVX2 here). Without it AVX2 runs the 256-token windows in fp32 at 8 bits and leaves
// out the activation rounding: KL 0.00043 against the scalar kernels' 0.00097 (measured with
// eval_load_params temporarily leaving int8_acts off).
TEST_F(EvalModels, HarnessFiguresAreTheSameOnEveryIsa) {
  const std::vector<Isa> isas = available_isas();
  if (isas.size() < 2) GTEST_SKIP() << "only the scalar kernels are compiled here";
  LoadParams lp = eval_load_params(1, kCtx);
  lp.isa = Isa::scalar;
  const auto q8_scalar = Model::load((*dir_ / "q8").string(), lp);
  const EvalResult simd = evaluate(*q8_, f32_, *windows_);
  const EvalResult scalar = evaluate(*q8_scalar, f32_, *windows_);
  EXPECT_NEAR(simd.kl_mean.value, scalar.kl_mean.value, 0.1 * scalar.kl_mean.value);
}

// ---- reference log-prob files ------------------------------------------------------------------------

TEST_F(EvalModels, SavedReferenceGivesIdenticalNumbers) {
  const std::string file = (*dir_ / "ref.lbref").string();
  EvalOptions save;
  save.save_ref = file;
  const EvalResult a = evaluate(*q8_, f32_, *windows_, save);
  // 4 bytes per vocabulary entry per scored token, plus a header under 1 KiB.
  const uint64_t payload = 4ull * kMaxTokens * f32_->config().vocab_size;
  EXPECT_GT(fs::file_size(file), payload);
  EXPECT_LT(fs::file_size(file), payload + 1024);
  EvalOptions reuse;
  reuse.ref_logits = file;
  const EvalResult b = evaluate(*q8_, nullptr, *windows_, reuse);
  const EvalResult c = evaluate(*q8_, f32_, *windows_, reuse);  // model checked against the file
  for (const EvalResult* x : {&b, &c}) {
    EXPECT_EQ(x->tokens, a.tokens);
    EXPECT_EQ(x->ppl_ref.value, a.ppl_ref.value);
    EXPECT_EQ(x->ppl_quant.value, a.ppl_quant.value);
    EXPECT_EQ(x->kl_mean.value, a.kl_mean.value);
    EXPECT_EQ(x->kl_mean.hi, a.kl_mean.hi);
    EXPECT_EQ(x->kl_p99.value, a.kl_p99.value);
    EXPECT_EQ(x->top1_pct.value, a.top1_pct.value);
    EXPECT_EQ(x->delta_ppl_pct.value, a.delta_ppl_pct.value);
  }
}

TEST_F(EvalModels, MismatchedReferenceIsAnError) {
  const std::string file = (*dir_ / "ref_mismatch.lbref").string();
  EvalOptions save;
  save.save_ref = file;
  evaluate(*q8_, f32_, *windows_, save);
  EvalOptions reuse;
  reuse.ref_logits = file;
  auto message = [&](const Model* ref, const EvalWindows& w) -> std::string {
    try {
      evaluate(*q8_, ref, w, reuse);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string text = read_file(kText, "the text file");
  const EvalWindows other_ctx = make_windows(f32_->tokenizer(), text, kText, 128, kMaxTokens);
  EXPECT_NE(message(nullptr, other_ctx).find("ctx differs"), std::string::npos) << message(nullptr, other_ctx);
  const EvalWindows fewer = make_windows(f32_->tokenizer(), text, kText, kCtx, 1000);
  EXPECT_NE(message(nullptr, fewer).find("differs"), std::string::npos) << message(nullptr, fewer);
  const EvalWindows other_text = make_windows(f32_->tokenizer(), text.substr(5000), "other.txt", kCtx, kMaxTokens);
  EXPECT_NE(message(nullptr, other_text).find("token windows"), std::string::npos) << message(nullptr, other_text);
  EXPECT_NE(message(q1_, *windows_).find("reference model"), std::string::npos) << message(q1_, *windows_);

  const std::string bad = (*dir_ / "bad.lbref").string();
  std::ofstream(bad) << "not a reference file at all";
  reuse.ref_logits = bad;
  EXPECT_NE(message(nullptr, *windows_).find("bad magic"), std::string::npos);
  fs::resize_file(file, fs::file_size(file) - 4);  // truncated
  reuse.ref_logits = file;
  EXPECT_NE(message(nullptr, *windows_).find("truncated"), std::string::npos);
}

// ---- per-tensor errors ---------------------------------------------------------------------------------

TEST_F(EvalModels, PerTensorErrorsOfEightBits) {
  EXPECT_TRUE(tensor_errors(*f32_, *f32_, *windows_).empty());  // nothing quantized
  const auto errs = tensor_errors(*q8_, *f32_, *windows_);
  // Every matrix: 5 layers x 7 linears and the tied embedding.
  ASSERT_EQ(errs.size(), 36u);
  for (const TensorError& e : errs) {
    SCOPED_TRACE(e.name);
    EXPECT_EQ(e.type, "q8_g32_sym");
    EXPECT_EQ(e.act_rows, 256);
    // Round to nearest with scale absmax/127 moves each weight by at most absmax_g / 254, and
    // absmax_g^2 <= the group's sum of squares, so the relative Frobenius error is at most
    // sqrt(32) / 254 (times 1 + 2^-10 for the fp16 scale).
    EXPECT_GT(e.weight_rel_err, 0.0);
    EXPECT_LE(e.weight_rel_err, std::sqrt(32.0) / 254 * (1 + 1.0 / 1024));
    EXPECT_GT(e.output_rel_err, 0.0);
    EXPECT_LT(e.output_rel_err, 0.05);
    EXPECT_GT(e.kernel_rel_err, 0.0);
  }
}

// ---- sweep ----------------------------------------------------------------------------------------------

TEST(EvalSweep, OneConfigurationAgainstFp32) {
  SweepOptions o;
  o.bits = {8};
  o.groups = {32};
  o.quantizers = {Quantizer::rtn};
  o.ctx = 64;
  o.max_tokens = 256;
  o.threads = 1;
  const SweepResult s = run_sweep(kStories, kText, o);
  ASSERT_EQ(s.rows.size(), 2u);
  EXPECT_EQ(s.rows[0].name, "f32");
  EXPECT_EQ(s.rows[0].result.kl_mean.value, 0.0);
  EXPECT_NEAR(s.rows[0].bits_per_weight, 32.0, 0.5);  // norms and padding included
  EXPECT_EQ(s.rows[1].name, "q8_g32_sym rtn");
  EXPECT_EQ(s.rows[1].result.tokens, 256);
  EXPECT_GT(s.rows[1].result.kl_mean.value, 0.0);
  EXPECT_NEAR(s.rows[1].bits_per_weight, 8.0 * s.rows[1].size_bytes / 260032.0, 1e-9);
  EXPECT_LT(s.rows[1].bits_per_weight, 9.0);
  EXPECT_TRUE(to_json(s)["rows"][1].contains("result"));
}

}  // namespace
