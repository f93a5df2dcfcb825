// The loop of attend_rows()'s SIMD twins (kernels/attend_avx2.cc, attend_neon.cc), shared: blocks
// of kBlock positions, each block's keys scored for every row and head of the call, the softmax
// of each row's heads, then each block's values summed into every row's heads. L (the ISA's
// part) provides kKeys, scores<HD>(q, k, kv_stride, valid, hd, scale, out) writing kKeys scores
// of consecutive keys (valid of them real, the others' values unused), and weighted_sum<HD>(w, v,
// kv_stride, p0, p1, o) adding w[p] v_p to o for p in [p0, p1) in position order.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/ops.h"

namespace lowbit::attend_impl {

// Positions per block: 64 keys or values of head_dim 64 are 16 KiB, within L1 beside the rows'
// queries and outputs.
constexpr int64_t kBlock = 64;

template <class L, int HD>
void run(const AttendRows& a) {
  constexpr int64_t kKeys = L::kKeys;
  const int64_t hd = HD > 0 ? HD : a.head_dim, group = a.group, rows = a.rows;
  const int64_t lo = attend_first(a.n_pos, a.window), hi = a.n_pos + rows - 1;
  const int64_t width = attend_rows_width(rows, a.n_pos, a.window);  // scores per head, from lo
  auto range = [&](int64_t r, int64_t b0, int64_t b1, int64_t* p0, int64_t* p1) {
    const int64_t end = a.n_pos + r;
    *p0 = std::max(b0, attend_first(end, a.window));
    *p1 = std::min(b1, end);
    return *p0 < *p1;
  };
  for (int64_t b0 = lo; b0 < hi; b0 += kBlock) {
    const int64_t b1 = std::min(hi, b0 + kBlock);
    for (int64_t r = 0; r < rows; ++r) {
      int64_t p0, p1;
      if (!range(r, b0, b1, &p0, &p1)) continue;
      p0 = lo + (p0 - lo) / kKeys * kKeys;  // whole groups from lo; scores outside the row's range go unused
      for (int64_t g = 0; g < group; ++g) {
        const float* q = a.q + r * a.q_stride + g * hd;
        float* s = a.scratch + (r * group + g) * width - lo;
        for (int64_t p = p0; p < p1; p += kKeys)
          L::template scores<HD>(q, a.k_cache + p * a.kv_stride, a.kv_stride, std::min(kKeys, hi - p), hd, a.scale,
                                 s + p);
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t end = a.n_pos + r, first = attend_first(end, a.window);
    for (int64_t g = 0; g < group; ++g) {
      float* s = a.scratch + (r * group + g) * width + (first - lo);
      if (a.softcap > 0) softcap(s, end - first, a.softcap);  // attend()'s function on the same scores
      softmax(s, end - first);
    }
    std::fill(a.out + r * a.out_stride, a.out + r * a.out_stride + group * hd, 0.0f);
  }
  for (int64_t b0 = lo; b0 < hi; b0 += kBlock) {
    const int64_t b1 = std::min(hi, b0 + kBlock);
    for (int64_t r = 0; r < rows; ++r) {
      int64_t p0, p1;
      if (!range(r, b0, b1, &p0, &p1)) continue;
      for (int64_t g = 0; g < group; ++g) {
        const float* w = a.scratch + (r * group + g) * width - lo;
        float* o = a.out + r * a.out_stride + g * hd;
        if constexpr (HD > 0) {
          L::template weighted_sum<HD>(w, a.v_cache, a.kv_stride, p0, p1, o);
        } else {
          for (int64_t i = 0; i < hd; i += 64)  // 64 dims at a time; hd a multiple of 64 here
            L::template weighted_sum<64>(w, a.v_cache + i, a.kv_stride, p0, p1, o + i);
        }
      }
    }
  }
}

// Head sizes of the Llama family: 64 (SmolLM2, TinyLlama) and 128 (Llama 2/3, Mistral, Qwen2.5
// 7B) as constants; other multiples of 64 through the 64-wide blocks. False for the rest, which
// the caller sends to attend().
template <class L>
bool attend_rows(const AttendRows& a) {
  switch (a.head_dim) {
    case 64: run<L, 64>(a); return true;
    case 128: run<L, 128>(a); return true;
    default:
      if (a.head_dim % 64 != 0) return false;
      run<L, 0>(a);
      return true;
  }
}

}  // namespace lowbit::attend_impl
