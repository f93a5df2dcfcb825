// libFuzzer target over parse_safetensors_header, the pure function that validates a
// safetensors header before SafetensorsFile touches any tensor byte. Rejecting an input with
// lowbit::Error is the expected outcome for junk; anything else (a crash, a sanitizer report,
// another exception type, or an accepted header that breaks the promises below) is a bug.
//
// Build and run (clang only), with a scratch directory first so libFuzzer writes new inputs
// there and never into the committed seed corpus:
//   CC=clang CXX=clang++ cmake -S . -B build-fuzz -DLOWBIT_FUZZ=ON -DLOWBIT_TESTS=OFF ...
//   cmake --build build-fuzz --target safetensors_fuzz
//   mkdir -p /tmp/st_corpus && ./build-fuzz/tests/fuzz/safetensors_fuzz -max_total_time=20 \
//       /tmp/st_corpus tests/fuzz/corpus_safetensors
#include <stdint.h>
#include <string.h>

#include <vector>

#include "convert/safetensors.h"
#include "kernels/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  try {
    const SafetensorsHeader h = parse_safetensors_header(data, size, "fuzz.safetensors");
    // What an accepted header promises: every tensor lies inside the data section, its byte
    // count matches shape and dtype, and no two tensors share a byte (tensors are in file order).
    uint64_t prev_end = h.data_start;
    for (const TensorInfo& t : h.tensors) {
      if (h.data_start > size || t.offset < h.data_start || t.offset > size || t.size > size - t.offset)
        __builtin_trap();
      if (t.size != (uint64_t)t.numel() * dtype_size(t.dtype)) __builtin_trap();
      if (t.size != 0) {
        if (t.offset < prev_end) __builtin_trap();
        prev_end = t.offset + t.size;
      }
      // Read every byte granted, so AddressSanitizer checks it is inside the input.
      std::vector<float> out((size_t)t.numel());
      to_f32(t, std::span<const uint8_t>(data + t.offset, (size_t)t.size), out.data());
    }
  } catch (const Error& e) {
    if (strchr(e.what(), '\n')) __builtin_trap();  // messages are one line
  }
  return 0;
}
