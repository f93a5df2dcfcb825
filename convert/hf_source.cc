// An HF directory as a ModelSource: float checkpoints with nothing to keep exactly, so every
// tensor goes through the recipe.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "convert/hf_model.h"
#include "convert/source.h"
#include "kernels/error.h"

namespace lowbit {

namespace fs = std::filesystem;

namespace {

// Files a runtime tokenizer or generation config may read; a manifest carries copies so it
// stands alone.
const char* const kTokenizerFiles[] = {
    "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "vocab.json", "merges.txt", "generation_config.json", "chat_template.jinja"};

class HfSource final : public ModelSource {
 public:
  explicit HfSource(const std::string& dir) : ModelSource(dir), model_(HfModel::open(dir)) {}

  std::string format() const override { return "HF directory"; }
  const ModelConfig& config() const override { return model_.config(); }
  std::optional<QType> exact_type(const TensorSpec&) const override { return std::nullopt; }
  void read_exact(const TensorSpec& s, uint8_t*, ThreadPool*) const override {
    throw Error(path() + ": tensor '" + s.name + "' has no exact form (internal)");
  }
  std::vector<float> read_f32(const TensorSpec& s, ThreadPool*) const override {
    if (const auto slice = stored_slice(config(), s.role, s.layer, false, s.expert))
      return model_.read_f32_rows(slice->name, slice->first_row, s.shape[0]);  // of a fused matrix
    std::vector<float> v = model_.read_f32(s.name);
    // Gemma keeps its norms as offsets from 1; the manifest (as a GGUF) holds the factors.
    if (const float offset = norm_weight_offset(config()); offset != 0 && is_norm(s.role))
      for (float& x : v) x += offset;
    return v;
  }
  std::optional<QType> source_type(const TensorSpec&) const override { return std::nullopt; }
  std::string source_type_name(const TensorSpec& s) const override {
    return std::string(dtype_name(stored(s).info->dtype));
  }
  int64_t source_bytes(const TensorSpec& s) const override {
    const auto slice = stored_slice(config(), s.role, s.layer, false, s.expert);
    const int64_t bytes = (int64_t)stored(s).info->size;
    return slice ? bytes / slice->shape[0] * s.shape[0] : bytes;
  }
  void release(const TensorSpec& s) const override {
    const HfTensor& t = stored(s);
    t.file->drop_pages(*t.info);
  }

  std::map<std::string, std::string> tokenizer_files() const override {
    std::map<std::string, std::string> files;
    for (const char* name : kTokenizerFiles) {
      const fs::path p = fs::path(path()) / name;
      if (!fs::exists(p)) continue;
      std::ifstream in(p, std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      if (!in) throw Error(p.string() + ": cannot read");
      files[name] = text.str();
    }
    return files;
  }

 private:
  // The checkpoint tensor holding s: its own, or the fused one it is a slice of.
  const HfTensor& stored(const TensorSpec& s) const {
    const auto slice = stored_slice(config(), s.role, s.layer, false, s.expert);
    return model_.get(slice ? slice->name : s.name);
  }

  HfModel model_;
};

}  // namespace

std::unique_ptr<ModelSource> open_hf_source(const std::string& dir) { return std::make_unique<HfSource>(dir); }

}  // namespace lowbit
