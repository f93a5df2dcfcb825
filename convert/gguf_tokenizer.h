// The tokenizer of a GGUF file, rebuilt from its metadata alone as the HF tokenizer files lowbit
// already reads (runtime/tokenizer.h load_tokenizer_files), so one tokenizer engine serves every
// input and a manifest converted from a GGUF holds ordinary files.
//
//   tokenizer.ggml.model = "gpt2" (byte-level BPE) -> tokenizer.json: a BPE model with the vocabulary
//       of tokenizer.ggml.tokens (ids = positions) and the merges of tokenizer.ggml.merges, the
//       pre-tokenizer that tokenizer.ggml.pre names (table in gguf_tokenizer.cc; an unknown name is
//       refused, a missing one is llama.cpp's "default"), the tokens that tokenizer.ggml.token_type
//       marks CONTROL (special) or USER_DEFINED as added tokens matched whole, BOS/EOS around the
//       text as add_bos_token / add_eos_token say, and the ByteLevel decoder.
//   tokenizer.ggml.model = "llama" (SentencePiece) -> tokenizer.model: a serialized SentencePiece
//       ModelProto (tokens, tokenizer.ggml.scores and token types as its pieces; BPE, with byte
//       fallback when some token is BYTE; identity normalizer with the file's add_space_prefix and
//       remove_extra_whitespaces), so libsentencepiece runs it exactly as it runs a .model file.
// Both get a tokenizer_config.json (bos/eos/unk/pad tokens by name, add_bos_token, add_eos_token,
// and tokenizer.chat_template as chat_template, where the chat front ends look for it), and, when
// the file names more end-of-generation tokens (tokenizer.ggml.eot_token_id / eom_token_id), a
// generation_config.json listing every eos id.
//
// Defaults for keys a file leaves out are llama.cpp's (llama-vocab.cpp): BOS is added for
// SentencePiece and for the Llama 3 pre-tokenizer, nothing else; SentencePiece's BOS/EOS/UNK ids
// default to 1/2/0; add_space_prefix defaults to true.
#pragma once

#include <map>
#include <string>

#include "convert/gguf.h"

namespace lowbit {

// File name -> contents (tokenizer.json or tokenizer.model, tokenizer_config.json, maybe
// generation_config.json). Throws lowbit::Error naming the GGUF and the metadata key at fault:
// a missing or mistyped key, arrays of different lengths, an unknown model or pre-tokenizer type,
// a token id outside the vocabulary, a malformed merge.
std::map<std::string, std::string> gguf_tokenizer_files(const GgufFile& f);

}  // namespace lowbit
