// Finds, loads and checks the CUDA plugin (cuda_backend.h). Plain C++: no CUDA header, no CUDA
// library at link time, so liblowbit runs where there is no GPU.
#include "kernels/cuda_backend.h"

#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#ifndef LOWBIT_CUDA_CONFIGURED  // set by CMakeLists.txt for lowbit_obj
#define LOWBIT_CUDA_CONFIGURED 0
#endif

namespace lowbit {
namespace {

std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
}

// Directories next to the module this code is in (liblowbit.so, or the executable that links
// liblowbit statically) and next to the running executable.
std::vector<std::string> neighbour_dirs() {
  std::vector<std::string> dirs;
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&neighbour_dirs), &info) && info.dli_fname) {
    const std::string d = dir_of(info.dli_fname);
    if (!d.empty()) dirs.push_back(d);
  }
  char exe[PATH_MAX];
  const ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (len > 0) {
    exe[len] = '\0';
    const std::string d = dir_of(exe);
    if (!d.empty() && (dirs.empty() || dirs[0] != d)) dirs.push_back(d);
  }
  return dirs;
}

struct Loaded {
  const CudaBackend* backend = nullptr;
  std::string why_not;
};

Loaded load() {
  Loaded out;
  if (const char* off = std::getenv("LOWBIT_CUDA"); off && (!std::strcmp(off, "0") || !std::strcmp(off, "off"))) {
    out.why_not = "CUDA backend disabled by LOWBIT_CUDA=" + std::string(off);
    return out;
  }

  // 1. The plugin library.
  std::vector<std::string> tried;
  std::string errors;
  void* lib = nullptr;
  auto try_open = [&](const std::string& path) {
    if (lib) return;
    tried.push_back(path);
    lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* e = dlerror();
      // A library that exists but fails to load is worth reporting verbatim.
      if (e && access(path.c_str(), F_OK) == 0) errors += std::string("; ") + e;
    }
  };
  for (const std::string& d : neighbour_dirs()) try_open(d + LOWBIT_CUDA_LIBRARY);
  if (const char* env = std::getenv("LOWBIT_CUDA_LIB"); env && *env) try_open(env);
  if (!lib) {
    tried.push_back(std::string(LOWBIT_CUDA_LIBRARY) + " (default search path)");
    lib = dlopen(LOWBIT_CUDA_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* e = dlerror();
      if (e && !std::strstr(e, "cannot open shared object file")) errors += std::string("; ") + e;
    }
  }
  if (!lib) {
    // A build configured with CUDA whose plugin target was not built (e.g. only lowbit_cli)
    // needs that target, not a different configuration.
    out.why_not = "CUDA plugin " LOWBIT_CUDA_LIBRARY " not found ("
                  + std::string(LOWBIT_CUDA_CONFIGURED ? "build the lowbit_cuda target" : "build with -DLOWBIT_CUDA=ON")
                  + "; tried";
    for (const std::string& t : tried) out.why_not += " " + t;
    out.why_not += ")" + errors;
    return out;
  }

  // 2. Its entry and ABI version. The library stays loaded for the life of the process.
  dlerror();
  auto entry = reinterpret_cast<LowbitCudaEntryFn>(dlsym(lib, LOWBIT_CUDA_ENTRY));
  if (!entry) {
    out.why_not = std::string("CUDA plugin has no entry symbol " LOWBIT_CUDA_ENTRY ": ") +
                  (dlerror() ? "symbol not found" : "null");
    return out;
  }
  const CudaBackend* be = entry(LOWBIT_CUDA_ABI_VERSION);
  if (!be) {
    out.why_not = "CUDA plugin refused ABI version " + std::to_string(LOWBIT_CUDA_ABI_VERSION);
    return out;
  }
  if (be->abi_version != LOWBIT_CUDA_ABI_VERSION || be->struct_size != sizeof(CudaBackend)) {
    out.why_not = "CUDA plugin ABI mismatch: plugin version " + std::to_string(be->abi_version) +
                  " (table " + std::to_string(be->struct_size) + " bytes), liblowbit expects " +
                  std::to_string(LOWBIT_CUDA_ABI_VERSION) + " (" + std::to_string(sizeof(CudaBackend)) +
                  " bytes); rebuild both from one tree";
    return out;
  }

  // 3. The driver. The CUDA runtime inside the plugin loads libcuda.so.1 itself; looking for it
  // here first turns its generic "insufficient driver" error into the actual cause.
  if (!dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
    out.why_not = "no CUDA driver (libcuda.so.1 not found)";
    return out;
  }

  // 4. A device.
  int count = 0;
  if (be->device_count(&count) != 0) {
    out.why_not = std::string("no CUDA device: ") + be->last_error();
    return out;
  }
  if (count <= 0) {
    out.why_not = "no CUDA device";
    return out;
  }
  out.backend = be;
  return out;
}

}  // namespace

const CudaBackend* cuda_backend(std::string* why_not) {
  static std::once_flag once;
  static Loaded loaded;
  std::call_once(once, [] {
    try {
      loaded = load();
    } catch (const std::exception& e) {  // std::bad_alloc and the like: still no abort
      loaded = Loaded{nullptr, std::string("CUDA backend: ") + e.what()};
    }
  });
  if (why_not) *why_not = loaded.backend ? std::string() : loaded.why_not;
  return loaded.backend;
}

}  // namespace lowbit
