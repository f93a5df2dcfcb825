// Opening HF model directories (convert/hf_model.h): the two real checkpoints, checked against
// their original llama2.c files; synthetic Llama / Mistral / Qwen2 models from
// tests/tools/make_hf_model.py in F32, F16 and BF16, single-file and sharded, every value
// round-tripped; and every broken directory rejected with a message naming the file at fault.
#include "tests/error_of.h"
#include "convert/hf_model.h"

#include <math.h>
#include <string.h>

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "hf_test_util.h"
#include "kernels/error.h"
#include "kernels/half.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::TempDir;
using ::testing::AllOf;
using ::testing::HasSubstr;

using test::error_of;

std::string open_error(const std::string& dir) {
  return error_of([&] { HfModel::open(dir); });
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

void write_json(const std::string& path, const json& j) { test::write_file(path, j.dump(2)); }

// ---- the real checkpoints, against the llama2.c files they were made from ----------------------

// llama2.c's version-0 checkpoint: 7 int32 (dim, hidden, layers, heads, kv heads, vocab, seq),
// then float32 arrays in a fixed order, each stacked over layers.
struct Llama2c {
  int dim, hidden, layers, heads, kv_heads, vocab, seq;
  std::vector<float> w;
  size_t emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final;  // offsets into w

  explicit Llama2c(const std::string& path) {
    const std::string bytes = test::read_file(path);
    int32_t h[7];
    memcpy(h, bytes.data(), sizeof h);
    dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kv_heads = h[4], vocab = abs(h[5]), seq = h[6];
    w.resize((bytes.size() - sizeof h) / 4);
    memcpy(w.data(), bytes.data() + sizeof h, w.size() * 4);
    const size_t kv_dim = (size_t)dim * kv_heads / heads, L = layers;
    size_t o = 0;
    auto take = [&](size_t n) { const size_t at = o; o += n; return at; };
    emb = take((size_t)vocab * dim);
    rms_att = take(L * dim);
    wq = take(L * dim * dim);
    wk = take(L * kv_dim * dim);
    wv = take(L * kv_dim * dim);
    wo = take(L * dim * dim);
    rms_ffn = take(L * dim);
    w1 = take(L * hidden * dim);
    w2 = take(L * dim * hidden);
    w3 = take(L * hidden * dim);
    rms_final = take(dim);
  }
  std::vector<float> slice(size_t at, size_t n) const { return {w.begin() + at, w.begin() + at + n}; }
};

// HF's q/k rows are llama2.c's permuted from interleaved pairs to rotate-half order: within each
// head, HF row half*(hd/2) + i is llama2.c row 2*i + half.
std::vector<float> unpermute_rows(const std::vector<float>& l2c, int n_heads, int rows, int cols) {
  const int hd = rows / n_heads;
  std::vector<float> out(l2c.size());
  for (int h = 0; h < n_heads; ++h)
    for (int half = 0; half < 2; ++half)
      for (int i = 0; i < hd / 2; ++i)
        memcpy(&out[(size_t)(h * hd + half * hd / 2 + i) * cols], &l2c[(size_t)(h * hd + 2 * i + half) * cols],
               cols * sizeof(float));
  return out;
}

void check_real_model(const std::string& name, size_t n_tensors) {
  const std::string dir = test::kModels + "/" + name;
  const HfModel m = HfModel::open(dir);
  ASSERT_EQ(m.tensors().size(), n_tensors);
  ASSERT_EQ(m.files().size(), 1u);
  const Llama2c ref(dir + "/llama2c/" + name + ".bin");
  const ModelConfig& c = m.config();
  ASSERT_EQ(c.dim, ref.dim);
  ASSERT_EQ(c.ffn_dim, ref.hidden);
  ASSERT_EQ(c.n_layers, ref.layers);
  ASSERT_EQ(c.n_heads, ref.heads);
  ASSERT_EQ(c.n_kv_heads, ref.kv_heads);
  ASSERT_EQ(c.vocab_size, ref.vocab);
  ASSERT_EQ(c.max_ctx, ref.seq);
  ASSERT_TRUE(c.tie_embeddings);  // positive vocab in the llama2.c header: shared classifier

  const size_t d = c.dim, f = c.ffn_dim, kv = c.n_kv_heads * c.head_dim;
  EXPECT_EQ(m.read_f32("model.embed_tokens.weight"), ref.slice(ref.emb, c.vocab_size * d));
  EXPECT_EQ(m.read_f32("model.norm.weight"), ref.slice(ref.rms_final, d));
  for (int l = 0; l < c.n_layers; ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    auto hf = [&](Role r) { return m.read_f32(tensor_name(c, r, l)); };
    EXPECT_EQ(hf(Role::attn_norm), ref.slice(ref.rms_att + l * d, d));
    EXPECT_EQ(hf(Role::ffn_norm), ref.slice(ref.rms_ffn + l * d, d));
    EXPECT_EQ(hf(Role::wq), unpermute_rows(ref.slice(ref.wq + l * d * d, d * d), c.n_heads, d, d));
    EXPECT_EQ(hf(Role::wk), unpermute_rows(ref.slice(ref.wk + l * kv * d, kv * d), c.n_kv_heads, kv, d));
    EXPECT_EQ(hf(Role::wv), ref.slice(ref.wv + l * kv * d, kv * d));
    EXPECT_EQ(hf(Role::wo), ref.slice(ref.wo + l * d * d, d * d));
    EXPECT_EQ(hf(Role::w_gate), ref.slice(ref.w1 + l * f * d, f * d));
    EXPECT_EQ(hf(Role::w_down), ref.slice(ref.w2 + l * d * f, d * f));
    EXPECT_EQ(hf(Role::w_up), ref.slice(ref.w3 + l * f * d, f * d));
  }
}

TEST(HfModel, stories260K_matches_llama2c) { check_real_model("stories260K", 47); }
TEST(HfModel, aidreams260K_matches_llama2c) { check_real_model("aidreams260K", 38); }

TEST(HfModel, lookup) {
  const HfModel m = HfModel::open(test::kModels + "/stories260K");
  const HfTensor* t = m.find("model.layers.4.mlp.down_proj.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->info->shape, (std::vector<int64_t>{64, 172}));
  EXPECT_EQ(m.bytes(*t).size(), 64u * 172 * 4);
  EXPECT_EQ(m.find("lm_head.weight"), nullptr);
  EXPECT_THAT(error_of([&] { m.get("lm_head.weight"); }), HasSubstr("no tensor 'lm_head.weight'"));
  EXPECT_EQ(m.config_json()["hidden_act"], "silu");
  EXPECT_EQ(m.shapes().size(), 47u);
}

// ---- broken directories -----------------------------------------------------------------------

TEST(HfModelBad, not_a_directory) {
  TempDir dir;
  EXPECT_EQ(open_error(dir / "absent"), dir / "absent" + ": not a directory");
}

TEST(HfModelBad, missing_config) {
  TempDir dir;
  fs::create_symlink(test::kModels + "/stories260K/model.safetensors", dir / "model.safetensors");
  EXPECT_EQ(open_error(dir.path()), dir / "config.json" + ": not found");
}

TEST(HfModelBad, config_not_json) {
  TempDir dir;
  test::write_file(dir / "config.json", "{\"hidden_size\": 64,");
  EXPECT_THAT(open_error(dir.path()), AllOf(HasSubstr(dir / "config.json"), HasSubstr("not valid JSON")));
}

TEST(HfModelBad, config_field_named_with_file) {
  TempDir dir;
  json c = read_json(test::kModels + "/stories260K/config.json");
  c.erase("vocab_size");
  write_json(dir / "config.json", c);
  EXPECT_EQ(open_error(dir.path()), dir / "config.json" + ": field 'vocab_size' missing");
}

TEST(HfModelBad, missing_weights) {
  TempDir dir;
  fs::copy_file(test::kModels + "/stories260K/config.json", dir / "config.json");
  EXPECT_EQ(open_error(dir.path()),
            dir.path() + ": no weights: neither model.safetensors nor model.safetensors.index.json");
  test::write_file(dir / "pytorch_model.bin", "not read");
  EXPECT_THAT(open_error(dir.path()), HasSubstr("only PyTorch .bin weights"));
  test::write_file(dir / "model-00001-of-00002.safetensors", "");
  EXPECT_THAT(open_error(dir.path()), HasSubstr("shard files are present, but without their index"));
}

TEST(HfModelBad, truncated_weights) {
  TempDir dir;
  fs::copy_file(test::kModels + "/stories260K/config.json", dir / "config.json");
  const std::string bytes = test::read_file(test::kModels + "/stories260K/model.safetensors");
  test::write_file(dir / "model.safetensors", bytes.substr(0, bytes.size() - 1));
  EXPECT_THAT(open_error(dir.path()),
              AllOf(HasSubstr(dir / "model.safetensors" + ": tensor '"), HasSubstr("past end of data")));
}

TEST(HfModelBad, shape_disagrees_with_config) {
  TempDir dir;
  json c = read_json(test::kModels + "/stories260K/config.json");
  c["intermediate_size"] = 128;
  write_json(dir / "config.json", c);
  fs::create_symlink(test::kModels + "/stories260K/model.safetensors", dir / "model.safetensors");
  EXPECT_THAT(open_error(dir.path()),
              AllOf(HasSubstr(dir.path() + ": tensors do not match config.json"),
                    HasSubstr("tensor 'model.layers.0.mlp.down_proj.weight': shape [64, 172] but config.json "
                              "implies [64, 128]"),
                    HasSubstr("(+9 more shape mismatches)")));  // 3 per layer x 5 layers
}

TEST(HfModelBad, missing_and_unexpected_tensors) {
  TempDir dir;
  fs::copy_file(test::kModels + "/stories260K/config.json", dir / "config.json");
  test::write_file(dir / "model.safetensors",
                   test::f32_file({{"model.embed_tokens.weight", {512, 64}}, {"model.bogus.weight", {3}}}));
  EXPECT_THAT(open_error(dir.path()),
              AllOf(HasSubstr("missing 'model.layers.0.input_layernorm.weight'"), HasSubstr("(+40 more)"),  // 46 missing, 6 named
                    HasSubstr("unexpected 'model.bogus.weight'")));
}

// ---- synthetic models from make_hf_model.py -----------------------------------------------------

struct Synthetic {
  const char* name;    // test name
  const char* config;  // under shared/models/configs
  const char* shape;   // make_hf_model.py options
  const char* arch;
  bool tied, qkv_bias;
  int64_t head_dim, sliding_window;
};

const Synthetic kSynthetic[] = {
    {"llama_2_7b", "llama-2-7b-hf", "--layers 2 --dim 64 --heads 4 --kv-heads 4 --ffn 96 --vocab 256", "llama",
     false, false, 16, 0},
    {"tinyllama", "tinyllama-1.1b-chat-v1.0", "--layers 2 --dim 64 --heads 4 --kv-heads 2 --ffn 80 --vocab 300",
     "llama", false, false, 16, 0},
    {"llama_3_2_1b", "llama-3.2-1b", "--layers 3 --dim 64 --heads 8 --kv-heads 2 --ffn 96 --vocab 256", "llama",
     true, false, 8, 0},
    {"smollm2_head_dim", "smollm2-135m",
     "--layers 2 --dim 48 --heads 3 --kv-heads 1 --head-dim 32 --ffn 64 --vocab 128", "llama", true, false, 32, 0},
    {"mistral_7b", "mistral-7b-v0.1", "--layers 2 --dim 64 --heads 4 --kv-heads 2 --ffn 112 --vocab 256",
     "mistral", false, false, 16, 4096},
    {"qwen2_5_0_5b", "qwen2.5-0.5b", "--layers 2 --dim 64 --heads 4 --kv-heads 2 --ffn 96 --vocab 256", "qwen2",
     true, true, 16, 0},
};

class HfSynthetic : public ::testing::TestWithParam<Synthetic> {};

// |a - b| for a the rounding of b to a format with `mant` stored mantissa bits: at most half an
// ulp, |b| * 2^-(mant+1) for normal numbers, plus half the smallest subnormal step for fp16.
bool within_half_ulp(float a, float b, int mant, float subnormal_half_step) {
  return fabsf(a - b) <= ldexpf(fabsf(b), -(mant + 1)) + subnormal_half_step;
}

TEST_P(HfSynthetic, values_round_trip_every_dtype_and_sharding) {
  LOWBIT_REQUIRE_VENV();
  const Synthetic& s = GetParam();
  TempDir dir;
  const std::string opts = std::string("--config ") + s.config + " " + s.shape + " --seed 7 --no-tokenizer";
  ASSERT_EQ(test::make_hf_model(dir / "f32", opts), 0);
  ASSERT_EQ(test::make_hf_model(dir / "f32_sharded", opts + " --shards 3"), 0);
  ASSERT_EQ(test::make_hf_model(dir / "f16", opts + " --dtype F16 --shards 2"), 0);
  ASSERT_EQ(test::make_hf_model(dir / "bf16", opts + " --dtype BF16"), 0);

  const HfModel ref = HfModel::open(dir / "f32");
  const ModelConfig& c = ref.config();
  EXPECT_EQ(c.arch, s.arch);
  EXPECT_EQ(c.tie_embeddings, s.tied);
  EXPECT_EQ(c.qkv_bias, s.qkv_bias);
  EXPECT_EQ(c.head_dim, s.head_dim);
  EXPECT_EQ(c.sliding_window, s.sliding_window);
  // The tensors written by the tool (from HF's names, independently of the arch table) are
  // exactly the expected ones.
  std::map<std::string, std::vector<int64_t>> expected;
  for (const TensorSpec& t : expected_tensors(c)) expected[t.name] = t.shape;
  EXPECT_EQ(ref.shapes(), expected);
  // Spread as drawn: N(0, 0.02) weights.
  const std::vector<float> emb = ref.read_f32("model.embed_tokens.weight");
  double sum2 = 0;
  for (float v : emb) sum2 += (double)v * v;
  EXPECT_NEAR(sqrt(sum2 / emb.size()), 0.02, 0.002);

  const HfModel sharded = HfModel::open(dir / "f32_sharded");
  const HfModel f16 = HfModel::open(dir / "f16");
  const HfModel bf16 = HfModel::open(dir / "bf16");
  EXPECT_EQ(sharded.files().size(), 3u);
  EXPECT_EQ(f16.files().size(), 2u);
  EXPECT_TRUE(sharded.config() == c && f16.config() == c && bf16.config() == c);
  for (const auto& [name, t] : ref.tensors()) {
    SCOPED_TRACE(name);
    const std::vector<float> want = ref.read_f32(name);
    EXPECT_EQ(sharded.read_f32(name), want);
    ASSERT_EQ(f16.get(name).info->dtype, DType::f16);
    ASSERT_EQ(bf16.get(name).info->dtype, DType::bf16);
    const std::vector<float> h = f16.read_f32(name), b = bf16.read_f32(name);
    ASSERT_EQ(h.size(), want.size());
    ASSERT_EQ(b.size(), want.size());
    int bad_h = 0, bad_b = 0, inexact = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      bad_h += !within_half_ulp(h[i], want[i], 10, 0x1p-25f);
      bad_b += !within_half_ulp(b[i], want[i], 7, 0.0f);
      // numpy's float16 cast and our bf16 writer both round to nearest even, as half.h does.
      inexact += h[i] != f16_to_f32(f32_to_f16(want[i])) || b[i] != bf16_to_f32(f32_to_bf16(want[i]));
    }
    EXPECT_EQ(bad_h, 0);
    EXPECT_EQ(bad_b, 0);
    EXPECT_EQ(inexact, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(HfModel, HfSynthetic, ::testing::ValuesIn(kSynthetic),
                         [](const ::testing::TestParamInfo<Synthetic>& p) { return std::string(p.param.name); });

// A 3-shard Qwen2 model in dir, for the broken-index cases.
void make_sharded(const TempDir& dir) {
  ASSERT_EQ(test::make_hf_model(dir.path(), "--config qwen2.5-0.5b --layers 2 --dim 32 --heads 2 --kv-heads 1 "
                                            "--ffn 48 --vocab 64 --shards 3 --no-tokenizer"),
            0);
}

const char* const kShard2 = "model-00002-of-00003.safetensors";

TEST(HfModelBad, shard_listed_in_index_but_absent) {
  LOWBIT_REQUIRE_VENV();
  TempDir dir;
  make_sharded(dir);
  ASSERT_NO_THROW(HfModel::open(dir.path()));
  fs::remove(dir / kShard2);
  EXPECT_EQ(open_error(dir.path()), dir / kShard2 + ": listed in model.safetensors.index.json but not found");
}

TEST(HfModelBad, index_names_tensor_no_shard_holds) {
  LOWBIT_REQUIRE_VENV();
  TempDir dir;
  make_sharded(dir);
  json idx = read_json(dir / "model.safetensors.index.json");
  idx["weight_map"]["model.layers.9.mlp.up_proj.weight"] = kShard2;
  write_json(dir / "model.safetensors.index.json", idx);
  EXPECT_EQ(open_error(dir.path()), dir / "model.safetensors.index.json" +
                                        ": tensor 'model.layers.9.mlp.up_proj.weight' is mapped to " + kShard2 +
                                        ", which does not hold it");
}

TEST(HfModelBad, shard_tensor_not_in_index) {
  LOWBIT_REQUIRE_VENV();
  TempDir dir;
  make_sharded(dir);
  json idx = read_json(dir / "model.safetensors.index.json");
  const std::string shard = idx["weight_map"]["model.norm.weight"];
  idx["weight_map"].erase("model.norm.weight");
  write_json(dir / "model.safetensors.index.json", idx);
  EXPECT_EQ(open_error(dir.path()),
            dir / shard + ": tensor 'model.norm.weight' is not in model.safetensors.index.json");
}

TEST(HfModelBad, index_malformed) {
  LOWBIT_REQUIRE_VENV();
  TempDir dir;
  make_sharded(dir);
  const std::string index = dir / "model.safetensors.index.json";
  json idx = read_json(index);
  json evil = idx;
  evil["weight_map"]["model.norm.weight"] = "../model.safetensors";
  write_json(index, evil);
  EXPECT_THAT(open_error(dir.path()),
              AllOf(HasSubstr(index + ": tensor 'model.norm.weight' maps to \"../model.safetensors\""),
                    HasSubstr("not a file name")));
  write_json(index, json{{"metadata", idx["metadata"]}});
  EXPECT_EQ(open_error(dir.path()), index + ": field 'weight_map' missing");
  write_json(index, json{{"weight_map", json::object()}});
  EXPECT_EQ(open_error(dir.path()), index + ": field 'weight_map' maps no tensors");
  test::write_file(index, "{");
  EXPECT_THAT(open_error(dir.path()), AllOf(HasSubstr(index), HasSubstr("not valid JSON")));
}

TEST(HfModel, tied_checkpoint_shipping_lm_head) {
  LOWBIT_REQUIRE_VENV();
  TempDir dir;
  ASSERT_EQ(test::make_hf_model(dir.path(), "--config qwen2.5-0.5b --layers 1 --dim 32 --heads 2 --kv-heads 1 "
                                            "--ffn 48 --vocab 64 --lm-head-when-tied --no-tokenizer"),
            0);
  const HfModel m = HfModel::open(dir.path());  // accepted: lm_head.weight is simply not needed
  EXPECT_TRUE(m.config().tie_embeddings);
  ASSERT_NE(m.find("lm_head.weight"), nullptr);
  for (const TensorSpec& s : expected_tensors(m.config())) EXPECT_NE(s.role, Role::lm_head);
  EXPECT_EQ(m.read_f32("lm_head.weight"), m.read_f32("model.embed_tokens.weight"));
}

TEST(HfModel, tokenizer_files_copied) {
  LOWBIT_REQUIRE_VENV();
  TempDir dir;
  ASSERT_EQ(test::make_hf_model(dir.path(), "--config tinyllama-1.1b-chat-v1.0 --layers 1 --dim 32 --heads 2 "
                                            "--ffn 48 --vocab 32000"),
            0);
  const std::string src = test::kModels + "/configs/tinyllama-1.1b-chat-v1.0/";
  for (const char* f : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_EQ(test::read_file(dir / f), test::read_file(src + f)) << f;
  EXPECT_NO_THROW(HfModel::open(dir.path()));
}

}  // namespace
}  // namespace lowbit
