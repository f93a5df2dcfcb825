#include "runtime/manifest.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "kernels/error.h"
#include "kernels/qtype.h"

namespace lowbit {

namespace {

using json = nlohmann::json;

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
  return buf;
}

uint64_t parse_checksum(const json& j, const std::string& where) {
  if (!j.is_string()) throw Error(where + ": checksum must be a string \"xxh3:<16 hex digits>\"");
  const std::string s = j.get<std::string>();
  if (s.size() != 21 || s.rfind("xxh3:", 0) != 0)
    throw Error(where + ": checksum '" + s + "' is not \"xxh3:<16 hex digits>\"");
  uint64_t v = 0;
  for (char c : s.substr(5)) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) throw Error(where + ": checksum '" + s + "' is not hexadecimal");
    v = v << 4 | (uint64_t)d;
  }
  return v;
}

// A typed field of a JSON object, with an error naming it.
const json& field(const json& obj, const char* name, const std::string& where) {
  auto it = obj.find(name);
  if (it == obj.end()) throw Error(where + ": missing field '" + name + "'");
  return *it;
}

int64_t int_field(const json& obj, const char* name, const std::string& where) {
  const json& v = field(obj, name, where);
  if (!v.is_number_integer() || v.get<int64_t>() < 0)
    throw Error(where + ": field '" + name + "' must be a non-negative integer");
  return v.get<int64_t>();
}

std::string string_field(const json& obj, const char* name, const std::string& where) {
  const json& v = field(obj, name, where);
  if (!v.is_string()) throw Error(where + ": field '" + name + "' must be a string");
  return v.get<std::string>();
}

TensorEntry parse_tensor(const json& t, uint64_t weights_size, const std::string& label) {
  if (!t.is_object()) throw Error(label + ": every entry of 'tensors' must be an object");
  TensorEntry e;
  e.name = string_field(t, "name", label + ": tensor");
  const std::string where = label + ": tensor '" + e.name + "'";
  const json& shape = field(t, "shape", where);
  if (!shape.is_array() || shape.empty() || shape.size() > 2)
    throw Error(where + ": 'shape' must be a list of 1 or 2 dimensions");
  for (const json& d : shape) {
    if (!d.is_number_integer() || d.get<int64_t>() <= 0 || d.get<int64_t>() > (int64_t(1) << 32))
      throw Error(where + ": 'shape' entries must be positive integers below 2^32");
    e.shape.push_back(d.get<int64_t>());
  }
  try {
    e.type = parse_type(string_field(t, "type", where));
  } catch (const Error& err) {
    throw Error(where + ": " + err.what());
  }
  if (e.shape.size() == 1 && e.type.base != Base::f32)
    throw Error(where + ": 1-D tensors must be f32, not " + type_name(e.type));
  e.offset = int_field(t, "offset", where);
  e.bytes = int_field(t, "bytes", where);
  e.checksum = parse_checksum(field(t, "checksum", where), where);
  if (e.offset % kTensorAlign != 0)
    throw Error(where + ": offset " + std::to_string(e.offset) + " is not a multiple of 64");
  const int64_t want = q_layout(e.type, e.rows(), e.cols()).bytes;
  if (e.bytes != want)
    throw Error(where + ": " + std::to_string(e.bytes) + " bytes but a " + type_name(e.type) +
                " tensor of this shape takes " + std::to_string(want));
  if ((uint64_t)e.offset > weights_size || (uint64_t)e.bytes > weights_size - (uint64_t)e.offset)
    throw Error(where + ": bytes [" + std::to_string(e.offset) + ", " +
                std::to_string(e.offset + e.bytes) + ") past the end of weights.bin (" +
                std::to_string(weights_size) + " bytes)");
  return e;
}

}  // namespace

uint64_t checksum_bytes(const void* data, size_t n) { return XXH3_64bits(data, n); }

json header_to_json(const ManifestHeader& h) {
  json tensors = json::array();
  for (const TensorEntry& t : h.tensors) {
    json e = {{"name", t.name},
              {"shape", t.shape},
              {"type", type_name(t.type)},
              {"offset", t.offset},
              {"bytes", t.bytes},
              {"checksum", "xxh3:" + hex64(t.checksum)}};
    if (t.type.base == Base::q) {
      e["bits"] = t.type.bits;
      e["group"] = t.type.group == 0 ? json("row") : json(t.type.group);
      e["scheme"] = t.type.scheme == Scheme::sym ? "sym" : "asym";
    } else {
      e["bits"] = t.type.bits;
    }
    tensors.push_back(std::move(e));
  }
  return {{"format", kManifestFormat},
          {"format_version", h.format_version},
          {"lowbit_version", h.lowbit_version},
          {"architecture", config_to_json(h.config)},
          {"tokenizer", {{"files", h.tokenizer_files}}},
          {"recipe", h.recipe},
          {"weights_file", kWeightsFile},
          {"tensors", tensors}};
}

