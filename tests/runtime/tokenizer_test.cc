// Tests of runtime/tokenizer/tokenizer.h on the real tokenizers in ../shared/models: known ids, round trips,
// the streaming decoder, BOS/EOS from the config files, and the errors of load_tokenizer.
#include "tests/error_of.h"
#include "runtime/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>

#include <sentencepiece_processor.h>
#include <unistd.h>

#include "kernels/error.h"
#include "runtime/tokenizer/tokenizer_unicode.h"

namespace {

namespace fs = std::filesystem;
using lowbit::Error;
using lowbit::Tokenizer;

const std::string kModels = LOWBIT_SOURCE_DIR "/../shared/models";

struct Case {
  const char* text;
  std::vector<int32_t> ids;  // encode(text, add_special=true)
  bool round_trip = true;    // decode(ids) == text (false: special tokens, or text NFC changes)
};

struct Model {
  const char* name;
  std::string path;
  int32_t vocab_size, bos;
  std::vector<int32_t> eos;
  bool adds_bos;  // whether encode(add_special=true) puts bos in front
  std::vector<Case> cases;
};

// Expected ids were made once with the reference packages in .venv (sentencepiece 0.2.0,
// tokenizers 0.23.3) and pasted here:
//   .model:          sentencepiece.SentencePieceProcessor(model_file=F).encode(s, add_bos=True)
//   tokenizer.json:  tokenizers.Tokenizer.from_file(F).encode(s).ids
//   vocab + merges:  tokenizers.Tokenizer(BPE.from_file(vocab, merges)) with the family's
//                    pre-tokenizer: GPT-2 ByteLevel(add_prefix_space=False); Qwen2 NFC normalizer,
//                    Split(Qwen2 regex, "isolated") + ByteLevel(use_regex=False); plus the special
//                    tokens <|endoftext|> (both) and <|im_start|>, <|im_end|> (Qwen2).
// "" after a \x escape ends the escape, nothing more.
// Llama 2's vocabulary, shared by its SentencePiece model and TinyLlama's tokenizer.json: the
// two readers must give the same ids for the same text.
const std::vector<Case> llama2_vocab = {
    {"Hello world", {1, 15043, 3186}},
    {" Hello", {1, 29871, 15043}},
    {"  two  spaces", {1, 259, 1023, 29871, 8162}},
    {"I'm 12345 here.", {1, 306, 29915, 29885, 29871, 29896, 29906, 29941, 29946, 29945, 1244, 29889}},
    {"a\tb\nc", {1, 263, 12, 29890, 13, 29883}},
    {"\xE4\xBD\xA0\xE5\xA5\xBD\xF0\x9F\x98\x80", {1, 29871, 30919, 31076, 243, 162, 155, 131}},
    {"na\xC3\xAF""ve caf\xC3\xA9", {1, 1055, 30085, 345, 274, 28059}},
    {"", {1}},
};

std::vector<Case> with(std::vector<Case> base, const std::vector<Case>& more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

const std::vector<Model>& models() {
  static const std::vector<Model> all = {
      {"stories260K", kModels + "/stories260K", 512, 1, {2}, true,
       {
           {"Once upon a time, there was a little girl named Lily.",
            {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426}},
           {"Hello world", {1, 346, 306, 414, 263, 304, 341}},
           {" Hello", {1, 410, 346, 306, 414}},
           {"  two  spaces", {1, 410, 410, 259, 424, 414, 410, 262, 427, 412, 331, 419}},
           {"I'm 12345 here.", {1, 359, 439, 423, 410, 475, 479, 472, 484, 480, 281, 276, 426}},
           {"a\tb\nc", {1, 261, 12, 430, 13, 429}},
           {"\xE4\xBD\xA0\xE5\xA5\xBD\xF0\x9F\x98\x80", {1, 410, 231, 192, 163, 232, 168, 192, 243, 162, 155, 131}},
           {"na\xC3\xAF""ve caf\xC3\xA9", {1, 297, 412, 198, 178, 360, 280, 412, 431, 485}},
           {"", {1}},
       }},
      {"llama2_model", kModels + "/configs/llama-2-7b-hf/tokenizer.model", 32000, 1, {2}, true, llama2_vocab},
      {"tinyllama_json", kModels + "/configs/tinyllama-1.1b-chat-v1.0", 32000, 1, {2}, true,
       with(llama2_vocab, {
           {"<|user|>\nHi</s>\n<s>", {1, 529, 29989, 1792, 29989, 29958, 13, 18567, 2, 29871, 13, 1}, false},
       })},
      {"mistral_json", kModels + "/configs/mistral-7b-v0.1", 32000, 1, {2}, true,
       {
           {"Hello world", {1, 22557, 1526}},
           {" Hello", {1, 28705, 22557}},
           {"  two  spaces", {1, 259, 989, 28705, 10599}},
           {"I'm 12345 here.", {1, 315, 28742, 28719, 28705, 28740, 28750, 28770, 28781, 28782, 1236, 28723}},
           {"a\tb\nc", {1, 264, 12, 28726, 13, 28717}},
           {"\xE4\xBD\xA0\xE5\xA5\xBD\xF0\x9F\x98\x80", {1, 28705, 29383, 29530, 30575}},
           {"na\xC3\xAF""ve caf\xC3\xA9", {1, 1879, 28920, 333, 28345}},
           {"", {1}},
           {"[INST] Hi [/INST]</s>", {1, 733, 16289, 28793, 15359, 733, 28748, 16289, 28793, 2}, false},
       }},
      {"qwen2_vocab_merges", kModels + "/configs/qwen2.5-0.5b", 151665, -1, {151643}, false,
       {
           {"Hello world", {9707, 1879}},
           {" Hello", {21927}},
           {"  two  spaces", {220, 1378, 220, 12621}},
           {"I'm 12345 here.", {40, 2776, 220, 16, 17, 18, 19, 20, 1588, 13}},
           {"a\tb\nc", {64, 2233, 198, 66}},
           {"\xE4\xBD\xA0\xE5\xA5\xBD\xF0\x9F\x98\x80", {108386, 141334}},
           {"na\xC3\xAF""ve caf\xC3\xA9", {3376, 37572, 586, 51950}},
           {"", {}},
           {"I'M HERE", {40, 27603, 19249}},
           {"<|im_start|>user\nHi<|im_end|>\n", {151644, 872, 198, 13048, 151645, 198}, false},
           // "e" + combining acute and three Hangul jamo: NFC makes them "é" and one syllable.
           {"cafe\xCC\x81 \xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", {924, 58858, 126804}, false},
       }},
      {"gpt2_vocab_merges", kModels + "/configs/gpt2/vocab.json", 50257, 50256, {50256}, false,
       {
           {"Hello world", {15496, 995}},
           {" Hello", {18435}},
           {"  two  spaces", {220, 734, 220, 9029}},
           {"I'm 12345 here.", {40, 1101, 17031, 2231, 994, 13}},
           {"a\tb\nc", {64, 197, 65, 198, 66}},
           {"\xE4\xBD\xA0\xE5\xA5\xBD\xF0\x9F\x98\x80", {19526, 254, 25001, 121, 47249, 222}},
           {"na\xC3\xAF""ve caf\xC3\xA9", {2616, 38776, 40304}},
           {"", {}},
           {"<|endoftext|>The end", {50256, 464, 886}, false},
       }},
  };
  return all;
}

void PrintTo(const Model& m, std::ostream* os) { *os << m.name; }

// Loading the big vocabularies takes a moment: each is loaded once for the whole binary.
const Tokenizer& tokenizer(const Model& m) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& t = cache[m.name];
  if (!t) t = lowbit::load_tokenizer(m.path);
  return *t;
}

std::string streamed(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  lowbit::DecodeStream stream(tok);
  std::string out;
  for (int32_t id : ids) out += stream.push(id);
  return out + stream.flush();
}

class KnownIds : public testing::TestWithParam<Model> {};

TEST_P(KnownIds, encode) {
  const Model& m = GetParam();
  const Tokenizer& tok = tokenizer(m);
  for (const Case& c : m.cases) EXPECT_EQ(tok.encode(c.text), c.ids) << "text: " << c.text;
}

TEST_P(KnownIds, encode_without_special) {
  const Model& m = GetParam();
  const Tokenizer& tok = tokenizer(m);
  for (const Case& c : m.cases) {
    std::vector<int32_t> want = c.ids;
    if (m.adds_bos) {
      ASSERT_EQ(want.at(0), m.bos);
      want.erase(want.begin());
    }
    EXPECT_EQ(tok.encode(c.text, false), want) << "text: " << c.text;
  }
}

TEST_P(KnownIds, special_ids) {
  const Model& m = GetParam();
  const Tokenizer& tok = tokenizer(m);
  EXPECT_EQ(tok.vocab_size(), m.vocab_size);
  EXPECT_EQ(tok.bos_id(), m.bos);
  EXPECT_EQ(tok.eos_ids(), m.eos);
  for (int32_t e : m.eos) EXPECT_TRUE(tok.is_eos(e));
  EXPECT_FALSE(tok.is_eos(m.cases[0].ids.back()));
}

TEST_P(KnownIds, decode_round_trip) {
  const Model& m = GetParam();
  const Tokenizer& tok = tokenizer(m);
  for (const Case& c : m.cases) {
    if (!c.round_trip) continue;
    EXPECT_EQ(tok.decode(tok.encode(c.text)), c.text);
    EXPECT_EQ(tok.decode(tok.encode(c.text, false)), c.text);
  }
}

TEST_P(KnownIds, decode_stream_equals_decode) {
  const Model& m = GetParam();
  const Tokenizer& tok = tokenizer(m);
  for (const Case& c : m.cases) {
    EXPECT_EQ(streamed(tok, c.ids), tok.decode(c.ids)) << "text: " << c.text;
    // Every EOS mid-stream, then text again: still what decode says.
    std::vector<int32_t> ids = c.ids;
    ids.push_back(m.eos[0]);
    ids.insert(ids.end(), c.ids.begin(), c.ids.end());
    EXPECT_EQ(streamed(tok, ids), tok.decode(ids)) << "text twice: " << c.text;
  }
}

// Any id sequence, however unlikely (stray byte tokens, specials inside byte runs): the stream
// still adds up to decode(). Mostly low ids, where the byte-fallback tokens of the
// SentencePiece-style vocabularies are (3..258).
TEST_P(KnownIds, decode_stream_random_ids) {
  const Model& m = GetParam();
  const Tokenizer& tok = tokenizer(m);
  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> low(0, 300), any(0, tok.vocab_size() - 1);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<int32_t> ids(1 + rng() % 16);
    for (int32_t& id : ids) id = rng() % 4 ? std::min(low(rng), tok.vocab_size() - 1) : any(rng);
    EXPECT_EQ(streamed(tok, ids), tok.decode(ids)) << "trial " << trial;
  }
}

