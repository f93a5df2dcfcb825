#include "backend/cuda_backend.h"

#include <cstring>

#include "kernels/error.h"
#include "kernels/quantize.h"

namespace lowbit {

namespace {

// Device memory; freed through the plugin, which outlives every backend (it stays loaded for
// the process), so a buffer may outlive the backend that made it (runtime/forward.h Workspace).
class GpuBuffer final : public Buffer {
 public:
  GpuBuffer(const CudaBackend& be, int64_t floats, float* p) : Buffer(floats), be_(be), p_(p) {}
  ~GpuBuffer() override { be_.device_free(p_); }
  float* data() const { return p_; }

 private:
  const CudaBackend& be_;
  float* p_;
};

void check_shape(const Tensor& t, int64_t rows, int64_t cols, const char* what) {
  if (t.rows != rows || t.cols != cols)
    throw Error(ErrorCode::internal, std::string("cuda backend: ") + what + " is (" + std::to_string(t.rows) + ", " +
                                         std::to_string(t.cols) + "), expected (" + std::to_string(rows) + ", " +
                                         std::to_string(cols) + ")");
}

}  // namespace

struct GpuBackend::Uploaded {
  const CudaBackend* be = nullptr;
  LowbitCudaMatrix* dev = nullptr;
  QMatrix host;  // the caller's bytes (the mapped manifest), for embed()'s rows
  ~Uploaded() {
    if (dev) be->free_matrix(dev);
  }
};

GpuBackend::GpuBackend(const CudaBackend& plugin, int device) : be_(plugin), device_(device) {
  int count = 0;
  if (be_.device_count(&count) != 0 || device < 0 || device >= count)
    throw Error(ErrorCode::invalid_argument, "cuda backend: no CUDA device " + std::to_string(device));
  LowbitCudaDeviceInfo info{};
  ok(be_.set_device(device_), "set_device");
  ok(be_.device_info(device_, &info), "device_info");
  device_name_ = info.name;
}

GpuBackend::~GpuBackend() = default;

std::string GpuBackend::name() const { return "cuda " + std::to_string(device_) + " (" + device_name_ + ")"; }

void GpuBackend::ok(int rc, const char* what) const {
  if (rc == 0) return;
  const std::string msg = std::string("cuda backend: ") + what + ": " + be_.last_error();
  throw Error(rc == -2 ? ErrorCode::out_of_memory : ErrorCode::internal, msg);
}

float* GpuBackend::ptr(const Tensor& t) const {
  auto* b = dynamic_cast<GpuBuffer*>(t.buf);
  if (!b) throw Error(ErrorCode::internal, "cuda backend: a tensor of another backend (or none)");
  if (t.offset < 0 || t.offset + t.size() > b->size()) throw Error(ErrorCode::internal, "cuda backend: tensor outside its buffer");
  return b->data() + t.offset;
}

BufferPtr GpuBackend::alloc(int64_t floats) {
  if (floats < 0) throw Error(ErrorCode::invalid_argument, "cuda backend: negative allocation");
  ok(be_.set_device(device_), "set_device");
  void* p = nullptr;
  const int rc = be_.device_alloc((uint64_t)std::max<int64_t>(floats, 1) * sizeof(float), &p);
  if (rc != 0) {
    // The plugin's own message says how much was asked for and why it failed.
    throw Error(rc == -2 ? ErrorCode::out_of_memory : ErrorCode::internal,
                "cuda backend: allocating " + std::to_string(floats * (int64_t)sizeof(float)) + " bytes on device " +
                    std::to_string(device_) + ": " + be_.last_error());
  }
  return std::make_unique<GpuBuffer>(be_, floats, static_cast<float*>(p));
}

int64_t GpuBackend::free_bytes() const {
  if (be_.set_device(device_) != 0) return -1;
  LowbitCudaDeviceInfo info{};
  if (be_.device_info(device_, &info) != 0) return -1;
  return (int64_t)info.free_bytes;
}

Matrix GpuBackend::upload_matrix(const QMatrix& w) {
  if (!w.data) throw Error(ErrorCode::invalid_argument, "cuda backend: matrix without data");
  if (w.type.base == Base::q && w.type.scales != ScaleCode::f16) {
    std::string msg = "cuda backend: ";  // appended, not "literal" + string&& (GCC bug 105651 warns)
    msg += type_name(w.type);
    msg += " (6-bit scale codes) has no CUDA kernel yet; run it on the CPU";
    throw Error(ErrorCode::invalid_argument, msg);
  }
  ok(be_.set_device(device_), "set_device");
  auto u = std::make_unique<Uploaded>();
  u->be = &be_;
  u->host = w;
  const LowbitCudaWeightDesc desc = cuda_weight_desc(w);
  ok(be_.upload(&desc, w.data, (uint64_t)q_layout(w.type, w.n, w.k).bytes, &u->dev), "upload");
  const Matrix m{w.type, w.n, w.k, u.get()};
  matrices_.push_back(std::move(u));
  return m;
}

Tensor GpuBackend::upload_vector(const float* src, int64_t n) {
  vectors_.push_back(alloc(n));
  const Tensor t{vectors_.back().get(), 0, 1, n};
  write(t, src);
  return t;
}

void GpuBackend::write(const Tensor& dst, const float* src) {
  ok(be_.copy(ptr(dst), src, (uint64_t)dst.size() * sizeof(float)), "write");
}

void GpuBackend::read(const Tensor& src, float* dst) {
  ok(be_.copy(dst, ptr(src), (uint64_t)src.size() * sizeof(float)), "read");
}

void GpuBackend::embed(const Matrix& table, std::span<const int32_t> ids, const Tensor& out) {
  check_shape(out, (int64_t)ids.size(), table.k, "embed output");
  const auto* u = static_cast<const Uploaded*>(table.handle);
  std::lock_guard<std::mutex> lock(host_mutex_);
  host_rows_.resize(ids.size() * (size_t)table.k);
  for (size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] < 0 || ids[t] >= table.n)
      throw Error(ErrorCode::invalid_argument, "token id " + std::to_string(ids[t]) + " outside the vocabulary [0, " +
                                                   std::to_string(table.n) + ")");
    dequantize_row(table.type, u->host.data, table.n, table.k, ids[t], host_rows_.data() + t * table.k);
  }
  write(out, host_rows_.data());
}

