// CUDA kernels for the parts of a transformer layer that are not matmuls: the GPU twins of
// kernels/ops.cc's rmsnorm, rope, swiglu and attend, on fp32 in device memory. None is on the
// critical path the way the matmuls are (they touch activations, not weights), so they are
// written for clarity: one block per row (RMSNorm) or per (row, query head) (attention), one
// thread per element for the element-wise ones. The maths is the CPU's, so the results agree to
// within fp32 rounding of differently ordered sums (tests/backend/cuda_backend_test.cc bounds it).
#include <cmath>

#include "kernels/layer_ops_cuda.h"

namespace lowbit::cuda {
namespace {

constexpr int kBlock = 256;

unsigned blocks(int64_t n) { return (unsigned)((n + kBlock - 1) / kBlock); }

// Sum of v over the block (kBlock threads); every thread gets it.
template <typename T>
__device__ T block_sum(T v, T* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // shared may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T s = 0;
  for (int w = 0; w < kBlock / 32; ++w) s += shared[w];
  return s;
}

__device__ float block_max(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float m = shared[0];
  for (int w = 1; w < kBlock / 32; ++w) m = fmaxf(m, shared[w]);
  return m;
}

__global__ void rmsnorm_kernel(const float* x, const float* w, int64_t cols, float eps, float* out) {
  __shared__ double shared[kBlock / 32];
  const float* xr = x + blockIdx.x * cols;
  float* o = out + blockIdx.x * cols;
  double ss = 0;  // double, as the CPU's: the small squares of a wide row must count
  for (int64_t j = threadIdx.x; j < cols; j += kBlock) ss += (double)xr[j] * xr[j];
  ss = block_sum(ss, shared);
  __syncthreads();  // every thread has read shared before out (which may be x) is written
  const float inv = (float)(1.0 / sqrt(ss / (double)cols + (double)eps));
  for (int64_t j = threadIdx.x; j < cols; j += kBlock) o[j] = xr[j] * inv * w[j];
}

__global__ void add_kernel(float* out, const float* x, int64_t n) {
  const int64_t i = blockIdx.x * (int64_t)kBlock + threadIdx.x;
  if (i < n) out[i] += x[i];
}

__global__ void add_row_kernel(float* out, const float* bias, int64_t n, int64_t cols) {
  const int64_t i = blockIdx.x * (int64_t)kBlock + threadIdx.x;
  if (i < n) out[i] += bias[i % cols];
}

__global__ void swiglu_kernel(float* gate, const float* up, int64_t n) {
  const int64_t i = blockIdx.x * (int64_t)kBlock + threadIdx.x;
  if (i < n) {
    const float g = gate[i];
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void geglu_kernel(float* gate, const float* up, int64_t n) {
  const int64_t i = blockIdx.x * (int64_t)kBlock + threadIdx.x;
  if (i < n) {
    const float x = gate[i];
    gate[i] = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x))) * up[i];
  }
}

__global__ void scale_kernel(float* x, int64_t n, float s) {
  const int64_t i = blockIdx.x * (int64_t)kBlock + threadIdx.x;
  if (i < n) x[i] *= s;
}

__global__ void gather_rows_kernel(const float* src, int64_t cols, const int64_t* rows, int64_t n, float* dst) {
  const int64_t i = blockIdx.x * (int64_t)kBlock + threadIdx.x;
  if (i < n * cols) dst[i] = src[rows[i / cols] * cols + i % cols];
}

__global__ void add_rows_kernel(const float* src, int64_t cols, const int64_t* rows, const float* weights, int64_t n,
                                float* dst) {
  const int64_t i = blockIdx.x * (int64_t)kBlock + threadIdx.x;
  if (i < n * cols) dst[rows[i / cols] * cols + i % cols] += weights[i / cols] * src[i];
}

// One thread per (row, head, i < rot_dim / 2): the pair (i, i + rot_dim / 2) rotates by pos * inv_freq[i].
__global__ void rope_kernel(float* x, int64_t rows, int64_t n_heads, int64_t head_dim, int64_t rot_dim, float scale,
                            const float* inv_freq, const int64_t* pos) {
  const int64_t half = rot_dim / 2;
  const int64_t t = blockIdx.x * (int64_t)kBlock + threadIdx.x;
  if (t >= rows * n_heads * half) return;
  const int64_t r = t / (n_heads * half), h = t / half % n_heads, i = t % half;
  // The angle in double, as the CPU's rope: float products lose the low bits at long positions.
  const double angle = (double)pos[r] * (double)inv_freq[i];
  const float c = (float)cos(angle) * scale, s = (float)sin(angle) * scale;
  float* v = x + r * n_heads * head_dim + h * head_dim;
  const float a = v[i], b = v[i + half];
  v[i] = a * c - b * s;
  v[i + half] = b * c + a * s;
}

// One block per (row, query head): scores into scratch, their max, exp and sum, then each output
// element as the weighted sum of the values.
__global__ void attention_kernel(const LowbitCudaAttnRow* rows, const float* q, int64_t n_heads, int64_t group,
                                 int64_t kv_dim, int64_t head_dim, float scale, float softcap, float* scores,
                                 int64_t max_span, float* out) {
  __shared__ float shared[kBlock / 32];
  const int64_t r = blockIdx.x / n_heads, h = blockIdx.x % n_heads;
  const LowbitCudaAttnRow row = rows[r];
  const int64_t span = row.end - row.first;
  const float* qh = q + (r * n_heads + h) * head_dim;
  const int64_t kvh = h / group;
  float* s = scores + blockIdx.x * max_span;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < span; j += kBlock) {
    const float* k = row.k + (row.first + j) * kv_dim + kvh * head_dim;
    float dot = 0;
    for (int64_t i = 0; i < head_dim; ++i) dot += qh[i] * k[i];
    s[j] = softcap > 0 ? softcap * tanhf(dot * scale / softcap) : dot * scale;
    mx = fmaxf(mx, s[j]);
  }
  mx = block_max(mx, shared);
  float sum = 0;
  for (int64_t j = threadIdx.x; j < span; j += kBlock) sum += (s[j] = expf(s[j] - mx));
  sum = block_sum(sum, shared);  // its __syncthreads also makes every s[j] visible below
  const float inv = 1.0f / sum;
  for (int64_t i = threadIdx.x; i < head_dim; i += kBlock) {
    float acc = 0;
    for (int64_t j = 0; j < span; ++j) acc += s[j] * row.v[(row.first + j) * kv_dim + kvh * head_dim + i];
    out[(r * n_heads + h) * head_dim + i] = acc * inv;
  }
}

}  // namespace

