// CPU instruction-set detection and the one run-time choice of kernel ISA.
#pragma once

#include <string>
#include <vector>

namespace lowbit {

// avx512: AVX-512 F/BW/VL with VNNI (vpdpbusd); a host with AVX-512 but no VNNI runs avx2, whose
// 256-bit arithmetic the VNNI-less AVX-512 instructions would only repeat. avxvnni: AVX2 plus the
// VEX-encoded vpdpbusd (AVX2-class CPUs without AVX-512), the same kernels as avx512.
// avx512zmm: avx512 with the prefill/batch kernel (M > 1) in 512-bit registers, twice the products
// per instruction; the default only where the CPU runs 512-bit integer instructions at the 256-bit
// rate (zmm_full_rate), the same results as avx512 bit for bit.
enum class Isa { automatic, scalar, avx2, avxvnni, avx512, avx512zmm, neon };
// Every ISA but automatic, in order of preference (best last).
inline constexpr Isa kIsas[] = {Isa::scalar, Isa::avx2, Isa::avxvnni, Isa::avx512, Isa::avx512zmm, Isa::neon};

struct CpuInfo {
  std::string model;        // "AMD EPYC ..." or "" when unknown
  std::string arch;         // "x86_64", "aarch64", ...
  // Of those lowbit cares about: avx2, fma, f16c, avxvnni, avx512f, avx512bw, avx512vl, avx512vnni,
  // neon, dotprod.
  std::vector<std::string> features;
  int threads = 1;
};

CpuInfo cpu_info();

const char* isa_name(Isa isa);
Isa parse_isa(const std::string& name);  // throws Error listing the valid names
bool isa_compiled(Isa isa);              // built into this library
bool isa_supported(Isa isa);             // compiled and the CPU can run it
std::vector<Isa> available_isas();       // compiled and supported, best last

// The ISA matmuls use when asked for Isa::automatic: LOWBIT_ISA if set (an error if that ISA is
// not compiled or not supported here), else the best supported one. Decided once per process.
Isa default_isa();
// Resolves automatic to default_isa() and checks the CPU can run the result.
Isa resolve_isa(Isa isa);

bool cpu_has_dotprod();  // aarch64 ASIMDDP; false elsewhere
// Whether 512-bit vector instructions run at the rate of 256-bit ones, so that zmm registers
// double the work per cycle: Intel's AVX-512 cores and AMD from Zen 5 (family 1Ah), not Zen 4
// (family 19h), which splits each into two 256-bit halves (bench/simd_rate_bench.cc measures it).
bool zmm_full_rate();

}  // namespace lowbit
