#include "convert/gguf.h"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "kernels/error.h"

namespace lowbit {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
// Keys and names longer than this are junk, not metadata: llama.cpp caps tensor names at 64
// bytes and no key of any published model comes close.
constexpr uint64_t kMaxKeyBytes = 1 << 16;

size_t value_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::u8: case GgufValueType::i8: case GgufValueType::boolean: return 1;
    case GgufValueType::u16: case GgufValueType::i16: return 2;
    case GgufValueType::u32: case GgufValueType::i32: case GgufValueType::f32: return 4;
    case GgufValueType::u64: case GgufValueType::i64: case GgufValueType::f64: return 8;
    default: return 0;  // string, array: variable
  }
}

// Keys and names come from the file: in messages, control bytes become '?' (a message is one
// line) and long ones are cut.
std::string shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200)) out += (unsigned char)c < 0x20 || c == 0x7f ? '?' : c;
  if (s.size() > 200) out += "...";
  return out;
}

// Built by appending: "'" + std::string trips GCC 12's -Wrestrict false positive (bug 105651).
std::string quoted(std::string_view s) {
  std::string out(1, '\'');
  out += shown(s);
  out += '\'';
  return out;
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

// A cursor over the header bytes; every read is bounds-checked and names what it was reading.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size, std::string_view label) : p_(data), size_(size), label_(label) {}

  [[noreturn]] void fail(const std::string& what) const { throw Error(std::string(label_) + ": " + what); }

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }

  template <typename T>
  T get(const std::string& what) {
    if (left() < sizeof(T)) fail("file ends inside " + what + " (truncated?)");
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  void skip(uint64_t n, const std::string& what) {
    if (left() < n) fail("file ends inside " + what + " (truncated?)");
    pos_ += n;
  }

  std::string_view string(const std::string& what, uint64_t max_len = UINT64_MAX) {
    const uint64_t n = get<uint64_t>("the length of " + what);
    if (n > max_len) fail(what + " is " + std::to_string(n) + " bytes long (at most " + std::to_string(max_len) + ")");
    if (n > left()) fail(what + ": length " + std::to_string(n) + " runs past the end of the file");
    std::string_view s(reinterpret_cast<const char*>(p_ + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  const uint8_t* p_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string_view label_;
};

GgufValueType value_type(Reader& r, const std::string& what) {
  const uint32_t t = r.get<uint32_t>("the type of " + what);
  if (t > (uint32_t)GgufValueType::f64) r.fail(what + ": unknown value type " + std::to_string(t));
  return (GgufValueType)t;
}

// Skips one value of type t (not an array), checking that it lies inside the file.
void skip_value(Reader& r, GgufValueType t, const std::string& what) {
  if (t == GgufValueType::string) {
    r.string(what);
  } else {
    r.skip(value_size(t), what);
  }
}

}  // namespace

std::string_view gguf_value_type_name(GgufValueType t) {
  static constexpr std::string_view names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                               "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = (uint32_t)t;
  return i < std::size(names) ? names[i] : "unknown";
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

GgufHeader parse_gguf_header(const uint8_t* data, size_t size, std::string_view label) {
  Reader r(data, size, label);
  GgufHeader h;
  if (r.get<uint32_t>("the magic") != kMagic) r.fail("not a GGUF file (the first 4 bytes are not 'GGUF')");
  h.version = r.get<uint32_t>("the version");
  if (h.version == 1) r.fail("GGUF version 1 is not supported (only 2 and 3; re-save the model with a newer llama.cpp)");
  if (h.version > 0xFFFF) r.fail("GGUF version " + std::to_string(h.version) + " looks byte-swapped: big-endian GGUF files are not supported");
  if (h.version != 2 && h.version != 3)
    r.fail("GGUF version " + std::to_string(h.version) + " is not supported (this reader knows 2 and 3)");
  const uint64_t n_tensors = r.get<uint64_t>("the tensor count");
  const uint64_t n_kv = r.get<uint64_t>("the metadata count");
  // Each key-value pair takes at least 8 + 4 + 1 bytes and each tensor info 8 + 4 + 8 + 4 + 8, so
  // larger counts cannot be true; checking first keeps a corrupt count from sizing an allocation.
  if (n_kv > r.left() / 13) r.fail("metadata count " + std::to_string(n_kv) + " is larger than the file can hold");
  if (n_tensors > r.left() / 32) r.fail("tensor count " + std::to_string(n_tensors) + " is larger than the file can hold");

  h.kvs.reserve(n_kv);
  std::map<std::string_view, size_t> seen_keys;
  for (uint64_t i = 0; i < n_kv; ++i) {
    GgufKV kv;
    kv.key = std::string(r.string("the key of metadata entry " + std::to_string(i), kMaxKeyBytes));
    const std::string what = "metadata " + quoted(kv.key);
    kv.type = value_type(r, what);
    if (kv.type == GgufValueType::array) {
      kv.elem_type = value_type(r, what + " (element type)");
      if (kv.elem_type == GgufValueType::array) r.fail(what + ": arrays of arrays are not supported");
      kv.count = r.get<uint64_t>("the length of " + what);
      kv.offset = r.pos();
      if (kv.elem_type == GgufValueType::string) {
        // Each element is at least its 8-byte length; check before walking.
        if (kv.count > r.left() / 8) r.fail(what + ": " + std::to_string(kv.count) + " strings cannot fit in the file");
        for (uint64_t e = 0; e < kv.count; ++e) r.string(what + " element " + std::to_string(e));
      } else {
        uint64_t bytes;
        if (mul_overflows(kv.count, value_size(kv.elem_type), &bytes) || bytes > r.left())
          r.fail(what + ": " + std::to_string(kv.count) + " elements run past the end of the file");
        r.skip(bytes, what);
      }
    } else {
      kv.offset = r.pos();
      skip_value(r, kv.type, what);
    }
    h.kvs.push_back(std::move(kv));
    if (!seen_keys.emplace(h.kvs.back().key, i).second) r.fail("metadata key " + quoted(h.kvs.back().key) + " appears twice");
  }

  if (auto it = seen_keys.find("general.alignment"); it != seen_keys.end()) {
    const GgufKV& kv = h.kvs[it->second];
    if (kv.type != GgufValueType::u32) r.fail("general.alignment must be a u32, not " + std::string(gguf_value_type_name(kv.type)));
    uint32_t a;
    std::memcpy(&a, data + kv.offset, 4);
    if (a == 0 || (a & (a - 1)) != 0) r.fail("general.alignment " + std::to_string(a) + " is not a power of two");
    h.alignment = a;
  }

  h.tensors.reserve(n_tensors);
  std::map<std::string_view, size_t> seen_names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = std::string(r.string("the name of tensor " + std::to_string(i), kMaxKeyBytes));
    const std::string what = "tensor " + quoted(t.name);
    const uint32_t n_dims = r.get<uint32_t>("the dims count of " + what);
    if (n_dims == 0 || n_dims > kGgufMaxDims)
      r.fail(what + ": " + std::to_string(n_dims) + " dims (1 to " + std::to_string(kGgufMaxDims) + " allowed)");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = r.get<uint64_t>("the dims of " + what);
      if (ne == 0 || ne > (uint64_t)INT64_MAX) r.fail(what + ": dim " + std::to_string(d) + " is " + std::to_string(ne));
      if (mul_overflows(numel, ne, &numel) || numel > (uint64_t)INT64_MAX)
        r.fail(what + ": the product of its dims overflows 64 bits");
      t.dims.push_back((int64_t)ne);
    }
    const uint32_t type_id = r.get<uint32_t>("the type of " + what);
    const std::optional<GgmlTypeInfo> info = ggml_type_info(type_id);
    if (!info) r.fail(what + ": unknown tensor type " + std::to_string(type_id));
    t.type = info->type;
    if (t.dims[0] % info->block_weights != 0)
      r.fail(what + ": rows of " + std::to_string(t.dims[0]) + " weights are not whole " + std::string(info->name) +
             " blocks of " + std::to_string(info->block_weights));
    if (mul_overflows(numel / info->block_weights, info->block_bytes, &t.bytes))
      r.fail(what + ": its byte size overflows 64 bits");
    t.offset = r.get<uint64_t>("the offset of " + what);  // relative to the data section for now
    if (t.offset % h.alignment != 0)
      r.fail(what + ": offset " + std::to_string(t.offset) + " is not a multiple of the alignment " + std::to_string(h.alignment));
    h.tensors.push_back(std::move(t));
    if (!seen_names.emplace(h.tensors.back().name, i).second) r.fail("tensor name " + quoted(h.tensors.back().name) + " appears twice");
  }

  // The data section starts at the next multiple of the alignment.
  h.data_start = r.pos() + (h.alignment - r.pos() % h.alignment) % h.alignment;
  if (n_tensors > 0 && h.data_start > size) r.fail("file ends before its data section (truncated?)");
  const uint64_t data_bytes = h.data_start <= size ? size - h.data_start : 0;
  std::vector<std::pair<uint64_t, size_t>> by_offset;  // (offset, index), to find overlaps
  for (size_t i = 0; i < h.tensors.size(); ++i) {
    GgufTensorInfo& t = h.tensors[i];
    if (t.offset > data_bytes || t.bytes > data_bytes - t.offset)
      r.fail("tensor " + quoted(t.name) + ": bytes [" + std::to_string(t.offset) + ", " + std::to_string(t.offset + t.bytes) +
             ") of the data section run past the end of the file (" + std::to_string(data_bytes) + " bytes of data; truncated?)");
    by_offset.emplace_back(t.offset, i);
    t.offset += h.data_start;
  }
  std::sort(by_offset.begin(), by_offset.end());
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo& prev = h.tensors[by_offset[i - 1].second];
    const GgufTensorInfo& cur = h.tensors[by_offset[i].second];
    if (prev.offset + prev.bytes > cur.offset)
      r.fail("tensors " + quoted(prev.name) + " and " + quoted(cur.name) + " overlap in the data section");
  }
  return h;
}

