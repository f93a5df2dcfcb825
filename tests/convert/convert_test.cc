// lowbit convert: every bit width and group on the shared models, the recipe, atomic output,
// and bad input. The manifest reader is checked here too, since it is the converter's reader.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <cmath>
#include <filesystem>

#include "convert/convert.h"
#include "convert/hf_model.h"
#include "kernels/error.h"
#include "kernels/quantize.h"
#include "runtime/manifest.h"
#include "tests/convert/hf_test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

struct Case {
  std::string model;
  int bits;
  uint32_t group;
};

std::string case_name(const testing::TestParamInfo<Case>& i) {
  return i.param.model + "_b" + std::to_string(i.param.bits) + "_" +
         (i.param.group ? "g" + std::to_string(i.param.group) : std::string("row"));
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.model << " bits=" << c.bits << " group=" << c.group; }

class ConvertShared : public testing::TestWithParam<Case> {};

// Converted with round-to-nearest, every weight is back within one quantization step of its
// group (the step d of quant_format.h, plus fp16 rounding of the scale and minimum); the
// 1-bit sign code is bounded by |w| + d instead. Float types round once.
TEST_P(ConvertShared, DequantizesWithinOneStep) {
  const Case c = GetParam();
  TempDir tmp;
  ConvertOptions opt;
  opt.bits = c.bits;
  opt.group = c.group;
  opt.quantizer = Quantizer::rtn;
  opt.threads = 2;
  const std::string src = test::kModels + "/" + c.model;
  const ConvertSummary s = convert_model(src, tmp / "out", opt);
  EXPECT_EQ(s.tensors, 47 - (c.model == "aidreams260K" ? 9 : 0));
  const Manifest m = Manifest::open(tmp / "out");
  m.verify_checksums();
  const HfModel hf = HfModel::open(src);
  for (const TensorEntry& t : m.header().tensors) {
    const std::vector<float> w = hf.read_f32(t.name);
    std::vector<float> back(w.size());
    dequantize(t.type, m.data(t), t.rows(), t.cols(), back.data());
    const QSections<const uint8_t> l = q_sections(t.type, t.rows(), t.cols(), m.data(t));
    for (int64_t r = 0; r < t.rows(); ++r) {
      for (int64_t i = 0; i < t.cols(); ++i) {
        const float x = w[r * t.cols() + i], y = back[r * t.cols() + i];
        float bound;
        if (t.type.base == Base::q) {
          const int64_t g = i / group_size(t.type, t.cols());
          const float d = std::fabs(f16_to_f32(l.scale_at(r, g)));
          const float mv = std::fabs(f16_to_f32(l.min_at(r, g)));
          bound = d * (1 + (1 << t.type.bits) / 512.0f) + mv / 1024;
          if (t.type.bits == 1 && t.type.scheme == Scheme::sym) bound = std::fabs(x) + d * 1.001f;
          if (t.type.bits == 1 && t.type.scheme == Scheme::asym) bound = d * 1.002f + mv / 1024;
        } else {
          // Half an ulp; in fp16's subnormal range an ulp is 2^-24 regardless of |x|.
          bound = t.type.base == Base::f32 ? 0.0f : std::max(std::fabs(x) / 2048, std::ldexp(1.0f, -25));
        }
        ASSERT_LE(std::fabs(x - y), bound) << t.name << " [" << r << ", " << i << "] " << type_name(t.type);
      }
    }
  }
}

