#include "convert/safetensors.h"

#include <string.h>

#include <algorithm>
#include <bit>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "kernels/half.h"

namespace lowbit {

// The format is little-endian; so are all hosts we build for. A big-endian port would byte-swap
// the header length and the F32/F16/BF16 elements here.
static_assert(std::endian::native == std::endian::little, "safetensors reader assumes little-endian");

using nlohmann::json;

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::bf16: return 2;
  }
  return 0;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
  }
  return "?";
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

// Deepest nesting a valid header has: top object > tensor entry > shape list. Anything nested
// much deeper is rejected early, so a hostile header cannot make the parser build huge trees.
constexpr int kMaxHeaderDepth = 8;

// A name as it appears in a message: quoted, control bytes escaped (the message stays one line),
// and cut short when absurdly long.
std::string quote(std::string_view s) {
  constexpr size_t kMax = 160;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    const unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += (char)c;
    }
  }
  if (s.size() > kMax) out += "...";
  return out + "'";
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string range_str(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// A JSON integer >= 0 (a float such as 2.0 is not one), or false.
bool get_u64(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    const int64_t x = v.get<int64_t>();
    if (x < 0) return false;
    *out = (uint64_t)x;
    return true;
  }
  return false;
}

bool parse_dtype(const std::string& s, DType* out) {
  if (s == "F32") *out = DType::f32;
  else if (s == "F16") *out = DType::f16;
  else if (s == "BF16") *out = DType::bf16;
  else return false;
  return true;
}

json parse_header_json(const uint8_t* begin, const uint8_t* end, const std::string& file) {
  // nlohmann keeps the last of two equal keys silently; a tensor named twice, or an entry giving
  // its dtype twice, is a broken file, so keys are checked as they stream by.
  std::set<std::string> top_keys, entry_keys;  // of the header; of the entry being read
  std::string entry_name;
  auto check = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > kMaxHeaderDepth)
      throw Error(file + ": header nests deeper than " + std::to_string(kMaxHeaderDepth) + " levels");
    if (event == json::parse_event_t::object_start && depth == 1) entry_keys.clear();
    if (event == json::parse_event_t::key && parsed.is_string()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (depth == 1) {
        if (!top_keys.insert(key).second)
          throw Error(file + ": tensor " + quote(key) + " appears twice in the header");
        entry_name = key;
      } else if (depth == 2 && !entry_keys.insert(key).second) {
        throw Error(file + ": tensor " + quote(entry_name) + ": field " + quote(key) + " appears twice");
      }
    }
    return true;
  };
  try {
    return json::parse(begin, end, check);
  } catch (const json::parse_error& e) {
    throw Error(file + ": header is not valid JSON (error at header byte " + std::to_string(e.byte) + ")");
  } catch (const json::exception& e) {
    // e.g. a number too large for a double; nlohmann's text may quote raw input, so not echoed.
    throw Error(file + ": header is not valid JSON (nlohmann error " + std::to_string(e.id) + ")");
  }
}

