#include "kernels/quantize.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>

#include "kernels/error.h"
#include "kernels/thread_pool.h"

namespace lowbit {
namespace {

template <typename Byte>
auto row_ptrs(const QType& t, const QLayout& l, Byte* data, int64_t row) {
  using U16 = std::conditional_t<std::is_const_v<Byte>, const uint16_t, uint16_t>;
  Byte* codes = data + l.codes_offset + row * l.row_bytes;
  U16* scales = t.base == Base::q ? reinterpret_cast<U16*>(data + l.scales_offset) + row * l.groups : nullptr;
  U16* mins = t.base == Base::q && t.scheme == Scheme::asym
                  ? reinterpret_cast<U16*>(data + l.mins_offset) + row * l.groups
                  : nullptr;
  return std::make_tuple(codes, scales, mins);
}

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
              ThreadPool* pool) {
  check_type(t);
  const TypeTraits& tr = traits(t);
  const QLayout l = q_layout(t, n, k);
  std::memset(out, 0, l.bytes);  // padding between sections is zero, so files are reproducible
  for_rows(n, pool, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      auto [codes, scales, mins] = row_ptrs(t, l, out, r);
      try {
        tr.quantize_row(t, w + r * k, k, codes, scales, mins, qz);
      } catch (const Error& e) {
        throw Error(std::string(e.what()) + " (row " + std::to_string(r) + ")");
      }
    }
  });
}

void dequantize_row(const QType& t, const uint8_t* data, int64_t n, int64_t k, int64_t row,
                    float* out) {
  const QLayout l = q_layout(t, n, k);
  auto [codes, scales, mins] = row_ptrs(t, l, data, row);
  traits(t).dequantize_row(t, codes, scales, mins, k, out);
}

void dequantize(const QType& t, const uint8_t* data, int64_t n, int64_t k, float* out,
                ThreadPool* pool) {
  for_rows(n, pool, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) dequantize_row(t, data, n, k, r, out + r * k);
  });
}

}  // namespace lowbit
