// libFuzzer target for the Modelfile reader (store/modelfile.h parse_modelfile): any input must
// either parse (with a FROM) or throw lowbit::Error naming the file; a crash, a sanitizer report,
// another exception type or an error that names no place is a bug.
#include <cstdint>
#include <string>

#include "store/modelfile.h"
#include "kernels/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const lowbit::Modelfile m = lowbit::parse_modelfile(text, "fuzz/Modelfile");
    if (m.from.empty()) __builtin_trap();
  } catch (const lowbit::Error& e) {
    if (std::string(e.what()).rfind("fuzz/Modelfile", 0) != 0) __builtin_trap();
  }
  return 0;
}
