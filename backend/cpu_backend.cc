#include "backend/cpu_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/error.h"
#include "kernels/ops.h"
#include "kernels/quantize.h"

namespace lowbit {

namespace {

int64_t buffer_bytes(int64_t floats) { return round_up(std::max<int64_t>(floats, 1) * (int64_t)sizeof(float), 64); }

// Host memory, 64-byte aligned (whole cache lines per row start where rows are multiples of 16).
// Under a test budget (BackendParams::test_memory_budget) its bytes are counted in `used` until it
// is freed; the counter is shared, so a buffer may outlive the backend that made it.
class CpuBuffer final : public Buffer {
 public:
  CpuBuffer(int64_t floats, std::shared_ptr<CpuBudget> budget) : Buffer(floats), budget_(std::move(budget)) {
    const int64_t bytes = buffer_bytes(floats);
    if (budget_) budget_->take(bytes);
    data_ = static_cast<float*>(std::aligned_alloc(64, (size_t)bytes));
    if (!data_) {
      if (budget_) budget_->used -= bytes;
      throw std::bad_alloc();
    }
  }
  ~CpuBuffer() override {
    std::free(data_);
    if (budget_) budget_->used -= buffer_bytes(size());
  }
  float* data() const { return data_; }

 private:
  std::shared_ptr<CpuBudget> budget_;
  float* data_;
};

float* host(Buffer* b) {
  auto* cb = dynamic_cast<CpuBuffer*>(b);
  if (!cb) throw Error(ErrorCode::internal, "cpu backend: a tensor of another backend (or none)");
  return cb->data();
}

void check_shape(const Tensor& t, int64_t rows, int64_t cols, const char* what) {
  if (t.rows != rows || t.cols != cols)
    throw Error(ErrorCode::internal, std::string("cpu backend: ") + what + " is (" + std::to_string(t.rows) + ", " +
                                         std::to_string(t.cols) + "), expected (" + std::to_string(rows) + ", " +
                                         std::to_string(cols) + ")");
}

}  // namespace

void CpuBudget::take(int64_t bytes) {
  int64_t u = used.load();
  do {
    if (u + bytes > limit)
      throw Error(ErrorCode::out_of_memory, "cpu backend (test memory budget of " + std::to_string(limit) +
                                                " bytes): " + std::to_string(bytes) + " bytes do not fit, " +
                                                std::to_string(limit - u) + " left");
  } while (!used.compare_exchange_weak(u, u + bytes));
}

CpuBackend::CpuBackend(const BackendParams& params)
    : isa_(resolve_isa(params.isa)),
      kernels_(&cpu_kernels(isa_)),
      int8_acts_(params.int8_acts),
      pool_(std::make_unique<ThreadPool>(params.threads)) {
  if (params.test_memory_budget >= 0) {
    budget_ = std::make_shared<CpuBudget>();
    budget_->limit = params.test_memory_budget;
  }
}

int64_t CpuBackend::free_bytes() const { return budget_ ? budget_->limit - budget_->used.load() : -1; }

std::string CpuBackend::name() const {
  return std::string("cpu ") + isa_name(isa_) + ", " + std::to_string(pool_->size()) + " threads";
}

float* CpuBackend::data(const Tensor& t) const {
  if (t.offset < 0 || t.offset + t.size() > (t.buf ? t.buf->size() : 0))
    throw Error(ErrorCode::internal, "cpu backend: tensor outside its buffer");
  return host(t.buf) + t.offset;
}

BufferPtr CpuBackend::alloc(int64_t floats) {
  if (floats < 0) throw Error(ErrorCode::invalid_argument, "cpu backend: negative allocation");
  return std::make_unique<CpuBuffer>(floats, budget_);
}

Matrix CpuBackend::upload_matrix(const QMatrix& w) {
  if (!w.data) throw Error(ErrorCode::invalid_argument, "cpu backend: matrix without data");
  if (!budget_) return {w.type, w.n, w.k, w.data};
  // Standing in for a device: a copy of its own, counted against the budget.
  const int64_t bytes = q_layout(w.type, w.n, w.k).bytes;
  BufferPtr copy = alloc(ceil_div(bytes, (int64_t)sizeof(float)));
  std::memcpy(host(copy.get()), w.data, (size_t)bytes);
  const void* at = host(copy.get());
  vectors_.push_back(std::move(copy));
  return {w.type, w.n, w.k, at};
}

Tensor CpuBackend::upload_vector(const float* src, int64_t n) {
  vectors_.push_back(alloc(n));
  const Tensor t{vectors_.back().get(), 0, 1, n};
  write(t, src);
  return t;
}

void CpuBackend::write(const Tensor& dst, const float* src) {
  std::memcpy(data(dst), src, (size_t)dst.size() * sizeof(float));
}

void CpuBackend::read(const Tensor& src, float* dst) {
  std::memcpy(dst, data(src), (size_t)src.size() * sizeof(float));
}

void CpuBackend::embed(const Matrix& table, std::span<const int32_t> ids, const Tensor& out) {
  check_shape(out, (int64_t)ids.size(), table.k, "embed output");
  float* o = data(out);
  const auto* bytes = static_cast<const uint8_t*>(table.handle);
  for (size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] < 0 || ids[t] >= table.n)
      throw Error(ErrorCode::invalid_argument, "token id " + std::to_string(ids[t]) + " outside the vocabulary [0, " +
                                                   std::to_string(table.n) + ")");
    dequantize_row(table.type, bytes, table.n, table.k, ids[t], o + t * table.k);
  }
}