TEST_P(KnownIds, bad_ids_throw) {
  const Tokenizer& tok = tokenizer(GetParam());
  EXPECT_THROW(tok.decode({tok.vocab_size()}), Error);
  EXPECT_THROW(tok.decode({-1}), Error);
  EXPECT_THROW(tok.id_to_piece(tok.vocab_size()), Error);
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, KnownIds, testing::ValuesIn(models()),
                         [](const testing::TestParamInfo<Model>& i) { return std::string(i.param.name); });

const Model& model_named(const std::string& name) {
  for (const Model& m : models())
    if (m.name == name) return m;
  throw std::runtime_error("no model " + name);
}

TEST(DecodeStream, holds_back_partial_characters) {
  // "😀" in Llama 2 is "▁" then four byte-fallback tokens.
  const Tokenizer& tok = tokenizer(model_named("llama2_model"));
  lowbit::DecodeStream stream(tok);
  EXPECT_EQ(stream.push(1), "");
  EXPECT_EQ(stream.push(29871), "");  // the leading space of the first piece is dropped, as in decode
  EXPECT_EQ(stream.push(243), "");
  EXPECT_EQ(stream.push(162), "");
  EXPECT_EQ(stream.push(155), "");
  EXPECT_EQ(stream.push(131), "\xF0\x9F\x98\x80");
  EXPECT_EQ(stream.push(15043), " Hello");
  EXPECT_EQ(stream.flush(), "");
}

