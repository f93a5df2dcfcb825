#include "kernels/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "kernels/error.h"
#include "kernels/thread_pool.h"

namespace lowbit {
namespace {

void for_rows(int64_t n, ThreadPool* pool, const std::function<void(int64_t, int64_t)>& fn) {
  constexpr int64_t kRowsPerTask = 16;
  const int64_t tasks = ceil_div(n, kRowsPerTask);
  auto task = [&](int64_t t, int) { fn(t * kRowsPerTask, std::min(n, (t + 1) * kRowsPerTask)); };
  if (pool) {
    pool->run(tasks, task);
  } else {
    for (int64_t t = 0; t < tasks; ++t) task(t, 0);
  }
}

}  // namespace

void quantize(const QType& t, const float* w, int64_t n, int64_t k, uint8_t* out, Quantizer qz,
              ThreadPool* pool, const float* importance) {
  check_type(t);
  if (importance)
    for (int64_t j = 0; j < k; ++j)
      if (!(importance[j] >= 0) || !std::isfinite(importance[j]))
        throw Error("quantizer: importance " + std::to_string(importance[j]) + " of column " + std::to_string(j) +
                    " is not a finite value >= 0");
  const TypeTraits& tr = traits(t);
  std::memset(out, 0, q_layout(t, n, k).bytes);  // padding between sections is zero, so files are reproducible
  const QSections<uint8_t> sec = q_sections(t, n, k, out);
  QType t16 = t;  // 6-bit scale codes start from the fp16 type's row, then code its scales
  t16.scales = ScaleCode::f16;
  const int64_t groups = sec.groups;
  for_rows(n, pool, [&](int64_t r0, int64_t r1) {
    std::vector<uint16_t> d16(sec.coded() ? groups : 0), m16(sec.coded() ? groups : 0);
    for (int64_t r = r0; r < r1; ++r) {
      try {
        if (sec.coded()) {
          tr.quantize_row(t16, w + r * k, k, sec.row_codes(r), d16.data(), m16.data(), qz, importance);
          code_row_scales(t, w + r * k, k, sec.row_codes(r), d16.data(), m16.data(), sec.row_scale_codes(r),
                          sec.row_min_codes(r), sec.factors + 2 * r, qz, importance);
        } else {
          tr.quantize_row(t, w + r * k, k, sec.row_codes(r), sec.row_scales(r), sec.row_mins(r), qz, importance);
        }
      } catch (const Error& e) {
        throw Error(e.code(), std::string(e.what()) + " (row " + std::to_string(r) + ")");
      }
    }
  });
}

void dequantize_row(const QType& t, const uint8_t* data, int64_t n, int64_t k, int64_t row,
                    float* out) {
  const QSections<const uint8_t> sec = q_sections(t, n, k, data);
  if (!sec.coded()) {
    traits(t).dequantize_row(t, sec.row_codes(row), sec.row_scales(row), sec.row_mins(row), k, out);
    return;
  }
  std::vector<uint16_t> d16(sec.groups), m16(sec.groups);
  for (int64_t g = 0; g < sec.groups; ++g) d16[g] = sec.scale_at(row, g), m16[g] = sec.min_at(row, g);
  QType t16 = t;
  t16.scales = ScaleCode::f16;
  traits(t).dequantize_row(t16, sec.row_codes(row), d16.data(), m16.data(), k, out);
}

void dequantize(const QType& t, const uint8_t* data, int64_t n, int64_t k, float* out,
                ThreadPool* pool) {
  for_rows(n, pool, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) dequantize_row(t, data, n, k, r, out + r * k);
  });
}

}  // namespace lowbit
