// GGUF tokenizer metadata -> tokenizer.json / tokenizer.model + tokenizer_config.json (see
// gguf_tokenizer.h). Key names, token types, pre-tokenizer names and defaults are facts from
// llama.cpp (llama-vocab.cpp, gguf-py constants); the pre-tokenizer rules are those of the models'
// own HF tokenizers where one exists (Llama 3, Qwen2, SmolLM, GPT-2), which llama.cpp reproduces.
#include "convert/gguf_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "runtime/tokenizer/tokenizer_bpe.h"
#include "runtime/tokenizer/tokenizer_unicode.h"

namespace lowbit {
namespace {

using nlohmann::json;

constexpr const char* kModelKey = "tokenizer.ggml.model";
constexpr const char* kPreKey = "tokenizer.ggml.pre";
constexpr const char* kTokensKey = "tokenizer.ggml.tokens";
constexpr const char* kTypesKey = "tokenizer.ggml.token_type";
constexpr const char* kScoresKey = "tokenizer.ggml.scores";
constexpr const char* kMergesKey = "tokenizer.ggml.merges";

// llama.cpp's token types (llama_token_type), the same numbers as SentencePiece's piece types.
enum TokenType : int32_t {
  kUndefined = 0,  // llama.cpp's "no type"; read as normal
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// A pre-tokenizer named by tokenizer.ggml.pre, as HF tokenizer.json steps: the Digits step, then
// a Split (isolating its matches) per regex, then ByteLevel (splitting with GPT-2's regex itself
// when byte_level_regex).
struct PreTokenizerRule {
  std::vector<const char*> names;
  bool digits = false;  // each digit apart (SmolLM)
  std::vector<const char*> splits;
  bool byte_level_regex = false;
  bool nfc = false;            // the model's tokenizer normalizes to NFC first (Qwen2)
  bool ignore_merges = false;  // a word found whole in the vocabulary stays whole (Llama 3)
  bool add_bos = false;        // llama.cpp's default for add_bos_token with this pre-tokenizer
};

// llama.cpp's "default" rule (also used for a file with no tokenizer.ggml.pre): its own four
// regexes, each splitting the pieces of the one before.
const char* const kDefaultSplits[] = {
    R"([\p{P}\$\+<=>\^~\|]+)",
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))",
    R"(\p{N}+)",
    R"([0-9][0-9][0-9])",
};

// The Split patterns of the tokenizer.json of the families below, as llama.cpp's llama-vocab.cpp
// quotes them ("original regex from tokenizer.json"); PCRE2 takes them as written.
// Tekken (Mistral NeMo, Mistral Small 3, Pixtral): cased words, single digits.
const char* const kTekkenPattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|)"
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|)"
    R"(\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// GPT-4o's o200k (Phi-4-mini, Llama 4): Tekken's words with contractions, digits in threes.
const char* const kGpt4oPattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen 3.5's: Qwen2's with combining marks inside words.
const char* const kQwen35Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|)"
    R"(\s*[\r\n]+|\s+(?!\S)|\s+)";

// Which tokenizer.ggml.pre names share a rule is llama.cpp's (llama-vocab.cpp): each name below
// selects the same regexes, merge and BOS defaults there.
const std::vector<PreTokenizerRule>& pre_tokenizer_rules() {
  static const std::vector<PreTokenizerRule> rules = [] {
    std::vector<PreTokenizerRule> r(9);
    // llama.cpp writes "gpt-2"; "gpt2" is the same rule.
    r[0].names = {"gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais", "exaone4", "trillion", "granite-docling"};
    r[0].byte_level_regex = true;
    // SmolLM's tokenizer.json, and llama.cpp (\p{N}, then GPT-2's regex), which reads StarCoder's,
    // Refact's (Granite 3's), Command R's and others the same way. transformers' GGUF loader
    // leaves the digit split out, and so differs where a digit follows spaces.
    r[1].names = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"};
    r[1].digits = true;
    r[1].byte_level_regex = true;
    r[2].names = {"llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"};
    r[2].splits = {tok::kLlama3Pattern};
    r[2].ignore_merges = true;
    r[2].add_bos = true;
    // Qwen2's own tokenizer normalizes to NFC; llama.cpp and transformers' GGUF loader do not,
    // and so differ on text not in NFC (decomposed accents), where the model was trained on NFC.
    r[3].names = {"qwen2"};
    r[3].splits = {tok::kQwen2Pattern};
    r[3].nfc = true;
    r[4].names = {"default"};
    r[4].splits.assign(std::begin(kDefaultSplits), std::end(kDefaultSplits));
    // Qwen2's regex under names whose tokenizers' normalizers are not known here: as llama.cpp,
    // no NFC (DeepSeek-R1's Qwen distillations, StableLM 2, Hunyuan, Megrez).
    r[5].names = {"deepseek-r1-qwen", "stablelm2", "hunyuan", "megrez", "kormo", "solar-open"};
    r[5].splits = {tok::kQwen2Pattern};
    r[6].names = {"tekken"};
    r[6].splits = {kTekkenPattern};
    r[6].ignore_merges = true;
    r[6].add_bos = true;
    r[7].names = {"gpt-4o", "llama4", "minimax-m2"};
    r[7].splits = {kGpt4oPattern};
    r[8].names = {"qwen35"};
    r[8].splits = {kQwen35Pattern};
    // DBRX's and Smaug's: Llama 3's regex without its merge and BOS defaults.
    r.push_back({});
    r.back().names = {"dbrx", "smaug-bpe"};
    r.back().splits = {tok::kLlama3Pattern};
    return r;
  }();
  return rules;
}

