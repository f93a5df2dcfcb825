// Helpers shared by the tests of the HF readers: a scratch directory, a safetensors writer for
// hand-made (valid or corrupt) files, and a runner for tests/tools/make_hf_model.py.
#pragma once

#include <stdint.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace lowbit::test {

inline const std::string kSourceDir = LOWBIT_SOURCE_DIR;
// The shared test models: $LOWBIT_MODELS_DIR when set (bench/run_cuda.sh sets it on a machine
// given a copy of the tree with the models inside it), else ../shared/models beside the tree.
inline const std::string kModels = [] {
  const char* env = std::getenv("LOWBIT_MODELS_DIR");
  return env && *env ? std::string(env) : kSourceDir + "/../shared/models";
}();

// A config.json of tests/data/configs (its README says where each comes from).
inline nlohmann::json data_config(const std::string& name) {
  std::ifstream in(kSourceDir + "/tests/data/configs/" + name + "/config.json");
  return nlohmann::json::parse(in);
}

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/lowbit_hf_XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), (std::streamsize)bytes.size());
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A safetensors file from a header given as text, with the u64 length prefix set to
// declared_len (the true length unless a test lies on purpose), followed by data.
inline std::string safetensors_bytes(const std::string& header_text, const std::string& data,
                                     uint64_t declared_len) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = (char)((declared_len >> (8 * i)) & 0xff);
  return out + header_text + data;
}

inline std::string safetensors_bytes(const std::string& header_text, const std::string& data) {
  return safetensors_bytes(header_text, data, header_text.size());
}

inline std::string safetensors_json(const nlohmann::json& header, const std::string& data) {
  return safetensors_bytes(header.dump(), data);
}

// One well-formed entry of a header.
inline nlohmann::json entry(const std::string& dtype, std::vector<int64_t> shape, uint64_t begin,
                            uint64_t end) {
  return {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, end}}};
}

// A valid F32 safetensors file holding the given tensors, with values 0, 1, 2, ... per tensor.
inline std::string f32_file(const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors) {
  nlohmann::json h = nlohmann::json::object();
  std::string data;
  for (const auto& [name, shape] : tensors) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    const uint64_t begin = data.size();
    for (int64_t i = 0; i < n; ++i) {
      const float v = (float)i;
      data.append(reinterpret_cast<const char*>(&v), 4);
    }
    h[name] = entry("F32", shape, begin, data.size());
  }
  return safetensors_json(h, data);
}

inline std::string venv_python() {
  const std::string py = kSourceDir + "/.venv/bin/python";
  return std::filesystem::exists(py) ? py : "";
}

// Runs make_hf_model.py writing out_dir; `args` are its options. Returns the exit status.
inline int make_hf_model(const std::string& out_dir, const std::string& args) {
  const std::string cmd = "'" + venv_python() + "' '" + kSourceDir + "/tests/tools/make_hf_model.py' '" +
                          out_dir + "' " + args + " > /dev/null";
  return std::system(cmd.c_str());
}

}  // namespace lowbit::test

// Skips the current test when the Python venv that make_hf_model.py needs is absent.
#define LOWBIT_REQUIRE_VENV()                                                                \
  do {                                                                                       \
    if (::lowbit::test::venv_python().empty())                                               \
      GTEST_SKIP() << "no " << ::lowbit::test::kSourceDir                                    \
                   << "/.venv/bin/python: synthetic HF models cannot be made (see README)";  \
  } while (0)
