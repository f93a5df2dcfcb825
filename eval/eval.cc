// Windows, per-token statistics, confidence intervals, reference files and gates (eval.h).
#include "eval/eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "kernels/error.h"

namespace lowbit {
namespace {

constexpr char kRefMagic[8] = {'L', 'B', 'R', 'E', 'F', 'L', 'P', '\0'};
constexpr uint32_t kRefVersion = 1;
constexpr double kZ95 = 1.959963984540054;

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
  return buf;
}

Estimate mean_ci(const std::vector<double>& v) {
  const size_t n = v.size();
  if (n == 0) return {};
  double sum = 0;
  for (double x : v) sum += x;
  const double mean = sum / (double)n;
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  const double se = n > 1 ? std::sqrt(ss / (double)(n - 1) / (double)n) : 0.0;
  return {mean, mean - kZ95 * se, mean + kZ95 * se};
}

// The q-quantile of v (linear interpolation), with a distribution-free interval: the order
// statistics at ranks n q -+ 1.96 sqrt(n q (1 - q)) (normal approximation to the binomial).
Estimate quantile_ci(std::vector<double> v, double q) {
  const size_t n = v.size();
  if (n == 0) return {};
  std::sort(v.begin(), v.end());
  const double pos = q * (double)(n - 1);
  const size_t i = (size_t)pos;
  const double frac = pos - (double)i;
  const double value = i + 1 < n ? v[i] * (1 - frac) + v[i + 1] * frac : v[n - 1];
  const double half = kZ95 * std::sqrt((double)n * q * (1 - q));
  const double lo_rank = std::floor((double)n * q - half), hi_rank = std::ceil((double)n * q + half);
  const auto at = [&](double r) { return v[(size_t)std::clamp(r, 0.0, (double)(n - 1))]; };
  return {value, std::min(value, at(lo_rank)), std::max(value, at(hi_rank))};
}

Estimate exp_of(const Estimate& e) { return {std::exp(e.value), std::exp(e.lo), std::exp(e.hi)}; }

nlohmann::json est_json(const Estimate& e) { return {{"value", e.value}, {"lo", e.lo}, {"hi", e.hi}}; }

// Reads or writes a reference log-prob file; checks the header against this run.
class RefFile {
 public:
  static nlohmann::json make_header(const Model* ref, const EvalWindows& w, int64_t vocab) {
    nlohmann::json h = {{"text", w.label},
                        {"windows_fingerprint", hex64(w.fingerprint)},
                        {"ctx", w.ctx},
                        {"first", w.first},
                        {"windows", w.windows()},
                        {"scored", w.total_scored},
                        {"vocab", vocab},
                        {"dtype", "f32"}};
    if (ref) {
      h["model"] = ref->manifest().dir();
      h["model_fingerprint"] = hex64(model_fingerprint(ref->manifest()));
    }
    return h;
  }

  void create(const std::string& path, const nlohmann::json& header) {
    path_ = path;
    out_.open(path, std::ios::binary | std::ios::trunc);
    if (!out_) throw Error(path + ": cannot create the reference file");
    const std::string text = header.dump();
    const uint32_t n = (uint32_t)text.size();
    out_.write(kRefMagic, 8);
    out_.write(reinterpret_cast<const char*>(&kRefVersion), 4);
    out_.write(reinterpret_cast<const char*>(&n), 4);
    out_.write(text.data(), n);
  }

  void write(const float* logp, int64_t vocab) {
    out_.write(reinterpret_cast<const char*>(logp), vocab * (std::streamsize)sizeof(float));
  }

  void close_writer() {
    out_.close();
    if (!out_) throw Error(path_ + ": write failed (disk full?)");
  }