std::vector<Case> shared_cases() {
  std::vector<Case> out;
  for (const char* model : {"stories260K", "aidreams260K"}) {
    for (int bits : {1, 2, 4, 8})
      for (uint32_t g : {32u, 64u, 128u, 256u, 0u}) out.push_back({model, bits, g});
    out.push_back({model, 16, 32});
    out.push_back({model, 32, 32});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Shared, ConvertShared, testing::ValuesIn(shared_cases()), case_name);

const std::string kStories = test::kModels + "/stories260K";

TEST(ConvertRecipe, DefaultsAndKeep) {
  ConvertOptions opt;
  opt.bits = 4;
  EXPECT_EQ(type_name(recipe_type(opt, "model.norm.weight", true, false)), "f32");
  EXPECT_EQ(type_name(recipe_type(opt, "model.embed_tokens.weight", false, true)), "q8_g32_sym");
  EXPECT_EQ(type_name(recipe_type(opt, "model.layers.0.mlp.up_proj.weight", false, false)), "q4_g32_asym");
  opt.keep = {{"model.layers.*.mlp.down_proj.weight", "q8"}};
  EXPECT_EQ(type_name(recipe_type(opt, "model.layers.3.mlp.down_proj.weight", false, false)), "q8_g32_sym");
  EXPECT_EQ(type_name(recipe_type(opt, "model.layers.3.mlp.up_proj.weight", false, false)), "q4_g32_asym");
  opt.bits = 16;
  EXPECT_EQ(type_name(recipe_type(opt, "model.embed_tokens.weight", false, true)), "f16");
}

TEST(ConvertAtomic, RefusesToOverwriteWithoutForce) {
  TempDir tmp;
  ConvertOptions opt;
  opt.bits = 8;
  convert_model(kStories, tmp / "out", opt);
  const auto before = fs::last_write_time(tmp / "out/manifest.json");
  try {
    convert_model(kStories, tmp / "out", opt);
    FAIL() << "overwrote without --force";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--force"), std::string::npos) << e.what();
  }
  EXPECT_EQ(fs::last_write_time(tmp / "out/manifest.json"), before);
  opt.force = true;
  opt.bits = 4;
  convert_model(kStories, tmp / "out", opt);
  EXPECT_EQ(Manifest::open(tmp / "out").header().recipe["bits"], 4);
  // Nothing else is left in the parent: no temporary or old directories.
  int entries = 0;
  for (auto& e : fs::directory_iterator(tmp.path())) entries += e.path().filename() != "out";
  EXPECT_EQ(entries, 0);
}

TEST(ConvertAtomic, CancelLeavesNothing) {
  TempDir tmp;
  std::atomic<bool> cancel{false};
  ConvertOptions opt;
  opt.bits = 4;
  opt.cancel = &cancel;
  opt.progress = [&](const ConvertProgress& p) {
    if (p.tensor == 10) cancel = true;
  };
  EXPECT_THROW(convert_model(kStories, tmp / "out", opt), Error);
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(ConvertBadInput, NonFiniteWeight) {
  TempDir tmp;
  fs::create_directories(tmp / "hf");
  for (const char* f : {"config.json", "tokenizer.model", "tokenizer_config.json"})
    fs::copy_file(kStories + "/" + f, tmp / "hf/" + f);
  // Copy the weights and poison one value of one tensor in place.
  std::string bytes = test::read_file(kStories + "/model.safetensors");
  const HfModel hf = HfModel::open(kStories);
  const HfTensor& t = hf.get("model.layers.2.mlp.up_proj.weight");
  // The tensor's bytes sit at the same place in the copy as in the mapped original.
  const size_t offset = (size_t)t.info->offset + 4 * 7;  // offset counts from the file start
  const float nan = NAN;
  std::memcpy(&bytes[offset], &nan, 4);
  test::write_file(tmp / "hf/model.safetensors", bytes);
  ConvertOptions opt;
  opt.bits = 4;
  try {
    convert_model(tmp / "hf", tmp / "out", opt);
    FAIL() << "NaN accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.2.mlp.up_proj.weight"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp / "out"));
  opt.allow_nonfinite = true;
  const ConvertSummary s = convert_model(tmp / "hf", tmp / "out", opt);
  EXPECT_EQ(s.nonfinite_replaced, 1);
}

TEST(ConvertBadInput, BadOptionsFailBeforeWork) {
  TempDir tmp;
  ConvertOptions opt;
  opt.bits = 3;
  EXPECT_THROW(convert_model(kStories, tmp / "out", opt), Error);
  opt.bits = 4;
  opt.group = 48;
  EXPECT_THROW(convert_model(kStories, tmp / "out", opt), Error);
  opt.group = 32;
  opt.keep = {{"model.*", "q5"}};
  EXPECT_THROW(convert_model(kStories, tmp / "out", opt), Error);
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

class ManifestBad : public testing::Test {
 protected:
  void SetUp() override {
    ConvertOptions opt;
    opt.bits = 4;
    convert_model(kStories, tmp_ / "m", opt);
    text_ = test::read_file(tmp_ / "m/manifest.json");
  }
  std::string reject(const nlohmann::json& j) {
    test::write_file(tmp_ / "m/manifest.json", j.dump());
    try {
      Manifest::open(tmp_ / "m");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  TempDir tmp_;
  std::string text_;
};

TEST_F(ManifestBad, NewerVersionIsAVersionError) {
  auto j = nlohmann::json::parse(text_);
  j["format_version"] = kManifestVersion + 1;
  test::write_file(tmp_ / "m/manifest.json", j.dump());
  EXPECT_THROW(Manifest::open(tmp_ / "m"), VersionError);
  EXPECT_NE(reject(j).find("newer"), std::string::npos);
}

TEST_F(ManifestBad, StructureErrorsNameTheField) {
  auto j = nlohmann::json::parse(text_);
  auto k = j;
  k["format"] = "gguf";
  EXPECT_NE(reject(k).find("format"), std::string::npos);
  k = j;
  k["tensors"][3]["offset"] = 100;
  EXPECT_NE(reject(k).find("multiple of 64"), std::string::npos);
  k = j;
  k["tensors"][3]["bytes"] = 12;
  EXPECT_NE(reject(k).find(k["tensors"][3]["name"].get<std::string>()), std::string::npos);
  k = j;
  k["tensors"][5]["offset"] = k["tensors"][4]["offset"];
  EXPECT_NE(reject(k).find("overlap"), std::string::npos);
  k = j;
  k["tensors"][2]["offset"] = 1 << 30;
  EXPECT_NE(reject(k).find("past the end"), std::string::npos);
  k = j;
  k["tensors"].erase(7);
  EXPECT_NE(reject(k).find("missing"), std::string::npos);
  test::write_file(tmp_ / "m/manifest.json", "{not json");
  EXPECT_THROW(Manifest::open(tmp_ / "m"), Error);
}

TEST_F(ManifestBad, ChecksumCatchesCorruption) {
  std::string w = test::read_file(tmp_ / "m/weights.bin");
  w[w.size() / 2] ^= 0x10;
  test::write_file(tmp_ / "m/weights.bin", w);
  const Manifest m = Manifest::open(tmp_ / "m");
  EXPECT_THROW(m.verify_checksums(), Error);
}

TEST_F(ManifestBad, TruncatedWeights) {
  std::string w = test::read_file(tmp_ / "m/weights.bin");
  test::write_file(tmp_ / "m/weights.bin", w.substr(0, w.size() / 2));
  EXPECT_THROW(Manifest::open(tmp_ / "m"), Error);
}

// Synthetic models with real config shapes scaled down, sharded and in every input dtype.
TEST(ConvertSynthetic, LlamaMistralQwen2Layouts) {
  LOWBIT_REQUIRE_VENV();
  struct Syn { const char* config; const char* args; };
  for (const Syn& s : {Syn{"tinyllama-1.1b-chat-v1.0", "--dtype BF16 --shards 3"},
                       Syn{"mistral-7b-v0.1", "--dtype F16 --shards 2"},
                       Syn{"qwen2.5-0.5b", "--dtype F32"}}) {
    TempDir tmp;
    ASSERT_EQ(test::make_hf_model(tmp / "hf",
                                  std::string("--config ") + s.config +
                                      " --layers 2 --dim 64 --ffn 96 --heads 4 --kv-heads 2 --vocab 300 " + s.args),
              0)
        << s.config;
    ConvertOptions opt;
    opt.bits = 4;
    const ConvertSummary sum = convert_model(tmp / "hf", tmp / "out", opt);
    const Manifest m = Manifest::open(tmp / "out");
    m.verify_checksums();
    EXPECT_EQ((size_t)sum.tensors, m.header().tensors.size());
    EXPECT_EQ(m.config().n_layers, 2) << s.config;
  }
}

}  // namespace
}  // namespace lowbit
