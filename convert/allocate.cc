#include "convert/allocate.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <queue>

#include "convert/calib.h"
#include "convert/source.h"
#include "kernels/error.h"
#include "kernels/quantize.h"
#include "kernels/thread_pool.h"
#include "runtime/manifest.h"
#include "runtime/model.h"

namespace lowbit {

std::vector<QType> default_candidates() {
  std::vector<QType> out;
  for (const char* n : {"q1_g32_asym", "q2_g128_asym", "q2_g64_asym", "q2_g32_asym_s6", "q2_g32_asym", "q4_g128_asym",
                        "q4_g64_asym", "q4_g32_asym_s6", "q4_g32_sym", "q4_g32_asym", "q8_g64_sym", "q8_g32_sym", "f16"})
    out.push_back(parse_type(n));
  return out;
}

nlohmann::json Allocation::to_json() const {
  nlohmann::json t = nlohmann::json::object();
  for (const auto& [name, type] : types) t[name] = type_name(type);
  return {{"target_bpw", target_bpw},       {"bits_per_weight", bits_per_weight}, {"bytes", bytes},
          {"budget_bytes", budget_bytes},   {"predicted_kl", predicted_kl},       {"probe_type", probe_type},
          {"role_gain", role_gain},         {"role_probe_kl", role_probe_kl},     {"plan", plan},
          {"plan_kl", plan_kl},             {"types", t}};
}

namespace {

int64_t file_bytes(const QType& t, int64_t rows, int64_t cols) {
  return round_up(q_layout(t, rows, cols).bytes, kTensorAlign);
}

// The role a tensor's gain is measured with: the head shares the embedding's (tied or not, both
// map the residual stream to or from tokens).
std::string gain_role(Role r) { return r == Role::lm_head ? "embed" : std::string(role_name(r)); }

struct Item {
  std::string name;
  std::string role;
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> bytes;  // per candidate
  std::vector<double> err;     // per candidate: E_i(t)
  std::vector<int> hull;       // candidate indices on the lower convex hull, by bytes
  size_t at = 0;               // position in hull
};

// E_i(t) for every candidate on evenly spaced rows, scaled to the whole tensor.
void measure_errors(Item& it, const std::vector<float>& w, const std::vector<float>* imp, const ConvertOptions& base,
                    const std::vector<QType>& cands, int64_t sample_rows, ThreadPool& pool) {
  const int64_t ns = std::min(sample_rows, it.rows), k = it.cols;
  std::vector<float> sub((size_t)(ns * k)), back((size_t)(ns * k));
  for (int64_t s = 0; s < ns; ++s) {
    const int64_t r = s * it.rows / ns;
    std::copy(w.begin() + r * k, w.begin() + (r + 1) * k, sub.begin() + s * k);
  }
  // An untied embedding is a lookup: the error a token sees is one row's, the mean over rows.
  const double scale = imp ? (double)it.rows / ns : 1.0 / ns;
  for (const QType& t : cands) {
    std::vector<uint8_t> q(q_layout(t, ns, k).bytes + 64);
    quantize(t, sub.data(), ns, k, q.data(), base.quantizer, &pool, imp ? imp->data() : nullptr);
    dequantize(t, q.data(), ns, k, back.data(), &pool);
    double e = 0;
    for (int64_t s = 0; s < ns; ++s)
      for (int64_t j = 0; j < k; ++j) {
        const double d = (double)back[s * k + j] - sub[s * k + j];
        e += (imp ? (*imp)[j] : 1.0f) * d * d;
      }
    it.err.push_back(e * scale);
    it.bytes.push_back(file_bytes(t, it.rows, it.cols));
  }
}

// Candidates on the lower convex hull of (bytes, predicted KL): the ones a greedy upgrade path
// can stop at. Dominated ones (more bytes, no less error) and ones above the hull drop out.
std::vector<int> lower_hull(const std::vector<int64_t>& bytes, const std::vector<double>& kl) {
  std::vector<int> idx(bytes.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = (int)i;
  std::sort(idx.begin(), idx.end(), [&](int a, int b) { return bytes[a] != bytes[b] ? bytes[a] < bytes[b] : kl[a] < kl[b]; });
  std::vector<int> mono;  // strictly decreasing error with increasing bytes
  for (int i : idx)
    if (mono.empty() || (kl[i] < kl[mono.back()] && bytes[i] > bytes[mono.back()])) mono.push_back(i);
  std::vector<int> h;
  for (int i : mono) {
    while (h.size() >= 2) {
      const int a = h[h.size() - 2], b = h.back();
      // b is above the segment a-i: its slope from a is no steeper than i's.
      const double s_ab = (kl[a] - kl[b]) / (double)(bytes[b] - bytes[a]);
      const double s_ai = (kl[a] - kl[i]) / (double)(bytes[i] - bytes[a]);
      if (s_ab <= s_ai) h.pop_back(); else break;
    }
    h.push_back(i);
  }
  return h;
}

// Log-probabilities of one row of logits, in double.
void log_softmax(const float* x, int64_t n, std::vector<double>& out) {
  double mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, (double)x[i]);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp((double)x[i] - mx);
  const double lse = mx + std::log(s);
  out.resize((size_t)n);
  for (int64_t i = 0; i < n; ++i) out[i] = (double)x[i] - lse;
}

// The probe text: the first windows of the calibration, up to `tokens` tokens.
std::vector<std::vector<int32_t>> probe_windows(const CalibStats& calib, int64_t tokens) {
  std::vector<std::vector<int32_t>> out;
  int64_t n = 0;
  for (const auto& w : calib.windows) {
    if (n >= tokens) break;
    std::vector<int32_t> v(w.begin(), w.begin() + std::min<int64_t>((int64_t)w.size(), tokens - n));
    if (v.size() < 2) break;
    n += (int64_t)v.size();
    out.push_back(std::move(v));
  }
  return out;
}

std::unique_ptr<Model> import_at(const std::string& source, const ConvertOptions& opt) {
  ImportedModel m = import_model(source, opt);
  LoadParams p;
  p.threads = opt.threads;
  return Model::load(Manifest::from_memory(m.header, std::move(m.weights), std::move(m.tokenizer_files), source), p);
}

// Log-probs of every position of the windows (concatenated), or the mean KL against ref.
double run_probe(const Model& model, const std::vector<std::vector<int32_t>>& windows,
                 std::vector<std::vector<double>>* ref_out, const std::vector<std::vector<double>>* ref) {
  const int64_t vocab = model.config().vocab_size;
  Session s(model);
  std::vector<float> logits;
  std::vector<double> lp;
  double kl = 0;
  size_t pos = 0;
  for (const auto& w : windows) {
    logits.resize(w.size() * (size_t)vocab);
    s.reset();
    s.eval(w.data(), (int64_t)w.size(), logits.data(), /*all_logits=*/true);
    for (size_t i = 0; i < w.size(); ++i, ++pos) {
      log_softmax(logits.data() + i * vocab, vocab, lp);
      if (ref_out) {
        ref_out->push_back(lp);
      } else {
        const std::vector<double>& r = (*ref)[pos];
        double k = 0;
        for (int64_t v = 0; v < vocab; ++v) k += std::exp(r[v]) * (r[v] - lp[v]);
        kl += k;
      }
    }
  }
  return pos ? kl / (double)pos : 0;
}

}  // namespace

Allocation allocate_bits(const std::string& source, const ConvertOptions& base, const CalibStats& calib,
                         const AllocationOptions& opt) {
  if (!(opt.target_bpw > 0)) throw Error("--target-bpw must be positive");
  const std::vector<QType> cands = opt.candidates.empty() ? default_candidates() : opt.candidates;
  const std::unique_ptr<ModelSource> src = open_source(source);
  ThreadPool pool(base.threads);
  auto progress = [&](const std::string& stage, double f) {
    if (opt.progress) opt.progress(stage, f);
  };

  // 1. Which tensors are allocated (2-D, not --keep), the fixed bytes of the rest, E_i(t).
  Allocation a;
  a.target_bpw = opt.target_bpw;
  int64_t fixed = 0;
  std::vector<Item> items;
  const std::vector<TensorSpec> specs = expected_tensors(src->config());
  for (size_t si = 0; si < specs.size(); ++si) {
    const TensorSpec& s = specs[si];
    const int64_t rows = s.shape[0], cols = s.shape.size() > 1 ? s.shape[1] : 1;
    a.weights += rows * cols;
    bool kept = false;
    QType kept_type{Base::f32, 32};
    for (const auto& [glob, type] : base.keep)
      if (fnmatch(glob.c_str(), s.name.c_str(), 0) == 0) kept = true, kept_type = parse_type(type);
    if (stays_f32(s) || s.shape.size() != 2 || kept) {
      fixed += file_bytes(kept_type, rows, cols);
      continue;
    }
    Item it;
    it.name = s.name;
    it.role = gain_role(s.role);
    it.rows = rows;
    it.cols = cols;
    const std::vector<float> w = src->read_f32(s, &pool);
    src->release(s);
    const std::vector<float>* imp = calib.importance(s.name);
    if (imp && (int64_t)imp->size() != cols) imp = nullptr;
    measure_errors(it, w, imp, base, cands, opt.sample_rows, pool);
    items.push_back(std::move(it));
    progress("errors", (double)(si + 1) / (double)specs.size());
  }
  a.budget_bytes = (int64_t)std::floor(opt.target_bpw * (double)a.weights / 8.0);

  // 2. Role gains at the probe type (the quantized candidate nearest the target).
  size_t probe = 0;
  {
    double best = INFINITY;
    for (size_t c = 0; c < cands.size(); ++c) {
      if (!is_quantized(cands[c])) continue;
      const double d = std::fabs(bits_per_weight(cands[c], 4096, 4096) - opt.target_bpw);
      if (d < best) best = d, probe = c;
    }
  }
  a.probe_type = type_name(cands[probe]);
  const std::vector<std::vector<int32_t>> windows = probe_windows(calib, opt.probe_tokens);
  if (windows.empty()) throw Error("--target-bpw: the calibration text gave no window to measure gains on");
  ConvertOptions f32 = base;
  f32.bits = 32;
  f32.source_types = false;
  f32.tensor_types.clear();
  f32.keep.clear();
  f32.allocation = nullptr;
  f32.progress = nullptr;
  std::vector<std::vector<double>> ref;
  run_probe(*import_at(source, f32), windows, &ref, nullptr);
  std::map<std::string, double> role_err;
  for (const Item& it : items) role_err[it.role] += it.err[probe];
  size_t done = 0;
  for (const auto& [role, err] : role_err) {
    ConvertOptions o = f32;
    for (const Item& it : items)
      if (it.role == role) o.tensor_types[it.name] = cands[probe];
    const double kl = run_probe(*import_at(source, o), windows, nullptr, &ref);
    a.role_probe_kl[role] = kl;
    a.role_gain[role] = err > 0 ? kl / err : 0.0;
    progress("gains", (double)++done / (double)role_err.size());
  }

  // 3. Greedy knapsack over each tensor's lower hull of (bytes, g * E).
  int64_t used = fixed;
  for (Item& it : items) {
    std::vector<double> kl(it.err.size());
    for (size_t c = 0; c < kl.size(); ++c) kl[c] = a.role_gain[it.role] * it.err[c];
    it.err = kl;
    it.hull = lower_hull(it.bytes, it.err);
    used += it.bytes[it.hull[0]];
  }
  if (used > a.budget_bytes)
    throw Error("--target-bpw " + std::to_string(opt.target_bpw) + ": even the cheapest candidate types give " +
                std::to_string(8.0 * (double)used / (double)a.weights) + " bits per weight");
  using Up = std::pair<double, size_t>;  // (KL drop per byte, item)
  std::priority_queue<Up> heap;
  auto push = [&](size_t i) {
    const Item& it = items[i];
    if (it.at + 1 >= it.hull.size()) return;
    const int c0 = it.hull[it.at], c1 = it.hull[it.at + 1];
    heap.push({(it.err[c0] - it.err[c1]) / (double)(it.bytes[c1] - it.bytes[c0]), i});
  };
  for (size_t i = 0; i < items.size(); ++i) push(i);
  while (!heap.empty()) {
    const size_t i = heap.top().second;
    heap.pop();
    Item& it = items[i];
    const int64_t extra = it.bytes[it.hull[it.at + 1]] - it.bytes[it.hull[it.at]];
    if (used + extra > a.budget_bytes) continue;  // does not fit; smaller upgrades elsewhere may
    used += extra;
    ++it.at;
    push(i);
  }
  std::vector<size_t> greedy(items.size());
  for (size_t i = 0; i < items.size(); ++i) greedy[i] = (size_t)items[i].hull[items[i].at];

  // 4. The plan measured against uniform ones. The prediction is linear in each tensor's error,
  // and compounding errors of 1-2 bit picks are not (docs/ACCURACY.md: SmolLM2 at 4.5 bpw, a
  // greedy plan predicted at KL 0.05 measured 0.28, where q4_g64 everywhere with the embedding at
  // q4_g64_sym, 4.45 bpw, measures 0.147). So the probe windows also score the kUniformPlans
  // uniform plans of least predicted KL that fit: every tensor but the embedding/head at one
  // candidate (2 bits or more), the embedding/head at the candidate of least predicted KL that
  // still fits; the lowest measured KL wins. A plan can then be no worse than those uniform types
  // on the calibration text. (The largest plans were scored before; on SmolLM2 at 4.5 bpw that
  // left out uniform q4_g32_asym_s6, 4.44 bpw, which measures below all three.)
  constexpr size_t kUniformPlans = 3;
  struct Plan {
    std::string name;
    std::vector<size_t> pick;  // candidate per item
    int64_t bytes = 0;
    double predicted_kl = 0;
  };
  std::vector<Plan> plans{{"greedy", greedy, used}};
  std::vector<Plan> uniform;
  for (size_t c = 0; c < cands.size(); ++c) {
    if (!is_quantized(cands[c]) || cands[c].bits < 2) continue;
    Plan pl{"uniform " + type_name(cands[c]), std::vector<size_t>(items.size(), c), fixed};
    double best_kl = INFINITY;
    size_t best_e = cands.size();
    for (size_t e = 0; e < cands.size(); ++e) {
      int64_t b = fixed;
      double kl = 0;
      for (const Item& it : items) {
        const size_t t = it.role == "embed" ? e : c;
        b += it.bytes[t];
        if (it.role == "embed") kl += it.err[t];
      }
      if (b <= a.budget_bytes && kl < best_kl) best_kl = kl, best_e = e, pl.bytes = b;
    }
    if (best_e == cands.size()) continue;
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].role == "embed") pl.pick[i] = best_e;
      pl.predicted_kl += items[i].err[pl.pick[i]];
    }
    if (best_e != c) pl.name += ", embedding/head " + type_name(cands[best_e]);
    uniform.push_back(std::move(pl));
  }
  std::sort(uniform.begin(), uniform.end(), [](const Plan& x, const Plan& y) { return x.predicted_kl < y.predicted_kl; });
  for (size_t u = 0; u < std::min(kUniformPlans, uniform.size()); ++u) plans.push_back(uniform[u]);
  size_t chosen = 0;
  double chosen_kl = INFINITY;
  for (size_t p = 0; p < plans.size(); ++p) {
    ConvertOptions o = f32;
    for (size_t i = 0; i < items.size(); ++i) o.tensor_types[items[i].name] = cands[plans[p].pick[i]];
    const double kl = run_probe(*import_at(source, o), windows, nullptr, &ref);
    a.plan_kl[plans[p].name] = kl;
    if (kl < chosen_kl) chosen_kl = kl, chosen = p;
    progress("plans", (double)(p + 1) / (double)plans.size());
  }
  a.plan = plans[chosen].name;
  a.bytes = plans[chosen].bytes;
  a.bits_per_weight = 8.0 * (double)a.bytes / (double)a.weights;
  for (size_t i = 0; i < items.size(); ++i) {
    const size_t c = plans[chosen].pick[i];
    a.types.emplace_back(items[i].name, cands[c]);
    a.predicted_kl += items[i].err[c];
  }
  return a;
}

}  // namespace lowbit
