// Text <-> token ids for the models lowbit runs.
//
// Three formats, one interface: a SentencePiece model (tokenizer.model, run by libsentencepiece),
// an HF fast-tokenizer file (tokenizer.json, BPE: SentencePiece-style with byte fallback, or
// byte-level), and the older byte-level vocab.json + merges.txt pair (GPT-2, Qwen2). Each encodes
// the way the model's reference package does (sentencepiece for .model files, HF tokenizers for
// the others), and adds BOS/EOS the way the model folder's tokenizer_config.json asks.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lowbit {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Encodes UTF-8 text. add_special=true adds what the model's convention adds around one
  // sequence (BOS, and EOS where tokenizer_config.json says add_eos_token); false adds nothing.
  // Special tokens written in the text ("<|im_start|>") are matched as single tokens by the HF
  // formats; a SentencePiece model matches only its user-defined pieces, as sentencepiece does.
  // Throws lowbit::Error on text that is not valid UTF-8 (HF formats).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special = true) const = 0;

  // Ids -> text, leaving out BOS/EOS and other special (control) tokens. Bytes that do not form
  // UTF-8 come out as U+FFFD, as the reference packages do (and SentencePiece writes its unknown
  // piece as " ⁇ "). Throws on an id outside the vocabulary.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;

  // Number of ids the tokenizer knows (highest id + 1, added tokens included). A model's
  // embedding table may be larger (Qwen2.5 pads 151665 to 151936).
  virtual int32_t vocab_size() const = 0;

  // The vocabulary's own spelling of one id ("▁the", "Ġthe", "<0x0A>", "<|im_end|>"), for
  // display and debugging. Throws on an id outside the vocabulary.
  virtual std::string id_to_piece(int32_t id) const = 0;

  // Whether the text of `ids` can still change when more ids follow, other than by finishing a
  // partial character at the end (which decode() shows as U+FFFD). True only while an HF
  // ByteFallback run is open at the end: a later invalid byte turns the whole run, characters
  // already complete included, into U+FFFDs. DecodeStream waits while this holds.
  virtual bool text_may_change(const std::vector<int32_t>& ids) const { return false; }

  int32_t bos_id() const { return bos_id_; }                      // -1 if none
  const std::vector<int32_t>& eos_ids() const { return eos_ids_; }  // every id that ends generation
  bool is_eos(int32_t id) const;
  // One more id that ends generation: the token a chat template ends an assistant turn with,
  // where the model's own files leave it out of their end tokens (runtime/model.cc).
  void add_eos_id(int32_t id);

  // What was loaded, for logs: format and file ("tokenizer.json (BPE, byte-level) at PATH").
  const std::string& description() const { return description_; }

  // The model's chat template (Jinja source) from tokenizer_config.json's "chat_template" (the
  // GGUF importer writes the GGUF's tokenizer.chat_template there), or "" when it has none.
  // runtime/chat/chat_template.h renders it.
  const std::string& chat_template() const { return chat_template_; }

 protected:
  Tokenizer() = default;
  void set_special_ids(int32_t bos, std::vector<int32_t> eos) {
    bos_id_ = bos;
    eos_ids_ = std::move(eos);
  }
  void set_description(std::string d) { description_ = std::move(d); }
  void set_chat_template(std::string t) { chat_template_ = std::move(t); }

 private:
  int32_t bos_id_ = -1;
  std::vector<int32_t> eos_ids_;
  std::string description_;
  std::string chat_template_;
};

// path: a manifest dir or HF model dir (looks in path and path/tokenizer/), a tokenizer file
// (tokenizer.model, tokenizer.json, vocab.json), or a directory holding tokenizer files.
// Preference: tokenizer.json > tokenizer.model > vocab.json+merges.txt. BOS/EOS come from
// tokenizer_config.json, config.json and generation_config.json found beside the tokenizer (or
// one level up, for a tokenizer/ subfolder). Throws lowbit::Error naming what is missing.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// The same from files held in memory: file name -> contents, as a model folder would hold them
// (tokenizer.json, tokenizer.model or vocab.json + merges.txt, with tokenizer_config.json, config.json and
// generation_config.json read as above when present). The GGUF importer builds such a map from a
// file's metadata (convert/gguf_tokenizer.h). `label` says where the files came from (the GGUF's
// path): messages name each file as LABEL:NAME. Throws lowbit::Error.
std::unique_ptr<Tokenizer> load_tokenizer_files(const std::map<std::string, std::string>& files,
                                                const std::string& label);

// Turns a stream of token ids into text as they are generated. push() returns only complete
// UTF-8: it holds back a partial multi-byte character (byte-fallback or byte-level tokens) until
// the rest arrives, and it treats the SentencePiece leading space as decode() does, so the
// concatenation of every push() result and flush() equals decode(all ids).
//
// How: it keeps a short window of ids starting at the last point where the decoded text was
// complete, decodes the window, and returns what the window's text adds beyond the text of the
// ids already returned. Text that ends in U+FFFD may still be a partial character, so it waits;
// it also waits while Tokenizer::text_may_change() says the text is not final yet.
class DecodeStream {
 public:
  explicit DecodeStream(const Tokenizer& tokenizer) : tok_(tokenizer) {}
  // context: the ids before the first push (a prompt). Their text counts as returned already,
  // so what push() returns is what the new ids add to decode(context + ids): the first piece
  // keeps the leading space it has after the context ("▁was" after "The dog" is " was"), where
  // it would be dropped at the start of a text.
  DecodeStream(const Tokenizer& tokenizer, std::vector<int32_t> context);
  std::string push(int32_t id);
  // Returns what push() held back (an unfinished character comes out as U+FFFD) and starts over.
  std::string flush();

 private:
  const Tokenizer& tok_;
  std::vector<int32_t> window_;  // ids from the start of the last returned piece on
  size_t done_ = 0;              // window_[0, done_) is text already returned...
  std::string done_text_;        // ...and decodes, alone, to this
};

}  // namespace lowbit
