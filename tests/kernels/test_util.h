// Shared helpers of the kernel tests: random matrices and the types x groups sweep.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/qtype.h"

namespace lowbit::test {

inline std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(rows * cols);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Every quantized type lowbit implements: bits x scheme x group (0 = per row).
inline std::vector<QType> all_quant_types() {
  std::vector<QType> out;
  for (const auto& tr : type_table()) {
    if (tr.base != Base::q) continue;
    for (uint32_t g : {32u, 64u, 128u, 256u, 0u}) out.push_back({Base::q, tr.bits, tr.scheme, g});
  }
  return out;
}

inline std::vector<QType> float_types() {
  return {{Base::f32, 32}, {Base::f16, 16}, {Base::bf16, 16}};
}

// Matrix storage with the 64-byte alignment weights.bin guarantees.
struct AlignedBytes {
  explicit AlignedBytes(size_t n)
      : size(n), ptr(static_cast<uint8_t*>(std::aligned_alloc(64, ((n + 63) / 64) * 64 + 64)), &std::free) {}
  size_t size;
  std::unique_ptr<uint8_t, decltype(&std::free)> ptr;
  uint8_t* data() { return ptr.get(); }
};

}  // namespace lowbit::test
