// SentencePiece models (tokenizer.model: Llama 1/2, TinyLlama, the llama2.c story models), run by
// libsentencepiece itself, so normalization, the dummy-prefix space, byte fallback and the
// decoder's leading-space rule are exactly the library's.
#include <sentencepiece_processor.h>

#include "kernels/error.h"
#include "runtime/tokenizer/tokenizer_internal.h"

namespace lowbit::tok {
namespace {

class SpmTokenizer final : public Tokenizer {
 public:
  // Loads the model file at `path`, or when `proto` is given, the serialized model it holds
  // (`path` then only names it).
  SpmTokenizer(const std::string& path, const std::string* proto, const TokenizerConfig& cfg) : path_(path) {
    if (auto status = proto ? sp_.LoadFromSerializedProto(*proto) : sp_.Load(path); !status.ok())
      throw Error(path + ": not a SentencePiece model (" + status.ToString() + ")");
    auto token_to_id = [this](std::string_view piece) -> int32_t {
      int id = sp_.PieceToId(piece);
      // PieceToId answers unk_id for a piece it does not know.
      return id == sp_.unk_id() && sp_.IdToPiece(id) != piece ? -1 : id;
    };
    SpecialIds ids = resolve_special_ids(cfg, token_to_id, vocab_size(), sp_.bos_id(), sp_.eos_id());
    set_special_ids(ids.bos, ids.eos);
    set_chat_template(cfg.chat_template);
    // LlamaTokenizer's defaults: BOS on, EOS off.
    add_bos_ = cfg.add_bos.value_or(true) && ids.bos >= 0;
    add_eos_ = cfg.add_eos.value_or(false) && !ids.eos.empty();
    set_description("tokenizer.model (SentencePiece, " + std::to_string(vocab_size()) + " pieces) at " + path);
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    std::vector<int> pieces;
    if (auto status = sp_.Encode(text, &pieces); !status.ok())
      throw Error(path_ + ": encode failed (" + status.ToString() + ")");
    std::vector<int32_t> out;
    out.reserve(pieces.size() + 2);
    if (add_special && add_bos_) out.push_back(bos_id());
    out.insert(out.end(), pieces.begin(), pieces.end());
    if (add_special && add_eos_) out.push_back(eos_ids().front());
    return out;
  }

  // The library leaves out control pieces (BOS, EOS, pad) and writes unknown ones as " ⁇ ".
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::vector<int> pieces(ids.begin(), ids.end());
    for (int id : pieces) check_id(id);
    std::string out;
    if (auto status = sp_.Decode(pieces, &out); !status.ok())
      throw Error(path_ + ": decode failed (" + status.ToString() + ")");
    return out;
  }

  int32_t vocab_size() const override { return sp_.GetPieceSize(); }

  std::string id_to_piece(int32_t id) const override {
    check_id(id);
    return sp_.IdToPiece(id);
  }

 private:
  void check_id(int32_t id) const {
    if (id < 0 || id >= vocab_size())
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " + path_ +
                  " (size " + std::to_string(vocab_size()) + ")");
  }

  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
  bool add_bos_ = false, add_eos_ = false;
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(const std::string& model_path, const TokenizerConfig& cfg) {
  return std::make_unique<SpmTokenizer>(model_path, nullptr, cfg);
}

std::unique_ptr<Tokenizer> make_spm_tokenizer_bytes(const std::string& model_proto, const std::string& label,
                                                    const TokenizerConfig& cfg) {
  return std::make_unique<SpmTokenizer>(label, &model_proto, cfg);
}

}  // namespace lowbit::tok