GgufFile GgufFile::open(const std::string& path) {
  GgufFile f;
  f.file_ = MappedFile::open(path);
  f.data_ = f.file_.data();
  f.size_ = f.file_.size();
  f.label_ = path;
  f.header_ = parse_gguf_header(f.data_, f.size_, path);
  for (size_t i = 0; i < f.header_.kvs.size(); ++i) f.kv_index_.emplace(f.header_.kvs[i].key, i);
  for (size_t i = 0; i < f.header_.tensors.size(); ++i) f.tensor_index_.emplace(f.header_.tensors[i].name, i);
  return f;
}

GgufFile GgufFile::view(const uint8_t* data, size_t size, std::string label) {
  GgufFile f;
  f.data_ = data;
  f.size_ = size;
  f.label_ = std::move(label);
  f.header_ = parse_gguf_header(data, size, f.label_);
  for (size_t i = 0; i < f.header_.kvs.size(); ++i) f.kv_index_.emplace(f.header_.kvs[i].key, i);
  for (size_t i = 0; i < f.header_.tensors.size(); ++i) f.tensor_index_.emplace(f.header_.tensors[i].name, i);
  return f;
}

const GgufKV* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &header_.kvs[it->second];
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &header_.tensors[it->second];
}

void GgufFile::drop_pages(const GgufTensorInfo& t) const {
  if (file_.size() > 0) file_.drop_pages(data_ + t.offset, t.bytes);
}

