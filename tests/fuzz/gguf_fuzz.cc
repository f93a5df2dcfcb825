// libFuzzer target over parse_gguf_header and the typed metadata getters: junk must be rejected
// with lowbit::Error, and an accepted file must keep the reader's promises (every tensor inside
// the file, aligned, sized by its type and dims, no two sharing a byte; every metadata value
// readable). Seeds: tests/fuzz/corpus_gguf (small files written by gguf-py, see its README).
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <vector>

#include "convert/gguf.h"
#include "kernels/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  try {
    const GgufFile f = GgufFile::view(data, size, "fuzz.gguf");
    const GgufHeader& h = f.header();
    std::vector<std::pair<uint64_t, uint64_t>> spans;
    for (const GgufTensorInfo& t : h.tensors) {
      const auto info = ggml_type_info((uint32_t)t.type);
      if (!info || t.offset < h.data_start || t.offset > size || t.bytes > size - t.offset) __builtin_trap();
      if ((t.offset - h.data_start) % h.alignment != 0) __builtin_trap();
      if (t.bytes != (uint64_t)t.numel() / info->block_weights * info->block_bytes) __builtin_trap();
      spans.emplace_back(t.offset, t.bytes);
      // Touch the first and last byte granted, so AddressSanitizer checks they are inside.
      volatile uint8_t sink = f.tensor_bytes(t)[0];
      sink = f.tensor_bytes(t)[t.bytes - 1];
      (void)sink;
    }
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i)
      if (spans[i - 1].first + spans[i - 1].second > spans[i].first) __builtin_trap();
    for (const GgufKV& kv : h.kvs) {
      try {
        f.describe(kv);
        if (kv.type == GgufValueType::array) {
          if (kv.elem_type == GgufValueType::string) f.get_string_array(kv.key);
          else if (kv.elem_type == GgufValueType::f32 || kv.elem_type == GgufValueType::f64) f.get_f32_array(kv.key);
          else f.get_i32_array(kv.key);
        }
      } catch (const Error& e) {
        // Getters may refuse a value that does not fit; only as an Error.
        if (strchr(e.what(), '\n')) __builtin_trap();
      }
    }
  } catch (const Error& e) {
    if (strchr(e.what(), '\n')) __builtin_trap();  // messages are one line
  }
  return 0;
}
