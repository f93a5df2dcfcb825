// `lowbit pull` and POST /api/pull: a model by Ollama's name for it, from one of two places.
// - The Hugging Face Hub, hf.co/USER/REPO[:QUANT] (or huggingface.co/...): a repository of GGUF
//   files gives the one whose file name carries QUANT (Q4_K_M when none is named, or its only
//   GGUF), kept in its own types; a repository of safetensors gives its HF directory (config,
//   weights, tokenizer files), converted at QUANT (a bit width or an Ollama quantization name; 4
//   bits when none). $HF_ENDPOINT (default https://huggingface.co), and $HF_TOKEN as a Bearer token
//   when set, as Hugging Face's own tools read them.
// - An Ollama registry, [HOST/][NAMESPACE/]MODEL[:TAG] (registry.ollama.ai, library, latest when
//   left out): its manifest's model layer (a GGUF) with the chat template the GGUF carries (the
//   manifest's own template is a Go template, which lowbit does not run), and its system and
//   params layers as the stored model's defaults (store/model_store.h ModelDefaults). Stored as
//   MODEL:TAG (NAMESPACE/MODEL:TAG outside library).
// Every file lands in the store's blobs (store/blobs.h), checked against the SHA-256 its source
// names, the model is created from them as /api/create's `files` does, and the downloads are then
// removed (the model is a converted copy: keeping them would hold it twice on disk). The stored
// model records what it was pulled from (details.parent_model: the name and the digests), so a
// second pull of the same files is "up to date" and fetches nothing. A download cut off keeps what
// came (.blobs/.partial-HEX), and the next pull asks only for the rest (a Range). Redirects to
// another host (a CDN) carry no Authorization header.
//
// Thread safety: free functions. Two pulls of the same file at once each fetch it; the first to
// finish removes the blob, and the other's create may then fail and need running again.
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
  std::string endpoint;  // the Hub: "" : $HF_ENDPOINT, else https://huggingface.co
  std::string token;     // the Hub: "" : $HF_TOKEN, if set
  bool insecure = false; // an Ollama registry over plain HTTP (Ollama's --insecure)
  int threads = 0;       // for the conversion of a safetensors repository
  const std::atomic<bool>* cancel = nullptr;
};

// Whether `name` is a Hugging Face name (hf.co/... or huggingface.co/...); any other is an Ollama
// registry's.
bool is_hub_name(const std::string& name);

// Throws Error: invalid_argument for a malformed name, not_found for a model, repository or
// quantization its source does not have (the Hub's message lists those it has), io for the
// network or a file that does not match its hash, cancelled when opt.cancel is set.
StoredModel pull_model(ModelStore& store, const BlobStore& blobs, const std::string& name, const PullOptions& opt,
                       const std::function<void(const PullProgress&)>& progress);

}  // namespace lowbit::server
