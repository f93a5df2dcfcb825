// The entry of liblowbit_cuda.so: the LowbitCudaBackend table (cuda_backend.h) over the kernels
// of matmul.cu. Every function reports failure through its return value and last_error(); no
// CUDA error aborts the process.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/cuda_backend.h"
#include "kernels/layer_ops_cuda.h"
#include "kernels/matmul_cuda.h"

struct LowbitCudaMatrix {
  lowbit::cuda::DeviceMatrix m;
  int device = 0;
  uint8_t* owned = nullptr;
};

namespace lowbit::cuda {
namespace {

thread_local std::string t_error;

int fail(std::string msg) {
  t_error = std::move(msg);
  return -1;
}

int check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return 0;
  cudaGetLastError();  // clear a non-sticky error so later calls start clean
  fail(std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
  return e == cudaErrorMemoryAllocation ? -2 : -1;  // -2: the caller may place the work elsewhere
}

// Per device: the activation scratch and staging for host x / y. One mutex serializes matmuls
// (they share the scratch); the kernels themselves fill the GPU.
struct DeviceState {
  ActBuffer acts;
  void* x = nullptr;
  size_t x_bytes = 0;
  void* y = nullptr;
  size_t y_bytes = 0;
  void* meta = nullptr;  // per-row arrays of the layer operations (positions, attention rows)
  size_t meta_bytes = 0;
  void* scores = nullptr;  // attention scores, (rows, heads, span)
  size_t scores_bytes = 0;
};
std::mutex g_mutex;
std::vector<DeviceState> g_states;

int grow(void*& p, size_t& have, size_t want) {
  if (have >= want) return 0;
  if (p) cudaFree(p);  // synchronous: waits for the kernels queued that still use it
  p = nullptr;
  have = 0;
  if (int rc = check(cudaMalloc(&p, want), "cudaMalloc (staging)")) return rc;
  have = want;
  return 0;
}

bool on_device(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

// LOWBIT_CUDA_PDL=0 turns programmatic dependent launch off (for comparison).
bool use_pdl(int device) {
  static const bool env_off = [] {
    const char* v = std::getenv("LOWBIT_CUDA_PDL");
    return v && std::strcmp(v, "0") == 0;
  }();
  int major = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  return !env_off && major >= 9;
}

const char* last_error() { return t_error.c_str(); }

int device_count(int* count) {
  *count = 0;
  const cudaError_t e = cudaGetDeviceCount(count);
  if (e == cudaErrorNoDevice) {
    cudaGetLastError();
    *count = 0;
    return fail("no CUDA device (cudaErrorNoDevice)");
  }
  if (e == cudaErrorInsufficientDriver) {
    cudaGetLastError();
    return fail("CUDA driver missing or older than the runtime this plugin was built with "
                "(cudaErrorInsufficientDriver)");
  }
  return check(e, "cudaGetDeviceCount");
}

int device_info(int device, LowbitCudaDeviceInfo* out) {
  std::memset(out, 0, sizeof(*out));
  cudaDeviceProp prop{};
  if (check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties")) return -1;
  std::snprintf(out->name, sizeof(out->name), "%s", prop.name);
  out->cc_major = prop.major;
  out->cc_minor = prop.minor;
  out->sm_count = prop.multiProcessorCount;
  out->total_bytes = prop.totalGlobalMem;
  out->l2_bytes = (uint64_t)prop.l2CacheSize;
  int clock_khz = 0, bus_bits = 0;
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device);
  out->peak_gbps = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;  // double data rate
  int current = 0;
  cudaGetDevice(&current);
  if (current == device) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) out->free_bytes = free_b;
    cudaGetLastError();
  }
  return 0;
}

int set_device(int device) { return check(cudaSetDevice(device), "cudaSetDevice"); }

int validate(const LowbitCudaWeightDesc& d, QType* t) {
  if (d.n <= 0 || d.k <= 0) return fail("upload: empty matrix " + std::to_string(d.n) + "x" + std::to_string(d.k));
  if (d.base > (uint8_t)Base::q || d.scheme > (uint8_t)Scheme::asym) return fail("upload: unknown base or scheme");
  t->base = (Base)d.base;
  t->bits = d.bits;
  t->scheme = (Scheme)d.scheme;
  t->group = d.group;
  if (t->base == Base::q) {
    const bool bits_ok = d.bits == 1 || d.bits == 2 || d.bits == 4 || d.bits == 8;
    const bool group_ok = d.group == 0 || d.group == 32 || d.group == 64 || d.group == 128 || d.group == 256;
    if (!bits_ok || !group_ok)
      return fail("upload: unsupported quantized type bits=" + std::to_string(d.bits) + " group=" + std::to_string(d.group));
  }
  return 0;
}

int upload(const LowbitCudaWeightDesc* desc, const void* host, uint64_t bytes, LowbitCudaMatrix** out) {
  *out = nullptr;
  QType t;
  if (validate(*desc, &t)) return -1;
  const QLayout l = q_layout(t, desc->n, desc->k);
  if ((uint64_t)l.bytes != bytes)
    return fail("upload: " + std::to_string(bytes) + " bytes given, the layout needs " + std::to_string(l.bytes));
  auto* w = new (std::nothrow) LowbitCudaMatrix;
  if (!w) return fail("upload: out of host memory");
  cudaGetDevice(&w->device);
  if (int rc = check(cudaMalloc(&w->owned, bytes), "upload: cudaMalloc")) {
    delete w;
    return rc;
  }
  if (check(cudaMemcpy(w->owned, host, bytes, cudaMemcpyHostToDevice), "upload: cudaMemcpy")) {
    cudaFree(w->owned);
    delete w;
    return -1;
  }
  w->m.type = t;
  w->m.n = desc->n;
  w->m.k = desc->k;
  w->m.layout = l;
  w->m.data = w->owned;
  *out = w;
  return 0;
}

void free_matrix(LowbitCudaMatrix* w) {
  if (!w) return;
  cudaFree(w->owned);
  delete w;
}

DeviceState& state(int device) {
  if ((int)g_states.size() <= device) g_states.resize(device + 1);
  return g_states[device];
}

int matmul(const LowbitCudaMatrix* w, const float* x, int64_t m, float* y) {
  if (!w || !x || !y) return fail("matmul: null matrix, input or output");
  if (m <= 0) return 0;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (check(cudaSetDevice(w->device), "cudaSetDevice")) return -1;
  DeviceState& st = state(w->device);
  const size_t xb = (size_t)m * w->m.k * sizeof(float), yb = (size_t)m * w->m.n * sizeof(float);
  const float* dx = x;
  float* dy = y;
  const bool host_x = !on_device(x), host_y = !on_device(y);
  if (host_x) {
    if (grow(st.x, st.x_bytes, xb)) return -1;
    if (check(cudaMemcpyAsync(st.x, x, xb, cudaMemcpyHostToDevice, 0), "matmul: copy x")) return -1;
    dx = static_cast<const float*>(st.x);
  }
  if (host_y) {
    if (grow(st.y, st.y_bytes, yb)) return -1;
    dy = static_cast<float*>(st.y);
  }
  // Batches past the activation grid's limit go in slices.
  constexpr int64_t kSlice = 32768;
  for (int64_t r0 = 0; r0 < m; r0 += kSlice) {
    const int64_t rows = std::min(kSlice, m - r0);
    if (check(matmul_device(w->m, dx + r0 * w->m.k, rows, dy + r0 * w->m.n, st.acts, 0, use_pdl(w->device)),
              "matmul: kernel launch"))
      return -1;
  }
  if (host_y && check(cudaMemcpyAsync(y, dy, yb, cudaMemcpyDeviceToHost, 0), "matmul: copy y")) return -1;
  return check(cudaStreamSynchronize(0), "matmul: kernel");
}

const char* path(const LowbitCudaMatrix* w, int64_t m) { return w ? matmul_path(w->m.type, m) : ""; }

int device_alloc(uint64_t bytes, void** out) { return check(cudaMalloc(out, bytes), "cudaMalloc"); }
void device_free(void* p) { cudaFree(p); }
int copy(void* dst, const void* src, uint64_t bytes) { return check(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault), "cudaMemcpy"); }

