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

void quantize_acts(const float* x, int64_t m, int64_t k, QuantizedActs& a) {
  a.m = m;
  a.k = k;
  a.kp = round_up(k, kMaxChunkWeights);
  a.blocks = a.kp / kActBlock;
  a.q.assign(m * a.kp, 0);
  a.scale.assign(m * a.blocks, 0.0f);
  a.bsum.assign(m * a.blocks, 0);
  for (int64_t r = 0; r < m; ++r) {
    const float* xr = x + r * k;
    int8_t* qr = a.q.data() + r * a.kp;
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
      a.scale[r * a.blocks + b] = amax / 127.0f;
      a.bsum[r * a.blocks + b] = sum;
    }
  }
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
#ifdef LOWBIT_HAVE_NEON
    case Isa::neon: return neon_kernels();
#endif
    default: return scalar_kernels();
  }
}

void matmul(const QMatrix& w, const float* x, int64_t m, float* y, const MatmulOptions& opt) {
  if (m <= 0 || w.n <= 0) return;
  if (!w.data || !x || !y) throw Error("matmul: null matrix, input or output");
  const CpuKernels& kern = kernels_for(resolve_isa(opt.isa));
  ThreadPool& pool = opt.pool ? *opt.pool : ThreadPool::global();

  // Rows per task: about four tasks per thread so a slow core does not hold up the rest, in
  // whole row tiles of the kernel.
  // A task also gets at least ~64K multiply-adds: below that, waking a worker costs more than
  // the work (the test models' matrices are 64 x 64).
  const int64_t tile = kern.row_tile;
  const int64_t want = ceil_div(w.n, (int64_t)pool.size() * 4);
  const int64_t min_rows = ceil_div(int64_t(1) << 16, std::max<int64_t>(1, w.k * m));
  const int64_t rows = std::max(tile, round_up(std::max(want, min_rows), tile));
  const int64_t tasks = ceil_div(w.n, rows);

  if (w.type.base == Base::q) {
    // Per calling thread, reused across calls; the workers must see the caller's instance, so
    // it is captured through a plain reference (a thread_local named in the lambda would
    // resolve to each worker's own, empty one).
    thread_local QuantizedActs caller_acts;
    QuantizedActs& acts = caller_acts;
    quantize_acts(x, m, w.k, acts);
    group_sums(w.type, acts);
    pool.run(tasks, [&](int64_t t, int) {
      kern.gemm_q(w, acts, y, t * rows, std::min(w.n, (t + 1) * rows));
    });
  } else {
    pool.run(tasks, [&](int64_t t, int) {
      kern.gemm_f(w, x, m, y, t * rows, std::min(w.n, (t + 1) * rows));
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
