// libFuzzer target for the manifest loader's parser (runtime/manifest.h parse_manifest): any
// input must either parse or throw lowbit::Error; a crash, a sanitizer report or another
// exception type is a bug. The first 8 bytes choose the weights.bin size the tensors are
// checked against, so bounds checks are exercised both ways.
#include <cstdint>
#include <cstring>
#include <string_view>

#include "kernels/error.h"
#include "runtime/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint64_t weights_size = 1 << 20;
  if (size >= 8) {
    std::memcpy(&weights_size, data, 8);
    data += 8, size -= 8;
  }
  try {
    lowbit::parse_manifest(std::string_view(reinterpret_cast<const char*>(data), size), weights_size,
                           "fuzz/manifest.json");
  } catch (const lowbit::Error&) {
  }
  return 0;
}
