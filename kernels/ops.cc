#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/isa.h"

// The SIMD twins of attend_rows (kernels/attend_*.cc); false: a head size they do not take.
#ifdef LOWBIT_HAVE_AVX2
namespace lowbit::avx2 {
bool attend_rows(const AttendRows& a);
}
#endif
#ifdef LOWBIT_HAVE_NEON
namespace lowbit::neon {
bool attend_rows(const AttendRows& a);
}
#endif

namespace lowbit {

void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out) {
  double ss = 0;  // double: dim up to ~8k squares must not lose the small ones
  for (int64_t i = 0; i < n; ++i) ss += (double)x[i] * x[i];
  const float inv = (float)(1.0 / std::sqrt(ss / n + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * w[i];
}

void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t rot_dim, int64_t pos, const float* inv_freq,
          float scale) {
  const int64_t half = rot_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    // Angle in double: pos * inv_freq reaches 1e5 radians at long contexts, where fp32 would
    // keep only ~2 digits of the phase.
    const double angle = (double)pos * inv_freq[i];
    const float c = (float)std::cos(angle) * scale, s = (float)std::sin(angle) * scale;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + h * head_dim;
      const float a = v[i], b = v[i + half];
      v[i] = a * c - b * s;
      v[i + half] = b * c + a * s;
    }
  }
}

namespace {

// softmax() and attend()'s: max and the sum of exps in 8 lanes each, so they vectorize (the sum
// in double: up to ~1e5 terms of at most 1).
[[gnu::always_inline]] inline void softmax_lanes(float* x, int64_t n) {
  float mx[8];
  for (int j = 0; j < 8; ++j) mx[j] = x[0];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) mx[j] = std::max(mx[j], x[i + j]);
  float m = mx[0];
  for (int j = 1; j < 8; ++j) m = std::max(m, mx[j]);
  for (; i < n; ++i) m = std::max(m, x[i]);
  double sum[8] = {};
  for (i = 0; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) sum[j] += x[i + j] = exp_f32(x[i + j] - m);
  double total = 0;
  for (int j = 0; j < 8; ++j) total += sum[j];
  for (; i < n; ++i) total += x[i] = exp_f32(x[i] - m);
  const float inv = (float)(1.0 / total);
  for (i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace

#if defined(__x86_64__) && defined(__GNUC__)
#define LOWBIT_X86_CLONES [[gnu::target_clones("arch=x86-64-v3", "default")]]
#else
#define LOWBIT_X86_CLONES
#endif

LOWBIT_X86_CLONES void softmax(float* x, int64_t n) { softmax_lanes(x, n); }

LOWBIT_X86_CLONES void swiglu(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + exp_f32(-gate[i])) * up[i];
}

void geglu(float* gate, const float* up, int64_t n) {
  constexpr float kC = 0.7978845608028654f;  // sqrt(2 / pi)
  for (int64_t i = 0; i < n; ++i) {
    const float x = gate[i];
    gate[i] = 0.5f * x * (1.0f + std::tanh(kC * (x + 0.044715f * x * x * x))) * up[i];
  }
}

void scale_inplace(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void softcap(float* x, int64_t n, float cap) {
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

void add_inplace(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] += x[i];
}

namespace {

// a . b in 8 interleaved partial sums, added in a fixed order at the end: the compiler may
// vectorize this (each lane is its own sum), where one running sum must stay scalar without
// -ffast-math (what that gained a prompt: bench/README.md).
[[gnu::always_inline]] inline float dot(const float* a, const float* b, int64_t n) {
  float lane[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lane[j] += a[i + j] * b[i + j];
  float s = ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

// Built twice on x86 (GCC function multiversioning, picked once at load time by CPUID): the
// default x86-64 build has 4-wide SSE and no FMA, while attention is a sizeable part of a
// prompt's time (bench/README.md), where 8-wide FMAs do the dots and the sums of V rows.
LOWBIT_X86_CLONES
void attend(const float* q, int64_t group, const float* k_cache, const float* v_cache, int64_t kv_stride,
            int64_t n_pos, int64_t first_pos, int64_t head_dim, float scale, float* scratch, float* out, float cap) {
  const int64_t n = n_pos - first_pos;
  // Position-major: a K or V row comes into L1 once and serves every head of the group.
  for (int64_t p = 0; p < n; ++p) {
    const float* k = k_cache + (first_pos + p) * kv_stride;
    for (int64_t g = 0; g < group; ++g) scratch[g * n + p] = dot(q + g * head_dim, k, head_dim) * scale;
  }
  if (cap > 0) softcap(scratch, group * n, cap);
  for (int64_t g = 0; g < group; ++g) softmax_lanes(scratch + g * n, n);
  std::fill(out, out + group * head_dim, 0.0f);
  for (int64_t p = 0; p < n; ++p) {
    const float* v = v_cache + (first_pos + p) * kv_stride;
    for (int64_t g = 0; g < group; ++g) {
      const float a = scratch[g * n + p];
      float* o = out + g * head_dim;
      for (int64_t i = 0; i < head_dim; ++i) o[i] += a * v[i];
    }
  }
}

int64_t attend_rows_scratch(int64_t rows, int64_t group, int64_t n_pos, int64_t window) {
  return rows * group * attend_rows_width(rows, n_pos, window);  // the row-by-row path needs less
}

void attend_rows(const AttendRows& a) {
  // The kernels' ISA choice (LOWBIT_ISA=scalar keeps to the portable code here too).
#ifdef LOWBIT_HAVE_AVX2
  static const bool simd = default_isa() != Isa::scalar;
  if (simd && avx2::attend_rows(a)) return;
#endif
#ifdef LOWBIT_HAVE_NEON
  static const bool simd = default_isa() == Isa::neon;
  if (simd && neon::attend_rows(a)) return;
#endif
  for (int64_t r = 0; r < a.rows; ++r) {
    const int64_t end = a.n_pos + r;
    attend(a.q + r * a.q_stride, a.group, a.k_cache, a.v_cache, a.kv_stride, end, attend_first(end, a.window),
           a.head_dim, a.scale, a.scratch, a.out + r * a.out_stride, a.softcap);
  }
}

}  // namespace lowbit