TensorInfo parse_entry(const std::string& name, const json& entry, uint64_t data_start,
                       uint64_t data_size, const std::string& file) {
  const std::string where = file + ": tensor " + quote(name);
  if (!entry.is_object()) throw Error(where + ": entry is not a JSON object");

  TensorInfo t;
  t.name = name;

  const auto dt = entry.find("dtype");
  if (dt == entry.end()) throw Error(where + ": field 'dtype' missing");
  if (!dt->is_string()) throw Error(where + ": field 'dtype' is not a string");
  if (!parse_dtype(dt->get_ref<const std::string&>(), &t.dtype))
    throw Error(where + ": dtype " + quote(dt->get_ref<const std::string&>()) +
                " not supported (F32, F16, BF16 are)");

  const auto sh = entry.find("shape");
  if (sh == entry.end()) throw Error(where + ": field 'shape' missing");
  if (!sh->is_array()) throw Error(where + ": field 'shape' is not a list");
  uint64_t numel = 1;
  for (const json& d : *sh) {
    uint64_t v;
    if (!get_u64(d, &v) || v > (uint64_t)std::numeric_limits<int64_t>::max())
      throw Error(where + ": field 'shape' is not a list of non-negative integers");
    t.shape.push_back((int64_t)v);
    if (__builtin_mul_overflow(numel, v, &numel) ||
        numel > (uint64_t)std::numeric_limits<int64_t>::max())
      throw Error(where + ": shape " + shape_str(t.shape) + " has too many elements");
  }
  uint64_t nbytes;
  if (__builtin_mul_overflow(numel, (uint64_t)dtype_size(t.dtype), &nbytes))
    throw Error(where + ": shape " + shape_str(t.shape) + " has too many elements");

  const auto off = entry.find("data_offsets");
  if (off == entry.end()) throw Error(where + ": field 'data_offsets' missing");
  uint64_t begin, end;
  if (!off->is_array() || off->size() != 2 || !get_u64((*off)[0], &begin) ||
      !get_u64((*off)[1], &end))
    throw Error(where + ": field 'data_offsets' is not a list of two non-negative integers");
  if (end < begin) throw Error(where + ": data_offsets " + range_str(begin, end) + " end before they begin");
  if (end > data_size)
    throw Error(where + ": data_offsets " + range_str(begin, end) + " past end of data (" +
                std::to_string(data_size) + " bytes)");
  if (end - begin != nbytes)
    throw Error(where + ": data_offsets " + range_str(begin, end) + " hold " +
                std::to_string(end - begin) + " bytes but shape " + shape_str(t.shape) + " of " +
                std::string(dtype_name(t.dtype)) + " needs " + std::to_string(nbytes));
  t.offset = data_start + begin;
  t.size = nbytes;
  return t;
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size,
                                           std::string_view file_label) {
  const std::string file(file_label);
  if (size < 8)
    throw Error(file + ": " + std::to_string(size) +
                " bytes, too short for a safetensors file (8-byte header length)");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= (uint64_t)data[i] << (8 * i);
  if (n > size - 8)
    throw Error(file + ": header length " + std::to_string(n) + " past end of file (" +
                std::to_string(size) + " bytes)");
  if (n > kMaxSafetensorsHeader)
    throw Error(file + ": header length " + std::to_string(n) + " over the " +
                std::to_string(kMaxSafetensorsHeader >> 20) + " MiB limit");

  // nlohmann's lexer takes a NUL byte for the end of input and would ignore what follows it.
  if (const void* nul = memchr(data + 8, 0, n))
    throw Error(file + ": header holds a NUL byte (at header byte " +
                std::to_string(static_cast<const uint8_t*>(nul) - (data + 8)) + ")");
  const json j = parse_header_json(data + 8, data + 8 + n, file);
  if (!j.is_object()) throw Error(file + ": header is not a JSON object");

  SafetensorsHeader h;
  h.data_start = 8 + n;
  const uint64_t data_size = size - h.data_start;
  for (const auto& [name, entry] : j.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw Error(file + ": '__metadata__' is not a JSON object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string())
          throw Error(file + ": '__metadata__' entry " + quote(k) + " is not a string");
        h.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    h.tensors.push_back(parse_entry(name, entry, h.data_start, data_size, file));
  }

  std::sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    if (a.offset != b.offset) return a.offset < b.offset;
    if (a.size != b.size) return a.size < b.size;
    return a.name < b.name;
  });
  // Sorted by start, two tensors share a byte exactly when one starts before its predecessor's
  // end. Empty tensors own no bytes and cannot overlap anything.
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : h.tensors) {
    if (t.size == 0) continue;
    if (prev && t.offset < prev->offset + prev->size)
      throw Error(file + ": tensors " + quote(prev->name) + " " +
                  range_str(prev->offset - h.data_start, prev->offset + prev->size - h.data_start) +
                  " and " + quote(t.name) + " " +
                  range_str(t.offset - h.data_start, t.offset + t.size - h.data_start) + " overlap");
    prev = &t;
  }
  return h;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.file_ = MappedFile::open(path);
  f.header_ = parse_safetensors_header(f.file_.data(), f.file_.size(), path);
  for (size_t i = 0; i < f.header_.tensors.size(); ++i) f.by_name_[f.header_.tensors[i].name] = i;
  return f;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &header_.tensors[it->second];
}

std::span<const uint8_t> SafetensorsFile::bytes(const TensorInfo& t) const {
  if (t.offset > file_.size() || t.size > file_.size() - t.offset)
    throw Error(path() + ": tensor " + quote(t.name) + " lies outside this file");
  return {file_.data() + t.offset, (size_t)t.size};
}

std::vector<float> SafetensorsFile::read_f32(const TensorInfo& t) const {
  std::vector<float> out((size_t)t.numel());
  to_f32(t, bytes(t), out.data());
  return out;
}

std::vector<float> SafetensorsFile::read_f32_rows(const TensorInfo& t, int64_t first, int64_t rows) const {
  const int64_t len = t.shape.empty() ? 1 : t.shape.back(), all = len ? t.numel() / len : 0;
  if (first < 0 || rows < 0 || first > all - rows)
    throw Error("tensor " + quote(t.name) + ": rows " + std::to_string(first) + " .. " + std::to_string(first + rows) +
                " asked of " + std::to_string(all));
  TensorInfo part = t;
  part.shape = {rows, len};
  const size_t elem = dtype_size(t.dtype);
  part.size = (size_t)(rows * len) * elem;
  std::vector<float> out((size_t)(rows * len));
  to_f32(part, bytes(t).subspan((size_t)(first * len) * elem, part.size), out.data());
  return out;
}

void to_f32(const TensorInfo& t, std::span<const uint8_t> bytes, float* out) {
  if (bytes.size() != t.size)
    throw Error("tensor " + quote(t.name) + ": " + std::to_string(bytes.size()) +
                " bytes given, " + std::to_string(t.size) + " expected");
  const size_t n = (size_t)t.numel();
  const uint8_t* p = bytes.data();
  switch (t.dtype) {
    case DType::f32:
      if (n) memcpy(out, p, n * 4);
      return;
    case DType::f16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);  // the data section need not be aligned
        out[i] = f16_to_f32(h);
      }
      return;
    case DType::bf16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        out[i] = bf16_to_f32(h);
      }
      return;
  }
}

}  // namespace lowbit
