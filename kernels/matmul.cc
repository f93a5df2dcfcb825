// The matmul driver: the one dispatch point from (type, ISA) to a kernel, activation
// quantization, and the split of W's rows over the thread pool.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/error.h"
#include "kernels/matmul_impl.h"
#include "kernels/quantize.h"
#include "kernels/thread_pool.h"

namespace lowbit {

void quantize_act_row_scalar(const float* xr, int64_t k, int8_t* qr, float* scale, int32_t* bsum) {
  for (int64_t b = 0; b * kActBlock < k; ++b) {
    const int64_t begin = b * kActBlock, end = std::min(k, begin + kActBlock);
    float amax = 0;
    for (int64_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(xr[i]));
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    int32_t sum = 0;
    for (int64_t i = begin; i < end; ++i) {
      const int v = (int)std::nearbyint(xr[i] * inv);
      qr[i] = (int8_t)v;
      sum += v;
    }
    scale[b] = amax / 127.0f;
    bsum[b] = sum;
  }
}

void quantize_acts(const float* x, int64_t m, int64_t k, QuantizedActs& a, const CpuKernels& kern) {
  a.m = m;
  a.k = k;
  a.kp = round_up(k, kMaxChunkWeights);
  a.blocks = a.kp / kActBlock;
  a.q.assign(m * a.kp, 0);
  a.scale.assign(m * a.blocks, 0.0f);
  a.bsum.assign(m * a.blocks, 0);
  for (int64_t r = 0; r < m; ++r)
    kern.quantize_act_row(x + r * k, k, a.q.data() + r * a.kp, a.scale.data() + r * a.blocks, a.bsum.data() + r * a.blocks);
}

void quantize_acts(const float* x, int64_t m, int64_t k, QuantizedActs& a) {
  quantize_acts(x, m, k, a, scalar_kernels());
}

void group_sums(const QType& t, QuantizedActs& a) {
  a.group_blocks = group_size(t, a.k) / kActBlock;
  a.groups = groups_per_row(t, a.k);
  a.gsum.assign(a.m * a.groups, 0.0f);
  for (int64_t r = 0; r < a.m; ++r)
    for (int64_t b = 0; b < a.blocks; ++b) {
      const int64_t g = b / a.group_blocks;
      if (g < a.groups) a.gsum[r * a.groups + g] += a.scale[r * a.blocks + b] * a.bsum[r * a.blocks + b];
    }
}

const CpuKernels& kernels_for(Isa isa) {
  switch (isa) {
#ifdef LOWBIT_HAVE_AVX2
    case Isa::avx2: return avx2_kernels();
#endif
#ifdef LOWBIT_HAVE_AVXVNNI
    case Isa::avxvnni: return avxvnni_kernels();
#endif
#ifdef LOWBIT_HAVE_AVX512
    case Isa::avx512: return avx512_kernels();
    case Isa::avx512zmm: return avx512zmm_kernels();
#endif
#ifdef LOWBIT_HAVE_NEON
    case Isa::neon: return neon_kernels();
#endif
    default: return scalar_kernels();
  }
}

namespace {

// Rows per task for one matrix: about four tasks per thread so a slow core does not hold up the
// rest, in whole row tiles of the kernel, and at least ~64K multiply-adds per task: below that,
// waking a worker costs more than the work (the test models' matrices are 64 x 64).
int64_t rows_per_task(const QMatrix& w, int64_t m, const CpuKernels& kern, const ThreadPool& pool) {
  const int64_t tile = kern.row_tile;
  const int64_t want = ceil_div(w.n, (int64_t)pool.size() * 4);
  const int64_t min_rows = ceil_div(int64_t(1) << 16, std::max<int64_t>(1, w.k * m));
  return std::max(tile, round_up(std::max(want, min_rows), tile));
}

}  // namespace

void matmul(const QMatrix& w, const float* x, int64_t m, float* y, const MatmulOptions& opt) {
  const MatmulOut out{w, y};
  matmul_many(&out, 1, x, m, opt);
}

const CpuKernels& cpu_kernels(Isa isa) { return kernels_for(resolve_isa(isa)); }

void matmul_many(const MatmulOut* outs, int count, const float* x, int64_t m, const MatmulOptions& opt) {
  if (m <= 0 || count <= 0) return;
  // The task plan below lives on the stack (no allocation per call): longer lists go in parts,
  // with the same results (each matrix's rows are computed the same way in any list).
  constexpr int kMaxMany = 8;
  if (count > kMaxMany) {
    for (int i = 0; i < count; i += kMaxMany) matmul_many(outs + i, std::min(kMaxMany, count - i), x, m, opt);
    return;
  }
  for (int i = 0; i < count; ++i) {
    const QMatrix& w = outs[i].w;
    if (!w.data || !x || !outs[i].y) throw Error(ErrorCode::invalid_argument, "matmul: null matrix, input or output");
    if (w.k != outs[0].w.k) throw Error(ErrorCode::invalid_argument, "matmul_many: matrices of different k (" + std::to_string(w.k) + " and " + std::to_string(outs[0].w.k) + ")");
  }
  const CpuKernels& kern = opt.kernels ? *opt.kernels : cpu_kernels(opt.isa);
  // Quantized weights take int8 activations unless the kernels run the shape in fp32. One
  // activation quantization serves every matrix only when all take int8 with the same group
  // size (the group sums depend on it); fp32 activations serve any mix.
  auto int8 = [&](const QType& t) { return t.base == Base::q && (opt.int8_acts || !runs_q_in_f32(kern, t, m)); };
  const bool quantized = int8(outs[0].w.type);
  for (int i = 1; i < count; ++i) {
    const QType& t = outs[i].w.type;
    if (int8(t) != quantized || (quantized && group_size(t, outs[i].w.k) != group_size(outs[0].w.type, outs[0].w.k))) {
      for (int j = 0; j < count; ++j) matmul_many(&outs[j], 1, x, m, opt);
      return;
    }
  }
  ThreadPool& pool = opt.pool ? *opt.pool : ThreadPool::global();

  // Task t of the joint list belongs to the matrix whose [first_task, first_task + tasks) holds it.
  struct Plan {
    int64_t rows, first_task;
  };
  Plan plan[kMaxMany];
  int64_t tasks = 0;
  for (int i = 0; i < count; ++i) {
    plan[i] = {rows_per_task(outs[i].w, m, kern, pool), tasks};
    tasks += ceil_div(outs[i].w.n, plan[i].rows);
  }
  auto locate = [&](int64_t t, int64_t& n0, int64_t& n1) -> const MatmulOut& {
    int i = count - 1;
    while (plan[i].first_task > t) --i;
    const QMatrix& w = outs[i].w;
    n0 = (t - plan[i].first_task) * plan[i].rows;
    n1 = std::min(w.n, n0 + plan[i].rows);
    return outs[i];
  };

  if (quantized) {
    // Per calling thread, reused across calls; the workers must see the caller's instance, so
    // it is captured through a plain reference (a thread_local named in the lambda would
    // resolve to each worker's own, empty one).
    thread_local QuantizedActs caller_acts;
    QuantizedActs& acts = caller_acts;
    quantize_acts(x, m, outs[0].w.k, acts, kern);
    group_sums(outs[0].w.type, acts);
    pool.run(tasks, [&](int64_t t, int) {
      int64_t n0, n1;
      const MatmulOut& o = locate(t, n0, n1);
      kern.gemm_q(o.w, acts, o.y, n0, n1);
    });
  } else {
    pool.run(tasks, [&](int64_t t, int) {
      int64_t n0, n1;
      const MatmulOut& o = locate(t, n0, n1);
      if (o.w.type.base == Base::q) kern.gemm_q_f32(o.w, x, m, o.y, n0, n1);
      else kern.gemm_f(o.w, x, m, o.y, n0, n1);
    });
  }
}

void matmul_reference(const QMatrix& w, const float* x, int64_t m, float* y) {
  std::vector<float> row(w.k);
  for (int64_t n = 0; n < w.n; ++n) {
    dequantize_row(w.type, w.data, w.n, w.k, n, row.data());
    for (int64_t r = 0; r < m; ++r) {
      double acc = 0;
      for (int64_t i = 0; i < w.k; ++i) acc += (double)row[i] * x[r * w.k + i];
      y[r * w.n + n] = (float)acc;
    }
  }
}

}  // namespace lowbit