void CpuBackend::rmsnorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) {
  check_shape(out, x.rows, x.cols, "rmsnorm output");
  check_shape(w, 1, x.cols, "rmsnorm weight");
  const float *xp = data(x), *wp = data(w);
  float* op = data(out);
  for (int64_t r = 0; r < x.rows; ++r) lowbit::rmsnorm(xp + r * x.cols, wp, x.cols, eps, op + r * x.cols);
}

void CpuBackend::add(const Tensor& out, const Tensor& x) {
  check_shape(x, out.rows, out.cols, "add input");
  add_inplace(data(out), data(x), out.size());
}

void CpuBackend::add_row(const Tensor& out, const Tensor& bias) {
  check_shape(bias, 1, out.cols, "bias");
  float* o = data(out);
  const float* b = data(bias);
  for (int64_t r = 0; r < out.rows; ++r) add_inplace(o + r * out.cols, b, out.cols);
}

void CpuBackend::swiglu(const Tensor& gate, const Tensor& up) {
  check_shape(up, gate.rows, gate.cols, "swiglu up");
  lowbit::swiglu(data(gate), data(up), gate.size());
}

void CpuBackend::geglu(const Tensor& gate, const Tensor& up) {
  check_shape(up, gate.rows, gate.cols, "geglu up");
  lowbit::geglu(data(gate), data(up), gate.size());
}

void CpuBackend::scale(const Tensor& x, float s) { scale_inplace(data(x), x.size(), s); }

void CpuBackend::gather_rows(const Tensor& src, std::span<const int64_t> rows, const Tensor& dst) {
  check_shape(dst, (int64_t)rows.size(), src.cols, "gathered rows");
  const float* s = data(src);
  float* d = data(dst);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || rows[i] >= src.rows) throw Error(ErrorCode::internal, "cpu backend: gather row out of range");
    std::memcpy(d + i * src.cols, s + rows[i] * src.cols, (size_t)src.cols * sizeof(float));
  }
}

void CpuBackend::add_rows(const Tensor& src, std::span<const int64_t> rows, std::span<const float> weights,
                          const Tensor& dst) {
  check_shape(src, (int64_t)rows.size(), dst.cols, "rows to add");
  if (weights.size() != rows.size()) throw Error(ErrorCode::internal, "cpu backend: add_rows weights and rows differ");
  const float* s = data(src);
  float* d = data(dst);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || rows[i] >= dst.rows) throw Error(ErrorCode::internal, "cpu backend: add_rows row out of range");
    float* out = d + rows[i] * dst.cols;
    const float* in = s + (int64_t)i * dst.cols;
    for (int64_t j = 0; j < dst.cols; ++j) out[j] += weights[i] * in[j];
  }
}

