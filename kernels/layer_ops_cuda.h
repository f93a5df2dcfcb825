// Internal interface between the CUDA layer kernels (layer_ops.cu) and the plugin around them
// (cuda_plugin.cu): the operations of a transformer layer other than its matmuls, on device
// memory, with the semantics of backend/backend.h's Backend (and the CPU's kernels/ops.h, which
// they must agree with to within fp32 rounding). Compiled by nvcc only; not part of liblowbit.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda_backend.h"

namespace lowbit::cuda {

// out row r = x row r / sqrt(mean(x_r^2) + eps) * w; out may be x.
cudaError_t rmsnorm_device(const float* x, const float* w, int64_t rows, int64_t cols, float eps, float* out,
                           cudaStream_t stream);
cudaError_t add_device(float* out, const float* x, int64_t n, cudaStream_t stream);  // out += x
// every row of out (rows, cols) += bias (cols)
cudaError_t add_row_device(float* out, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream);
cudaError_t swiglu_device(float* gate, const float* up, int64_t n, cudaStream_t stream);  // gate = silu(gate) * up
cudaError_t geglu_device(float* gate, const float* up, int64_t n, cudaStream_t stream);   // gate = gelu_tanh(gate) * up
cudaError_t scale_device(float* x, int64_t n, float s, cudaStream_t stream);              // x *= s
// dst row i = src row rows[i]; rows: device array of n indices
cudaError_t gather_rows_device(const float* src, int64_t cols, const int64_t* rows, int64_t n, float* dst,
                               cudaStream_t stream);
// dst row rows[i] += weights[i] * src row i (device arrays; rows distinct)
cudaError_t add_rows_device(const float* src, int64_t cols, const int64_t* rows, const float* weights, int64_t n,
                            float* dst, cudaStream_t stream);
// HF rotate-half RoPE of the first rot_dim values of every head of every row at pos[row] (device
// array), cos and sin times scale; inv_freq: rot_dim/2
cudaError_t rope_device(float* x, int64_t rows, int64_t n_heads, int64_t head_dim, int64_t rot_dim, float scale,
                        const float* inv_freq, const int64_t* pos, cudaStream_t stream);
// out row r, head h = softmax over j in [rows[r].first, rows[r].end) of (q_h . k_j * scale) v_j,
// k_j and v_j the KV head h / (n_heads / n_kv_heads) of position j in rows[r]'s cache layer;
// rows: device array. scores: device scratch of n * n_heads * max_span floats.
// scores soft-capped (cap * tanh(s / cap)) before the softmax when softcap > 0
cudaError_t attention_device(const LowbitCudaAttnRow* rows, int64_t n, const float* q, int64_t n_heads,
                             int64_t n_kv_heads, int64_t head_dim, float scale, float softcap, float* scores,
                             int64_t max_span, float* out, cudaStream_t stream);

}  // namespace lowbit::cuda
