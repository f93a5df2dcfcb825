// The BPE merge core shared by tokenizer.json and vocab.json + merges.txt: a vocabulary, a ranked
// merge list, and the encoding of one pre-tokenized word, with the same choices as HF tokenizers'
// BPE model (lowest-ranked pair first, leftmost first on ties; byte fallback; fused unknowns).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lowbit::tok {

struct BpeOptions {
  std::string unk_token;       // "" when the model has none: an unknown character is dropped
  bool byte_fallback = false;  // unknown characters become their UTF-8 bytes as <0xXX> tokens
  bool fuse_unk = false;       // consecutive unknown characters become one unk token
  bool ignore_merges = false;  // a word that is itself in the vocabulary is not split (Llama 3)
};

// Heterogeneous lookup, so a string_view finds a std::string key without a copy.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // merges[i] is the pair merged at rank i. `source` names the file, for error messages. Throws
  // lowbit::Error on a merge whose parts or result are not in the vocabulary.
  BpeModel(TokenMap vocab, const std::vector<std::pair<std::string, std::string>>& merges,
           BpeOptions options, const std::string& source);

  // Appends the ids of one word (valid UTF-8, already normalized and pre-tokenized).
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  int32_t token_to_id(std::string_view token) const;  // -1 if not in the vocabulary
  const std::string* id_to_token(int32_t id) const;   // nullptr if no token has this id
  int32_t size() const { return static_cast<int32_t>(tokens_.size()); }  // highest id + 1

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  TokenMap vocab_;
  std::vector<std::string> tokens_;  // id -> token text
  std::vector<bool> has_token_;      // id -> whether some token has it
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> rank and merged id
  std::vector<int32_t> byte_ids_;    // byte -> id of its <0xXX> token, or -1
  BpeOptions options_;
  int32_t unk_id_ = -1;
};

}  // namespace lowbit::tok