void GpuBackend::rmsnorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) {
  check_shape(out, x.rows, x.cols, "rmsnorm output");
  check_shape(w, 1, x.cols, "rmsnorm weight");
  ok(be_.set_device(device_), "set_device");
  ok(be_.rmsnorm(ptr(x), ptr(w), x.rows, x.cols, eps, ptr(out)), "rmsnorm");
}

void GpuBackend::add(const Tensor& out, const Tensor& x) {
  check_shape(x, out.rows, out.cols, "add input");
  ok(be_.set_device(device_), "set_device");
  ok(be_.add(ptr(out), ptr(x), out.size()), "add");
}

void GpuBackend::add_row(const Tensor& out, const Tensor& bias) {
  check_shape(bias, 1, out.cols, "bias");
  ok(be_.set_device(device_), "set_device");
  ok(be_.add_row(ptr(out), ptr(bias), out.rows, out.cols), "add_row");
}

void GpuBackend::geglu(const Tensor& gate, const Tensor& up) {
  check_shape(up, gate.rows, gate.cols, "geglu up");
  ok(be_.set_device(device_), "set_device");
  ok(be_.geglu(ptr(gate), ptr(up), gate.size()), "geglu");
}

void GpuBackend::scale(const Tensor& x, float s) {
  ok(be_.set_device(device_), "set_device");
  ok(be_.scale(ptr(x), x.size(), s), "scale");
}

void GpuBackend::swiglu(const Tensor& gate, const Tensor& up) {
  check_shape(up, gate.rows, gate.cols, "swiglu up");
  ok(be_.set_device(device_), "set_device");
  ok(be_.swiglu(ptr(gate), ptr(up), gate.size()), "swiglu");
}

void GpuBackend::gather_rows(const Tensor& src, std::span<const int64_t> rows, const Tensor& dst) {
  check_shape(dst, (int64_t)rows.size(), src.cols, "gathered rows");
  for (int64_t r : rows)
    if (r < 0 || r >= src.rows) throw Error(ErrorCode::internal, "cuda backend: gather row out of range");
  ok(be_.set_device(device_), "set_device");
  ok(be_.gather_rows(ptr(src), src.cols, rows.data(), (int64_t)rows.size(), ptr(dst)), "gather_rows");
}

