// The CUDA backend as a run-time plugin. liblowbit never links CUDA: cuda_backend() dlopen()s
// liblowbit_cuda.so (built from kernels/*.cu) when it is asked for, so the library loads and runs
// on machines with no GPU and no driver, and says why when the backend is unavailable.
//
// The boundary is a C ABI: one entry symbol returning a table of function pointers with a
// version number. Every function returns 0 on success, or -1 with a message in last_error()
// (per calling thread), -2 when the device is out of memory (cudaErrorMemoryAllocation), so
// that the caller can place the work elsewhere; nothing in the plugin aborts. No CUDA header is
// needed to use it.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <string>

#include "kernels/matmul.h"

extern "C" {

// Bumped whenever LowbitCudaBackend changes in any way; host and plugin must agree exactly.
#define LOWBIT_CUDA_ABI_VERSION 4u
// The one symbol liblowbit_cuda.so exports: const LowbitCudaBackend* (uint32_t host_abi).
#define LOWBIT_CUDA_ENTRY "lowbit_cuda_backend_entry"
#define LOWBIT_CUDA_LIBRARY "liblowbit_cuda.so"

typedef struct LowbitCudaDeviceInfo {
  char name[256];
  int cc_major, cc_minor;    // compute capability
  int sm_count;
  uint64_t total_bytes;      // device memory
  uint64_t free_bytes;
  uint64_t l2_bytes;
  double peak_gbps;          // theoretical DRAM bandwidth from the memory clock and bus width
} LowbitCudaDeviceInfo;

// A weight matrix's type and shape: the fields of lowbit::QType plus n and k, as plain integers.
typedef struct LowbitCudaWeightDesc {
  uint8_t base;     // lowbit::Base
  uint8_t bits;
  uint8_t scheme;   // lowbit::Scheme
  uint32_t group;   // 0 = per row
  int64_t n, k;
} LowbitCudaWeightDesc;

typedef struct LowbitCudaMatrix LowbitCudaMatrix;  // weights in device memory (opaque)

// What one row of an attention call attends to: its sequence's cache for the layer, as
// (capacity, kv_dim) keys and values in device memory, and the positions [first, end).
typedef struct LowbitCudaAttnRow {
  const float* k;
  const float* v;
  int64_t first, end;
} LowbitCudaAttnRow;

typedef struct LowbitCudaBackend {
  uint32_t abi_version;  // LOWBIT_CUDA_ABI_VERSION of the plugin
  uint32_t struct_size;  // sizeof(LowbitCudaBackend) of the plugin
  const char* build;     // "nvcc 13.0, sm_80 sm_90" and the like

  const char* (*last_error)(void);  // message of this thread's last failed call

  // Devices. device_count fails (with the reason) when there is no driver or no device.
  int (*device_count)(int* count);
  int (*device_info)(int device, LowbitCudaDeviceInfo* out);
  int (*set_device)(int device);  // for this thread; default 0

  // Copies a matrix laid out by q_layout(desc) (bytes long) into device memory on the current
  // device. The host bytes may be freed afterwards.
  int (*upload)(const LowbitCudaWeightDesc* desc, const void* host_data, uint64_t bytes,
                LowbitCudaMatrix** out);
  void (*free_matrix)(LowbitCudaMatrix* w);

  // y (m, n) = x (m, k) * W^T with lowbit::matmul's semantics: quantized weights take int8
  // activations per 32-block (same rounding as the CPU), float weights fp32 activations. x and
  // y may each be host or device memory (detected per pointer). Returns when y is written.
  int (*matmul)(const LowbitCudaMatrix* w, const float* x, int64_t m, float* y);
  // The kernel family matmul uses for this m: "gemv_dp4a", "mma_s8_m16n8k32", "gemv_f32fma".
  const char* (*matmul_path)(const LowbitCudaMatrix* w, int64_t m);

  // Device memory and copies, so callers need no CUDA runtime of their own.
  int (*device_alloc)(uint64_t bytes, void** out);
  void (*device_free)(void* p);
  int (*copy)(void* dst, const void* src, uint64_t bytes);  // any direction, synchronous

  // Timing, with device events, after `warmup` untimed runs: the median of `iters` runs.
  // time_matmul needs x and y in device memory (so only the kernels are timed) and cycles
  // through `count` matrices of one type and shape, so that weights larger together than the L2
  // cache are read from device memory as they would be in a model.
  int (*time_matmul)(const LowbitCudaMatrix* const* w, int count, const float* x, int64_t m,
                     float* y, int warmup, int iters, double* median_ms);
  // A device-to-device copy of `bytes` (allocated internally): the bandwidth probe.
  int (*time_copy)(uint64_t bytes, int warmup, int iters, double* median_ms);

  // Layer operations (ABI 2), fp32 row-major in device memory on the current device, with the
  // semantics of lowbit::Backend's (backend/backend.h). Arrays named *_host are host memory,
  // copied with the launch. They are queued on the default stream, in order with matmul and
  // copy; a kernel's own failure shows at the next call that waits for the device (copy).
  int (*rmsnorm)(const float* x, const float* w, int64_t rows, int64_t cols, float eps, float* out);
  int (*add)(float* out, const float* x, int64_t n);
  int (*add_row)(float* out, const float* bias, int64_t rows, int64_t cols);
  int (*swiglu)(float* gate, const float* up, int64_t n);
  int (*gather_rows)(const float* src, int64_t cols, const int64_t* rows_host, int64_t n, float* dst);
  // RoPE over the first rot_dim values of each head, cos and sin times scale (ABI 4: Phi-3).
  int (*rope)(float* x, int64_t rows, int64_t n_heads, int64_t head_dim, int64_t rot_dim, float scale,
              const float* inv_freq, const int64_t* pos_host);
  // out (n, n_heads * head_dim): row r attends over rows_host[r] (GQA: query head h reads KV
  // head h / (n_heads / n_kv_heads)); q (n, n_heads * head_dim); softcap > 0 soft-caps the
  // scores (ABI 3).
  int (*attention)(const LowbitCudaAttnRow* rows_host, int64_t n, const float* q, int64_t n_heads,
                   int64_t n_kv_heads, int64_t head_dim, float scale, float softcap, float* out);
  // ABI 3 (Gemma): gate = gelu_tanh(gate) * up; x *= s.
  int (*geglu)(float* gate, const float* up, int64_t n);
  int (*scale)(float* x, int64_t n, float s);
  // ABI 4 (mixtures of experts): dst row rows_host[i] += weights_host[i] * src row i, rows distinct.
  int (*add_rows)(const float* src, int64_t cols, const int64_t* rows_host, const float* weights_host, int64_t n,
                  float* dst);
} LowbitCudaBackend;

typedef const LowbitCudaBackend* (*LowbitCudaEntryFn)(uint32_t host_abi_version);

}  // extern "C"

namespace lowbit {

using CudaBackend = LowbitCudaBackend;

// The CUDA backend, loaded and checked once per process; null when unavailable, with the reason
// in *why_not (if given): the plugin library not found (and where it was looked for), an ABI
// mismatch, no CUDA driver (libcuda.so.1 not found), or no CUDA device. Never throws or aborts.
// The plugin is looked for next to the module holding liblowbit (liblowbit.so, or the executable
// it is linked into), then at $LOWBIT_CUDA_LIB, then on the default library search path.
// LOWBIT_CUDA=0 disables it.
const CudaBackend* cuda_backend(std::string* why_not = nullptr);

inline LowbitCudaWeightDesc cuda_weight_desc(const QMatrix& w) {
  LowbitCudaWeightDesc d{};
  d.base = (uint8_t)w.type.base;
  d.bits = w.type.bits;
  d.scheme = (uint8_t)w.type.scheme;
  d.group = w.type.group;
  d.n = w.n;
  d.k = w.k;
  return d;
}

}  // namespace lowbit
