// A model to convert or import, whatever format it came in: an HF directory (config.json,
// safetensors, tokenizer files) or a GGUF file (metadata, ggml-typed tensors, the tokenizer in the
// metadata). Both answer the same questions: the ModelConfig, each tensor the architecture needs
// (asked for by its HF name, see models/arch.h), and the tokenizer as HF-style files.
//
// Thread safety: immutable after open_source(); const methods may be called concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/qtype.h"
#include "kernels/thread_pool.h"
#include "models/arch.h"

namespace lowbit {

class ModelSource {
 public:
  virtual ~ModelSource() = default;

  const std::string& path() const { return path_; }
  // For messages and the recipe: "HF directory", "GGUF v3".
  virtual std::string format() const = 0;
  virtual const ModelConfig& config() const = 0;

  // The lowbit type that holds this tensor exactly as stored (GGUF Q4_1 -> q4_g32_asym, F32 ->
  // f32), or nullopt when lowbit has no such type and the tensor must be requantized.
  virtual std::optional<QType> exact_type(const TensorSpec& s) const = 0;
  // The tensor in exact_type(s)'s layout: q_layout(type, rows, cols).bytes into dst.
  virtual void read_exact(const TensorSpec& s, uint8_t* dst, ThreadPool* pool) const = 0;
  // The tensor as fp32, shape s.shape, every value exactly what the source stores, but for the
  // RMSNorm weights of an HF checkpoint that stores them as offsets from 1 (Gemma's), which come
  // as the factors the runtime multiplies by (models/arch.h norm_weight_offset), as GGUF holds them.
  virtual std::vector<float> read_f32(const TensorSpec& s, ThreadPool* pool) const = 0;
  // The type the tensor becomes when the user asks for no particular bits: the exact type when
  // there is one, else the lowbit type of no fewer bits than the source's. nullopt: the source
  // has no types of its own to keep (HF checkpoints are float; the recipe decides).
  virtual std::optional<QType> source_type(const TensorSpec& s) const = 0;
  // The source's name for its type ("Q4_K", "BF16"), for messages.
  virtual std::string source_type_name(const TensorSpec& s) const = 0;
  virtual int64_t source_bytes(const TensorSpec& s) const = 0;
  // The tensor has been read: its pages may leave the resident set.
  virtual void release(const TensorSpec& s) const {}

  // The tokenizer as files (name -> contents) that runtime's tokenizer readers take: an HF
  // directory's own files; for GGUF, files made from its metadata (convert/gguf_tokenizer.h).
  virtual std::map<std::string, std::string> tokenizer_files() const = 0;

 protected:
  explicit ModelSource(std::string path) : path_(std::move(path)) {}

 private:
  std::string path_;
};

// A path ending in .gguf (or a file starting with the GGUF magic) opens as GGUF; a directory with
// config.json as an HF directory. Anything else is an Error that says what the path looks like.
std::unique_ptr<ModelSource> open_source(const std::string& path);

std::unique_ptr<ModelSource> open_hf_source(const std::string& dir);
std::unique_ptr<ModelSource> open_gguf_source(const std::string& file);

}  // namespace lowbit
