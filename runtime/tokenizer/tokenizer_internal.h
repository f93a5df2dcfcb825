// What the tokenizer formats share and runtime/tokenizer/tokenizer.h does not show: the settings read from
// the model folder's JSON files, and one factory per format.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer/tokenizer.h"

namespace lowbit::tok {

// One entry of tokenizer_config.json's "added_tokens_decoder".
struct ConfigAddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

// The special-token settings of a model folder: tokenizer_config.json, config.json and
// generation_config.json, each optional. Token names stay strings here; each format resolves
// them against its own vocabulary (resolve_special_ids).
struct TokenizerConfig {
  std::optional<bool> add_bos, add_eos;    // tokenizer_config.json add_bos_token / add_eos_token
  std::optional<std::string> bos_token;    // tokenizer_config.json, string or {"content": ...}
  std::vector<std::string> eos_tokens;     // eos_token (one), kept as a list
  bool bos_token_null = false;             // "bos_token": null (Qwen2: there is no BOS)
  std::optional<std::string> unk_token, pad_token;
  std::vector<std::string> additional_special;  // additional_special_tokens
  std::vector<ConfigAddedToken> added_tokens;   // added_tokens_decoder, ordered by id
  std::optional<bool> add_prefix_space;
  std::string tokenizer_class;             // "LlamaTokenizer", "Qwen2Tokenizer", ... or ""
  std::string model_type;                  // config.json "model_type" or ""
  std::string chat_template;               // tokenizer_config.json "chat_template" (Jinja) or ""
  std::vector<int32_t> bos_ids_from_model;  // config.json then generation_config.json bos_token_id
  std::vector<int32_t> eos_ids_from_model;  // generation_config.json then config.json eos_token_id
};

// Reads each of the three files from the first of `dirs` that holds it; a missing file is fine,
// a malformed one throws lowbit::Error naming it.
TokenizerConfig read_tokenizer_config(const std::vector<std::string>& dirs);

// The same from files already in memory (load_tokenizer_files): name -> text, and `label` + ":" +
// name names each one in messages.
TokenizerConfig parse_tokenizer_config(const std::map<std::string, std::string>& files, const std::string& label);

// BOS and EOS ids, names resolved with token_to_id (returns -1 for an unknown name). BOS: the
// tokenizer_config.json name, else the model's bos_token_id, else fallback_bos; an explicit
// "bos_token": null means none. EOS: every id named anywhere (the tokenizer's eos_token and the
// model's eos_token_id, which may be a list), in that order, else fallback_eos. Ids outside
// [0, vocab_size) throw lowbit::Error naming the field.
struct SpecialIds {
  int32_t bos = -1;
  std::vector<int32_t> eos;
};
SpecialIds resolve_special_ids(const TokenizerConfig& cfg,
                               const std::function<int32_t(std::string_view)>& token_to_id,
                               int32_t vocab_size, int32_t fallback_bos, int32_t fallback_eos);

// One factory per format; each throws lowbit::Error naming the file at fault. The *_bytes / *_text
// forms take the file's contents, and `label` stands for its path in messages.
std::unique_ptr<Tokenizer> make_spm_tokenizer(const std::string& model_path, const TokenizerConfig& cfg);
std::unique_ptr<Tokenizer> make_spm_tokenizer_bytes(const std::string& model_proto, const std::string& label,
                                                    const TokenizerConfig& cfg);
std::unique_ptr<Tokenizer> make_json_tokenizer(const std::string& json_path, const TokenizerConfig& cfg);
std::unique_ptr<Tokenizer> make_json_tokenizer_text(const std::string& json_text, const std::string& label,
                                                    const TokenizerConfig& cfg);
std::unique_ptr<Tokenizer> make_vocab_merges_tokenizer(const std::string& vocab_path,
                                                       const std::string& merges_path,
                                                       const TokenizerConfig& cfg);
// The same from the files' contents (a model's tokenizer files held in memory); the paths name
// them in messages.
std::unique_ptr<Tokenizer> make_vocab_merges_tokenizer_text(const std::string& vocab_text, const std::string& vocab_path,
                                                            const std::string& merges_text, const std::string& merges_path,
                                                            const TokenizerConfig& cfg);

}  // namespace lowbit::tok