cudaError_t rmsnorm_device(const float* x, const float* w, int64_t rows, int64_t cols, float eps, float* out,
                           cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  rmsnorm_kernel<<<(unsigned)rows, kBlock, 0, stream>>>(x, w, cols, eps, out);
  return cudaGetLastError();
}

cudaError_t add_device(float* out, const float* x, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  add_kernel<<<blocks(n), kBlock, 0, stream>>>(out, x, n);
  return cudaGetLastError();
}

cudaError_t add_row_device(float* out, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows * cols <= 0) return cudaSuccess;
  add_row_kernel<<<blocks(rows * cols), kBlock, 0, stream>>>(out, bias, rows * cols, cols);
  return cudaGetLastError();
}

cudaError_t swiglu_device(float* gate, const float* up, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  swiglu_kernel<<<blocks(n), kBlock, 0, stream>>>(gate, up, n);
  return cudaGetLastError();
}

cudaError_t geglu_device(float* gate, const float* up, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  geglu_kernel<<<blocks(n), kBlock, 0, stream>>>(gate, up, n);
  return cudaGetLastError();
}

cudaError_t scale_device(float* x, int64_t n, float s, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  scale_kernel<<<blocks(n), kBlock, 0, stream>>>(x, n, s);
  return cudaGetLastError();
}

cudaError_t gather_rows_device(const float* src, int64_t cols, const int64_t* rows, int64_t n, float* dst,
                               cudaStream_t stream) {
  if (n * cols <= 0) return cudaSuccess;
  gather_rows_kernel<<<blocks(n * cols), kBlock, 0, stream>>>(src, cols, rows, n, dst);
  return cudaGetLastError();
}

cudaError_t add_rows_device(const float* src, int64_t cols, const int64_t* rows, const float* weights, int64_t n,
                            float* dst, cudaStream_t stream) {
  if (n <= 0 || cols <= 0) return cudaSuccess;
  add_rows_kernel<<<blocks(n * cols), kBlock, 0, stream>>>(src, cols, rows, weights, n, dst);
  return cudaGetLastError();
}

cudaError_t rope_device(float* x, int64_t rows, int64_t n_heads, int64_t head_dim, int64_t rot_dim, float scale,
                        const float* inv_freq, const int64_t* pos, cudaStream_t stream) {
  const int64_t n = rows * n_heads * (rot_dim / 2);
  if (n <= 0) return cudaSuccess;
  rope_kernel<<<blocks(n), kBlock, 0, stream>>>(x, rows, n_heads, head_dim, rot_dim, scale, inv_freq, pos);
  return cudaGetLastError();
}

cudaError_t attention_device(const LowbitCudaAttnRow* rows, int64_t n, const float* q, int64_t n_heads,
                             int64_t n_kv_heads, int64_t head_dim, float scale, float softcap, float* scores,
                             int64_t max_span, float* out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  attention_kernel<<<(unsigned)(n * n_heads), kBlock, 0, stream>>>(rows, q, n_heads, n_heads / n_kv_heads,
                                                                  n_kv_heads * head_dim, head_dim, scale, softcap,
                                                                  scores, max_span, out);
  return cudaGetLastError();
}

}  // namespace lowbit::cuda