const GgufKV& GgufFile::need(std::string_view key) const {
  const GgufKV* kv = find(key);
  if (!kv) throw Error(label_ + ": metadata " + quoted(key) + " is missing");
  return *kv;
}

namespace {

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// An integer value of any integer type (bool as 0/1); nullopt for other types. u64 values above
// INT64_MAX do not fit and are reported by the caller.
std::optional<int64_t> integer_at(GgufValueType t, const uint8_t* p, bool* too_big) {
  switch (t) {
    case GgufValueType::u8: return load<uint8_t>(p);
    case GgufValueType::i8: return load<int8_t>(p);
    case GgufValueType::boolean: return load<uint8_t>(p) != 0;
    case GgufValueType::u16: return load<uint16_t>(p);
    case GgufValueType::i16: return load<int16_t>(p);
    case GgufValueType::u32: return load<uint32_t>(p);
    case GgufValueType::i32: return load<int32_t>(p);
    case GgufValueType::i64: return load<int64_t>(p);
    case GgufValueType::u64: {
      const uint64_t v = load<uint64_t>(p);
      if (v > (uint64_t)INT64_MAX) *too_big = true;
      return (int64_t)v;
    }
    default: return std::nullopt;
  }
}

}  // namespace

std::string_view GgufFile::get_string(std::string_view key) const {
  const GgufKV& kv = need(key);
  if (kv.type != GgufValueType::string)
    throw Error(label_ + ": metadata " + quoted(kv.key) + " is a " + std::string(gguf_value_type_name(kv.type)) + ", not a string");
  const uint64_t n = load<uint64_t>(data_ + kv.offset);
  return {reinterpret_cast<const char*>(data_ + kv.offset + 8), (size_t)n};
}

