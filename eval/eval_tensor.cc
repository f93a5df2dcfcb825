// Per-tensor errors of a quantized manifest against its fp32 reference (eval.h): the dequantized
// weights, and the matmul outputs on activations captured from the reference model.
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>

#include "kernels/error.h"
#include "kernels/quantize.h"
#include "eval/eval.h"

namespace lowbit {
namespace {

// A uniform sample of max_rows activation rows (reservoir sampling, fixed seed).
struct Reservoir {
  int64_t k = 0, seen = 0, kept = 0;
  std::vector<float> rows;  // (kept, k)
};

struct AlignedFloats {
  explicit AlignedFloats(int64_t n)
      : p(static_cast<float*>(std::aligned_alloc(64, (size_t)((n * 4 + 63) / 64 * 64))), std::free) {
    if (!p) throw Error("out of memory for " + std::to_string(n) + " floats");
  }
  std::unique_ptr<float, decltype(&std::free)> p;
  float* get() const { return p.get(); }
};

double rel_err(const float* a, const float* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = (double)a[i] - (double)b[i];
    num += d * d;
    den += (double)b[i] * (double)b[i];
  }
  return den > 0 ? std::sqrt(num / den) : (num > 0 ? INFINITY : 0.0);
}

}  // namespace

std::vector<TensorError> tensor_errors(const Model& quant, const Model& ref, const EvalWindows& w,
                                       const TensorErrorOptions& opt) {
  if (opt.max_rows <= 0) throw Error("per-tensor: max_rows must be positive");
  const Manifest& mq = quant.manifest();
  const Manifest& mr = ref.manifest();

  // Which tensors to measure: every quantized matrix of the quantized manifest.
  std::vector<const TensorEntry*> todo;
  for (const TensorEntry& t : mq.header().tensors)
    if (t.shape.size() == 2 && is_quantized(t.type)) todo.push_back(&t);

  // 1. Activations: run the reference over the first windows with an observer.
  std::map<std::string, Reservoir> acts;
  std::mt19937_64 rng(0x6c6f77626974ull);
  Session s(ref);
  s.set_observer([&](const std::string& name, const float* x, int64_t m, int64_t k) {
    Reservoir& r = acts[name];
    r.k = k;
    for (int64_t i = 0; i < m; ++i) {
      ++r.seen;
      int64_t slot = r.kept;
      if (r.kept == opt.max_rows) {
        slot = (int64_t)(rng() % (uint64_t)r.seen);
        if (slot >= opt.max_rows) continue;
      } else {
        ++r.kept;
        r.rows.resize((size_t)(r.kept * k));
      }
      std::copy(x + i * k, x + (i + 1) * k, r.rows.begin() + slot * k);
    }
  });
  std::vector<float> logits((size_t)w.ctx * ref.config().vocab_size);
  const int64_t total = (int64_t)todo.size() + 1;
  for (int64_t wi = 0; wi < w.windows(); ++wi) {
    s.reset();
    s.eval(w.window(wi), w.ctx - 1, logits.data(), /*all_logits=*/true);  // all rows reach lm_head
    bool enough = true;
    for (const TensorEntry* t : todo) {
      auto it = acts.find(t->name);
      enough = enough && it != acts.end() && it->second.seen >= 4 * opt.max_rows;
    }
    if (enough) break;
  }
  if (opt.progress) opt.progress(1, total);

  // 2. Errors, tensor by tensor.
  std::vector<TensorError> out;
  for (size_t ti = 0; ti < todo.size(); ++ti) {
    const TensorEntry& tq = *todo[ti];
    const TensorEntry* tr = mr.find(tq.name);
    if (!tr) throw Error(mr.dir() + ": has no tensor '" + tq.name + "' to compare with");
    if (tr->shape != tq.shape) throw Error("tensor '" + tq.name + "': shapes differ between the manifests");
    const int64_t n = tq.rows(), k = tq.cols();
    TensorError e;
    e.name = tq.name;
    e.type = type_name(tq.type);
    e.ref_type = type_name(tr->type);
    e.rows = n;
    e.cols = k;
    AlignedFloats wq(n * k), wr(n * k);  // (n, k) dequantized
    dequantize(tq.type, mq.data(tq), n, k, wq.get(), &quant.pool());
    dequantize(tr->type, mr.data(*tr), n, k, wr.get(), &ref.pool());
    e.weight_rel_err = rel_err(wq.get(), wr.get(), n * k);

    auto it = acts.find(tq.name);
    if (it != acts.end() && it->second.kept > 0) {
      const Reservoir& r = it->second;
      const int64_t m = r.kept;
      e.act_rows = m;
      std::vector<float> y_ref((size_t)(m * n)), y_deq((size_t)(m * n)), y_ker((size_t)(m * n));  // (m, n)
      matmul(mr.matrix(tr->name), r.rows.data(), m, y_ref.data(), ref.matmul_options());
      const QMatrix deq{QType{Base::f32, 32}, n, k, reinterpret_cast<const uint8_t*>(wq.get())};
      matmul(deq, r.rows.data(), m, y_deq.data(), ref.matmul_options());
      matmul(mq.matrix(tq.name), r.rows.data(), m, y_ker.data(), quant.matmul_options());
      e.output_rel_err = rel_err(y_deq.data(), y_ref.data(), m * n);
      e.kernel_rel_err = rel_err(y_ker.data(), y_ref.data(), m * n);
    }
    out.push_back(std::move(e));
    if (opt.progress) opt.progress((int64_t)ti + 2, total);
  }
  return out;
}

nlohmann::json to_json(const TensorError& e) {
  return {{"name", e.name},
          {"type", e.type},
          {"ref_type", e.ref_type},
          {"shape", {e.rows, e.cols}},
          {"weight_rel_err", e.weight_rel_err},
          {"act_rows", e.act_rows},
          {"output_rel_err", e.output_rel_err},
          {"kernel_rel_err", e.kernel_rel_err}};
}

}  // namespace lowbit