void CpuBackend::rope(const Tensor& x, int64_t n_heads, int64_t head_dim, const Tensor& inv_freq, float scale,
                      std::span<const SeqRows> seqs) {
  check_shape(x, x.rows, n_heads * head_dim, "rope input");
  check_rope_table(inv_freq, head_dim);
  float* xp = data(x);
  const float* f = data(inv_freq);
  for (const SeqRows& s : seqs)
    for (int64_t i = 0; i < s.rows; ++i)
      lowbit::rope(xp + (s.row0 + i) * x.cols, n_heads, head_dim, 2 * inv_freq.cols, s.pos + i, f, scale);
}

void CpuBackend::attention(int64_t layer, const Tensor& q, const Tensor& k, const Tensor& v,
                           std::span<const SeqRows> seqs, const AttentionShape& sh, const Tensor& out) {
  const int64_t hd = sh.head_dim, q_dim = sh.n_heads * hd, kv_dim = sh.n_kv_heads * hd;
  const int64_t group = sh.n_heads / sh.n_kv_heads, n = q.rows;
  check_shape(q, n, q_dim, "attention q");
  check_shape(k, n, kv_dim, "attention k");
  check_shape(v, n, kv_dim, "attention v");
  check_shape(out, n, q_dim, "attention output");
  const float *qp = data(q), *kp = data(k), *vp = data(v);
  float* op = data(out);

  // Each sequence's new keys and values into its cache, (layer, capacity, kv_dim).
  int64_t work = 0, capacity = 0;
  for (const SeqRows& s : seqs) {
    const KvCache& c = *s.cache;
    if (c.kv_dim != kv_dim || layer < 0 || layer >= c.layers || s.pos < 0 || s.pos + s.rows > c.capacity ||
        s.row0 < 0 || s.row0 + s.rows > n)
      throw Error(ErrorCode::internal, "cpu backend: attention rows outside the batch or the KV cache");
    const int64_t at = (layer * c.capacity + s.pos) * kv_dim;
    std::memcpy(host(c.k.get()) + at, kp + s.row0 * kv_dim, (size_t)(s.rows * kv_dim) * sizeof(float));
    std::memcpy(host(c.v.get()) + at, vp + s.row0 * kv_dim, (size_t)(s.rows * kv_dim) * sizeof(float));
    work += s.rows * (s.pos + s.rows);
    capacity = std::max(capacity, c.capacity);
  }

  // One task per (KV head, tile, part of its query heads), a tile being up to kTileRows rows of
  // one sequence: the query heads of a KV head share its reads of the cache (heads of KV head
  // kvh: kvh * group .. kvh * group + group - 1), and a prompt's tile of rows shares them too
  // (attend_rows). A prompt's tiles give plenty of tasks; a decode step's few KV heads are cut
  // into parts (the most that divides the group and keeps to ~16 tasks per thread), which evens
  // out the threads' finish better than the shared reads save: TinyLlama shape (4 KV heads of
  // 8), 1000-token context, 2 threads, generation tokens/s against one task per head: 4 tasks 6%
  // slower, 8 tasks 7% slower, 32 tasks (one head each) the same; the 1000-token prompt gains
  // 3-10% (85-92 -> 89-97 tokens/s). Any divisor, not only powers of two: SmolLM2-135M's groups
  // of 3 heads (3 KV heads) were otherwise 3 tasks for 2 threads. Every row's and head's
  // arithmetic is the same however the rows and heads are cut (attend_rows), so the split never
  // changes a result.
  constexpr int64_t kTileRows = 8;
  auto tiles_of = [](const SeqRows& s) { return (s.rows + kTileRows - 1) / kTileRows; };
  int64_t tiles = 0;
  for (const SeqRows& s : seqs) tiles += tiles_of(s);
  const int64_t threads = pool_->size();
  int64_t parts = 1;
  for (int64_t p = 2; p <= group && tiles * sh.n_kv_heads * p <= 16 * threads; ++p)
    if (group % p == 0) parts = p;
  const int64_t heads = group / parts;  // query heads per task
  const int64_t tasks = tiles * sh.n_kv_heads * parts;
  // KV-head-major: the tasks taken one after another read the same KV head's cache rows, which
  // stay in the cores' L2 (a 512-token prompt's K and V of one KV head of 64 are 256 KiB; of all
  // 4 of TinyLlama's, an L2's worth).
  auto attend_task = [&](int64_t task, int) {
    const int64_t kvh = task / (tiles * parts), tile = task / parts % tiles;
    const int64_t h0 = kvh * group + task % parts * heads;
    const SeqRows* s = seqs.data();
    int64_t first_tile = 0;  // the sequence's first tile; sequences are few: a scan
    for (; tile >= first_tile + tiles_of(*s); ++s) first_tile += tiles_of(*s);
    const KvCache& c = *s->cache;
    const int64_t i0 = (tile - first_tile) * kTileRows, t = s->row0 + i0;
    AttendRows a;
    a.rows = std::min(kTileRows, s->rows - i0);
    a.group = heads;
    a.head_dim = hd;
    a.q = qp + t * q_dim + h0 * hd;
    a.out = op + t * q_dim + h0 * hd;
    a.q_stride = a.out_stride = q_dim;
    a.k_cache = host(c.k.get()) + layer * c.capacity * kv_dim + kvh * hd;
    a.v_cache = host(c.v.get()) + layer * c.capacity * kv_dim + kvh * hd;
    a.kv_stride = kv_dim;
    a.n_pos = s->pos + i0 + 1;
    a.window = sh.sliding_window > 0 ? sh.sliding_window : 0;
    a.scale = sh.scale;
    a.softcap = sh.softcap;
    // Scores of a tile's heads over at most a cache's capacity, per thread, sized once for the
    // largest cache this thread has served (no allocation as a context grows).
    thread_local std::vector<float> scores;
    const int64_t need = attend_rows_scratch(kTileRows, group, capacity, 0);
    if ((int64_t)scores.size() < need) scores.resize(need);
    a.scratch = scores.data();
    attend_rows(a);
  };
  // Short contexts of small models are cheaper on this thread than a hand-off to the pool. The
  // cut is low: in a decode step the workers are still spinning from the last matmul, so the
  // hand-off costs a few microseconds, while the caller attending alone leaves them idle:
  // SmolLM2-135M (9 heads of 64) on 2 threads spent ~15% of a token's time in serial attention
  // over 1-160 positions under the old cut of 2^16 (~110 positions there).
  if (work * sh.n_heads * hd < (int64_t(1) << 13)) {
    for (int64_t task = 0; task < tasks; ++task) attend_task(task, 0);
  } else {
    pool_->run(tasks, attend_task);
  }
}

void CpuBackend::matmul(const Tensor& x, std::span<const Projection> projs, bool int8_acts) {
  constexpr size_t kMax = 8;  // on the per-token path: a fixed array, no allocation
  if (projs.size() > kMax) throw Error(ErrorCode::internal, "cpu backend: more than 8 projections in one matmul");
  MatmulOut outs[kMax];
  for (size_t i = 0; i < projs.size(); ++i) {
    const Matrix& w = *projs[i].w;
    check_shape(projs[i].y, x.rows, w.n, "matmul output");
    if (w.k != x.cols) throw Error(ErrorCode::internal, "cpu backend: matmul input has the wrong width");
    outs[i] = {QMatrix{w.type, w.n, w.k, static_cast<const uint8_t*>(w.handle)}, data(projs[i].y)};
  }
  matmul_many(outs, (int)projs.size(), data(x), x.rows, matmul_options(int8_acts));
}

}  // namespace lowbit
