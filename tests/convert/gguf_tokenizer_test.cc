// The tokenizer rebuilt from GGUF metadata (convert/gguf_tokenizer.h), on GGUFs built here with
// tests/convert/gguf_writer.h: tiny byte-level BPE and SentencePiece vocabularies whose ids follow
// from the BPE rule by hand, llama.cpp's defaults, the real SmolLM2 file, and every malformed
// input rejected with a message naming the metadata key. (The full comparisons against
// transformers and sentencepiece on real vocabularies are tests/python/test_gguf_tokenizer.py.)
#include "tests/error_of.h"
#include "convert/gguf_tokenizer.h"

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/convert/gguf_writer.h"
#include "tests/convert/hf_test_util.h"

namespace lowbit {
namespace {

using nlohmann::json;
using test::error_of;
using test::GgufWriter;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4;

// A byte-level BPE vocabulary: single characters, two merges ("a b" -> "ab", "ab c" -> "abc"),
// "Ġ" (the byte-level space), a control token and a user-defined one.
//   id:  0 a  1 b  2 c  3 Ġ  4 ab  5 abc  6 Ġa  7 <|x|>  8 <u>  9 <s>
GgufWriter tiny_bpe(std::string_view pre = "gpt-2") {
  GgufWriter w;
  w.add_string("general.architecture", "llama")
      .add_string("tokenizer.ggml.model", "gpt2")
      .add_string("tokenizer.ggml.pre", pre)
      .add_string_array("tokenizer.ggml.tokens", {"a", "b", "c", "\xC4\xA0", "ab", "abc", "\xC4\xA0" "a", "<|x|>", "<u>", "<s>"})
      .add_i32_array("tokenizer.ggml.token_type",
                     {kNormal, kNormal, kNormal, kNormal, kNormal, kNormal, kNormal, kControl, kUserDefined, kControl})
      .add_string_array("tokenizer.ggml.merges", {"a b", "ab c", "\xC4\xA0 a"});
  return w;
}

// A SentencePiece BPE vocabulary whose merge order is set by the scores (higher first):
//   id: 0 <unk>  1 <s>  2 </s>  3 ▁  4 a  5 b  6 ▁a (-1)  7 ab (-2)  8 ▁ab (-3)
// so "ab" with the dummy prefix is ▁ a b -> ▁a b -> ▁ab = [8], and without it a b -> ab = [7].
GgufWriter tiny_spm() {
  GgufWriter w;
  w.add_string("general.architecture", "llama")
      .add_string("tokenizer.ggml.model", "llama")
      .add_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a", "ab", "\xE2\x96\x81" "ab"})
      .add_f32_array("tokenizer.ggml.scores", {0, 0, 0, -10, -10, -10, -1, -2, -3})
      .add_i32_array("tokenizer.ggml.token_type", {kUnknown, kControl, kControl, kNormal, kNormal, kNormal, kNormal, kNormal, kNormal});
  return w;
}

// Keeps the bytes alive for the GgufFile view.
struct Gguf {
  std::vector<uint8_t> bytes;
  GgufFile file;
  explicit Gguf(const GgufWriter& w) : bytes(w.build()), file(GgufFile::view(bytes.data(), bytes.size(), "t.gguf")) {}
};

std::map<std::string, std::string> files_of(const GgufWriter& w) { return gguf_tokenizer_files(Gguf(w).file); }
std::unique_ptr<Tokenizer> tokenizer_of(const GgufWriter& w) { return load_tokenizer_files(files_of(w), "t.gguf"); }
std::string files_error(const GgufWriter& w) {
  return error_of([&] { files_of(w); });
}

TEST(GgufTokenizer, byte_level_bpe_merges_and_added_tokens) {
  auto tok = tokenizer_of(tiny_bpe());
  EXPECT_EQ(tok->vocab_size(), 10);
  EXPECT_THAT(tok->encode("abc"), ElementsAre(5));
  EXPECT_THAT(tok->encode("ab a"), ElementsAre(4, 6));
  EXPECT_THAT(tok->encode("ab<|x|>c<u>"), ElementsAre(4, 7, 2, 8));
  EXPECT_EQ(tok->bos_id(), -1);  // none named, none added (gpt2 default)
  // Control tokens are left out of the text, user-defined ones kept.
  EXPECT_EQ(tok->decode({4, 7, 2, 8, 3}), "abc<u> ");
}

TEST(GgufTokenizer, bos_eos_from_ids_and_flags) {
  auto tok = tokenizer_of(tiny_bpe().add_u32("tokenizer.ggml.bos_token_id", 9).add_u32("tokenizer.ggml.eos_token_id", 7)
                              .add_bool("tokenizer.ggml.add_bos_token", true).add_bool("tokenizer.ggml.add_eos_token", true));
  EXPECT_EQ(tok->bos_id(), 9);
  EXPECT_THAT(tok->eos_ids(), ElementsAre(7));
  EXPECT_THAT(tok->encode("ab"), ElementsAre(9, 4, 7));
  EXPECT_THAT(tok->encode("ab", false), ElementsAre(4));
}

// llama.cpp adds BOS by default for the Llama 3 pre-tokenizer (llama-vocab.cpp), for no other
// byte-level one; the file's add_bos_token overrides.
TEST(GgufTokenizer, llama3_adds_bos_unless_told_not_to) {
  EXPECT_THAT(tokenizer_of(tiny_bpe("llama-bpe").add_u32("tokenizer.ggml.bos_token_id", 9))->encode("ab"), ElementsAre(9, 4));
  EXPECT_THAT(tokenizer_of(tiny_bpe("gpt-2").add_u32("tokenizer.ggml.bos_token_id", 9))->encode("ab"), ElementsAre(4));
  EXPECT_THAT(tokenizer_of(tiny_bpe("llama-bpe").add_u32("tokenizer.ggml.bos_token_id", 9)
                               .add_bool("tokenizer.ggml.add_bos_token", false))->encode("ab"), ElementsAre(4));
}

TEST(GgufTokenizer, config_names_specials_and_keeps_chat_template) {
  const std::string templ = "{% for m in messages %}<|x|>{{ m['content'] }}{% endfor %}";
  auto files = files_of(tiny_bpe().add_u32("tokenizer.ggml.bos_token_id", 9).add_u32("tokenizer.ggml.eos_token_id", 7)
                            .add_u32("tokenizer.ggml.padding_token_id", 7).add_string("tokenizer.chat_template", templ));
  EXPECT_EQ(files.count("tokenizer.json"), 1u);
  const json cfg = json::parse(files.at("tokenizer_config.json"));
  EXPECT_EQ(cfg["chat_template"], templ);
  EXPECT_EQ(cfg["bos_token"], "<s>");
  EXPECT_EQ(cfg["eos_token"], "<|x|>");
  EXPECT_EQ(cfg["pad_token"], "<|x|>");
  EXPECT_EQ(cfg["add_bos_token"], false);
  EXPECT_EQ(files.count("generation_config.json"), 0u);  // no eot / eom
}

TEST(GgufTokenizer, eot_and_eom_also_end_generation) {
  auto w = tiny_bpe().add_u32("tokenizer.ggml.eos_token_id", 9).add_u32("tokenizer.ggml.eot_token_id", 7)
               .add_u32("tokenizer.ggml.eom_token_id", 8);
  EXPECT_THAT(tokenizer_of(w)->eos_ids(), ElementsAre(9, 7, 8));
}

TEST(GgufTokenizer, sentencepiece_merges_by_score) {
  auto tok = tokenizer_of(tiny_spm());
  EXPECT_EQ(tok->vocab_size(), 9);
  EXPECT_EQ(tok->bos_id(), 1);  // llama.cpp's defaults: BOS 1, EOS 2, BOS added
  EXPECT_THAT(tok->eos_ids(), ElementsAre(2));
  EXPECT_THAT(tok->encode("ab"), ElementsAre(1, 8));
  EXPECT_THAT(tok->encode("ab a", false), ElementsAre(8, 6));
  EXPECT_EQ(tok->decode({1, 8, 6, 2}), "ab a");
  // tokenizer.ggml.add_space_prefix = false: no dummy "▁" in front.
  EXPECT_THAT(tokenizer_of(tiny_spm().add_bool("tokenizer.ggml.add_space_prefix", false))->encode("ab", false), ElementsAre(7));
  EXPECT_THAT(tokenizer_of(tiny_spm().add_bool("tokenizer.ggml.add_bos_token", false))->encode("ab"), ElementsAre(8));
}

// A manifest converted from a GGUF holds these files; read back from a folder by load_tokenizer
// they must make the same tokenizer as in memory.
TEST(GgufTokenizer, files_in_a_folder_load_the_same) {
  for (const GgufWriter& w : {tiny_bpe().add_u32("tokenizer.ggml.eos_token_id", 7).add_u32("tokenizer.ggml.eot_token_id", 8)
                                  .add_u32("tokenizer.ggml.bos_token_id", 9).add_bool("tokenizer.ggml.add_bos_token", true),
                              tiny_spm()}) {
    const auto files = files_of(w);
    test::TempDir dir;
    for (const auto& [name, text] : files) test::write_file(dir / name, text);
    auto from_folder = load_tokenizer(dir.path());
    auto in_memory = load_tokenizer_files(files, "t.gguf");
    EXPECT_EQ(from_folder->bos_id(), in_memory->bos_id());
    EXPECT_EQ(from_folder->eos_ids(), in_memory->eos_ids());
    for (const char* text : {"ab a", "abc<|x|> ab", ""})
      EXPECT_EQ(from_folder->encode(text), in_memory->encode(text)) << text;
  }
}

TEST(GgufTokenizer, real_smollm2_file) {
  const std::string path = LOWBIT_SOURCE_DIR "/../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present";
  const GgufFile f = GgufFile::open(path);
  const auto files = gguf_tokenizer_files(f);
  const json cfg = json::parse(files.at("tokenizer_config.json"));
  EXPECT_EQ(cfg["chat_template"], std::string(f.get_string("tokenizer.chat_template")));
  EXPECT_EQ(cfg["bos_token"], "<|im_start|>");
  EXPECT_EQ(cfg["eos_token"], "<|im_end|>");
  auto tok = load_tokenizer_files(files, path);
  // Ids from transformers' GGUF loader (PreTrainedTokenizerFast.from_pretrained(dir, gguf_file=...)).
  EXPECT_THAT(tok->encode("Hello 1234 world <|im_start|>user\n"),
              ElementsAre(19556, 216, 33, 34, 35, 36, 905, 216, 1, 4093, 198));
}

// ---- malformed metadata: each error names the key ------------------------------------------

TEST(GgufTokenizerErrors, missing_or_mistyped_keys) {
  GgufWriter no_tokens;
  no_tokens.add_string("tokenizer.ggml.model", "gpt2");
  EXPECT_THAT(files_error(no_tokens), AllOf(HasSubstr("t.gguf"), HasSubstr("'tokenizer.ggml.tokens' is missing")));
  GgufWriter no_model;
  no_model.add_string_array("tokenizer.ggml.tokens", {"a"});
  EXPECT_THAT(files_error(no_model), HasSubstr("'tokenizer.ggml.model' is missing"));
  GgufWriter int_tokens;
  int_tokens.add_string("tokenizer.ggml.model", "gpt2").add_i32_array("tokenizer.ggml.tokens", {1, 2});
  EXPECT_THAT(files_error(int_tokens), HasSubstr("'tokenizer.ggml.tokens' is not an array of strings"));
  EXPECT_THAT(files_error(tiny_bpe().add_u32("tokenizer.ggml.add_bos_token", 1)),
              HasSubstr("'tokenizer.ggml.add_bos_token' is a u32, not a bool"));
}

TEST(GgufTokenizerErrors, gpt2_without_merges) {
  GgufWriter w;
  w.add_string("tokenizer.ggml.model", "gpt2").add_string("tokenizer.ggml.pre", "gpt-2").add_string_array("tokenizer.ggml.tokens", {"a"});
  EXPECT_THAT(files_error(w), HasSubstr("'tokenizer.ggml.merges' is missing"));
}

TEST(GgufTokenizerErrors, unknown_model_and_pre_tokenizer) {
  GgufWriter bert;
  bert.add_string("tokenizer.ggml.model", "bert").add_string_array("tokenizer.ggml.tokens", {"a"});
  EXPECT_THAT(files_error(bert), AllOf(HasSubstr("'tokenizer.ggml.model'"), HasSubstr("'bert'")));
  EXPECT_THAT(files_error(tiny_bpe("deepseek-llm")), AllOf(HasSubstr("'tokenizer.ggml.pre'"), HasSubstr("'deepseek-llm'")));
}

TEST(GgufTokenizerErrors, array_lengths_must_match_the_tokens) {
  GgufWriter types;
  types.add_string("tokenizer.ggml.model", "gpt2").add_string_array("tokenizer.ggml.tokens", {"a", "b"})
      .add_i32_array("tokenizer.ggml.token_type", {kNormal}).add_string_array("tokenizer.ggml.merges", {});
  EXPECT_THAT(files_error(types), AllOf(HasSubstr("'tokenizer.ggml.token_type' has 1 entries for 2 tokens")));
  GgufWriter short_scores;
  short_scores.add_string("tokenizer.ggml.model", "llama").add_string_array("tokenizer.ggml.tokens", {"<unk>", "a"})
      .add_i32_array("tokenizer.ggml.token_type", {kUnknown, kNormal}).add_f32_array("tokenizer.ggml.scores", {0});
  EXPECT_THAT(files_error(short_scores), HasSubstr("'tokenizer.ggml.scores' has 1 entries for 2 tokens"));
}

TEST(GgufTokenizerErrors, bad_values) {
  GgufWriter type7;
  type7.add_string("tokenizer.ggml.model", "gpt2").add_string_array("tokenizer.ggml.tokens", {"a"})
      .add_i32_array("tokenizer.ggml.token_type", {7}).add_string_array("tokenizer.ggml.merges", {});
  EXPECT_THAT(files_error(type7), HasSubstr("'tokenizer.ggml.token_type' [0] = 7 is not a token type"));
  EXPECT_THAT(files_error(tiny_bpe().add_u32("tokenizer.ggml.bos_token_id", 10)),
              HasSubstr("'tokenizer.ggml.bos_token_id' = 10 is outside the vocabulary (10 tokens)"));
  EXPECT_THAT(files_error(tiny_bpe().add_bool("tokenizer.ggml.add_bos_token", true)),
              HasSubstr("'tokenizer.ggml.bos_token_id' is missing, but BOS is to be added"));
  GgufWriter merge;
  merge.add_string("tokenizer.ggml.model", "gpt2").add_string_array("tokenizer.ggml.tokens", {"a", "b", "ab"})
      .add_string_array("tokenizer.ggml.merges", {"a b", "ab"});
  EXPECT_THAT(files_error(merge), HasSubstr("'tokenizer.ggml.merges' [1] 'ab' is not two tokens separated by a space"));
  GgufWriter twice;
  twice.add_string("tokenizer.ggml.model", "gpt2").add_string_array("tokenizer.ggml.tokens", {"a", "b", "a"})
      .add_string_array("tokenizer.ggml.merges", {});
  EXPECT_THAT(files_error(twice), HasSubstr("'tokenizer.ggml.tokens' [2] 'a' repeats token 0"));
  GgufWriter no_unk;
  no_unk.add_string("tokenizer.ggml.model", "llama").add_string_array("tokenizer.ggml.tokens", {"a"})
      .add_f32_array("tokenizer.ggml.scores", {0});
  EXPECT_THAT(files_error(no_unk), HasSubstr("'tokenizer.ggml.token_type' is missing"));
  no_unk.add_i32_array("tokenizer.ggml.token_type", {kNormal});
  EXPECT_THAT(files_error(no_unk), HasSubstr("'tokenizer.ggml.token_type' marks no token UNKNOWN"));
}

// A merge of tokens that are not in the vocabulary passes the metadata checks and is caught when
// the BPE model is built, naming the file it was written to.
TEST(GgufTokenizerErrors, merge_of_unknown_tokens) {
  GgufWriter w;
  w.add_string("tokenizer.ggml.model", "gpt2").add_string_array("tokenizer.ggml.tokens", {"a", "b"})
      .add_string_array("tokenizer.ggml.merges", {"a b"});
  EXPECT_THAT(error_of([&] { tokenizer_of(w); }),
              AllOf(HasSubstr("t.gguf:tokenizer.json"), HasSubstr("merge 0 ('a' 'b')")));
}

}  // namespace
}  // namespace lowbit
