// Reads an HF fast-tokenizer file (tokenizer.json) with a BPE model into a BpePipeline.
// Format: the serialization of the `tokenizers` library (model, added_tokens, normalizer,
// pre_tokenizer, post_processor, decoder), read from its documentation and from real files.
#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "runtime/mapped_file.h"
#include "runtime/tokenizer/tokenizer_bpe.h"

namespace lowbit::tok {
namespace {

using nlohmann::json;

// Reads one tokenizer.json held in `text`; `path` (its path, or what stands for it) prefixes every
// message.
class JsonReader {
 public:
  JsonReader(std::string path, const std::string& text) : path_(std::move(path)), text_(text) {}

  BpePipeline read(const TokenizerConfig& cfg) {
    try {
      return read_unchecked(cfg);
    } catch (const json::exception& e) {  // a field of the wrong JSON type
      throw Error(path_ + ": " + e.what());
    }
  }

 private:
  BpePipeline read_unchecked(const TokenizerConfig& cfg) {
    json j;
    try {
      j = json::parse(text_);
    } catch (const json::exception& e) {
      throw Error(path_ + ": not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object() || !j.contains("model")) throw Error(path_ + ": no \"model\" section");
    BpePipeline p;
    p.source = path_;
    p.model = read_model(j["model"]);
    if (j.contains("added_tokens") && j["added_tokens"].is_array())
      for (const json& t : j["added_tokens"]) p.added_tokens.push_back(read_added_token(t));
    if (has(j, "normalizer")) read_normalizer(j["normalizer"], p.normalizer);
    if (has(j, "pre_tokenizer")) read_pre_tokenizer(j["pre_tokenizer"], p.pre_tokenizer);
    if (has(j, "post_processor")) read_post_processor(j["post_processor"], p);
    if (has(j, "decoder")) read_decoder(j["decoder"], p.decoder);
    // transformers' Llama-family fast tokenizers rebuild the post-processor from
    // add_bos_token / add_eos_token; every other class keeps the file's post-processor.
    static const char* const kFlagClasses[] = {"LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer",
                                               "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast"};
    p.config_flags_decide = false;
    for (const char* c : kFlagClasses) p.config_flags_decide |= cfg.tokenizer_class == c;

    bool byte_level = false;
    for (const auto& s : p.pre_tokenizer) byte_level |= s.kind == PreTokenizerStep::Kind::kByteLevel;
    p.description = std::string("tokenizer.json (BPE, ") + (byte_level ? "byte-level" : "SentencePiece-style") +
                    ", " + std::to_string(p.model->size()) + " tokens) at " + path_;
    return p;
  }

  static bool has(const json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

  std::string str(const json& j, const char* key, const std::string& where) const {
    if (!j.contains(key) || !j[key].is_string()) throw Error(path_ + ": " + where + " needs a string \"" + key + "\"");
    return j[key].get<std::string>();
  }
  static bool flag(const json& j, const char* key, bool fallback) {
    return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : fallback;
  }
  std::string type_of(const json& j, const std::string& where) const {
    if (!j.is_object()) throw Error(path_ + ": " + where + " must be an object");
    return str(j, "type", where);
  }
  [[noreturn]] void unsupported(const std::string& where, const std::string& type) const {
    throw Error(path_ + ": " + where + " type '" + type + "' is not supported by this reader");
  }

  std::unique_ptr<BpeModel> read_model(const json& m) {
    const std::string type = m.is_object() && m.contains("type") ? type_of(m, "model") : "BPE";
    if (type != "BPE") unsupported("model", type);
    if (!m.contains("vocab") || !m["vocab"].is_object()) throw Error(path_ + ": model has no \"vocab\" object");
    TokenMap vocab;
    vocab.reserve(m["vocab"].size());
    for (const auto& [token, id] : m["vocab"].items()) {
      if (!id.is_number_integer()) throw Error(path_ + ": model.vocab['" + token + "'] is not an integer id");
      vocab.emplace(token, id.get<int32_t>());
    }
    std::vector<std::pair<std::string, std::string>> merges;
    if (m.contains("merges") && m["merges"].is_array()) {
      merges.reserve(m["merges"].size());
      for (const json& x : m["merges"]) {
        if (x.is_array() && x.size() == 2 && x[0].is_string() && x[1].is_string()) {
          merges.emplace_back(x[0].get<std::string>(), x[1].get<std::string>());
          continue;
        }
        // The older serialization: "left right", the two parts split at their one space.
        const std::string s = x.is_string() ? x.get<std::string>() : std::string();
        const size_t space = s.find(' ');
        if (space == std::string::npos || space == 0 || s.find(' ', space + 1) != std::string::npos)
          throw Error(path_ + ": model.merges[" + std::to_string(merges.size()) + "] is not a pair of tokens");
        merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      }
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (has(m, key) && (!m[key].is_string() || !m[key].get<std::string>().empty()))
        throw Error(path_ + ": model." + key + " is not supported by this reader");
    // "dropout" only matters when training; encoding here is the deterministic (dropout-free) one.
    BpeOptions options;
    if (has(m, "unk_token")) options.unk_token = str(m, "unk_token", "model");
    options.byte_fallback = flag(m, "byte_fallback", false);
    options.fuse_unk = flag(m, "fuse_unk", false);
    options.ignore_merges = flag(m, "ignore_merges", false);
    return std::make_unique<BpeModel>(std::move(vocab), merges, std::move(options), path_);
  }

  AddedToken read_added_token(const json& t) {
    AddedToken a;
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer())
      throw Error(path_ + ": an added_tokens entry has no integer \"id\"");
    a.id = t["id"].get<int32_t>();
    a.content = str(t, "content", "added_tokens entry " + std::to_string(a.id));
    a.special = flag(t, "special", false);
    a.lstrip = flag(t, "lstrip", false);
    a.rstrip = flag(t, "rstrip", false);
    a.single_word = flag(t, "single_word", false);
    a.normalized = flag(t, "normalized", !a.special);
    return a;
  }

  // {"String": "literal"} or {"Regex": "pattern"}; returns the regex, or null and sets literal.
  std::shared_ptr<const Regex> read_pattern(const json& j, const std::string& where, std::string& literal) {
    if (!j.contains("pattern") || !j["pattern"].is_object()) throw Error(path_ + ": " + where + " has no pattern");
    const json& pat = j["pattern"];
    if (pat.contains("Regex")) return std::make_shared<Regex>(str(pat, "Regex", where), path_ + " " + where);
    literal = str(pat, "String", where);
    return nullptr;
  }

  void read_normalizer(const json& j, std::vector<NormalizerStep>& out) {
    const std::string type = type_of(j, "normalizer");
    using Kind = NormalizerStep::Kind;
    if (type == "Sequence") {
      for (const json& n : j.value("normalizers", json::array())) read_normalizer(n, out);
    } else if (type == "Prepend") {
      out.push_back({Kind::kPrepend, str(j, "prepend", "Prepend normalizer"), "", nullptr});
    } else if (type == "Replace") {
      NormalizerStep s{Kind::kReplace, "", str(j, "content", "Replace normalizer"), nullptr};
      s.regex = read_pattern(j, "Replace normalizer", s.text);
      out.push_back(std::move(s));
    } else if (type == "NFC") {
      out.push_back({Kind::kNfc, "", "", nullptr});
    } else if (type == "Strip") {
      NormalizerStep s{Kind::kStrip, "", "", nullptr};
      s.left = flag(j, "strip_left", false);
      s.right = flag(j, "strip_right", false);
      out.push_back(std::move(s));
    } else {
      unsupported("normalizer", type);
    }
  }

  void read_pre_tokenizer(const json& j, std::vector<PreTokenizerStep>& out) {
    const std::string type = type_of(j, "pre_tokenizer");
    using Kind = PreTokenizerStep::Kind;
    PreTokenizerStep s{};
    if (type == "Sequence") {
      for (const json& p : j.value("pretokenizers", json::array())) read_pre_tokenizer(p, out);
      return;
    } else if (type == "Split") {
      s.kind = Kind::kSplit;
      s.regex = read_pattern(j, "Split pre-tokenizer", s.literal);
      s.behavior = read_behavior(str(j, "behavior", "Split pre-tokenizer"));
      s.invert = flag(j, "invert", false);
    } else if (type == "ByteLevel") {
      s.kind = Kind::kByteLevel;
      s.add_prefix_space = flag(j, "add_prefix_space", true);
      s.use_regex = flag(j, "use_regex", true);
    } else if (type == "Metaspace") {
      s.kind = Kind::kMetaspace;
      s.replacement = str(j, "replacement", "Metaspace pre-tokenizer");
      s.prepend = read_prepend_scheme(j);
      s.split = flag(j, "split", true);
    } else if (type == "Digits") {
      s.kind = Kind::kDigits;
      s.individual_digits = flag(j, "individual_digits", false);
    } else {
      unsupported("pre_tokenizer", type);
    }
    out.push_back(std::move(s));
  }

  SplitBehavior read_behavior(const std::string& b) const {
    if (b == "Removed") return SplitBehavior::kRemoved;
    if (b == "Isolated") return SplitBehavior::kIsolated;
    if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
    if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
    if (b == "Contiguous") return SplitBehavior::kContiguous;
    throw Error(path_ + ": unknown Split behavior '" + b + "'");
  }

  // Newer files say prepend_scheme; older ones only add_prefix_space (true: always).
  PreTokenizerStep::Prepend read_prepend_scheme(const json& j) const {
    using P = PreTokenizerStep::Prepend;
    if (!has(j, "prepend_scheme")) return flag(j, "add_prefix_space", true) ? P::kAlways : P::kNever;
    const std::string s = str(j, "prepend_scheme", "Metaspace");
    if (s == "always") return P::kAlways;
    if (s == "first") return P::kFirst;
    if (s == "never") return P::kNever;
    throw Error(path_ + ": unknown Metaspace prepend_scheme '" + s + "'");
  }

  // The ids of one template piece: {"SpecialToken": {"id": "<s>"}} looked up in special_tokens.
  std::vector<int32_t> special_ids(const json& templ, const json& item) const {
    const std::string name = str(item, "id", "TemplateProcessing SpecialToken");
    const json& table = templ.value("special_tokens", json::object());
    if (!table.contains(name) || !table[name].contains("ids") || !table[name]["ids"].is_array())
      throw Error(path_ + ": TemplateProcessing names special token '" + name + "' without ids");
    return table[name]["ids"].get<std::vector<int32_t>>();
  }

  // Only the single-sequence form matters here: the ids before and after the text.
  void read_post_processor(const json& j, BpePipeline& p) {
    const std::string type = type_of(j, "post_processor");
    if (type == "Sequence") {
      for (const json& q : j.value("processors", json::array())) read_post_processor(q, p);
    } else if (type == "ByteLevel") {
      // Adjusts offsets only.
    } else if (type == "TemplateProcessing") {
      if (!j.contains("single") || !j["single"].is_array())
        throw Error(path_ + ": TemplateProcessing has no \"single\" template");
      std::vector<int32_t> before, after;
      bool seen_text = false;
      for (const json& item : j["single"]) {
        if (item.contains("Sequence")) {
          seen_text = true;
        } else if (item.contains("SpecialToken")) {
          std::vector<int32_t> ids = special_ids(j, item["SpecialToken"]);
          auto& side = seen_text ? after : before;
          side.insert(side.end(), ids.begin(), ids.end());
        } else {
          throw Error(path_ + ": TemplateProcessing item is neither Sequence nor SpecialToken");
        }
      }
      p.prefix.insert(p.prefix.begin(), before.begin(), before.end());
      p.suffix.insert(p.suffix.end(), after.begin(), after.end());
    } else if (type == "BertProcessing" || type == "RobertaProcessing") {
      // "cls": ["<s>", 0], "sep": ["</s>", 2]: [cls] text [sep].
      auto id_of = [&](const char* key) {
        if (!j.contains(key) || !j[key].is_array() || j[key].size() != 2 || !j[key][1].is_number_integer())
          throw Error(path_ + ": " + type + " needs \"" + key + "\": [token, id]");
        return j[key][1].get<int32_t>();
      };
      p.prefix.insert(p.prefix.begin(), id_of("cls"));
      p.suffix.push_back(id_of("sep"));
    } else {
      unsupported("post_processor", type);
    }
  }

  void read_decoder(const json& j, std::vector<DecoderStep>& out) {
    const std::string type = type_of(j, "decoder");
    using Kind = DecoderStep::Kind;
    DecoderStep s{};
    if (type == "Sequence") {
      for (const json& d : j.value("decoders", json::array())) read_decoder(d, out);
      return;
    } else if (type == "Replace") {
      s.kind = Kind::kReplace;
      if (read_pattern(j, "Replace decoder", s.pattern)) unsupported("Replace decoder pattern", "Regex");
      s.content = str(j, "content", "Replace decoder");
    } else if (type == "ByteFallback") {
      s.kind = Kind::kByteFallback;
    } else if (type == "Fuse") {
      s.kind = Kind::kFuse;
    } else if (type == "Strip") {
      s.kind = Kind::kStrip;
      s.pattern = str(j, "content", "Strip decoder");
      s.start = j.value("start", 0);
      s.stop = j.value("stop", 0);
    } else if (type == "ByteLevel") {
      s.kind = Kind::kByteLevel;
    } else if (type == "Metaspace") {
      s.kind = Kind::kMetaspace;
      s.replacement = str(j, "replacement", "Metaspace decoder");
      s.strip_first = read_prepend_scheme(j) != PreTokenizerStep::Prepend::kNever;
    } else {
      unsupported("decoder", type);
    }
    out.push_back(std::move(s));
  }

  std::string path_;
  const std::string& text_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_json_tokenizer(const std::string& json_path, const TokenizerConfig& cfg) {
  return make_json_tokenizer_text(read_file(json_path, "the tokenizer"), json_path, cfg);
}

std::unique_ptr<Tokenizer> make_json_tokenizer_text(const std::string& json_text, const std::string& label,
                                                    const TokenizerConfig& cfg) {
  return make_bpe_tokenizer(JsonReader(label, json_text).read(cfg), cfg);
}

}  // namespace lowbit::tok