double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * ((double)v[h - 1] + v[h]);
}

// Times `run(i)` per iteration with an event pair each; the median of the iterations.
template <typename Run>
int time_runs(int warmup, int iters, Run run, double* median_ms) {
  if (iters <= 0) return fail("timing: iters must be positive");
  for (int i = 0; i < warmup; ++i)
    if (run(i)) return -1;
  if (check(cudaDeviceSynchronize(), "timing: warm-up")) return -1;
  std::vector<cudaEvent_t> ev(2 * iters, nullptr);
  int rc = 0;
  for (auto& e : ev)
    if ((rc = check(cudaEventCreate(&e), "cudaEventCreate"))) break;
  for (int i = 0; rc == 0 && i < iters; ++i) {
    cudaEventRecord(ev[2 * i], 0);
    if ((rc = run(i))) break;
    cudaEventRecord(ev[2 * i + 1], 0);
  }
  if (rc == 0) rc = check(cudaDeviceSynchronize(), "timing: runs");
  std::vector<float> ms(iters);
  for (int i = 0; rc == 0 && i < iters; ++i)
    rc = check(cudaEventElapsedTime(&ms[i], ev[2 * i], ev[2 * i + 1]), "cudaEventElapsedTime");
  for (auto e : ev)
    if (e) cudaEventDestroy(e);
  if (rc == 0) *median_ms = median(ms);
  return rc;
}

