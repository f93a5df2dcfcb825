// `lowbit pull` and POST /api/pull: a model from the Hugging Face Hub under Ollama's name for it,
// hf.co/USER/REPO[:QUANT] (or huggingface.co/...). A repository of GGUF files gives the one whose
// file name carries QUANT (Q4_K_M when none is named, or its only GGUF), kept in its own types; a
// repository of safetensors gives its HF directory (config, weights, tokenizer files), converted
// at QUANT (a bit width or an Ollama quantization name; 4 bits when none). The files land in the
// store's blobs (store/blobs.h), each checked against the SHA-256 the Hub lists for it, and the
// model is created from them as /api/create's `files` does; a file already there is not fetched
// again. The Hub is $HF_ENDPOINT (default https://huggingface.co), with $HF_TOKEN as a Bearer
// token when set, as Hugging Face's own tools read them.
//
// Thread safety: free functions; concurrent pulls share blobs safely (store/blobs.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "store/blobs.h"
#include "store/model_store.h"

namespace lowbit::server {

struct PullProgress {
  std::string status;  // "pulling manifest", "pulling FILE", "creating NAME", ...
  std::string digest;  // the file being fetched ("" otherwise)
  uint64_t total = 0, completed = 0;
};

struct PullOptions {
  std::string endpoint;  // "" : $HF_ENDPOINT, else https://huggingface.co
  std::string token;     // "" : $HF_TOKEN, if set
  int threads = 0;       // for the conversion of a safetensors repository
  const std::atomic<bool>* cancel = nullptr;
};

// Whether `name` is one pull_model() takes (hf.co/... or huggingface.co/...).
bool is_hub_name(const std::string& name);

// Throws Error: invalid_argument for a name that is not a Hub name, not_found for a repository or
// quantization the Hub does not have (the message lists those it has), io for the network or a
// file that does not match its listed hash, cancelled when opt.cancel is set.
StoredModel pull_model(ModelStore& store, const BlobStore& blobs, const std::string& name, const PullOptions& opt,
                       const std::function<void(const PullProgress&)>& progress);

}  // namespace lowbit::server
