// Whole-matrix quantization and dequantization over the layout of quant_format.h, parallel
// over rows. Row-level functions live in the traits table (qtype.h).
#pragma once

#include <cstdint>
#include <vector>

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

// GPTQ (Frantar et al. 2022, arXiv:2210.17323): quantizes the columns of w in order and spreads
// each column's rounding error over the columns not yet quantized, so that the error of W x over
// the calibration inputs x, not that of W, is what is minimized. Its second-order statistic is
// H = sum over inputs of x x^T (k x k); the updates read U, the upper-triangular factor with
// U^T U = (H + lambda I)^-1, lambda = damp * mean(diag H), which gptq_factor computes once per H
// (the projections that share an input share it). Columns whose diagonal is 0 (inputs never
// active) get H_jj = 1 first, as the paper's code does. Throws Error naming the column where the
// factorization fails (H not positive semi-definite, or too ill-conditioned for the damping).
std::vector<float> gptq_factor(const float* h, int64_t k, double damp = 0.01);

// The GPTQ quantizer over the layout of quantize(): each group's scale and minimum are chosen by
// the row quantizer (qz, importance as in quantize()) on the group's weights as the errors of
// the columns before it have left them, when the group is reached; with 6-bit scale codes the
// row factors come from the unchanged row. With U = identity this is exactly quantize().
// u: gptq_factor's k x k result.
void quantize_gptq(const QType& t, const float* w, int64_t n, int64_t k, uint8_t* out, const float* u,
                   Quantizer qz = Quantizer::search, ThreadPool* pool = nullptr, const float* importance = nullptr);

// data: a matrix in layout t; out: (n, k) fp32.
void dequantize(const QType& t, const uint8_t* data, int64_t n, int64_t k, float* out,
                ThreadPool* pool = nullptr);
void dequantize_row(const QType& t, const uint8_t* data, int64_t n, int64_t k, int64_t row,
                    float* out);

}  // namespace lowbit