  // Opens path and checks it was made for this run: same windows (text, tokenizer, ctx,
  // max-tokens), same vocabulary, and the same reference model when one is given.
  void open(const std::string& path, const nlohmann::json& want) {
    path_ = path;
    in_.open(path, std::ios::binary);
    if (!in_) throw Error(path + ": cannot open the reference file");
    char magic[8];
    uint32_t version = 0, n = 0;
    in_.read(magic, 8);
    in_.read(reinterpret_cast<char*>(&version), 4);
    in_.read(reinterpret_cast<char*>(&n), 4);
    if (!in_ || std::memcmp(magic, kRefMagic, 8) != 0)
      throw Error(path + ": not a lowbit reference log-prob file (bad magic)");
    if (version != kRefVersion)
      throw Error(path + ": reference file version " + std::to_string(version) + ", this lowbit reads " +
                  std::to_string(kRefVersion));
    std::string text(n, '\0');
    in_.read(text.data(), n);
    if (!in_) throw Error(path + ": truncated header");
    nlohmann::json have;
    try {
      have = nlohmann::json::parse(text);
    } catch (const std::exception& e) {
      throw Error(path + ": bad header: " + e.what());
    }
    for (const char* key : {"ctx", "vocab", "windows_fingerprint", "scored", "model_fingerprint"}) {
      if (!want.contains(key)) continue;
      if (!have.contains(key) || have[key] != want[key]) {
        std::string what = key;
        if (what == "windows_fingerprint")
          what = "the token windows (text " + have.value("text", std::string("?")) + " vs " +
                 want.value("text", std::string("?")) + ", or another tokenizer or --max-tokens)";
        else if (what == "model_fingerprint")
          what = "the reference model (" + have.value("model", std::string("?")) + " vs " +
                 want.value("model", std::string("?")) + ")";
        throw Error(path + ": reference log-probs were made for another run: " + what + " differs" +
                    (have.contains(key) && want[key].is_number()
                         ? " (" + have[key].dump() + " vs " + want[key].dump() + ")"
                         : std::string()));
      }
    }
    const uint64_t expect = 16 + (uint64_t)n + 4ull * want["scored"].get<uint64_t>() * want["vocab"].get<uint64_t>();
    in_.seekg(0, std::ios::end);
    const uint64_t size = (uint64_t)in_.tellg();
    if (size != expect)
      throw Error(path + ": " + std::to_string(size) + " bytes, expected " + std::to_string(expect) + " (truncated?)");
    in_.seekg(16 + n);
  }

  void read(float* logp, int64_t vocab) {
    in_.read(reinterpret_cast<char*>(logp), vocab * (std::streamsize)sizeof(float));
    if (!in_) throw Error(path_ + ": read failed");
  }

 private:
  std::string path_;
  std::ofstream out_;
  std::ifstream in_;
};

}  // namespace

EvalWindows make_windows(const Tokenizer& tok, std::string_view text, const std::string& label,
                         int64_t ctx, int64_t max_tokens) {
  if (ctx < 4) throw Error("--ctx " + std::to_string(ctx) + " is too small (at least 4)");
  if (max_tokens < 0) throw Error("--max-tokens must not be negative");
  EvalWindows w;
  w.label = label;
  w.ctx = ctx;
  w.first = ctx / 2;
  const std::vector<int32_t> stream = tok.encode(text, /*add_special=*/false);
  w.text_tokens = (int64_t)stream.size();
  const int32_t bos = tok.bos_id();
  const int64_t per_window = bos >= 0 ? ctx - 1 : ctx;  // stream tokens in one window
  for (int64_t start = 0; start + per_window <= (int64_t)stream.size(); start += per_window) {
    if (max_tokens > 0 && w.total_scored >= max_tokens) break;
    if (bos >= 0) w.tokens.push_back(bos);
    w.tokens.insert(w.tokens.end(), stream.begin() + start, stream.begin() + start + per_window);
    int64_t n = ctx - w.first;
    if (max_tokens > 0) n = std::min(n, max_tokens - w.total_scored);
    w.scored.push_back((int32_t)n);
    w.total_scored += n;
  }
  if (w.scored.empty())
    throw Error(label + ": " + std::to_string(stream.size()) + " tokens do not fill one window of --ctx " +
                std::to_string(ctx));
  std::vector<int64_t> meta = {ctx, w.first};
  uint64_t h = checksum_bytes(meta.data(), meta.size() * sizeof(int64_t));
  h ^= checksum_bytes(w.tokens.data(), w.tokens.size() * sizeof(int32_t)) * 31;
  h ^= checksum_bytes(w.scored.data(), w.scored.size() * sizeof(int32_t)) * 131;
  w.fingerprint = h;
  return w;
}

