// A HuggingFace model directory opened for reading: config.json parsed into a ModelConfig and
// every tensor of its safetensors weights (one file, or shards listed by
// model.safetensors.index.json) indexed by name. open() validates everything before returning:
// the config (models/arch.h), each shard's header (convert/safetensors.h), the index against the
// shards, and the tensors against the architecture (check_tensors). Tensor bytes are read later,
// on demand, from the mapped files.
//
// Thread safety: immutable after open(); all const methods may be called concurrently.
#pragma once

#include <stdint.h>

#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "convert/safetensors.h"
#include "models/arch.h"

namespace lowbit {

struct HfTensor {
  const SafetensorsFile* file;  // the shard holding it (owned by the HfModel)
  const TensorInfo* info;
};

class HfModel {
 public:
  // Opens the directory. Weights are model.safetensors when it exists (as transformers looks
  // first for it), else the shards named by model.safetensors.index.json. Throws Error naming the
  // file at fault: config.json missing or invalid; no weights; a shard the index lists but the
  // directory lacks; a tensor the index maps to a shard that does not hold it; a shard tensor the
  // index does not map there; a tensor in two shards; tensors not matching the architecture.
  static HfModel open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const nlohmann::json& config_json() const { return config_json_; }
  const ModelConfig& config() const { return config_; }
  // The weight files, in the order of their names.
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  // Every tensor of every shard (ignorable ones included, see is_ignorable_tensor).
  const std::map<std::string, HfTensor, std::less<>>& tensors() const { return tensors_; }
  // nullptr when absent.
  const HfTensor* find(std::string_view name) const;
  // Throws Error naming the directory and the tensor when absent.
  const HfTensor& get(std::string_view name) const;
  std::span<const uint8_t> bytes(const HfTensor& t) const { return t.file->bytes(*t.info); }
  // The tensor converted to fp32 (numel values).
  std::vector<float> read_f32(std::string_view name) const;
  // Rows [first, first + rows) of it (SafetensorsFile::read_f32_rows).
  std::vector<float> read_f32_rows(std::string_view name, int64_t first, int64_t rows) const;
  // name -> shape of every tensor, as check_tensors takes it.
  std::map<std::string, std::vector<int64_t>> shapes() const;

 private:
  std::string dir_;
  nlohmann::json config_json_;
  ModelConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;  // unique_ptr: HfTensor points into them
  std::map<std::string, HfTensor, std::less<>> tensors_;
};

}  // namespace lowbit