void GpuBackend::add_rows(const Tensor& src, std::span<const int64_t> rows, std::span<const float> weights,
                          const Tensor& dst) {
  check_shape(src, (int64_t)rows.size(), dst.cols, "rows to add");
  if (weights.size() != rows.size()) throw Error(ErrorCode::internal, "cuda backend: add_rows weights and rows differ");
  for (int64_t r : rows)
    if (r < 0 || r >= dst.rows) throw Error(ErrorCode::internal, "cuda backend: add_rows row out of range");
  ok(be_.set_device(device_), "set_device");
  ok(be_.add_rows(ptr(src), dst.cols, rows.data(), weights.data(), (int64_t)rows.size(), ptr(dst)), "add_rows");
}

void GpuBackend::rope(const Tensor& x, int64_t n_heads, int64_t head_dim, const Tensor& inv_freq, float scale,
                      std::span<const SeqRows> seqs) {
  check_shape(x, x.rows, n_heads * head_dim, "rope input");
  check_rope_table(inv_freq, head_dim);
  std::lock_guard<std::mutex> lock(host_mutex_);
  // Rows no sequence covers keep position 0; the forward pass never leaves any.
  host_pos_.assign((size_t)x.rows, 0);
  for (const SeqRows& s : seqs)
    for (int64_t i = 0; i < s.rows; ++i) host_pos_[(size_t)(s.row0 + i)] = s.pos + i;
  ok(be_.set_device(device_), "set_device");
  ok(be_.rope(ptr(x), x.rows, n_heads, head_dim, 2 * inv_freq.cols, scale, ptr(inv_freq), host_pos_.data()), "rope");
}

void GpuBackend::attention(int64_t layer, const Tensor& q, const Tensor& k, const Tensor& v,
                           std::span<const SeqRows> seqs, const AttentionShape& sh, const Tensor& out) {
  const int64_t hd = sh.head_dim, q_dim = sh.n_heads * hd, kv_dim = sh.n_kv_heads * hd, n = q.rows;
  check_shape(q, n, q_dim, "attention q");
  check_shape(k, n, kv_dim, "attention k");
  check_shape(v, n, kv_dim, "attention v");
  check_shape(out, n, q_dim, "attention output");
  ok(be_.set_device(device_), "set_device");
  std::lock_guard<std::mutex> lock(host_mutex_);
  host_attn_.assign((size_t)n, LowbitCudaAttnRow{});
  for (const SeqRows& s : seqs) {
    const KvCache& c = *s.cache;
    if (c.kv_dim != kv_dim || layer < 0 || layer >= c.layers || s.pos < 0 || s.pos + s.rows > c.capacity ||
        s.row0 < 0 || s.row0 + s.rows > n)
      throw Error(ErrorCode::internal, "cuda backend: attention rows outside the batch or the KV cache");
    const int64_t base = layer * c.capacity * kv_dim;
    // The sequence's new keys and values into its cache, rows in position order.
    const Tensor kc{c.k.get(), base + s.pos * kv_dim, s.rows, kv_dim}, vc{c.v.get(), base + s.pos * kv_dim, s.rows, kv_dim};
    ok(be_.copy(ptr(kc), ptr(k.slice(s.row0, s.rows)), (uint64_t)(s.rows * kv_dim) * sizeof(float)), "store keys");
    ok(be_.copy(ptr(vc), ptr(v.slice(s.row0, s.rows)), (uint64_t)(s.rows * kv_dim) * sizeof(float)), "store values");
    const float* kl = ptr({c.k.get(), base, c.capacity, kv_dim});
    const float* vl = ptr({c.v.get(), base, c.capacity, kv_dim});
    for (int64_t i = 0; i < s.rows; ++i) {
      const int64_t end = s.pos + i + 1;
      const int64_t first = sh.sliding_window > 0 ? std::max<int64_t>(0, end - sh.sliding_window) : 0;
      host_attn_[(size_t)(s.row0 + i)] = {kl, vl, first, end};
    }
  }
  ok(be_.attention(host_attn_.data(), n, ptr(q), sh.n_heads, sh.n_kv_heads, hd, sh.scale, sh.softcap, ptr(out)),
     "attention");
}

void GpuBackend::matmul(const Tensor& x, std::span<const Projection> projs, bool) {
  // The plugin quantizes activations per row and 32-block for every M (int8_acts always).
  ok(be_.set_device(device_), "set_device");
  for (const Projection& p : projs) {
    const Matrix& w = *p.w;
    check_shape(p.y, x.rows, w.n, "matmul output");
    if (w.k != x.cols) throw Error(ErrorCode::internal, "cuda backend: matmul input has the wrong width");
    ok(be_.matmul(static_cast<const Uploaded*>(w.handle)->dev, ptr(x), x.rows, ptr(p.y)), "matmul");
  }
}

}  // namespace lowbit
