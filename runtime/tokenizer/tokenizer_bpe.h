// The BPE tokenizer as HF tokenizers runs it: added tokens, normalizer, pre-tokenizer, BPE model,
// post-processor, decoder. tokenizer_json.cc fills a BpePipeline from tokenizer.json,
// tokenizer_vocab_merges.cc from vocab.json + merges.txt; tokenizer_bpe.cc runs it.
//
// Only the step types that the BPE models of interest use are here (Llama 2/3, Mistral,
// TinyLlama, Qwen2, SmolLM, GPT-2); a file naming another type is refused by its loader.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/tokenizer/tokenizer_bpe_core.h"
#include "runtime/tokenizer/tokenizer_internal.h"
#include "runtime/tokenizer/tokenizer_regex.h"

namespace lowbit::tok {

// A token matched in the raw text before anything else runs (HF "added_tokens").
struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;      // left out by decode()
  bool lstrip = false;       // swallows whitespace on its left...
  bool rstrip = false;       // ...or right
  bool single_word = false;  // matches only with no word character on either side
  bool normalized = false;   // matched in the normalized text instead of the raw text
};

struct NormalizerStep {
  enum class Kind { kPrepend, kReplace, kNfc, kStrip };
  Kind kind;
  std::string text;                     // kPrepend: the prefix; kReplace: the literal pattern
  std::string content;                  // kReplace: the replacement
  std::shared_ptr<const Regex> regex;   // kReplace with a regex pattern instead of a literal
  bool left = false, right = false;     // kStrip: which ends lose their whitespace
};

// What Split does with the parts the pattern matches (HF SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizerStep {
  enum class Kind { kSplit, kByteLevel, kMetaspace, kDigits };
  enum class Prepend { kAlways, kFirst, kNever };
  Kind kind;
  // kSplit: a regex or a literal; invert makes the matches the pieces and the rest the delimiters.
  std::shared_ptr<const Regex> regex;
  std::string literal;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  // kByteLevel: splits with GPT-2's regex when use_regex, then maps bytes to the byte alphabet.
  bool add_prefix_space = false, use_regex = true;
  // kMetaspace: spaces become `replacement` ("▁"), one is put in front per `prepend`, and the
  // text is split before each replacement when `split`.
  std::string replacement = "\xE2\x96\x81";
  Prepend prepend = Prepend::kAlways;
  bool split = true;
  bool individual_digits = false;  // kDigits
};

struct DecoderStep {
  enum class Kind { kReplace, kByteFallback, kFuse, kStrip, kByteLevel, kMetaspace };
  Kind kind;
  std::string pattern, content;  // kReplace: literal -> content; kStrip: the character stripped
  int start = 0, stop = 0;       // kStrip: at most this many from the front / back of each token
  std::string replacement = "\xE2\x96\x81";  // kMetaspace
  bool strip_first = true;                    // kMetaspace: prepend scheme is not "never"
};

struct BpePipeline {
  std::string source;       // the file(s) it came from, for messages
  std::string description;  // for Tokenizer::description()
  std::vector<AddedToken> added_tokens;
  std::vector<NormalizerStep> normalizer;
  std::vector<PreTokenizerStep> pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  std::vector<int32_t> prefix, suffix;  // post-processor for one sequence: ids around the text
  std::vector<DecoderStep> decoder;
  // Whether tokenizer_config.json's add_bos_token / add_eos_token, when present, decide BOS/EOS
  // over prefix/suffix (true for vocab.json + merges.txt, and for the tokenizer.json of the
  // Llama family, whose transformers class rebuilds its post-processor from those flags).
  bool config_flags_decide = true;
};

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpePipeline pipeline, const TokenizerConfig& cfg);

// GPT-2's pre-tokenizer regex, also what a ByteLevel pre-tokenizer with use_regex splits with.
extern const char* const kGpt2Pattern;
// Qwen2Tokenizer's (transformers tokenization_qwen2.py): unlike GPT-2's, it splits digits one by
// one, keeps a leading non-letter with a word, matches contractions case-insensitively and groups
// line breaks.
extern const char* const kQwen2Pattern;
// Llama 3's (its tokenizer.json): Qwen2's, with digits in runs of up to three.
extern const char* const kLlama3Pattern;

}  // namespace lowbit::tok