ManifestHeader parse_manifest(std::string_view text, uint64_t weights_size, const std::string& label) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(label + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(label + ": top level must be a JSON object");
  const json* fmt = j.contains("format") ? &j["format"] : nullptr;
  if (!fmt || !fmt->is_string() || fmt->get<std::string>() != kManifestFormat)
    throw Error(label + ": not a lowbit manifest (field 'format' must be \"" + kManifestFormat + "\")");
  ManifestHeader h;
  h.format_version = (int)int_field(j, "format_version", label);
  if (h.format_version > kManifestVersion)
    throw VersionError(label + ": format_version " + std::to_string(h.format_version) +
                       " is newer than this reader understands (" + std::to_string(kManifestVersion) +
                       "); upgrade lowbit or re-convert the model");
  if (h.format_version < 1) throw Error(label + ": format_version must be at least 1");
  h.lowbit_version = j.value("lowbit_version", std::string());
  h.config = config_from_json(field(j, "architecture", label), label + ": architecture");
  if (j.contains("tokenizer") && j["tokenizer"].is_object() && j["tokenizer"].contains("files")) {
    for (const json& f : j["tokenizer"]["files"]) {
      if (!f.is_string() || f.get<std::string>().find('/') != std::string::npos ||
          f.get<std::string>().rfind(".", 0) == 0)
        throw Error(label + ": tokenizer.files entries must be plain file names");
      h.tokenizer_files.push_back(f.get<std::string>());
    }
  }
  if (j.contains("recipe")) h.recipe = j["recipe"];
  const json& tensors = field(j, "tensors", label);
  if (!tensors.is_array()) throw Error(label + ": 'tensors' must be a list");
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const json& t : tensors) {
    TensorEntry e = parse_tensor(t, weights_size, label);
    if (!shapes.emplace(e.name, e.shape).second)
      throw Error(label + ": tensor '" + e.name + "' listed twice");
    h.tensors.push_back(std::move(e));
  }
  std::vector<const TensorEntry*> by_offset;
  for (const auto& t : h.tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i - 1]->offset + by_offset[i - 1]->bytes > by_offset[i]->offset)
      throw Error(label + ": tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name +
                  "' overlap in weights.bin");
  check_tensors(h.config, shapes, label);
  return h;
}

Manifest Manifest::open(const std::string& dir) {
  Manifest m;
  m.dir_ = dir;
  const std::string json_path = dir + "/" + kManifestFile;
  std::ifstream in(json_path, std::ios::binary);
  if (!in) throw Error(json_path + ": cannot open (is '" + dir + "' a lowbit manifest directory?)");
  std::stringstream text;
  text << in.rdbuf();
  m.weights_ = MappedFile::open(dir + "/" + kWeightsFile);
  m.header_ = parse_manifest(text.str(), m.weights_.size(), json_path);
  for (size_t i = 0; i < m.header_.tensors.size(); ++i) m.index_[m.header_.tensors[i].name] = i;
  return m;
}

Manifest Manifest::from_memory(const ManifestHeader& header, MappedFile weights,
                               std::map<std::string, std::string> tokenizer_files, const std::string& label) {
  Manifest m;
  m.dir_ = label;
  m.in_memory_ = true;
  m.weights_ = std::move(weights);
  m.header_ = parse_manifest(header_to_json(header).dump(), m.weights_.size(), label);
  for (size_t i = 0; i < m.header_.tensors.size(); ++i) m.index_[m.header_.tensors[i].name] = i;
  m.tokenizer_data_ = std::move(tokenizer_files);
  return m;
}

const TensorEntry* Manifest::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

const TensorEntry& Manifest::get(std::string_view name) const {
  const TensorEntry* t = find(name);
  if (!t) throw Error(dir_ + ": manifest has no tensor '" + std::string(name) + "'");
  return *t;
}

QMatrix Manifest::matrix(std::string_view name) const {
  const TensorEntry& t = get(name);
  if (t.shape.size() != 2) throw Error(dir_ + ": tensor '" + t.name + "' is not a matrix");
  return {t.type, t.shape[0], t.shape[1], data(t)};
}

const float* Manifest::vector(std::string_view name) const {
  const TensorEntry& t = get(name);
  if (t.shape.size() != 1 || t.type.base != Base::f32)
    throw Error(dir_ + ": tensor '" + t.name + "' is not an f32 vector");
  return reinterpret_cast<const float*>(data(t));
}

void Manifest::verify_checksums() const {
  for (const TensorEntry& t : header_.tensors)
    if (checksum_bytes(data(t), t.bytes) != t.checksum)
      throw Error(dir_ + "/" + kWeightsFile + ": tensor '" + t.name +
                  "' does not match its checksum (file corrupted or modified)");
}

}  // namespace lowbit
