// The manifest: lowbit's on-disk model, the one definition shared by the converter (which writes
// it) and the runtime (which mmaps it). docs/FORMAT.md describes it byte for byte.
//
//   OUT_DIR/manifest.json   metadata: format name and version, architecture, tokenizer files,
//                           the recipe, and the tensor table
//   OUT_DIR/weights.bin     every tensor, each starting on a 64-byte boundary
//   OUT_DIR/<tokenizer files copied from the HF directory>
//
// Thread safety: a Manifest is immutable once open; any number of threads may read it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/matmul.h"
#include "models/arch.h"
#include "runtime/mapped_file.h"

namespace lowbit {

constexpr const char* kManifestFormat = "lowbit-manifest";
// Bumped when a reader of the previous version would misread a manifest of the new one. Adding
// optional fields does not bump it; readers ignore fields they do not know.
constexpr int kManifestVersion = 1;
constexpr const char* kManifestFile = "manifest.json";
constexpr const char* kWeightsFile = "weights.bin";
constexpr int64_t kTensorAlign = 64;

struct TensorEntry {
  std::string name;            // HF name
  std::vector<int64_t> shape;  // HF order: [out, in] for matrices, [n] for vectors
  QType type;
  int64_t offset = 0;          // into weights.bin, a multiple of kTensorAlign
  int64_t bytes = 0;           // q_layout(type, rows, cols).bytes
  uint64_t checksum = 0;       // XXH3-64 of the tensor's bytes
  int64_t rows() const { return shape.size() == 2 ? shape[0] : 1; }
  int64_t cols() const { return shape.empty() ? 0 : shape.back(); }
};

struct ManifestHeader {
  int format_version = kManifestVersion;
  std::string lowbit_version;
  ModelConfig config;
  std::vector<std::string> tokenizer_files;  // relative to the manifest directory
  nlohmann::json recipe;                      // how it was made (for people and for eval)
  std::vector<TensorEntry> tensors;
};

uint64_t checksum_bytes(const void* data, size_t n);

nlohmann::json header_to_json(const ManifestHeader& h);
// Parses and validates manifest.json text against a weights.bin of weights_size bytes: format
// name, version (VersionError when newer than kManifestVersion), the config, every tensor's
// type, shape, alignment, size and bounds, overlaps, and that the tensors are exactly those the
// architecture needs. Errors name `label` and the field or tensor. Pure: the fuzzer drives it.
ManifestHeader parse_manifest(std::string_view text, uint64_t weights_size, const std::string& label);

class Manifest {
 public:
  // Reads dir/manifest.json and maps dir/weights.bin (no copy).
  static Manifest open(const std::string& dir);
  // A manifest held in memory (an import that wrote nothing to disk): the header is validated as
  // parse_manifest validates manifest.json, against `weights`; the tokenizer comes as files
  // (name -> contents) instead of from a directory. label stands for the directory in messages.
  static Manifest from_memory(const ManifestHeader& header, MappedFile weights,
                              std::map<std::string, std::string> tokenizer_files, const std::string& label);

  const std::string& dir() const { return dir_; }  // the label, for from_memory()
  bool in_memory() const { return in_memory_; }
  // from_memory() only: the tokenizer files (name -> contents).
  const std::map<std::string, std::string>& tokenizer_data() const { return tokenizer_data_; }
  const ManifestHeader& header() const { return header_; }
  const ModelConfig& config() const { return header_.config; }
  const TensorEntry* find(std::string_view name) const;
  const TensorEntry& get(std::string_view name) const;  // throws naming the tensor
  const uint8_t* data(const TensorEntry& t) const { return weights_.data() + t.offset; }
  QMatrix matrix(std::string_view name) const;          // a 2-D tensor as a kernel operand
  const float* vector(std::string_view name) const;     // a 1-D f32 tensor
  uint64_t weights_bytes() const { return weights_.size(); }

  // Recomputes every tensor's checksum; throws naming the first tensor that differs.
  void verify_checksums() const;

 private:
  std::string dir_;
  ManifestHeader header_;
  MappedFile weights_;
  std::map<std::string, size_t, std::less<>> index_;
  bool in_memory_ = false;
  std::map<std::string, std::string> tokenizer_data_;
};

}  // namespace lowbit
