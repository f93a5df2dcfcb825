// Builds GGUF files in memory for the tests: metadata and tensors in, the file's bytes out (layout
// in convert/gguf.h: little-endian, the data section and every tensor aligned). Nothing is
// validated, so a test can write any broken file it needs; values may be given already encoded
// (add_kv with the bytes that follow the type in the file) or through the typed helpers.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "convert/ggml_types.h"
#include "convert/gguf.h"

namespace lowbit::test {

class GgufWriter {
 public:
  // One key-value: `value` is encoded as in the file (for an array: element type, count, elements).
  GgufWriter& add_kv(std::string_view key, GgufValueType type, const std::vector<uint8_t>& value) {
    put_string(kvs_, key);
    put<uint32_t>(kvs_, static_cast<uint32_t>(type));
    kvs_.insert(kvs_.end(), value.begin(), value.end());
    ++n_kv_;
    return *this;
  }
  // One tensor: dims in ggml order (dims[0] the row length); `bytes` are its data, placed at the
  // next aligned offset of the data section.
  GgufWriter& add_tensor(std::string_view name, const std::vector<int64_t>& dims, GgmlType type,
                         const std::vector<uint8_t>& bytes) {
    data_.resize(align(data_.size()));
    put_string(infos_, name);
    put<uint32_t>(infos_, static_cast<uint32_t>(dims.size()));
    for (int64_t d : dims) put<uint64_t>(infos_, static_cast<uint64_t>(d));
    put<uint32_t>(infos_, static_cast<uint32_t>(type));
    put<uint64_t>(infos_, data_.size());
    data_.insert(data_.end(), bytes.begin(), bytes.end());
    ++n_tensors_;
    return *this;
  }

  // Typed helpers.
  GgufWriter& add_string(std::string_view key, std::string_view v) {
    std::vector<uint8_t> b;
    put_string(b, v);
    return add_kv(key, GgufValueType::string, b);
  }
  GgufWriter& add_u32(std::string_view key, uint32_t v) { return add_kv(key, GgufValueType::u32, encode(v)); }
  GgufWriter& add_i32(std::string_view key, int32_t v) { return add_kv(key, GgufValueType::i32, encode(v)); }
  GgufWriter& add_f32(std::string_view key, float v) { return add_kv(key, GgufValueType::f32, encode(v)); }
  GgufWriter& add_bool(std::string_view key, bool v) { return add_kv(key, GgufValueType::boolean, {uint8_t(v)}); }
  GgufWriter& add_string_array(std::string_view key, const std::vector<std::string>& v) {
    std::vector<uint8_t> b = array_head(GgufValueType::string, v.size());
    for (const std::string& s : v) put_string(b, s);
    return add_kv(key, GgufValueType::array, b);
  }
  GgufWriter& add_i32_array(std::string_view key, const std::vector<int32_t>& v) { return add_array(key, GgufValueType::i32, v); }
  GgufWriter& add_f32_array(std::string_view key, const std::vector<float>& v) { return add_array(key, GgufValueType::f32, v); }
  // Sets general.alignment (a u32 key) and lays the data out with it; call before add_tensor.
  GgufWriter& alignment(uint32_t a) {
    alignment_ = a;
    return add_u32("general.alignment", a);
  }

  std::vector<uint8_t> build(uint32_t version = 3) const {
    std::vector<uint8_t> out{'G', 'G', 'U', 'F'};
    put<uint32_t>(out, version);
    put<uint64_t>(out, n_tensors_);
    put<uint64_t>(out, n_kv_);
    out.insert(out.end(), kvs_.begin(), kvs_.end());
    out.insert(out.end(), infos_.begin(), infos_.end());
    if (n_tensors_ > 0) {
      out.resize(align(out.size()));
      out.insert(out.end(), data_.begin(), data_.end());
    }
    return out;
  }

  template <typename T>
  static void put(std::vector<uint8_t>& out, T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
  }
  static void put_string(std::vector<uint8_t>& out, std::string_view s) {
    put<uint64_t>(out, s.size());
    out.insert(out.end(), s.begin(), s.end());
  }
  template <typename T>
  static std::vector<uint8_t> encode(T v) {
    std::vector<uint8_t> b;
    put(b, v);
    return b;
  }
  static std::vector<uint8_t> array_head(GgufValueType elem, uint64_t count) {
    std::vector<uint8_t> b;
    put<uint32_t>(b, static_cast<uint32_t>(elem));
    put<uint64_t>(b, count);
    return b;
  }

 private:
  template <typename T>
  GgufWriter& add_array(std::string_view key, GgufValueType elem, const std::vector<T>& v) {
    std::vector<uint8_t> b = array_head(elem, v.size());
    for (T x : v) put(b, x);
    return add_kv(key, GgufValueType::array, b);
  }
  size_t align(size_t n) const { return (n + alignment_ - 1) / alignment_ * alignment_; }

  std::vector<uint8_t> kvs_, infos_, data_;
  uint64_t n_kv_ = 0, n_tensors_ = 0;
  uint32_t alignment_ = 32;
};

}  // namespace lowbit::test
