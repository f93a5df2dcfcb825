// Whole-matrix quantization and dequantization over the layout of quant_format.h, parallel
// over rows. Row-level functions live in the traits table (qtype.h).
#pragma once

#include <cstdint>

#include "kernels/qtype.h"

namespace lowbit {

class ThreadPool;

// w: (n, k) fp32 row-major. out: q_layout(t, n, k).bytes bytes. Throws Error naming the row and
// column of a NaN/Inf weight, or a scale that overflows fp16. pool == nullptr runs on the
// calling thread.
void quantize(const QType& t, const float* w, int64_t n, int64_t k, uint8_t* out,
              Quantizer qz = Quantizer::rtn, ThreadPool* pool = nullptr);

// data: a matrix in layout t; out: (n, k) fp32.
void dequantize(const QType& t, const uint8_t* data, int64_t n, int64_t k, float* out,
                ThreadPool* pool = nullptr);
void dequantize_row(const QType& t, const uint8_t* data, int64_t n, int64_t k, int64_t row,
                    float* out);

}  // namespace lowbit
