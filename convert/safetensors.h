// Reader for the safetensors format (HuggingFace's weight files):
//   u64 little-endian N | N bytes of JSON header | data section
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}, offsets
// relative to the start of the data section, plus an optional "__metadata__" string map.
//
// Everything in the header is validated before any tensor byte is touched: header length within
// the file, a JSON object, a supported dtype, a shape of non-negative integers whose byte size
// (computed without overflow) equals end - begin, offsets inside the data section, and no two
// tensors sharing a byte. Errors are lowbit::Error, one line, naming the file and the tensor.
//
// Thread safety: a SafetensorsFile is immutable after open(); all const methods may be called
// concurrently.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/mapped_file.h"

namespace lowbit {

// Element types this reader accepts. Other safetensors dtypes (I64, F64, F8_*, ...) are valid in
// the format but never hold the weights of the models we convert, so they are rejected by name.
enum class DType : uint8_t { f32, f16, bf16 };

size_t dtype_size(DType t);           // bytes per element: 4, 2, 2
std::string_view dtype_name(DType t);  // as spelt in the header: "F32", "F16", "BF16"

struct TensorInfo {
  std::string name;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;  // row-major, outermost first; empty for a scalar
  uint64_t offset = 0;         // of the first byte, from the start of the FILE (not of the data)
  uint64_t size = 0;           // bytes: numel() * dtype_size(dtype), as validated by the parser

  int64_t numel() const;  // product of shape (1 for a scalar); fits in int64 once validated
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;              // in file order (by offset, then name)
  std::map<std::string, std::string> metadata;  // "__metadata__", empty when absent
  uint64_t data_start = 0;                      // 8 + N: where the data section begins
};

// Largest JSON header accepted, in bytes. Real headers are a few hundred bytes per tensor; the
// cap keeps a corrupt length from making us parse (or allocate for) gigabytes.
inline constexpr uint64_t kMaxSafetensorsHeader = 100u << 20;

// Parses and validates the header of a whole safetensors file held in data[0, size). Reads only
// the first 8 + N bytes; `size` bounds the data section. file_label prefixes every message.
// This is the pure function the fuzzer drives: it throws only lowbit::Error on bad input.
SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size,
                                           std::string_view file_label);

class SafetensorsFile {
 public:
  // Maps the file and validates its header; errors name `path`.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  // nullptr when the file holds no tensor of that name.
  const TensorInfo* find(std::string_view name) const;
  // The tensor's raw bytes inside the mapping (not necessarily aligned: read with memcpy).
  // `t` must come from this file's tensors().
  std::span<const uint8_t> bytes(const TensorInfo& t) const;
  // The tensor converted to fp32, numel() values.
  std::vector<float> read_f32(const TensorInfo& t) const;
  // Rows [first, first + rows) of it, a row being its last dimension (rows counted over all the
  // others): rows * shape.back() values. Throws Error naming the tensor when out of range.
  std::vector<float> read_f32_rows(const TensorInfo& t, int64_t first, int64_t rows) const;
  // Lets the tensor's pages leave the resident set once read (MappedFile::drop_pages).
  void drop_pages(const TensorInfo& t) const { file_.drop_pages(bytes(t).data(), bytes(t).size()); }

 private:
  MappedFile file_;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> by_name_;  // name -> index in header_.tensors
};

// Converts a tensor's raw bytes (as returned by bytes()) to fp32: out must hold t.numel() floats.
// F16 and BF16 widen exactly. Throws Error naming the tensor if bytes.size() != t.size.
void to_f32(const TensorInfo& t, std::span<const uint8_t> bytes, float* out);

}  // namespace lowbit
