// Throughput of the single AVX2 instructions the decode kernel's inner loop is made of
// (kernels/matmul_quant_x86.h), each in a loop of 12 independent register chains so latency
// does not limit it: what chose unpacks over vphaddw for packing block sums. Read the rates
// against vpaddw's in the same run (4 per cycle on Zen 3), not as absolute figures: the clock of
// a shared machine is not known here. On AVX-512 VNNI hosts also vpdpbusd, and the 512-bit forms
// ("_zmm"): whether the AVX-512 kernels gain from 512-bit registers on this host (a 512-bit
// instruction that runs at half the 256-bit rate does the same work per cycle).
//
//   ./build/bench/simd_rate_bench --benchmark_min_time=0.2 --benchmark_repetitions=3
#include <benchmark/benchmark.h>

#include <string>

#include "kernels/isa.h"

namespace lowbit {
namespace {

#if defined(__x86_64__)
// Twelve copies of `insn ymm15, ymmR, ymmR`, R = 0..11: each result feeds only its own chain.
#define LOWBIT_X12(I)                                                                            \
  I " %%ymm15,%%ymm0,%%ymm0\n" I " %%ymm15,%%ymm1,%%ymm1\n" I " %%ymm15,%%ymm2,%%ymm2\n"         \
  I " %%ymm15,%%ymm3,%%ymm3\n" I " %%ymm15,%%ymm4,%%ymm4\n" I " %%ymm15,%%ymm5,%%ymm5\n"         \
  I " %%ymm15,%%ymm6,%%ymm6\n" I " %%ymm15,%%ymm7,%%ymm7\n" I " %%ymm15,%%ymm8,%%ymm8\n"         \
  I " %%ymm15,%%ymm9,%%ymm9\n" I " %%ymm15,%%ymm10,%%ymm10\n" I " %%ymm15,%%ymm11,%%ymm11\n"
#define LOWBIT_RATE_LOOP(NAME, INSN)                                                             \
  void NAME(long n) {                                                                            \
    asm volatile("1:\n" LOWBIT_X12(INSN) "dec %0\n jnz 1b\n"                                     \
                 : "+r"(n)                                                                       \
                 :                                                                               \
                 : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", \
                   "xmm10", "xmm11", "xmm15", "cc");                                             \
  }
LOWBIT_RATE_LOOP(loop_vpaddw, "vpaddw")
LOWBIT_RATE_LOOP(loop_vpand, "vpand")
LOWBIT_RATE_LOOP(loop_vphaddw, "vphaddw")
LOWBIT_RATE_LOOP(loop_vphaddd, "vphaddd")
LOWBIT_RATE_LOOP(loop_vpmaddubsw, "vpmaddubsw")
LOWBIT_RATE_LOOP(loop_vpmaddwd, "vpmaddwd")
LOWBIT_RATE_LOOP(loop_vpunpckldq, "vpunpckldq")
LOWBIT_RATE_LOOP(loop_vpblendd, "vpblendd $0xaa,")
LOWBIT_RATE_LOOP(loop_vfmadd231ps, "vfmadd231ps")
LOWBIT_RATE_LOOP(loop_vpdpbusd, "%{evex%} vpdpbusd")  // the AVX-512 VL form, as the kernels use it

// The same with zmm registers.
#define LOWBIT_X12Z(I)                                                                           \
  I " %%zmm15,%%zmm0,%%zmm0\n" I " %%zmm15,%%zmm1,%%zmm1\n" I " %%zmm15,%%zmm2,%%zmm2\n"         \
  I " %%zmm15,%%zmm3,%%zmm3\n" I " %%zmm15,%%zmm4,%%zmm4\n" I " %%zmm15,%%zmm5,%%zmm5\n"         \
  I " %%zmm15,%%zmm6,%%zmm6\n" I " %%zmm15,%%zmm7,%%zmm7\n" I " %%zmm15,%%zmm8,%%zmm8\n"         \
  I " %%zmm15,%%zmm9,%%zmm9\n" I " %%zmm15,%%zmm10,%%zmm10\n" I " %%zmm15,%%zmm11,%%zmm11\n"
#define LOWBIT_RATE_LOOP_ZMM(NAME, INSN)                                                         \
  void NAME(long n) {                                                                            \
    asm volatile("1:\n" LOWBIT_X12Z(INSN) "dec %0\n jnz 1b\n vzeroupper\n"                       \
                 : "+r"(n)                                                                       \
                 :                                                                               \
                 : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", \
                   "xmm10", "xmm11", "xmm15", "cc");                                             \
  }
LOWBIT_RATE_LOOP_ZMM(loop_vpaddw_zmm, "vpaddw")
LOWBIT_RATE_LOOP_ZMM(loop_vpunpckldq_zmm, "vpunpckldq")
LOWBIT_RATE_LOOP_ZMM(loop_vpmaddubsw_zmm, "vpmaddubsw")
LOWBIT_RATE_LOOP_ZMM(loop_vpdpbusd_zmm, "vpdpbusd")
LOWBIT_RATE_LOOP_ZMM(loop_vfmadd231ps_zmm, "vfmadd231ps")

// vpdpbusd with its activation operand loaded from memory, as in the lane kernel, fed its weight
// operand two ways, 12 chains again (ymm0-11), the operand made fresh before each: broadcast
// from memory (the lane kernel's first form: two loads per vpdpbusd) or spread from a register
// by vpshufd (its form since the ninth session, kernels/matmul_lanes_x86.h). Counted per
// vpdpbusd.
#define LOWBIT_FED(MAKE, K) MAKE "\n%{evex%} vpdpbusd 32(%1),%%ymm12,%%ymm" #K "\n"
#define LOWBIT_FED12(MAKE)                                                                        \
  LOWBIT_FED(MAKE, 0) LOWBIT_FED(MAKE, 1) LOWBIT_FED(MAKE, 2) LOWBIT_FED(MAKE, 3) LOWBIT_FED(MAKE, 4) \
  LOWBIT_FED(MAKE, 5) LOWBIT_FED(MAKE, 6) LOWBIT_FED(MAKE, 7) LOWBIT_FED(MAKE, 8) LOWBIT_FED(MAKE, 9) \
  LOWBIT_FED(MAKE, 10) LOWBIT_FED(MAKE, 11)
alignas(64) int32_t fed_word[16] = {};
#define LOWBIT_FED_LOOP(NAME, MAKE)                                                              \
  void NAME(long n) {                                                                            \
    asm volatile("1:\n" LOWBIT_FED12(MAKE) "dec %0\n jnz 1b\n"                                  \
                 : "+r"(n)                                                                       \
                 : "r"(fed_word)                                                                 \
                 : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", \
                   "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "cc", "memory");                \
  }
LOWBIT_FED_LOOP(loop_vpdpbusd_fed_by_broadcast_load, "vpbroadcastd (%1),%%ymm12")
LOWBIT_FED_LOOP(loop_vpdpbusd_fed_by_vpshufd, "vpshufd $0x55,%%ymm14,%%ymm12")

constexpr long kLoopIters = 1 << 20;

void BM_Rate(benchmark::State& state, void (*loop)(long), Isa needs) {
  if (!isa_supported(needs)) {
    state.SkipWithError((std::string("this CPU or build has no ") + isa_name(needs)).c_str());
    return;
  }
  for (auto _ : state) loop(kLoopIters);
  state.counters["insn_per_s"] =
      benchmark::Counter((double)state.iterations() * kLoopIters * 12, benchmark::Counter::kIsRate);
}

#define LOWBIT_RATE(INSN) BENCHMARK_CAPTURE(BM_Rate, INSN, loop_##INSN, Isa::avx2)->Unit(benchmark::kMillisecond)
#define LOWBIT_RATE512(INSN) BENCHMARK_CAPTURE(BM_Rate, INSN, loop_##INSN, Isa::avx512)->Unit(benchmark::kMillisecond)
LOWBIT_RATE(vpaddw);
LOWBIT_RATE(vpand);
LOWBIT_RATE(vphaddw);
LOWBIT_RATE(vphaddd);
LOWBIT_RATE(vpmaddubsw);
LOWBIT_RATE(vpmaddwd);
LOWBIT_RATE(vpunpckldq);
LOWBIT_RATE(vpblendd);
// fma's 4-cycle latency over 12 chains allows 3 per cycle, above its 2-per-cycle ports.
LOWBIT_RATE(vfmadd231ps);
LOWBIT_RATE512(vpdpbusd);
LOWBIT_RATE512(vpdpbusd_fed_by_broadcast_load);
LOWBIT_RATE512(vpdpbusd_fed_by_vpshufd);
LOWBIT_RATE512(vpaddw_zmm);
LOWBIT_RATE512(vpunpckldq_zmm);
LOWBIT_RATE512(vpmaddubsw_zmm);
LOWBIT_RATE512(vpdpbusd_zmm);
LOWBIT_RATE512(vfmadd231ps_zmm);
#endif

}  // namespace
}  // namespace lowbit

BENCHMARK_MAIN();