void log_softmax(const float* logits, int64_t n, float* out) {
  double mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, (double)logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp((double)logits[i] - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[i] = (float)((double)logits[i] - lse);
}

void add_token(const float* ref_logp, const float* quant_logp, int64_t n, int32_t target, TokenStats& s) {
  if (target < 0 || target >= n) throw Error("token id " + std::to_string(target) + " outside the vocabulary");
  double kl = 0;
  int64_t arg_r = 0, arg_q = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double lr = ref_logp[i], lq = quant_logp[i];
    kl += std::exp(lr) * (lr - lq);
    if (ref_logp[i] > ref_logp[arg_r]) arg_r = i;
    if (quant_logp[i] > quant_logp[arg_q]) arg_q = i;
  }
  s.nll_ref.push_back(-(double)ref_logp[target]);
  s.nll_quant.push_back(-(double)quant_logp[target]);
  s.kl.push_back(kl);
  s.top1_same.push_back(arg_r == arg_q);
}

EvalResult summarize(const TokenStats& s) {
  EvalResult r;
  const size_t n = s.size();
  r.tokens = (int64_t)n;
  if (n == 0) return r;
  r.nll_quant = mean_ci(s.nll_quant);
  r.nll_ref = mean_ci(s.nll_ref);
  r.ppl_quant = exp_of(r.nll_quant);
  r.ppl_ref = exp_of(r.nll_ref);
  std::vector<double> d(n);
  for (size_t i = 0; i < n; ++i) d[i] = s.nll_quant[i] - s.nll_ref[i];
  // ppl_quant / ppl_ref = exp(mean d) exactly; the interval comes from the paired differences.
  const Estimate md = mean_ci(d);
  const double pr = r.ppl_ref.value;
  r.delta_ppl = {pr * std::expm1(md.value), pr * std::expm1(md.lo), pr * std::expm1(md.hi)};
  r.delta_ppl_pct = {100 * std::expm1(md.value), 100 * std::expm1(md.lo), 100 * std::expm1(md.hi)};
  r.kl_mean = mean_ci(s.kl);
  r.kl_p99 = quantile_ci(s.kl, 0.99);
  r.kl_max = *std::max_element(s.kl.begin(), s.kl.end());
  double agree = 0;
  for (uint8_t a : s.top1_same) agree += a;
  const double p = agree / (double)n, se = std::sqrt(p * (1 - p) / (double)n);
  r.top1_pct = {100 * p, 100 * std::max(0.0, p - kZ95 * se), 100 * std::min(1.0, p + kZ95 * se)};
  return r;
}

nlohmann::json to_json(const EvalResult& r) {
  return {{"tokens", r.tokens},
          {"windows", r.windows},
          {"ctx", r.ctx},
          {"nll_quant", est_json(r.nll_quant)},
          {"nll_ref", est_json(r.nll_ref)},
          {"ppl_quant", est_json(r.ppl_quant)},
          {"ppl_ref", est_json(r.ppl_ref)},
          {"delta_ppl", est_json(r.delta_ppl)},
          {"delta_ppl_pct", est_json(r.delta_ppl_pct)},
          {"kl_mean", est_json(r.kl_mean)},
          {"kl_p99", est_json(r.kl_p99)},
          {"kl_max", r.kl_max},
          {"top1_pct", est_json(r.top1_pct)},
          {"seconds", r.seconds}};
}

uint64_t model_fingerprint(const Manifest& m) {
  std::string s;
  for (const TensorEntry& t : m.header().tensors)
    s += t.name + ":" + type_name(t.type) + ":" + hex64(t.checksum) + ";";
  return checksum_bytes(s.data(), s.size());
}

LoadParams eval_load_params(int threads, int64_t ctx) {
  LoadParams lp;
  lp.threads = threads;
  lp.ctx = ctx;
  lp.int8_acts = true;
  return lp;
}

