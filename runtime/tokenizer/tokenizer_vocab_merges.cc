// The older byte-level BPE files, vocab.json + merges.txt (GPT-2, Qwen2 and their kin), turned
// into the same BpePipeline that a tokenizer.json describes, set up the way transformers' fast
// converters set up GPT-2 and Qwen2.
//
// The two families differ in normalization and in the pre-tokenizer regex, and the files do not
// say which one they are: tokenizer_config.json's tokenizer_class (or config.json's model_type)
// does, through the table below. Anything not recognized as Qwen2 is read as GPT-2.
#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "runtime/mapped_file.h"
#include "runtime/tokenizer/tokenizer_bpe.h"

namespace lowbit::tok {
namespace {

using nlohmann::json;

bool is_qwen2(const TokenizerConfig& cfg) {
  if (!cfg.tokenizer_class.empty()) return cfg.tokenizer_class.rfind("Qwen2Tokenizer", 0) == 0;
  return cfg.model_type.rfind("qwen", 0) == 0;
}

TokenMap read_vocab(const std::string& text, const std::string& path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(path + ": expected an object of token -> id");
  TokenMap vocab;
  vocab.reserve(j.size());
  for (const auto& [token, id] : j.items()) {
    if (!id.is_number_integer()) throw Error(path + ": the id of '" + token + "' is not an integer");
    vocab.emplace(token, id.get<int32_t>());
  }
  return vocab;
}

// One merge per line, "left right"; an optional "#version: ..." first line; blank lines skipped.
std::vector<std::pair<std::string, std::string>> read_merges(const std::string& text, const std::string& path) {
  std::vector<std::pair<std::string, std::string>> merges;
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
    const size_t space = line.find(' ');
    if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string_view::npos)
      throw Error(path + ":" + std::to_string(line_no) + ": expected two tokens separated by one space");
    merges.emplace_back(std::string(line.substr(0, space)), std::string(line.substr(space + 1)));
  }
  return merges;
}

}  // namespace

std::unique_ptr<Tokenizer> make_vocab_merges_tokenizer(const std::string& vocab_path,
                                                       const std::string& merges_path,
                                                       const TokenizerConfig& config) {
  return make_vocab_merges_tokenizer_text(read_file(vocab_path, "the vocabulary"), vocab_path,
                                          read_file(merges_path, "the merges"), merges_path, config);
}

std::unique_ptr<Tokenizer> make_vocab_merges_tokenizer_text(const std::string& vocab_text, const std::string& vocab_path,
                                                            const std::string& merges_text, const std::string& merges_path,
                                                            const TokenizerConfig& config) {
  TokenizerConfig cfg = config;
  const bool qwen2 = is_qwen2(cfg);
  BpePipeline p;
  p.source = vocab_path;
  // Byte-level BPE needs no unk token: every byte has one.
  p.model = std::make_unique<BpeModel>(read_vocab(vocab_text, vocab_path), read_merges(merges_text, merges_path),
                                       BpeOptions{}, vocab_path + " + merges.txt");

  // GPT2Tokenizer's defaults, where tokenizer_config.json names none and the vocabulary has it.
  const std::string endoftext = "<|endoftext|>";
  if (!qwen2 && p.model->token_to_id(endoftext) >= 0) {
    if (!cfg.bos_token && !cfg.bos_token_null) cfg.bos_token = endoftext;
    if (cfg.eos_tokens.empty()) cfg.eos_tokens.push_back(endoftext);
    if (!cfg.unk_token) cfg.unk_token = endoftext;
  }

  // tokenizer_config.json's added_tokens_decoder, then any special token it names that is only in
  // vocab.json (GPT-2's <|endoftext|>): the slow tokenizers never split either kind.
  for (const ConfigAddedToken& t : cfg.added_tokens)
    p.added_tokens.push_back({t.content, t.id, t.special, t.lstrip, t.rstrip, t.single_word, t.normalized});
  std::vector<std::string> named;
  for (const auto& n : {cfg.bos_token, cfg.unk_token, cfg.pad_token})
    if (n) named.push_back(*n);
  named.insert(named.end(), cfg.eos_tokens.begin(), cfg.eos_tokens.end());
  named.insert(named.end(), cfg.additional_special.begin(), cfg.additional_special.end());
  for (const std::string& name : named) {
    bool known = false;
    for (const AddedToken& t : p.added_tokens) known |= t.content == name;
    const int32_t id = p.model->token_to_id(name);
    if (!known && id >= 0) p.added_tokens.push_back({name, id, true, false, false, false, false});
  }

  const bool add_prefix_space = cfg.add_prefix_space.value_or(false);
  PreTokenizerStep byte_level{};
  byte_level.kind = PreTokenizerStep::Kind::kByteLevel;
  if (qwen2) {
    if (add_prefix_space) throw Error(vocab_path + ": add_prefix_space with the Qwen2 pre-tokenizer is not supported");
    p.normalizer.push_back({NormalizerStep::Kind::kNfc, "", "", nullptr});
    PreTokenizerStep split{};
    split.kind = PreTokenizerStep::Kind::kSplit;
    split.regex = std::make_shared<Regex>(kQwen2Pattern, "Qwen2 pre-tokenizer");
    split.behavior = SplitBehavior::kIsolated;
    p.pre_tokenizer.push_back(std::move(split));
    byte_level.use_regex = false;
  } else {
    byte_level.use_regex = true;  // GPT-2's regex, after the optional leading space
    byte_level.add_prefix_space = add_prefix_space;
  }
  p.pre_tokenizer.push_back(std::move(byte_level));
  DecoderStep decoder{};
  decoder.kind = DecoderStep::Kind::kByteLevel;
  p.decoder.push_back(std::move(decoder));
  p.config_flags_decide = true;  // add_bos_token / add_eos_token, both off unless the config says
  p.description = std::string("vocab.json + merges.txt (byte-level BPE, ") + (qwen2 ? "Qwen2" : "GPT-2") +
                  " pre-tokenizer, " + std::to_string(p.model->size()) + " tokens) at " + vocab_path;
  return make_bpe_tokenizer(std::move(p), cfg);
}

}  // namespace lowbit::tok
