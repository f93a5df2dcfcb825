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
//
// importance (optional, k values >= 0, as llama.cpp's imatrix): how much each input column
// matters, e.g. the mean square of that input channel's activations over calibration text. With
// it, Quantizer::search minimizes sum_j importance_j * (w_j - q_j)^2 in every group, which is the
// expected squared error of the matmul output when inputs are uncorrelated, instead of the plain
// squared error; rtn and float types ignore it. A group whose importance sums to 0 uses the plain
// error. Null gives exactly the unweighted result. Throws Error on a negative or non-finite value.
void quantize(const QType& t, const float* w, int64_t n, int64_t k, uint8_t* out,
              Quantizer qz = Quantizer::rtn, ThreadPool* pool = nullptr, const float* importance = nullptr);

// data: a matrix in layout t; out: (n, k) fp32.
void dequantize(const QType& t, const uint8_t* data, int64_t n, int64_t k, float* out,
                ThreadPool* pool = nullptr);
void dequantize_row(const QType& t, const uint8_t* data, int64_t n, int64_t k, int64_t row,
                    float* out);

}  // namespace lowbit
