// The shared real test models (shared/models/*) converted by the library's own converter, once
// per (model, bits) for the whole test binary.
#pragma once

#include <map>
#include <string>

#include "convert/convert.h"
#include "tests/convert/hf_test_util.h"

namespace lowbit::test {

inline const std::string& converted(const std::string& model, int bits) {
  static TempDir dir;
  static std::map<std::string, std::string> done;
  const std::string key = model + "_b" + std::to_string(bits);
  auto it = done.find(key);
  if (it != done.end()) return it->second;
  ConvertOptions opt;
  opt.bits = bits;
  convert_model(kModels + "/" + model, dir / key, opt);
  return done[key] = dir / key;
}

}  // namespace lowbit::test