// "[i]", for messages about one element of an array. (Built with += : GCC 12 warns falsely,
// -Wrestrict, on "[" + std::to_string(i).)
std::string item(size_t i) {
  std::string s = "[";
  s += std::to_string(i);
  s += "]";
  return s;
}

// Appends s (valid UTF-8) as a JSON string: quotes, backslashes and control characters escaped.
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  out += '"';
}

class Builder {
 public:
  explicit Builder(const GgufFile& f) : f_(f) {}

  std::map<std::string, std::string> build() {
    const std::string model(f_.get_string(kModelKey));
    tokens_ = f_.get_string_array(kTokensKey);
    if (tokens_.empty()) fail(kTokensKey, "is empty");
    if (tokens_.size() > (size_t)INT32_MAX) fail(kTokensKey, "has more tokens than 32-bit ids can number");
    read_types();
    std::map<std::string, std::string> files;
    if (model == "gpt2") {
      build_byte_level_bpe(files);
    } else if (model == "llama") {
      build_sentencepiece(files);
    } else {
      fail(kModelKey, "is '" + model + "': only 'gpt2' (byte-level BPE) and 'llama' (SentencePiece) are supported");
    }
    return files;
  }

 private:
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw Error(f_.label() + ": metadata '" + key + "' " + what);
  }

  int32_t n_tokens() const { return static_cast<int32_t>(tokens_.size()); }

  void read_types() {
    types_.assign(tokens_.size(), kNormal);
    if (!f_.has(kTypesKey)) return;
    std::vector<int32_t> t = f_.get_i32_array(kTypesKey);
    if (t.size() != tokens_.size())
      fail(kTypesKey, "has " + std::to_string(t.size()) + " entries for " + std::to_string(tokens_.size()) +
                          " tokens in " + kTokensKey);
    for (size_t i = 0; i < t.size(); ++i) {
      if (t[i] < kUndefined || t[i] > kByte)
        fail(kTypesKey, item(i) + " = " + std::to_string(t[i]) + " is not a token type (0-6)");
      types_[i] = t[i] == kUndefined ? kNormal : t[i];
    }
  }

  // A token id key: nullopt when absent; an id outside the vocabulary is an error.
  std::optional<int32_t> token_id(const std::string& key) const {
    if (!f_.has(key)) return std::nullopt;
    const int64_t id = f_.get_int(key);
    if (id < 0 || id >= n_tokens())
      fail(key, "= " + std::to_string(id) + " is outside the vocabulary (" + std::to_string(n_tokens()) + " tokens)");
    return static_cast<int32_t>(id);
  }

  bool flag(const std::string& key, bool fallback) const { return f_.has(key) ? f_.get_bool(key) : fallback; }

  // The special tokens, with llama.cpp's defaults for the ids a file leaves out.
  struct Specials {
    std::optional<int32_t> bos, eos, unk, pad;
    std::vector<int32_t> more_eos;  // eot, eom: also end generation
    bool add_bos = false, add_eos = false;
  };

  Specials read_specials(std::optional<int32_t> default_bos, std::optional<int32_t> default_eos,
                         std::optional<int32_t> default_unk, bool default_add_bos) const {
    auto or_default = [&](std::optional<int32_t> id, std::optional<int32_t> fallback) -> std::optional<int32_t> {
      if (id) return id;
      if (fallback && *fallback < n_tokens()) return fallback;
      return std::nullopt;
    };
    Specials s;
    s.bos = or_default(token_id("tokenizer.ggml.bos_token_id"), default_bos);
    s.eos = or_default(token_id("tokenizer.ggml.eos_token_id"), default_eos);
    s.unk = or_default(token_id("tokenizer.ggml.unknown_token_id"), default_unk);
    s.pad = token_id("tokenizer.ggml.padding_token_id");
    for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
      if (auto id = token_id(key); id && id != s.eos) s.more_eos.push_back(*id);
    s.add_bos = flag("tokenizer.ggml.add_bos_token", default_add_bos);
    s.add_eos = flag("tokenizer.ggml.add_eos_token", false);
    if (s.add_bos && !s.bos) fail("tokenizer.ggml.bos_token_id", "is missing, but BOS is to be added");
    if (s.add_eos && !s.eos) fail("tokenizer.ggml.eos_token_id", "is missing, but EOS is to be added");
    return s;
  }

  // tokenizer_config.json and generation_config.json, shared by both kinds.
  void write_configs(const Specials& s, std::map<std::string, std::string>& files) const {
    json cfg = json::object();
    cfg["add_bos_token"] = s.add_bos;
    cfg["add_eos_token"] = s.add_eos;
    auto name = [&](const char* field, std::optional<int32_t> id) {
      if (id) cfg[field] = std::string(tokens_[*id]);
    };
    name("bos_token", s.bos);
    name("eos_token", s.eos);
    name("unk_token", s.unk);
    name("pad_token", s.pad);
    if (f_.has("tokenizer.chat_template")) {
      const std::string_view t = f_.get_string("tokenizer.chat_template");
      if (tok::utf8_invalid_offset(t) != std::string_view::npos) fail("tokenizer.chat_template", "is not valid UTF-8");
      cfg["chat_template"] = std::string(t);
    }
    files["tokenizer_config.json"] = dump(cfg, "tokenizer_config.json", 2);
    if (!s.more_eos.empty()) {
      json eos = json::array();
      if (s.eos) eos.push_back(*s.eos);
      for (int32_t id : s.more_eos) eos.push_back(id);
      files["generation_config.json"] = dump(json{{"eos_token_id", eos}}, "generation_config.json", 2);
    }
  }

  std::string dump(const json& j, const char* file, int indent = -1) const {
    try {
      return j.dump(indent);
    } catch (const json::exception& e) {  // invalid UTF-8: checked before, so a bug if reached
      throw Error(f_.label() + ": cannot write " + file + " (" + e.what() + ")");
    }
  }

  // ---- byte-level BPE -> tokenizer.json ------------------------------------------------------

  const PreTokenizerRule& pre_tokenizer_rule() const {
    const std::string pre = f_.has(kPreKey) ? std::string(f_.get_string(kPreKey)) : "default";
    std::string known;
    for (const PreTokenizerRule& r : pre_tokenizer_rules()) {
      for (const char* n : r.names) {
        if (pre == n) return r;
        known += std::string(known.empty() ? "" : ", ") + n;
      }
    }
    fail(kPreKey, "is '" + pre + "', a pre-tokenizer this reader does not know (known: " + known + ")");
  }

  static json byte_level(bool use_regex) {
    return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
  }

  static json pre_tokenizer_json(const PreTokenizerRule& r) {
    json steps = json::array();
    if (r.digits) steps.push_back({{"type", "Digits"}, {"individual_digits", true}});
    for (const char* regex : r.splits)
      steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}});
    steps.push_back(byte_level(r.byte_level_regex));
    if (steps.size() == 1) return steps[0];
    return {{"type", "Sequence"}, {"pretokenizers", steps}};
  }

  void build_byte_level_bpe(std::map<std::string, std::string>& files) const {
    const PreTokenizerRule& rule = pre_tokenizer_rule();
    if (!f_.has(kMergesKey)) fail(kMergesKey, "is missing (a 'gpt2' tokenizer needs its BPE merges)");
    const std::vector<std::string_view> merges = f_.get_string_array(kMergesKey);

    // The vocabulary and merges are written as JSON text directly: one nlohmann value per token
    // costs four times as long (0.5 s for Qwen2's 151k tokens).
    std::string vocab, merge_pairs;
    std::unordered_map<std::string_view, int32_t> seen;
    seen.reserve(tokens_.size());
    for (int32_t id = 0; id < n_tokens(); ++id) {
      const std::string_view t = tokens_[id];
      if (tok::utf8_invalid_offset(t) != std::string_view::npos)
        fail(kTokensKey, item(id) + " is not valid UTF-8");
      if (auto [it, fresh] = seen.emplace(t, id); !fresh)
        fail(kTokensKey, item(id) + " '" + std::string(t) + "' repeats token " + std::to_string(it->second));
    }
    // In byte order of the tokens, as nlohmann writes an object: the runtime's JSON reader keeps
    // objects in a std::map and takes twice as long to read them in any other order.
    std::vector<int32_t> order(tokens_.size());
    for (int32_t id = 0; id < n_tokens(); ++id) order[id] = id;
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return tokens_[a] < tokens_[b]; });
    for (int32_t id : order) {
      if (!vocab.empty()) vocab += ",\n";
      append_json_string(vocab, tokens_[id]);
      vocab += ':';
      vocab += std::to_string(id);
    }
    for (size_t i = 0; i < merges.size(); ++i) {
      // llama.cpp splits at the first space after the first character.
      const std::string_view m = merges[i];
      const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
      if (space == std::string_view::npos || space + 1 == m.size() || tok::utf8_invalid_offset(m) != std::string_view::npos)
        fail(kMergesKey, item(i) + " '" + std::string(m) + "' is not two tokens separated by a space");
      merge_pairs += i > 0 ? ",\n[" : "[";
      append_json_string(merge_pairs, m.substr(0, space));
      merge_pairs += ',';
      append_json_string(merge_pairs, m.substr(space + 1));
      merge_pairs += ']';
    }

    Specials s = read_specials(std::nullopt, std::nullopt, std::nullopt, rule.add_bos);

    std::string added;  // one per line
    for (int32_t id = 0; id < n_tokens(); ++id) {
      if (types_[id] != kControl && types_[id] != kUserDefined) continue;
      const json token = {{"id", id},         {"content", std::string(tokens_[id])}, {"single_word", false},
                          {"lstrip", false},  {"rstrip", false}, {"normalized", false},
                          {"special", types_[id] == kControl}};
      added += (added.empty() ? "\n" : ",\n") + dump(token, "tokenizer.json");
    }

    const json model = {{"type", "BPE"},          {"dropout", nullptr},
                        {"unk_token", nullptr},   {"continuing_subword_prefix", nullptr},
                        {"end_of_word_suffix", nullptr}, {"fuse_unk", false},
                        {"byte_fallback", false}, {"ignore_merges", rule.ignore_merges}};
    std::string model_text = dump(model, "tokenizer.json");
    model_text.pop_back();  // its closing brace: the vocabulary and merges follow
    files["tokenizer.json"] =
        "{\"version\": \"1.0\",\n\"added_tokens\": [" + added + "]" +
        ",\n\"normalizer\": " + dump(rule.nfc ? json{{"type", "NFC"}} : json(nullptr), "tokenizer.json") +
        ",\n\"pre_tokenizer\": " + dump(pre_tokenizer_json(rule), "tokenizer.json") +
        ",\n\"post_processor\": " + dump(post_processor(s), "tokenizer.json") +
        ",\n\"decoder\": " +
        dump({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}, "tokenizer.json") +
        ",\n\"model\": " + model_text + ",\n\"vocab\": {\n" + vocab + "},\n\"merges\": [\n" + merge_pairs + "]}}\n";
    write_configs(s, files);
  }

  // BOS / EOS around one sequence, as a TemplateProcessing (null when neither is added).
  json post_processor(const Specials& s) const {
    if (!s.add_bos && !s.add_eos) return nullptr;
    json single = json::array(), special_tokens = json::object();
    auto special = [&](int32_t id) {
      const std::string name(tokens_[id]);
      single.push_back({{"SpecialToken", {{"id", name}, {"type_id", 0}}}});
      special_tokens[name] = {{"id", name}, {"ids", {id}}, {"tokens", {name}}};
    };
    if (s.add_bos) special(*s.bos);
    single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
    if (s.add_eos) special(*s.eos);
    return {{"type", "TemplateProcessing"}, {"single", single}, {"pair", single}, {"special_tokens", special_tokens}};
  }

  // ---- SentencePiece -> tokenizer.model ------------------------------------------------------

  void build_sentencepiece(std::map<std::string, std::string>& files) const {
    if (!f_.has(kScoresKey)) fail(kScoresKey, "is missing (SentencePiece merges by the tokens' scores)");
    const std::vector<float> scores = f_.get_f32_array(kScoresKey);
    if (scores.size() != tokens_.size())
      fail(kScoresKey, "has " + std::to_string(scores.size()) + " entries for " + std::to_string(tokens_.size()) +
                           " tokens in " + kTokensKey);
    if (!f_.has(kTypesKey)) fail(kTypesKey, "is missing (SentencePiece needs the token types, one token UNKNOWN)");
    bool has_unknown = false, has_bytes = false;
    for (int32_t t : types_) {
      has_unknown |= t == kUnknown;
      has_bytes |= t == kByte;
    }
    if (!has_unknown) fail(kTypesKey, "marks no token UNKNOWN (2); a SentencePiece model needs one");

    Specials s = read_specials(1, 2, 0, /*default_add_bos=*/true);
    files["tokenizer.model"] = model_proto(scores, s, has_bytes);
    write_configs(s, files);
  }

  // sentencepiece_model.proto, written by hand: ModelProto { repeated SentencePiece pieces = 1
  // {piece = 1, score = 2, type = 3}; TrainerSpec trainer_spec = 2; NormalizerSpec normalizer_spec = 3 }.
  std::string model_proto(const std::vector<float>& scores, const Specials& s, bool byte_fallback) const {
    ProtoWriter model;
    for (int32_t id = 0; id < n_tokens(); ++id) {
      ProtoWriter piece;
      piece.bytes(1, tokens_[id]);
      piece.f32(2, scores[id]);
      piece.varint_field(3, static_cast<uint64_t>(types_[id]));
      model.bytes(1, piece.out);
    }
    ProtoWriter trainer;  // TrainerSpec: what the processor reads back at run time
    trainer.varint_field(3, 2);  // model_type = BPE: llama.cpp merges SentencePiece vocabularies by score
    trainer.varint_field(4, static_cast<uint64_t>(n_tokens()));  // vocab_size
    trainer.varint_field(35, byte_fallback ? 1 : 0);             // byte_fallback
    auto special = [&](int id_field, int piece_field, std::optional<int32_t> id) {
      // int32 fields are varints of the sign-extended value, so -1 ("none") takes 10 bytes.
      trainer.varint_field(id_field, static_cast<uint64_t>(static_cast<int64_t>(id.value_or(-1))));
      if (id) trainer.bytes(piece_field, tokens_[*id]);
    };
    special(40, 45, s.unk);  // unk_id, unk_piece
    special(41, 46, s.bos);  // bos_id, bos_piece
    special(42, 47, s.eos);  // eos_id, eos_piece
    special(43, 48, s.pad);  // pad_id, pad_piece
    model.bytes(2, trainer.out);
    ProtoWriter normalizer;  // NormalizerSpec: no character mapping, spaces as U+2581
    normalizer.bytes(1, "identity");  // name
    normalizer.varint_field(3, flag("tokenizer.ggml.add_space_prefix", true) ? 1 : 0);  // add_dummy_prefix
    normalizer.varint_field(4, flag("tokenizer.ggml.remove_extra_whitespaces", false) ? 1 : 0);
    normalizer.varint_field(5, 1);  // escape_whitespaces
    model.bytes(3, normalizer.out);
    return std::move(model.out);
  }

  // The protobuf wire format, the three field kinds a ModelProto needs.
  struct ProtoWriter {
    std::string out;
    void varint(uint64_t v) {
      for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>((v & 0x7F) | 0x80));
      out.push_back(static_cast<char>(v));
    }
    void tag(int field, int wire_type) { varint((static_cast<uint64_t>(field) << 3) | wire_type); }
    void varint_field(int field, uint64_t v) {
      tag(field, 0);
      varint(v);
    }
    void f32(int field, float v) {  // fixed32, little-endian
      tag(field, 5);
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(bits >> (8 * i)));
    }
    void bytes(int field, std::string_view s) {  // length-delimited: strings and sub-messages
      tag(field, 2);
      varint(s.size());
      out.append(s);
    }
  };

  const GgufFile& f_;
  std::vector<std::string_view> tokens_;  // views into the file
  std::vector<int32_t> types_;            // one per token; kNormal where the file gives none
};

}  // namespace

std::map<std::string, std::string> gguf_tokenizer_files(const GgufFile& f) { return Builder(f).build(); }

}  // namespace lowbit