EvalResult evaluate(const Model& quant, const Model* ref, const EvalWindows& w, const EvalOptions& opt,
                    TokenStats* stats_out) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t vocab = quant.config().vocab_size, ctx = w.ctx;
  if (ref && ref->config().vocab_size != vocab)
    throw Error("vocabularies differ: " + std::to_string(ref->config().vocab_size) + " (reference) vs " +
                std::to_string(vocab));
  if (!ref && opt.ref_logits.empty()) throw Error("evaluate: no reference model and no reference file");
  if (!opt.save_ref.empty() && !ref) throw Error("saving reference log-probs needs the reference model");
  if (!opt.save_ref.empty() && !opt.ref_logits.empty())
    throw Error("--save-ref and --ref-logits exclude each other");
  for (const Model* m : {&quant, ref})
    if (m && m->ctx() < ctx)
      throw Error(m->manifest().dir() + ": context " + std::to_string(m->ctx()) + " is shorter than --ctx " +
                  std::to_string(ctx));

  RefFile file;
  const nlohmann::json header = RefFile::make_header(ref, w, vocab);
  if (!opt.save_ref.empty()) file.create(opt.save_ref, header);
  if (!opt.ref_logits.empty()) file.open(opt.ref_logits, header);
  const bool run_ref = opt.ref_logits.empty();

  Session sq(quant);
  std::unique_ptr<Session> sr = run_ref ? std::make_unique<Session>(*ref) : nullptr;
  std::vector<float> lq((size_t)ctx * vocab), lr(run_ref ? (size_t)ctx * vocab : 0);  // (ctx, vocab)
  std::vector<float> pq(vocab), pr(vocab);  // log-probs of one position
  TokenStats stats;
  int64_t done = 0;
  for (int64_t wi = 0; wi < w.windows(); ++wi) {
    const int32_t* tok = w.window(wi);
    const int64_t n_in = w.first + w.scored[wi] - 1;  // the last target is never an input
    sq.reset();
    sq.eval(tok, n_in, lq.data(), /*all_logits=*/true);
    if (run_ref) {
      sr->reset();
      sr->eval(tok, n_in, lr.data(), true);
    }
    for (int64_t j = 0; j < w.scored[wi]; ++j) {
      const int64_t t = w.first + j;  // target position; predicted from position t - 1
      if (run_ref) {
        log_softmax(lr.data() + (t - 1) * vocab, vocab, pr.data());
        if (!opt.save_ref.empty()) file.write(pr.data(), vocab);
      } else {
        file.read(pr.data(), vocab);
      }
      log_softmax(lq.data() + (t - 1) * vocab, vocab, pq.data());
      add_token(pr.data(), pq.data(), vocab, tok[t], stats);
    }
    done += w.scored[wi];
    if (opt.progress) opt.progress(done, w.total_scored);
  }
  if (!opt.save_ref.empty()) file.close_writer();
  EvalResult r = summarize(stats);
  r.windows = w.windows();
  r.ctx = ctx;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (stats_out) *stats_out = std::move(stats);
  return r;
}

std::vector<std::string> check_gates(const EvalResult& r, const Gates& g) {
  std::vector<std::string> failed;
  char buf[160];
  if (g.max_kld && !(r.kl_mean.value <= *g.max_kld)) {
    std::snprintf(buf, sizeof buf, "kld %.6g > max %g", r.kl_mean.value, *g.max_kld);
    failed.push_back(buf);
  }
  if (g.max_ppl_delta_pct && !(r.delta_ppl_pct.value <= *g.max_ppl_delta_pct)) {
    std::snprintf(buf, sizeof buf, "ppl delta %.4g%% > max %g%%", r.delta_ppl_pct.value, *g.max_ppl_delta_pct);
    failed.push_back(buf);
  }
  if (g.min_top1_pct && !(r.top1_pct.value >= *g.min_top1_pct)) {
    std::snprintf(buf, sizeof buf, "top1 %.4g%% < min %g%%", r.top1_pct.value, *g.min_top1_pct);
    failed.push_back(buf);
  }
  return failed;
}

}  // namespace lowbit
