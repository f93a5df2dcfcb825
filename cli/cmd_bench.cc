// lowbit bench matmul: one matmul shape timed in isolation, in rounds that each start with a
// pass of the fp32 FMA probe and one of the DRAM read probe, so a decode figure (bandwidth) and a
// prefill figure (FLOP/s) are judged against the limits of this machine at that moment. lowbit bench model: see cli/bench_model.h.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/bench_model.h"
#include "cli/command.h"
#include "kernels/error.h"
#include "kernels/matmul.h"
#include "kernels/membw.h"
#include "kernels/quantize.h"
#include "kernels/thread_pool.h"

namespace lowbit::cli {

// Stand-in until the model benchmark is linked in; the real definition overrides it.
__attribute__((weak)) int bench_model_main(int, char**) { throw Error("lowbit bench model: not built"); }

namespace {

const char* kSummary =
    "Times one matmul shape: Y[M x N] = X[M x K] W^T with W of the given type.";
const char* kFooter =
    "usage: lowbit bench matmul --bits B | --type NAME [options]\n"
    "       lowbit bench model MODEL [options]   (lowbit bench model --help)\n"
    "matmul: cycles through at least 512 MiB of distinct copies of W so every weight read comes\n"
    "from DRAM; prints the median time per matmul and the DRAM read bandwidth probed between\n"
    "rounds of it (ratio_to_dram: the median over rounds of the round's weight GB/s over the probe\n"
    "pass just before it), and the same for GFLOP/s against an fp32 FMA probe on the same threads\n"
    "(fma_peak_gflops, ratio_to_fma_peak: the yardstick of prefill; the int8 kernels are not bound\n"
    "by it). --bits 16 is f16, --bits 32 f32; --type takes any type name (bf16, q4_row_sym, ...)\n"
    "instead.\n";

constexpr size_t kCycleBytes = size_t(512) << 20;

struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<uint8_t, AlignedFree>;

Buffer alloc64(size_t bytes) {
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(64, round_up((int64_t)bytes, 64)));
  if (!p) throw Error("out of memory allocating " + std::to_string(bytes) + " bytes");
  return Buffer(p);
}

// Cheap deterministic values in [-scale, scale): the timing does not depend on them.
void fill_random(float* v, int64_t count, uint64_t seed, float scale) {
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  for (int64_t i = 0; i < count; ++i) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    v[i] = scale * ((float)(s >> 40) * (1.0f / 8388608.0f) - 1.0f);
  }
}