TEST(DecodeStream, byte_level_partial_characters) {
  // GPT-2 writes "你" as two tokens, the first ending inside the character.
  const Tokenizer& tok = tokenizer(model_named("gpt2_vocab_merges"));
  lowbit::DecodeStream stream(tok);
  EXPECT_EQ(stream.push(19526), "");
  EXPECT_EQ(stream.push(254), "\xE4\xBD\xA0");
  EXPECT_EQ(stream.push(25001), "");
  EXPECT_EQ(stream.flush(), "\xEF\xBF\xBD");  // an unfinished character comes out as U+FFFD
}

TEST(DecodeStream, byte_fallback_run_waits_for_its_end) {
  // In HF's ByteFallback decoder a later invalid byte turns the whole run into U+FFFDs, so a
  // character made of byte tokens comes out only once a token that is not a byte follows.
  const Tokenizer& tok = tokenizer(model_named("tinyllama_json"));
  lowbit::DecodeStream stream(tok);
  for (int32_t id : {29871, 243, 162, 155, 131}) EXPECT_EQ(stream.push(id), "");
  EXPECT_EQ(stream.push(15043), "\xF0\x9F\x98\x80 Hello");
  for (int32_t id : {231, 192, 163}) EXPECT_EQ(stream.push(id), "");  // "你", then a stray byte
  EXPECT_EQ(stream.push(131), "");
  EXPECT_EQ(stream.flush(), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(DecodeStream, leading_space_after_first_piece) {
  const Tokenizer& tok = tokenizer(model_named("tinyllama_json"));
  lowbit::DecodeStream stream(tok);
  EXPECT_EQ(stream.push(1), "");
  EXPECT_EQ(stream.push(15043), "Hello");
  EXPECT_EQ(stream.push(3186), " world");
  EXPECT_EQ(stream.push(2), "");
  EXPECT_EQ(stream.flush(), "");
}

// Seeded with the ids before it (a prompt), the stream returns what the new ids add to the text,
// as the reference decodes the whole: libsentencepiece on Llama 2's tokenizer.model, each case
// cut at every point. The first piece keeps its leading space ("Hello" + "▁world" is " world").
TEST(DecodeStream, context_gives_what_the_ids_add_as_the_reference_decodes) {
  const Model& m = model_named("llama2_model");
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(m.path).ok());
  const Tokenizer& tok = tokenizer(m);
  int checked = 0;
  for (const Case& c : m.cases) {
    const std::vector<int> all(c.ids.begin(), c.ids.end());
    const std::string whole = sp.DecodeIds(all);
    for (size_t k = 1; k < c.ids.size(); ++k) {
      const std::string head = sp.DecodeIds(std::vector<int>(all.begin(), all.begin() + (std::ptrdiff_t)k));
      if (whole.compare(0, head.size(), head) != 0) continue;  // cut inside a character
      lowbit::DecodeStream stream(tok, std::vector<int32_t>(c.ids.begin(), c.ids.begin() + (std::ptrdiff_t)k));
      std::string out;
      for (size_t i = k; i < c.ids.size(); ++i) out += stream.push(c.ids[i]);
      out += stream.flush();
      EXPECT_EQ(out, whole.substr(head.size())) << "text '" << c.text << "' cut after " << k << " ids";
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
  lowbit::DecodeStream stream(tok, {1, 15043});
  EXPECT_EQ(stream.push(3186), " world");
}

TEST(BpeTokenizer, rejects_invalid_utf8) {
  EXPECT_THROW(tokenizer(model_named("qwen2_vocab_merges")).encode("ab\xFF"), Error);
  EXPECT_THROW(tokenizer(model_named("mistral_json")).encode("\xE4\xBD"), Error);
}

// ---- Unicode helpers: expected values from Python 3.11 (unicodedata.normalize("NFC", s) and
// bytes.decode("utf-8", "replace")).
TEST(TokenizerUnicode, nfc) {
  using lowbit::tok::nfc;
  EXPECT_EQ(nfc("plain ascii"), "plain ascii");
  EXPECT_EQ(nfc("cafe\xCC\x81"), "caf\xC3\xA9");
  EXPECT_EQ(nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // jamo -> syllable
  EXPECT_EQ(nfc("\xE1\xB8\x8B\xCC\xA3"), "\xE1\xB8\x8D\xCC\x87");            // reordering
  EXPECT_EQ(nfc("a\xCC\xA8\xCC\x81\xCC\xA3x"), "\xC4\x85\xCC\xA3\xCC\x81x");  // blocked marks
  EXPECT_EQ(nfc("\xE2\x84\xAB\xEF\xA4\x80"), "\xC3\x85\xE8\xB1\x88");        // singletons
  EXPECT_EQ(nfc("\xCD\x84\xE0\xA5\x98"), "\xCC\x88\xCC\x81\xE0\xA4\x95\xE0\xA4\xBC");  // exclusions
}

TEST(TokenizerUnicode, lossy_utf8) {
  using lowbit::tok::utf8_lossy;
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98" "a"), r + "a");
  EXPECT_EQ(utf8_lossy("\xE0\x80\x80"), r + r + r);
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), r + r + r);
  EXPECT_EQ(utf8_lossy("\xF4\x90\x80\x80"), r + r + r + r);
  EXPECT_EQ(utf8_lossy("\xC3"), r);
  EXPECT_EQ(utf8_lossy("ok\xFF\xFE"), "ok" + r + r);
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
}

TEST(TokenizerUnicode, byte_level_alphabet) {
  using lowbit::tok::byte_level_byte;
  using lowbit::tok::byte_level_char;
  // GPT-2's published examples: space is "Ġ" (U+0120), newline "Ċ" (U+010A), printable ASCII itself.
  EXPECT_EQ(byte_level_char(' '), "\xC4\xA0");
  EXPECT_EQ(byte_level_char('\n'), "\xC4\x8A");
  EXPECT_EQ(byte_level_char('!'), "!");
  EXPECT_EQ(byte_level_byte(0x120), ' ');
  EXPECT_EQ(byte_level_byte(U' '), -1);  // a code point that stands for no byte
  EXPECT_EQ(byte_level_byte(0x144), -1);
  for (int b = 0; b < 256; ++b) {
    char32_t cp;
    bool ok;
    std::string_view c = byte_level_char(static_cast<uint8_t>(b));
    ASSERT_EQ(lowbit::tok::utf8_next(c, 0, cp, ok), c.size());
    EXPECT_EQ(byte_level_byte(cp), b);
  }
}

// ---- Loading -------------------------------------------------------------------------------
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("lowbit_tokenizer_test_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  void write(const std::string& name, const std::string& text) const {
    fs::create_directories((path_ / name).parent_path());
    std::ofstream(path_ / name, std::ios::binary) << text;
  }
  void link(const std::string& name, const std::string& target) const {
    fs::create_directories((path_ / name).parent_path());
    fs::create_symlink(target, path_ / name);
  }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

using lowbit::test::error_of;

TEST(LoadTokenizer, prefers_tokenizer_json_over_model) {
  auto tok = lowbit::load_tokenizer(kModels + "/configs/tinyllama-1.1b-chat-v1.0");
  EXPECT_NE(tok->description().find("tokenizer.json"), std::string::npos) << tok->description();
}

TEST(LoadTokenizer, accepts_files_and_tokenizer_subfolder) {
  const std::string llama = kModels + "/configs/llama-2-7b-hf";
  EXPECT_EQ(lowbit::load_tokenizer(llama + "/tokenizer.model")->encode("Hello world"),
            (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(lowbit::load_tokenizer(kModels + "/configs/gpt2/merges.txt")->vocab_size(), 50257);

  // A manifest folder: tokenizer files under tokenizer/, config.json beside it.
  TempDir d;
  d.link("tokenizer/tokenizer.model", llama + "/tokenizer.model");
  d.write("tokenizer/tokenizer_config.json", R"({"add_bos_token": false, "eos_token": "</s>"})");
  d.write("config.json", R"({"eos_token_id": [2, 13]})");
  auto tok = lowbit::load_tokenizer(d.path().string());
  EXPECT_EQ(tok->encode("Hello world"), (std::vector<int32_t>{15043, 3186}));
  EXPECT_EQ(tok->eos_ids(), (std::vector<int32_t>{2, 13}));
  EXPECT_EQ(tok->bos_id(), 1);
}

TEST(LoadTokenizer, eos_list_from_generation_config) {
  TempDir d;
  d.link("tokenizer.model", kModels + "/stories260K/tokenizer.model");
  d.write("generation_config.json", R"({"bos_token_id": 1, "eos_token_id": [5, 2]})");
  d.write("tokenizer_config.json",
          R"({"add_eos_token": true, "bos_token": {"__type": "AddedToken", "content": "<s>"}})");
  auto tok = lowbit::load_tokenizer(d.path().string());
  EXPECT_EQ(tok->eos_ids(), (std::vector<int32_t>{5, 2}));
  EXPECT_TRUE(tok->is_eos(5));
  // add_eos_token appends the first EOS.
  EXPECT_EQ(tok->encode("Hello world"), (std::vector<int32_t>{1, 346, 306, 414, 263, 304, 341, 5}));
}

TEST(LoadTokenizer, llama_class_flags_rule_tokenizer_json) {
  // transformers' LlamaTokenizerFast rebuilds its post-processor from add_bos_token /
  // add_eos_token; other classes keep the template of tokenizer.json (BOS for TinyLlama).
  const std::string json = kModels + "/configs/tinyllama-1.1b-chat-v1.0/tokenizer.json";
  TempDir llama, generic;
  llama.link("tokenizer.json", json);
  llama.write("tokenizer_config.json",
              R"({"tokenizer_class": "LlamaTokenizerFast", "add_bos_token": false, "add_eos_token": true,
                  "eos_token": "</s>"})");
  EXPECT_EQ(lowbit::load_tokenizer(llama.path().string())->encode("Hello world"),
            (std::vector<int32_t>{15043, 3186, 2}));
  generic.link("tokenizer.json", json);
  generic.write("tokenizer_config.json", R"({"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": false})");
  EXPECT_EQ(lowbit::load_tokenizer(generic.path().string())->encode("Hello world"),
            (std::vector<int32_t>{1, 15043, 3186}));
}

TEST(LoadTokenizer, vocab_merges_without_gpt2_specials) {
  // A byte-level vocabulary with no <|endoftext|> and no config: no BOS, no EOS, no error.
  TempDir d;
  d.write("vocab.json", R"({"a": 0, "b": 1, "ab": 2, "Ġ": 3})");
  d.write("merges.txt", "#version: 0.2\na b\n");
  auto tok = lowbit::load_tokenizer(d.path().string());
  EXPECT_EQ(tok->encode("ab ab"), (std::vector<int32_t>{2, 3, 2}));
  EXPECT_EQ(tok->decode({2, 3, 2}), "ab ab");
  EXPECT_EQ(tok->bos_id(), -1);
  EXPECT_TRUE(tok->eos_ids().empty());
}

TEST(LoadTokenizer, errors_name_what_is_missing) {
  TempDir d;
  EXPECT_NE(error_of([&] { lowbit::load_tokenizer((d.path() / "nope").string()); }).find("nope"), std::string::npos);
  EXPECT_NE(error_of([&] { lowbit::load_tokenizer(d.path().string()); }).find("no tokenizer"), std::string::npos);

  d.link("vocab.json", kModels + "/configs/gpt2/vocab.json");
  EXPECT_NE(error_of([&] { lowbit::load_tokenizer(d.path().string()); }).find("merges.txt"), std::string::npos);

  TempDir bad;
  bad.write("notes.txt", "hello");
  EXPECT_NE(error_of([&] { lowbit::load_tokenizer((bad.path() / "notes.txt").string()); }).find("notes.txt"),
            std::string::npos);
  bad.write("tokenizer.model", "not a protobuf");
  EXPECT_NE(error_of([&] { lowbit::load_tokenizer(bad.path().string()); }).find("tokenizer.model"), std::string::npos);
  bad.write("tokenizer.json", "{");
  EXPECT_NE(error_of([&] { lowbit::load_tokenizer(bad.path().string()); }).find("tokenizer.json"), std::string::npos);
  bad.write("tokenizer.json", R"({"model": {"type": "Unigram", "vocab": []}})");
  EXPECT_NE(error_of([&] { lowbit::load_tokenizer(bad.path().string()); }).find("Unigram"), std::string::npos);
  bad.write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})");
  EXPECT_NE(error_of([&] { lowbit::load_tokenizer(bad.path().string()); }).find("merge 0"), std::string::npos);
  bad.write("tokenizer_config.json", R"({"eos_token": "<nope>"})");
  bad.write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  EXPECT_NE(error_of([&] { lowbit::load_tokenizer(bad.path().string()); }).find("<nope>"), std::string::npos);
}

}  // namespace

