// Opens any model a user names, for every front end (CLI, C API, Python): a manifest directory
// (mapped in place), a GGUF file (imported in memory, each tensor kept in its own type where lowbit
// has it: convert/source.h), or an HF directory (imported in memory at `lowbit convert`'s default
// 4-bit recipe). Nothing is written to disk; `lowbit convert` makes the import once instead.
#pragma once

#include <memory>
#include <string>

#include "runtime/model.h"

namespace lowbit {

struct LoadInfo {
  std::string format;         // "manifest", "GGUF v3", "HF directory"
  bool imported = false;      // converted in memory at load
  double import_seconds = 0;  // time spent converting (0 for a manifest)
};

// Throws Error naming the path and saying what it looks like when it is none of the three.
std::unique_ptr<Model> load_model(const std::string& path, const LoadParams& params = {}, LoadInfo* info = nullptr);

}  // namespace lowbit
