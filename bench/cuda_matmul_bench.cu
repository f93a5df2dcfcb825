// GPU matmul benchmark: lowbit's CUDA plugin (through cuda_backend(), as liblowbit uses it)
// against the two ceilings that matter for LLM decoding on the same device, in the same run:
//  - M = 1 (decode): weight bytes read per second vs a device-to-device copy's bandwidth
//    (bytes read + bytes written, i.e. the read bandwidth a pure streaming kernel can reach);
//  - M = 16 (small batch): time vs cuBLAS fp16 GEMM (fp32 accumulate) on the same shape.
// Weights are cycled through enough copies to exceed the L2 cache, inputs are random (never
// zeros), times are the median of event-timed runs after warm-up. Each lowbit configuration
// is also checked against the CPU matmul (relative max error printed).
//
// Usage: cuda_matmul_bench [--json FILE] [--quick]. Without a GPU it prints why and exits 0.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda_backend.h"
#include "kernels/matmul.h"
#include "kernels/quantize.h"
#include "kernels/thread_pool.h"

namespace {

using namespace lowbit;

struct Shape {
  int64_t n, k;
};

std::vector<float> random_floats(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(count);
  for (auto& x : v) x = dist(rng);
  return v;
}

bool cuda_ok(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
  return false;
}

bool cublas_ok(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return true;
  std::fprintf(stderr, "%s: cuBLAS status %d\n", what, (int)s);
  return false;
}

double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * ((double)v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// cuBLAS fp16 GEMM, Y (m, n) = X (m, k) W^T with W (n, k) row-major fp16, fp32 accumulation:
// in cuBLAS's column-major terms Y^T (n x m) = op_T(W^T: k x n) * X^T (k x m).
// Returns the median ms, or a negative value on failure.
double time_cublas_f16(const Shape& s, int64_t m, int warmup, int iters, int copies) {
  cublasHandle_t h = nullptr;
  if (!cublas_ok(cublasCreate(&h), "cublasCreate")) return -1;
  std::vector<void*> w(copies, nullptr);
  void *x = nullptr, *y = nullptr;
  double result = -1;
  std::vector<cudaEvent_t> ev(2 * iters, nullptr);
  do {
    std::vector<uint16_t> host(s.n * s.k);
    const auto wf = random_floats(s.n * s.k, 7);
    for (size_t i = 0; i < host.size(); ++i) host[i] = f32_to_f16(wf[i] * 0.02f);
    bool ok = true;
    for (auto& p : w) {
      ok = ok && cuda_ok(cudaMalloc(&p, host.size() * 2), "cudaMalloc W") &&
           cuda_ok(cudaMemcpy(p, host.data(), host.size() * 2, cudaMemcpyHostToDevice), "copy W");
    }
    std::vector<uint16_t> hx(m * s.k);
    const auto xf = random_floats(m * s.k, 8);
    for (size_t i = 0; i < hx.size(); ++i) hx[i] = f32_to_f16(xf[i]);
    ok = ok && cuda_ok(cudaMalloc(&x, hx.size() * 2), "cudaMalloc X") &&
         cuda_ok(cudaMemcpy(x, hx.data(), hx.size() * 2, cudaMemcpyHostToDevice), "copy X") &&
         cuda_ok(cudaMalloc(&y, m * s.n * 2), "cudaMalloc Y");
    if (!ok) break;
    const float alpha = 1.0f, beta = 0.0f;
    auto gemm = [&](int i) {
      return cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)s.n, (int)m, (int)s.k, &alpha, w[i % copies],
                          CUDA_R_16F, (int)s.k, x, CUDA_R_16F, (int)s.k, &beta, y, CUDA_R_16F, (int)s.n,
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    };
    for (int i = 0; i < warmup && ok; ++i) ok = cublas_ok(gemm(i), "cublasGemmEx");
    ok = ok && cuda_ok(cudaDeviceSynchronize(), "warm-up");
    for (auto& e : ev) ok = ok && cuda_ok(cudaEventCreate(&e), "cudaEventCreate");
    for (int i = 0; i < iters && ok; ++i) {
      cudaEventRecord(ev[2 * i]);
      ok = cublas_ok(gemm(i), "cublasGemmEx");
      cudaEventRecord(ev[2 * i + 1]);
    }
    ok = ok && cuda_ok(cudaDeviceSynchronize(), "cuBLAS runs");
    if (!ok) break;
    std::vector<float> ms(iters);
    for (int i = 0; i < iters; ++i) cudaEventElapsedTime(&ms[i], ev[2 * i], ev[2 * i + 1]);
    result = median(ms);
  } while (false);
  for (auto e : ev)
    if (e) cudaEventDestroy(e);
  for (auto p : w) cudaFree(p);
  cudaFree(x);
  cudaFree(y);
  cublasDestroy(h);
  return result;
}

struct Result {
  std::string type;
  Shape shape;
  int64_t m;
  double ms, weight_gbps, check_rel;
  const char* path;
};

// Times lowbit at each m for one type and shape; fills one Result per m.
bool time_lowbit(const CudaBackend* be, const QType& t, const Shape& s, const std::vector<int64_t>& ms,
                 uint64_t l2_bytes, int warmup, int iters, std::vector<Result>& out) {
  const QLayout l = q_layout(t, s.n, s.k);
  std::vector<uint8_t> bytes(l.bytes + 64);
  uint8_t* data = bytes.data() + (64 - reinterpret_cast<uintptr_t>(bytes.data()) % 64) % 64;
  {
    const auto w = random_floats(s.n * s.k, 1);
    quantize(t, w.data(), s.n, s.k, data, Quantizer::rtn, &ThreadPool::global());
  }
  const QMatrix qm{t, s.n, s.k, data};
  const LowbitCudaWeightDesc desc = cuda_weight_desc(qm);
  // Enough copies that their total is well past the L2 cache.
  const int copies = (int)std::max<uint64_t>(2, (3 * l2_bytes) / l.bytes + 1);
  std::vector<LowbitCudaMatrix*> w(copies, nullptr);
  bool ok = true;
  for (auto& p : w)
    if (ok && be->upload(&desc, data, l.bytes, &p) != 0) {
      std::fprintf(stderr, "upload: %s\n", be->last_error());
      ok = false;
    }
  const int64_t mmax = *std::max_element(ms.begin(), ms.end());
  void *dx = nullptr, *dy = nullptr;
  ok = ok && be->device_alloc(mmax * s.k * 4, &dx) == 0 && be->device_alloc(mmax * s.n * 4, &dy) == 0;
  const auto x = random_floats(mmax * s.k, 2);
  ok = ok && be->copy(dx, x.data(), x.size() * 4) == 0;
  for (int64_t m : ms) {
    if (!ok) break;
    Result r{type_name(t), s, m, 0, 0, 0, be->matmul_path(w[0], m)};
    if (be->time_matmul(w.data(), copies, static_cast<float*>(dx), m, static_cast<float*>(dy), warmup, iters,
                        &r.ms) != 0) {
      std::fprintf(stderr, "time_matmul: %s\n", be->last_error());
      ok = false;
      break;
    }
    r.weight_gbps = l.bytes / (r.ms * 1e6);
    // The same computation on the CPU: the GPU must agree to the rounding of fp32 sums.
    std::vector<float> gpu(m * s.n), cpu(m * s.n);
    if (be->matmul(w[0], x.data(), m, gpu.data()) != 0) {
      std::fprintf(stderr, "matmul: %s\n", be->last_error());
      ok = false;
      break;
    }
    matmul(qm, x.data(), m, cpu.data());
    double maxdiff = 0, maxref = 0;
    for (size_t i = 0; i < cpu.size(); ++i) {
      maxdiff = std::max(maxdiff, (double)std::fabs(gpu[i] - cpu[i]));
      maxref = std::max(maxref, (double)std::fabs(cpu[i]));
    }
    r.check_rel = std::isfinite(maxdiff) ? maxdiff / std::max(maxref, 1e-30) : INFINITY;
    out.push_back(r);
  }
  be->device_free(dx);
  be->device_free(dy);
  for (auto p : w) be->free_matrix(p);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  const char* json_path = nullptr;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else {
      std::fprintf(stderr, "usage: %s [--json FILE] [--quick]\n", argv[0]);
      return 2;
    }
  }
  std::string why;
  const CudaBackend* be = cuda_backend(&why);
  if (!be) {
    std::printf("cuda_matmul_bench: skipped: %s\n", why.c_str());
    return 0;
  }
  LowbitCudaDeviceInfo info;
  if (be->device_info(0, &info) != 0) {
    std::fprintf(stderr, "device_info: %s\n", be->last_error());
    return 1;
  }
  std::printf("device: %s (sm_%d%d, %d SMs, L2 %.0f MB, %.1f GiB, %.0f GB/s theoretical); plugin %s\n", info.name,
              info.cc_major, info.cc_minor, info.sm_count, info.l2_bytes / 1e6, info.total_bytes / 1073741824.0,
              info.peak_gbps, be->build);
  const int warmup = quick ? 3 : 10, iters = quick ? 20 : 100;