int time_matmul(const LowbitCudaMatrix* const* w, int count, const float* x, int64_t m, float* y,
                int warmup, int iters, double* median_ms) {
  if (!w || count <= 0 || !x || !y) return fail("time_matmul: no matrices, input or output");
  if (!on_device(x) || !on_device(y)) return fail("time_matmul: x and y must be device memory");
  if (m <= 0 || m > 32768) return fail("time_matmul: m out of range");
  std::lock_guard<std::mutex> lock(g_mutex);
  if (check(cudaSetDevice(w[0]->device), "cudaSetDevice")) return -1;
  DeviceState& st = state(w[0]->device);
  const bool pdl = use_pdl(w[0]->device);
  return time_runs(warmup, iters, [&](int i) {
    return check(matmul_device(w[i % count]->m, x, m, y, st.acts, 0, pdl), "time_matmul: launch");
  }, median_ms);
}

int time_copy(uint64_t bytes, int warmup, int iters, double* median_ms) {
  void *a = nullptr, *b = nullptr;
  if (check(cudaMalloc(&a, bytes), "time_copy: cudaMalloc")) return -1;
  if (check(cudaMalloc(&b, bytes), "time_copy: cudaMalloc")) {
    cudaFree(a);
    return -1;
  }
  // Not zeros: some memory systems compress them.
  int rc = check(cudaMemset(a, 0x5a, bytes), "cudaMemset");
  if (rc == 0)
    rc = time_runs(warmup, iters, [&](int) {
      return check(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0), "time_copy: copy");
    }, median_ms);
  cudaFree(a);
  cudaFree(b);
  return rc;
}

// ---- layer operations -------------------------------------------------------------------------

int current_device() {
  int d = 0;
  cudaGetDevice(&d);
  return d;
}

// Copies a host array into the device's per-row scratch (queued: the stream runs it after the
// kernels that still read the previous contents).
int stage_meta(DeviceState& st, const void* host, size_t bytes, void** out) {
  if (int rc = grow(st.meta, st.meta_bytes, bytes)) return rc;
  if (check(cudaMemcpyAsync(st.meta, host, bytes, cudaMemcpyHostToDevice, 0), "copy per-row arrays")) return -1;
  *out = st.meta;
  return 0;
}

int op_rmsnorm(const float* x, const float* w, int64_t rows, int64_t cols, float eps, float* out) {
  return check(rmsnorm_device(x, w, rows, cols, eps, out, 0), "rmsnorm");
}
int op_add(float* out, const float* x, int64_t n) { return check(add_device(out, x, n, 0), "add"); }
int op_add_row(float* out, const float* bias, int64_t rows, int64_t cols) {
  return check(add_row_device(out, bias, rows, cols, 0), "add_row");
}
int op_swiglu(float* gate, const float* up, int64_t n) { return check(swiglu_device(gate, up, n, 0), "swiglu"); }
int op_geglu(float* gate, const float* up, int64_t n) { return check(geglu_device(gate, up, n, 0), "geglu"); }
int op_scale(float* x, int64_t n, float s) { return check(scale_device(x, n, s, 0), "scale"); }

int op_gather_rows(const float* src, int64_t cols, const int64_t* rows_host, int64_t n, float* dst) {
  if (n <= 0) return 0;
  std::lock_guard<std::mutex> lock(g_mutex);
  void* rows = nullptr;
  if (int rc = stage_meta(state(current_device()), rows_host, (size_t)n * sizeof(int64_t), &rows)) return rc;
  return check(gather_rows_device(src, cols, static_cast<const int64_t*>(rows), n, dst, 0), "gather_rows");
}

