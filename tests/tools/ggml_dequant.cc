// A command-line front to convert/ggml_quants.h, so tests/python/test_ggml_dequant.py can hold its
// results against gguf-py's gguf.quants.dequantize:
//   ggml_dequant_tool dequantize TYPE N IN OUT          N weights of raw ggml blocks -> N float32
//   ggml_dequant_tool repack TYPE ROWS COLS IN OUT      ggml_repack, then lowbit's own dequantize
// TYPE is a ggml type name as llama.cpp spells it (Q4_K, any case) or its numeric id. IN holds
// exactly the blocks; OUT receives little-endian float32s. Exit status 1 with the message on error.
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "convert/ggml_quants.h"
#include "kernels/error.h"
#include "kernels/quantize.h"

namespace {

using lowbit::Error;
using lowbit::GgmlType;

GgmlType parse_type(const std::string& s) {
  if (!s.empty() && std::isdigit((unsigned char)s[0])) {
    if (auto info = lowbit::ggml_type_info((uint32_t)std::stoul(s))) return info->type;
  } else {
    std::string upper = s;
    for (char& c : upper) c = (char)std::toupper((unsigned char)c);
    for (uint32_t id = 0; id < 64; ++id)
      if (auto info = lowbit::ggml_type_info(id); info && info->name == upper) return info->type;
  }
  throw Error("unknown ggml type '" + s + "'");
}

int64_t parse_count(const char* s) {
  char* end = nullptr;
  const long long v = std::strtoll(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < 0) throw Error(std::string("bad count '") + s + "'");
  return v;
}

std::vector<uint8_t> read_blocks(const std::string& path, GgmlType t, int64_t n) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open");
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const lowbit::GgmlTypeInfo info = *lowbit::ggml_type_info((uint32_t)t);
  const int64_t want = n / info.block_weights * info.block_bytes;
  if ((int64_t)b.size() != want)
    throw Error(path + ": " + std::to_string(b.size()) + " bytes, expected " + std::to_string(want) +
                " for " + std::to_string(n) + " weights of " + std::string(info.name));
  return b;
}

void write_floats(const std::string& path, const std::vector<float>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), (std::streamsize)(v.size() * sizeof(float)));
  if (!f) throw Error(path + ": write failed");
}

int run(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "dequantize" && argc == 6) {
    const GgmlType t = parse_type(argv[2]);
    const int64_t n = parse_count(argv[3]);
    const std::vector<uint8_t> b = read_blocks(argv[4], t, n);
    std::vector<float> out(n);
    lowbit::ggml_dequantize(t, b.data(), n, out.data());
    write_floats(argv[5], out);
    return 0;
  }
  if (mode == "repack" && argc == 7) {
    const GgmlType t = parse_type(argv[2]);
    const int64_t rows = parse_count(argv[3]), cols = parse_count(argv[4]);
    const std::vector<uint8_t> b = read_blocks(argv[5], t, rows * cols);
    const auto qt = lowbit::ggml_exact_type(t);
    if (!qt) throw Error(std::string(argv[2]) + " has no exact lowbit type");
    std::vector<uint8_t> packed(lowbit::q_layout(*qt, rows, cols).bytes);
    lowbit::ggml_repack(t, b.data(), rows, cols, packed.data());
    std::vector<float> out(rows * cols);
    lowbit::dequantize(*qt, packed.data(), rows, cols, out.data());
    write_floats(argv[6], out);
    return 0;
  }
  std::fprintf(stderr,
               "usage: %s dequantize TYPE N IN OUT\n"
               "       %s repack TYPE ROWS COLS IN OUT\n",
               argv[0], argv[0]);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ggml_dequant_tool: %s\n", e.what());
    return 1;
  }
}