  // The copy ceiling: 1 GiB each way, far past L2.
  const uint64_t copy_bytes = 1ull << 30;
  double copy_ms = 0;
  if (be->time_copy(copy_bytes, 3, quick ? 10 : 30, &copy_ms) != 0) {
    std::fprintf(stderr, "time_copy: %s\n", be->last_error());
    return 1;
  }
  const double copy_gbps = 2.0 * copy_bytes / (copy_ms * 1e6);  // read + write
  std::printf("device-to-device copy: %.0f GB/s (bytes read + written), %.0f%% of theoretical\n\n", copy_gbps,
              100 * copy_gbps / info.peak_gbps);

  const std::vector<Shape> shapes = {{14336, 4096}, {4096, 4096}};
  std::vector<QType> types = {parse_type("q4_g32_asym"), parse_type("q4_g128_sym"), parse_type("q4_row_sym")};
  if (!quick)
    for (const char* n : {"q8_g32_sym", "q2_g64_asym", "q1_g128_sym", "f16"}) types.push_back(parse_type(n));

  std::vector<Result> results;
  std::vector<double> cublas_ms(shapes.size()), cublas_m1_ms(shapes.size());
  for (size_t si = 0; si < shapes.size(); ++si) {
    const Shape& s = shapes[si];
    for (const QType& t : types)
      if (!time_lowbit(be, t, s, {1, 16}, info.l2_bytes, warmup, iters, results)) return 1;
    const int copies = (int)std::max<uint64_t>(2, 3 * info.l2_bytes / (s.n * s.k * 2) + 1);
    cublas_ms[si] = time_cublas_f16(s, 16, warmup, iters, copies);
    cublas_m1_ms[si] = time_cublas_f16(s, 1, warmup, iters, copies);
    if (cublas_ms[si] < 0 || cublas_m1_ms[si] < 0) return 1;
  }