int matmul_main(int argc, char** argv) {
  int bits = 0;
  std::string group = "32", scheme, type_arg;
  int64_t m = 1, n = 14336, k = 4096;
  int threads = 0, reps = 0;
  std::string isa_arg = "auto";
  bool json = false;
  Args args("lowbit bench matmul", kSummary, kFooter);
  args.integer("--bits", bits, "1, 2, 4, 8, 16 (f16) or 32 (f32)").metavar("B");
  args.text("--group", group, "weights per scale: 32, 64, 128, 256 or row (default 32)").metavar("G");
  args.choice("--scheme", scheme, "sym or asym (default sym at 8 bits, asym below)", {"sym", "asym"});
  args.text("--type", type_arg, "a type name instead of --bits/--group/--scheme").metavar("NAME");
  args.integer("--m", m, "rows of X (default 1)", 1).metavar("M");
  args.integer("--n", n, "rows of W (default 14336)", 1);
  args.integer("--k", k, "columns of X and W (default 4096)", 1).metavar("K");
  add_isa(args, isa_arg);
  add_threads(args, threads);
  args.integer("--reps", reps, "matmuls timed (default 0: about 2 s worth)", 0, 1 << 30).metavar("R");
  args.flag("--json", json, "print one JSON object");
  if (!args.parse(argc, argv)) return 0;
  QType t;
  if (!type_arg.empty()) {
    t = parse_type(type_arg);
  } else if (bits == 32 || bits == 16) {
    t = bits == 32 ? QType{Base::f32, 32} : QType{Base::f16, 16};
  } else if (bits != 0) {
    if (scheme.empty()) scheme = bits == 8 ? "sym" : "asym";
    t = parse_type("q" + std::to_string(bits) + (group == "row" || group == "0" ? "_row_" : "_g" + group + "_") + scheme);
  } else {
    throw UsageError("--bits or --type is required");
  }
  const Isa isa = resolve_isa(parse_isa(isa_arg));
  if (threads <= 0) threads = hardware_threads();
  ThreadPool pool(threads);

  // Distinct copies of one quantized matrix: a matmul reads the next copy each time, so no
  // copy is still in cache when it comes round again.
  const int64_t bytes = q_layout(t, n, k).bytes;
  const int64_t copies = std::max<int64_t>(2, ceil_div((int64_t)kCycleBytes, bytes));
  std::vector<Buffer> mats;
  {
    std::vector<float> w(n * k);
    fill_random(w.data(), n * k, 1, 0.05f);
    mats.push_back(alloc64(bytes));
    quantize(t, w.data(), n, k, mats[0].get(), Quantizer::rtn, &pool);
  }
  for (int64_t c = 1; c < copies; ++c) {
    mats.push_back(alloc64(bytes));
    std::memcpy(mats.back().get(), mats[0].get(), bytes);
  }
  std::vector<float> x(m * k), y(m * n);
  fill_random(x.data(), m * k, 2, 1.0f);
  const MatmulOptions opt{isa, &pool};
  auto run_one = [&](int64_t i) { matmul({t, n, k, mats[i % copies].get()}, x.data(), m, y.data(), opt); };
  for (int64_t i = 0; i < copies; ++i) run_one(i);  // warm-up: code, pages, thread wake-up

  // Rounds of one probe pass then one cycle of matmuls through every copy: each round's
  // weight bandwidth is judged against the probe taken just before it, and the median of those
  // ratios is reported, so a neighbour that starts or stops streaming memory mid-run moves both
  // sides of a ratio instead of one.
  DramProbe probe(pool, kCycleBytes);
  FmaProbe fma(pool);
  if (reps <= 0) {
    const auto t0 = std::chrono::steady_clock::now();
    run_one(0);
    const double one = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    reps = (int)std::clamp(2.0 / std::max(one, 1e-6), 5.0, 400.0);  // about 2 s of timing
  }
  const int64_t per_round = std::min<int64_t>(copies, reps);
  const int64_t rounds = std::max<int64_t>(1, ceil_div((int64_t)reps, per_round));
  std::vector<double> times, probes, ratios, fmas, fma_ratios;
  int64_t next = 1;
  for (int64_t r = 0; r < rounds; ++r) {
    fmas.push_back(fma.pass());
    probes.push_back(probe.pass());
    double round_sec = 0;
    for (int64_t i = 0; i < per_round; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      run_one(next++);
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      round_sec += times.back();
    }
    ratios.push_back((double)bytes * (double)per_round / round_sec / 1e9 / probes.back());
    fma_ratios.push_back(2.0 * (double)m * (double)n * (double)k * (double)per_round / round_sec / 1e9 / fmas.back());
  }
  reps = (int)times.size();
  const double sec = median(times), dram = median(probes), ratio = median(ratios);
  const double fma_peak = median(fmas), fma_ratio = median(fma_ratios);
  const double weights = (double)n * (double)k;
  const double gbps = (double)bytes / sec / 1e9;
  const double gflops = 2.0 * (double)m * weights / sec / 1e9;
  if (json) {
    std::printf(
        "{\"type\": \"%s\", \"isa\": \"%s\", \"threads\": %d, \"m\": %lld, \"n\": %lld, \"k\": %lld, "
        "\"bits_per_weight\": %.4f, \"weight_bytes\": %lld, \"copies\": %lld, \"reps\": %d, "
        "\"seconds\": %.9g, \"weight_gbps\": %.4g, \"weights_per_s\": %.4g, \"gflops\": %.4g, "
        "\"dram_read_gbps\": %.4g, \"ratio_to_dram\": %.4f, \"fma_peak_gflops\": %.4g, "
        "\"ratio_to_fma_peak\": %.4f, \"rounds\": %lld}\n",
        type_name(t).c_str(), isa_name(isa), threads, (long long)m, (long long)n, (long long)k,
        bits_per_weight(t, n, k), (long long)bytes, (long long)copies, reps, sec, gbps, weights / sec,
        gflops, dram, ratio, fma_peak, fma_ratio, (long long)rounds);
  } else {
    std::printf("%s %s threads=%d m=%lld n=%lld k=%lld: %.3f ms, %.2f GB/s of weights (%.0f%% of DRAM "
                "%.2f GB/s), %.2f G weights/s, %.1f GFLOP/s (%.0f%% of the fp32 FMA peak %.0f GFLOP/s)\n",
                type_name(t).c_str(), isa_name(isa), threads, (long long)m, (long long)n, (long long)k,
                sec * 1e3, gbps, 100 * ratio, dram, weights / sec / 1e9, gflops, 100 * fma_ratio, fma_peak);
  }
  return 0;
}

int bench_main(int argc, char** argv) {
  const char* kBenchUsage =
      "usage: lowbit bench matmul ...   time one matmul shape (lowbit bench matmul --help)\n"
      "       lowbit bench model ...    prompt and generation tokens/s of a model (lowbit bench model --help)\n";
  if (argc >= 2 && (!std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help"))) {
    std::fputs(kBenchUsage, stdout);
    return 0;
  }
  if (argc < 2) throw UsageError("which benchmark: matmul or model?");
  if (!std::strcmp(argv[1], "matmul")) return matmul_main(argc - 1, argv + 1);
  if (!std::strcmp(argv[1], "model")) return bench_model_main(argc - 1, argv + 1);
  throw UsageError(std::string("unknown benchmark '") + argv[1] + "' (expected matmul or model)");
}

static Registrar reg("bench", "time a matmul shape (bench matmul) or a model (bench model)", bench_main);

}  // namespace
}  // namespace lowbit::cli
