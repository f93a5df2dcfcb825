// The small fp32 operations of a transformer layer besides matmul. They touch O(dim) or
// O(context) values per token, far less than the weights, so they are plain C++ that the
// compiler vectorizes, shared by every ISA.
#pragma once

#include <cstdint>
#include <vector>

namespace lowbit {

// out[i] = x[i] / rms(x) * w[i], rms = sqrt(mean(x^2) + eps). out may alias x.
void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out);

// Rotary embedding in the HF "rotate half" convention: for each head of head_dim values,
// element i pairs with i + head_dim/2, rotated by pos * inv_freq[i]. inv_freq has head_dim/2
// entries (see rope_inv_freq in runtime/).
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t pos, const float* inv_freq);

// In-place softmax over n values.
void softmax(float* x, int64_t n);

// gate[i] = silu(gate[i]) * up[i]  (SwiGLU)
void swiglu(float* gate, const float* up, int64_t n);

// out[i] += x[i]
void add_inplace(float* out, const float* x, int64_t n);

// The `group` query heads that share one KV head (grouped-query attention; group = 1 is plain
// multi-head), each head_dim values, consecutive in q, against positions [first_pos, n_pos) of
// a KV cache laid out (pos, kv_dim): out[g] = sum_p softmax(q[g] . k_p * scale)_p v_p, laid out
// like q. Each k_p and v_p is read once for the whole group. scratch holds
// group * (n_pos - first_pos) floats.
void attend(const float* q, int64_t group, const float* k_cache, const float* v_cache, int64_t kv_stride,
            int64_t n_pos, int64_t first_pos, int64_t head_dim, float scale, float* scratch, float* out);

}  // namespace lowbit
