#include "convert/hf_model.h"

#include <filesystem>
#include <set>

#include "kernels/error.h"
#include "runtime/mapped_file.h"

namespace lowbit {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kSingle = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

json read_json(const fs::path& path) {
  const std::string p = path.string();
  if (!is_file(path)) throw Error(p + ": not found");
  const std::string text = read_file(p, "the JSON file");
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(p + ": not valid JSON (error at byte " + std::to_string(e.byte) + ")");
  } catch (const json::exception& e) {
    throw Error(p + ": not valid JSON (nlohmann error " + std::to_string(e.id) + ")");
  }
}

// Names a file in the model directory, never a path elsewhere: an index is input like any other.
bool is_plain_file_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\\') == std::string::npos && s.find('\0') == std::string::npos;
}

// Why there are no weights, as precisely as the directory allows.
[[noreturn]] void no_weights(const fs::path& dir) {
  bool torch = false, shards = false;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n == "pytorch_model.bin" || (n.rfind("pytorch_model-", 0) == 0 && n.ends_with(".bin"))) torch = true;
    if (n.rfind("model-", 0) == 0 && n.ends_with(".safetensors")) shards = true;
  }
  std::string msg = dir.string() + ": no weights: neither " + kSingle + " nor " + kIndex;
  if (shards) msg += " (shard files are present, but without their index)";
  else if (torch) msg += " (only PyTorch .bin weights, which are not read: save them as safetensors)";
  throw Error(msg);
}

}  // namespace

HfModel HfModel::open(const std::string& dir) {
  const fs::path d(dir);
  std::error_code ec;
  if (!fs::is_directory(d, ec)) throw Error(dir + ": not a directory");

  HfModel m;
  m.dir_ = dir;
  const fs::path cfg = d / "config.json";
  m.config_json_ = read_json(cfg);
  m.config_ = parse_hf_config(m.config_json_, cfg.string());

  if (is_file(d / kSingle)) {
    m.files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open((d / kSingle).string())));
    for (const TensorInfo& t : m.files_[0]->tensors()) m.tensors_[t.name] = {m.files_[0].get(), &t};
  } else if (is_file(d / kIndex)) {
    const std::string index = (d / kIndex).string();
    const json j = read_json(d / kIndex);
    if (!j.is_object() || !j.contains("weight_map")) throw Error(index + ": field 'weight_map' missing");
    const json& wm = j["weight_map"];
    if (!wm.is_object()) throw Error(index + ": field 'weight_map' is not an object");
    if (wm.empty()) throw Error(index + ": field 'weight_map' maps no tensors");

    std::map<std::string, std::string> shard_of;  // tensor -> shard file name
    std::set<std::string> shard_names;
    for (const auto& [tensor, file] : wm.items()) {
      if (!file.is_string() || !is_plain_file_name(file.get<std::string>()))
        throw Error(index + ": tensor '" + tensor + "' maps to " + file.dump() + ", not a file name in " + dir);
      shard_of[tensor] = file.get<std::string>();
      shard_names.insert(file.get<std::string>());
    }
    std::map<std::string, const SafetensorsFile*> by_shard;
    for (const std::string& s : shard_names) {
      const fs::path p = d / s;
      if (!is_file(p)) throw Error(p.string() + ": listed in " + kIndex + " but not found");
      m.files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(p.string())));
      by_shard[s] = m.files_.back().get();
    }
    for (const auto& [tensor, shard] : shard_of)
      if (!by_shard[shard]->find(tensor))
        throw Error(index + ": tensor '" + tensor + "' is mapped to " + shard + ", which does not hold it");
    for (const auto& [shard, file] : by_shard) {
      for (const TensorInfo& t : file->tensors()) {
        const auto it = shard_of.find(t.name);
        if (it == shard_of.end())
          throw Error(file->path() + ": tensor '" + t.name + "' is not in " + kIndex);
        if (it->second != shard)
          throw Error(file->path() + ": tensor '" + t.name + "' is mapped to " + it->second + " by " + kIndex);
        m.tensors_[t.name] = {file, &t};
      }
    }
  } else {
    no_weights(d);
  }

  check_tensors(m.config_, m.shapes(), dir, true);
  return m;
}

const HfTensor* HfModel::find(std::string_view name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const HfTensor& HfModel::get(std::string_view name) const {
  const HfTensor* t = find(name);
  if (!t) throw Error(dir_ + ": no tensor '" + std::string(name) + "'");
  return *t;
}

std::vector<float> HfModel::read_f32(std::string_view name) const {
  const HfTensor& t = get(name);
  return t.file->read_f32(*t.info);
}

std::vector<float> HfModel::read_f32_rows(std::string_view name, int64_t first, int64_t rows) const {
  const HfTensor& t = get(name);
  return t.file->read_f32_rows(*t.info, first, rows);
}

std::map<std::string, std::vector<int64_t>> HfModel::shapes() const {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& [name, t] : tensors_) out[name] = t.info->shape;
  return out;
}

}  // namespace lowbit