int64_t GgufFile::get_int(std::string_view key) const {
  const GgufKV& kv = need(key);
  bool too_big = false;
  const std::optional<int64_t> v = kv.type == GgufValueType::array ? std::nullopt : integer_at(kv.type, data_ + kv.offset, &too_big);
  if (!v) throw Error(label_ + ": metadata " + quoted(kv.key) + " is a " + std::string(gguf_value_type_name(kv.type)) + ", not an integer");
  if (too_big) throw Error(label_ + ": metadata " + quoted(kv.key) + " is too large");
  return *v;
}

double GgufFile::get_float(std::string_view key) const {
  const GgufKV& kv = need(key);
  if (kv.type == GgufValueType::f32) return load<float>(data_ + kv.offset);
  if (kv.type == GgufValueType::f64) return load<double>(data_ + kv.offset);
  if (kv.type != GgufValueType::boolean && kv.type != GgufValueType::string && kv.type != GgufValueType::array)
    return (double)get_int(key);
  throw Error(label_ + ": metadata " + quoted(kv.key) + " is a " + std::string(gguf_value_type_name(kv.type)) + ", not a number");
}

bool GgufFile::get_bool(std::string_view key) const {
  const GgufKV& kv = need(key);
  if (kv.type != GgufValueType::boolean)
    throw Error(label_ + ": metadata " + quoted(kv.key) + " is a " + std::string(gguf_value_type_name(kv.type)) + ", not a bool");
  return load<uint8_t>(data_ + kv.offset) != 0;
}

std::vector<std::string_view> GgufFile::get_string_array(std::string_view key) const {
  const GgufKV& kv = need(key);
  if (kv.type != GgufValueType::array || kv.elem_type != GgufValueType::string)
    throw Error(label_ + ": metadata " + quoted(kv.key) + " is not an array of strings");
  std::vector<std::string_view> out;
  out.reserve(kv.count);
  uint64_t pos = kv.offset;  // bounds were checked element by element when parsing
  for (uint64_t i = 0; i < kv.count; ++i) {
    const uint64_t n = load<uint64_t>(data_ + pos);
    out.emplace_back(reinterpret_cast<const char*>(data_ + pos + 8), (size_t)n);
    pos += 8 + n;
  }
  return out;
}

std::vector<float> GgufFile::get_f32_array(std::string_view key) const {
  const GgufKV& kv = need(key);
  if (kv.type != GgufValueType::array || (kv.elem_type != GgufValueType::f32 && kv.elem_type != GgufValueType::f64))
    throw Error(label_ + ": metadata " + quoted(kv.key) + " is not an array of floats");
  std::vector<float> out(kv.count);
  for (uint64_t i = 0; i < kv.count; ++i)
    out[i] = kv.elem_type == GgufValueType::f32 ? load<float>(data_ + kv.offset + 4 * i)
                                                : (float)load<double>(data_ + kv.offset + 8 * i);
  return out;
}

std::vector<int32_t> GgufFile::get_i32_array(std::string_view key) const {
  const GgufKV& kv = need(key);
  const size_t es = value_size(kv.elem_type);
  if (kv.type != GgufValueType::array || es == 0 || kv.elem_type == GgufValueType::f32 || kv.elem_type == GgufValueType::f64)
    throw Error(label_ + ": metadata " + quoted(kv.key) + " is not an array of integers");
  std::vector<int32_t> out(kv.count);
  for (uint64_t i = 0; i < kv.count; ++i) {
    bool too_big = false;
    const int64_t v = *integer_at(kv.elem_type, data_ + kv.offset + es * i, &too_big);
    if (too_big || v < INT32_MIN || v > INT32_MAX)
      throw Error(label_ + ": metadata " + quoted(kv.key) + " element " + std::to_string(i) + " does not fit 32 bits");
    out[i] = (int32_t)v;
  }
  return out;
}

std::string GgufFile::describe(const GgufKV& kv) const {
  switch (kv.type) {
    case GgufValueType::array:
      return std::string("[") + std::string(gguf_value_type_name(kv.elem_type)) + " x " + std::to_string(kv.count) + "]";
    case GgufValueType::string: return quoted(get_string(kv.key));
    case GgufValueType::f32: case GgufValueType::f64: return std::to_string(get_float(kv.key));
    case GgufValueType::boolean: return get_bool(kv.key) ? "true" : "false";
    default: return std::to_string(get_int(kv.key));
  }
}

}  // namespace lowbit