  std::printf("%-13s %-12s %3s  %-16s %9s %9s %8s %10s %9s\n", "type", "N x K", "M", "path", "us", "weight GB/s",
              "of copy", "vs cuBLAS", "check");
  FILE* js = json_path ? std::fopen(json_path, "w") : nullptr;
  bool m1_target = true, m16_target = true;
  for (const Result& r : results) {
    const size_t si = r.shape.n == shapes[0].n && r.shape.k == shapes[0].k ? 0 : 1;
    const double ref = r.m == 16 ? cublas_ms[si] : cublas_m1_ms[si];
    char shape[32];
    std::snprintf(shape, sizeof(shape), "%lldx%lld", (long long)r.shape.n, (long long)r.shape.k);
    std::printf("%-13s %-12s %3lld  %-16s %9.1f %11.0f %7.0f%% %9.2fx %9.1e\n", r.type.c_str(), shape,
                (long long)r.m, r.path, r.ms * 1e3, r.weight_gbps, 100 * r.weight_gbps / copy_gbps, ref / r.ms,
                r.check_rel);
    if (js)
      std::fprintf(js,
                   "{\"type\":\"%s\",\"n\":%lld,\"k\":%lld,\"m\":%lld,\"path\":\"%s\",\"us\":%.3f,"
                   "\"weight_gbps\":%.1f,\"copy_gbps\":%.1f,\"cublas_f16_us\":%.3f,\"check_rel\":%.3e}\n",
                   r.type.c_str(), (long long)r.shape.n, (long long)r.shape.k, (long long)r.m, r.path, r.ms * 1e3,
                   r.weight_gbps, copy_gbps, ref * 1e3, r.check_rel);
    if (r.type == "q4_g32_asym" && si == 0) {
      if (r.m == 1) m1_target = r.weight_gbps >= 0.8 * copy_gbps;
      if (r.m == 16) m16_target = ref / r.ms >= 3.0;
    }
  }
  for (size_t si = 0; si < shapes.size(); ++si)
    std::printf("cuBLAS fp16 %lldx%lld: M=1 %.1f us, M=16 %.1f us\n", (long long)shapes[si].n,
                (long long)shapes[si].k, cublas_m1_ms[si] * 1e3, cublas_ms[si] * 1e3);
  if (js) std::fclose(js);
  std::printf("\ntargets (q4_g32_asym, 14336x4096): M=1 >= 80%% of copy bandwidth: %s; M=16 >= 3x cuBLAS fp16: %s\n",
              m1_target ? "met" : "MISSED", m16_target ? "met" : "MISSED");
  return 0;
}