int op_add_rows(const float* src, int64_t cols, const int64_t* rows_host, const float* weights_host, int64_t n,
                float* dst) {
  if (n <= 0) return 0;
  // Rows then weights in one staged array (the 8-byte rows first keep both aligned), assembled in
  // a buffer kept per thread (a call per expert and layer: no allocation once it has grown).
  thread_local std::vector<uint8_t> meta;
  meta.resize((size_t)n * (sizeof(int64_t) + sizeof(float)));
  std::memcpy(meta.data(), rows_host, (size_t)n * sizeof(int64_t));
  std::memcpy(meta.data() + (size_t)n * sizeof(int64_t), weights_host, (size_t)n * sizeof(float));
  std::lock_guard<std::mutex> lock(g_mutex);
  void* staged = nullptr;
  if (int rc = stage_meta(state(current_device()), meta.data(), meta.size(), &staged)) return rc;
  const auto* rows = static_cast<const int64_t*>(staged);
  const auto* weights = reinterpret_cast<const float*>(rows + n);
  return check(add_rows_device(src, cols, rows, weights, n, dst, 0), "add_rows");
}

int op_rope(float* x, int64_t rows, int64_t n_heads, int64_t head_dim, int64_t rot_dim, float scale, const float* inv_freq,
            const int64_t* pos_host) {
  if (rows <= 0) return 0;
  std::lock_guard<std::mutex> lock(g_mutex);
  void* pos = nullptr;
  if (int rc = stage_meta(state(current_device()), pos_host, (size_t)rows * sizeof(int64_t), &pos)) return rc;
  return check(rope_device(x, rows, n_heads, head_dim, rot_dim, scale, inv_freq, static_cast<const int64_t*>(pos), 0), "rope");
}

int op_attention(const LowbitCudaAttnRow* rows_host, int64_t n, const float* q, int64_t n_heads, int64_t n_kv_heads,
                 int64_t head_dim, float scale, float softcap, float* out) {
  if (n <= 0) return 0;
  if (n_kv_heads <= 0 || n_heads % n_kv_heads) return fail("attention: n_heads must be a multiple of n_kv_heads");
  int64_t span = 1;
  for (int64_t r = 0; r < n; ++r) span = std::max(span, rows_host[r].end - rows_host[r].first);
  std::lock_guard<std::mutex> lock(g_mutex);
  DeviceState& st = state(current_device());
  if (int rc = grow(st.scores, st.scores_bytes, (size_t)(n * n_heads * span) * sizeof(float))) return rc;
  void* rows = nullptr;
  if (int rc = stage_meta(st, rows_host, (size_t)n * sizeof(LowbitCudaAttnRow), &rows)) return rc;
  return check(attention_device(static_cast<const LowbitCudaAttnRow*>(rows), n, q, n_heads, n_kv_heads, head_dim,
                                scale, softcap, static_cast<float*>(st.scores), span, out, 0),
               "attention");
}

#define LOWBIT_STR2(x) #x
#define LOWBIT_STR(x) LOWBIT_STR2(x)

const LowbitCudaBackend kBackend = {
    LOWBIT_CUDA_ABI_VERSION,
    sizeof(LowbitCudaBackend),
    "nvcc " LOWBIT_STR(__CUDACC_VER_MAJOR__) "." LOWBIT_STR(__CUDACC_VER_MINOR__),
    last_error,
    device_count,
    device_info,
    set_device,
    upload,
    free_matrix,
    matmul,
    path,
    device_alloc,
    device_free,
    copy,
    time_matmul,
    time_copy,
    op_rmsnorm,
    op_add,
    op_add_row,
    op_swiglu,
    op_gather_rows,
    op_rope,
    op_attention,
    op_geglu,
    op_scale,
    op_add_rows,
};

}  // namespace
}  // namespace lowbit::cuda

extern "C" __attribute__((visibility("default"))) const LowbitCudaBackend* lowbit_cuda_backend_entry(
    uint32_t host_abi_version) {
  if (host_abi_version != LOWBIT_CUDA_ABI_VERSION) return nullptr;
  return &lowbit::cuda::kBackend;
}
