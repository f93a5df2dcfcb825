#include "convert/source.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "kernels/error.h"

namespace lowbit {

namespace fs = std::filesystem;

namespace {

bool starts_with_gguf_magic(const fs::path& p) {
  char magic[4] = {};
  std::ifstream in(p, std::ios::binary);
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

}  // namespace

std::unique_ptr<ModelSource> open_source(const std::string& path) {
  const fs::path p(path);
  if (!fs::exists(p)) throw Error(path + ": no such file or directory");
  if (fs::is_regular_file(p)) {
    if (p.extension() == ".gguf" || starts_with_gguf_magic(p)) return open_gguf_source(path);
    throw Error(path + ": not a model this reader knows (a GGUF file, or an HF directory with config.json)");
  }
  if (fs::is_regular_file(p / "config.json")) return open_hf_source(path);
  if (fs::is_regular_file(p / "manifest.json"))
    throw Error(path + ": is a lowbit manifest directory already (run it with `lowbit run " + path + "`)");
  throw Error(path + ": a directory without config.json; expected an HF model directory (config.json, "
              "*.safetensors, tokenizer files) or a .gguf file");
}

}  // namespace lowbit
