// Reader for GGUF, the single-file model format of llama.cpp and Ollama (versions 2 and 3; spec:
// ggml docs/gguf.md), little-endian:
//   "GGUF" | u32 version | u64 n_tensors | u64 n_kv | n_kv x (string key, u32 type, value)
//   | n_tensors x (string name, u32 n_dims, n_dims x u64 ne, u32 ggml type, u64 offset)
//   | padding to general.alignment | data (each tensor at its offset, aligned)
// A string is u64 length + bytes (no terminator); an array is u32 element type, u64 count, then
// the elements.
//
// Everything is validated before any tensor byte is touched: magic, version, counts against the
// bytes left, every string and array length, value types, duplicate keys and tensor names,
// general.alignment (a power of two), dims (1-4 of them, each >= 1, their product and byte size
// computed without overflow, the row a whole number of blocks), types (ggml_types.h), offsets
// aligned and inside the data section, and no two tensors sharing a byte. Errors are
// lowbit::Error, one line, naming the file and the key or tensor.
//
// The file is mapped, not read: metadata values and tensor bytes are views into the mapping.
// Thread safety: a GgufFile is immutable after open(); all const methods may be called
// concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "convert/ggml_types.h"
#include "runtime/mapped_file.h"

namespace lowbit {

enum class GgufValueType : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8,
  array = 9, u64 = 10, i64 = 11, f64 = 12,
};
std::string_view gguf_value_type_name(GgufValueType t);  // "u32", "string", "array", ...

struct GgufKV {
  std::string key;
  GgufValueType type = GgufValueType::u8;
  GgufValueType elem_type = GgufValueType::u8;  // arrays only
  uint64_t count = 1;                           // arrays: number of elements
  uint64_t offset = 0;  // file offset of the value (arrays: of the first element)
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::f32;
  std::vector<int64_t> dims;  // ggml order: dims[0] is the row length (innermost)
  uint64_t offset = 0;        // of the first byte, from the start of the FILE
  uint64_t bytes = 0;
  int64_t numel() const;
  int64_t cols() const { return dims[0]; }
  int64_t rows() const { return numel() / dims[0]; }
};

struct GgufHeader {
  uint32_t version = 0;
  std::vector<GgufKV> kvs;              // in file order
  std::vector<GgufTensorInfo> tensors;  // in file order
  uint64_t alignment = 32;              // general.alignment, 32 when absent
  uint64_t data_start = 0;              // file offset of the data section
};

// Largest number of dims a tensor may have (ggml's GGML_MAX_DIMS).
inline constexpr int kGgufMaxDims = 4;

// Parses and validates the header of a whole GGUF file held in data[0, size). `label` (the path)
// prefixes every message. This is the pure function the fuzzer drives: on bad input it throws
// lowbit::Error and nothing else.
GgufHeader parse_gguf_header(const uint8_t* data, size_t size, std::string_view label);

class GgufFile {
 public:
  // Maps the file and validates its header; errors name `path`.
  static GgufFile open(const std::string& path);
  // A view over bytes the caller keeps alive (tests, the fuzzer).
  static GgufFile view(const uint8_t* data, size_t size, std::string label);

  const std::string& label() const { return label_; }
  const GgufHeader& header() const { return header_; }
  uint32_t version() const { return header_.version; }

  // Metadata. find() answers nullptr for a missing key; the getters throw Error naming the file
  // and the key when it is missing or holds another type. get_int takes any integer type (and
  // bool), get_float any float or integer type; both check the value fits the result.
  const GgufKV* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }
  std::string_view get_string(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  // Arrays: strings as views into the file, numbers converted (f32 from f32/f64; int32 from any
  // integer type, each element range-checked).
  std::vector<std::string_view> get_string_array(std::string_view key) const;
  std::vector<float> get_f32_array(std::string_view key) const;
  std::vector<int32_t> get_i32_array(std::string_view key) const;
  // A one-line rendering of a value for people (`lowbit info`, error messages): arrays show
  // their type and length, and long strings are cut.
  std::string describe(const GgufKV& kv) const;

  // Tensors: nullptr when absent.
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  std::span<const uint8_t> tensor_bytes(const GgufTensorInfo& t) const {
    return {data_ + t.offset, (size_t)t.bytes};
  }
  // Lets the tensor's pages leave the resident set once read (MappedFile::drop_pages).
  void drop_pages(const GgufTensorInfo& t) const;

 private:
  const GgufKV& need(std::string_view key) const;

  MappedFile file_;  // empty for view()
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string label_;
  GgufHeader header_;
  std::map<std::string, size_t, std::less<>> kv_index_, tensor_index_;
};

}  // namespace lowbit
