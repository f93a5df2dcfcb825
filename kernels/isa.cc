#include "kernels/isa.h"

#include <cstdlib>
#include <fstream>

#include "kernels/error.h"
#include "kernels/thread_pool.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace lowbit {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::automatic: return "auto";
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avxvnni: return "avxvnni";
    case Isa::avx512: return "avx512";
    case Isa::avx512zmm: return "avx512zmm";
    case Isa::neon: return "neon";
  }
  return "?";
}

Isa parse_isa(const std::string& name) {
  if (name == "auto") return Isa::automatic;
  for (Isa i : kIsas)
    if (name == isa_name(i)) return i;
  std::string names = "auto";
  for (Isa i : kIsas) names += std::string(", ") + isa_name(i);
  throw Error(ErrorCode::invalid_argument, "unknown ISA '" + name + "' (expected one of " + names + ")");
}

bool isa_compiled(Isa isa) {
  switch (isa) {
    case Isa::automatic:
    case Isa::scalar: return true;
#ifdef LOWBIT_HAVE_AVX2
    case Isa::avx2: return true;
#endif
#ifdef LOWBIT_HAVE_AVXVNNI
    case Isa::avxvnni: return true;
#endif
#ifdef LOWBIT_HAVE_AVX512
    case Isa::avx512:
    case Isa::avx512zmm: return true;
#endif
#ifdef LOWBIT_HAVE_NEON
    case Isa::neon: return true;
#endif
    default: return false;
  }
}

bool cpu_has_dotprod() {
#if defined(__aarch64__) && defined(__linux__) && defined(HWCAP_ASIMDDP)
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
  return false;
#endif
}

bool zmm_full_rate() {
#if defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
  const bool intel = b == 0x756e6547u && d == 0x49656e69u && c == 0x6c65746eu;  // "GenuineIntel"
  const bool amd = b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;    // "AuthenticAMD"
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const unsigned family = ((a >> 8) & 0xf) + (((a >> 8) & 0xf) == 0xf ? (a >> 20) & 0xff : 0);
  return intel || (amd && family >= 0x1a);
#else
  return false;
#endif
}

bool isa_supported(Isa isa) {
  if (!isa_compiled(isa)) return false;
  switch (isa) {
    case Isa::automatic:
    case Isa::scalar: return true;
    case Isa::avx2:
#if defined(__x86_64__)
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
#else
      return false;
#endif
    case Isa::avxvnni:
#if defined(__x86_64__)
      return isa_supported(Isa::avx2) && __builtin_cpu_supports("avxvnni");
#else
      return false;
#endif
    case Isa::avx512:
    case Isa::avx512zmm:
#if defined(__x86_64__)
      // __builtin_cpu_supports also checks that the OS saves the AVX-512 registers (XCR0).
      return isa_supported(Isa::avx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
      return false;
#endif
    case Isa::neon:
#if defined(__aarch64__)
      return true;
#else
      return false;
#endif
  }
  return false;
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa i : kIsas)
    if (isa_supported(i)) out.push_back(i);
  return out;
}

Isa default_isa() {
  static const Isa chosen = [] {
    const char* env = std::getenv("LOWBIT_ISA");
    if (env && *env) {
      const Isa want = parse_isa(env);
      if (want != Isa::automatic) {
        if (!isa_supported(want))
          throw Error(ErrorCode::invalid_argument, std::string("LOWBIT_ISA=") + env + ": not " +
                      (isa_compiled(want) ? "supported by this CPU" : "compiled into this build"));
        return want;
      }
    }
    // The best the CPU runs, but 512-bit registers only where they are not half rate.
    std::vector<Isa> isas = available_isas();
    if (isas.back() == Isa::avx512zmm && !zmm_full_rate()) isas.pop_back();
    return isas.back();
  }();
  return chosen;
}

Isa resolve_isa(Isa isa) {
  if (isa == Isa::automatic) return default_isa();
  if (!isa_supported(isa))
    throw Error(ErrorCode::invalid_argument, std::string("ISA ") + isa_name(isa) + " is not " +
                (isa_compiled(isa) ? "supported by this CPU" : "compiled into this build"));
  return isa;
}

CpuInfo cpu_info() {
  CpuInfo info;
  info.threads = hardware_threads();
#if defined(__x86_64__)
  info.arch = "x86_64";
  if (__builtin_cpu_supports("avx2")) info.features.push_back("avx2");
  if (__builtin_cpu_supports("fma")) info.features.push_back("fma");
  if (__builtin_cpu_supports("f16c")) info.features.push_back("f16c");
  if (__builtin_cpu_supports("avxvnni")) info.features.push_back("avxvnni");
  if (__builtin_cpu_supports("avx512f")) info.features.push_back("avx512f");
  if (__builtin_cpu_supports("avx512bw")) info.features.push_back("avx512bw");
  if (__builtin_cpu_supports("avx512vl")) info.features.push_back("avx512vl");
  if (__builtin_cpu_supports("avx512vnni")) info.features.push_back("avx512vnni");
#elif defined(__aarch64__)
  info.arch = "aarch64";
  info.features.push_back("neon");
  if (cpu_has_dotprod()) info.features.push_back("dotprod");
#else
  info.arch = "other";
#endif
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0 || line.rfind("Model", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) info.model = line.substr(colon + 2);
      break;
    }
  }
  return info;
}

}  // namespace lowbit