namespace {

std::string file_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(LoadTokenizerFiles, vocab_merges_held_in_memory_read_as_from_disk) {
  // A model folder whose tokenizer is vocab.json + merges.txt (Qwen2.5's as published): the HF
  // converter hands the files over in memory; they must read as load_tokenizer reads the folder
  // (which test_tokenizer_reference.py holds to transformers).
  const std::string dir = kModels + "/configs/qwen2.5-0.5b";
  if (!fs::exists(dir)) GTEST_SKIP() << dir << " not present";
  std::map<std::string, std::string> files;
  for (const char* name : {"vocab.json", "merges.txt", "tokenizer_config.json", "config.json"})
    files[name] = file_text(dir + "/" + name);
  auto from_disk = lowbit::load_tokenizer(dir);
  auto in_memory = lowbit::load_tokenizer_files(files, "qwen");
  for (const std::string text : {"Hello world", "<|im_start|>user\n2 + 2 = 4?<|im_end|>\n", "naïve café 日本語 123456"})
    EXPECT_EQ(in_memory->encode(text), from_disk->encode(text)) << text;
  EXPECT_EQ(in_memory->eos_ids(), from_disk->eos_ids());
  EXPECT_EQ(in_memory->chat_template(), from_disk->chat_template());

  files.erase("merges.txt");
  EXPECT_NE(error_of([&] { lowbit::load_tokenizer_files(files, "qwen"); }).find("qwen:vocab.json has no merges.txt"),
            std::string::npos);
}

}  // namespace
