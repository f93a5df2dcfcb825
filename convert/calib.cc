#include "convert/calib.h"

#include <cmath>
#include <cstdio>
#include <algorithm>
#include <fstream>
#include <iterator>

#include "convert/convert.h"
#include "kernels/error.h"
#include "kernels/matmul.h"
#include "runtime/manifest.h"

namespace lowbit {

const std::vector<float>* CalibStats::importance(const std::string& tensor) const {
  const auto it = mean_sq.find(tensor);
  return it == mean_sq.end() ? nullptr : &it->second;
}

void CalibStats::finish() {
  mean_sq.clear();
  for (const auto& [name, t] : tensors) {
    std::vector<float>& m = mean_sq[name];
    m.resize(t.sum_sq.size());
    for (size_t j = 0; j < m.size(); ++j) m[j] = t.rows ? (float)(t.sum_sq[j] / (double)t.rows) : 0.0f;
  }
}

nlohmann::json CalibStats::recipe() const {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)text_checksum);
  return {{"text", text_file}, {"text_checksum", std::string("xxh3:") + hex}, {"ctx", ctx}, {"tokens", tokens}};
}

nlohmann::json CalibStats::to_json() const {
  nlohmann::json j = recipe();
  j["windows"] = windows;
  nlohmann::json t = nlohmann::json::object();
  for (const auto& [name, s] : tensors) t[name] = {{"rows", s.rows}, {"sum_sq", s.sum_sq}};
  j["tensors"] = std::move(t);
  return j;
}

CalibStats CalibStats::from_json(const nlohmann::json& j, const std::string& label) {
  CalibStats st;
  try {
    st.text_file = j.at("text").get<std::string>();
    const std::string ck = j.at("text_checksum").get<std::string>();
    if (ck.rfind("xxh3:", 0) != 0 || ck.size() != 21) throw Error("text_checksum '" + ck + "' is not xxh3:<16 hex>");
    st.text_checksum = std::stoull(ck.substr(5), nullptr, 16);
    st.ctx = j.at("ctx").get<int64_t>();
    st.tokens = j.at("tokens").get<int64_t>();
    st.windows = j.at("windows").get<std::vector<std::vector<int32_t>>>();
    for (const auto& [name, t] : j.at("tensors").items()) {
      CalibStats::Tensor& x = st.tensors[name];
      x.rows = t.at("rows").get<int64_t>();
      x.sum_sq = t.at("sum_sq").get<std::vector<double>>();
      for (double v : x.sum_sq)
        if (!(v >= 0) || !std::isfinite(v)) throw Error("tensor '" + name + "': sum_sq holds " + std::to_string(v));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(label + ": not a calibration file (" + e.what() + ")");
  } catch (const Error& e) {
    throw Error(label + ": " + e.what());
  }
  st.finish();
  return st;
}

CalibStats collect_calibration(const Model& model, const std::string& text_file, int64_t max_tokens,
                               int64_t ctx) {
  if (max_tokens < 2) throw Error("--calib-tokens " + std::to_string(max_tokens) + " is too small (at least 2)");
  if (ctx < 2) throw Error("calibration context " + std::to_string(ctx) + " is too small (at least 2)");
  std::ifstream f(text_file, std::ios::binary);
  if (!f) throw Error(text_file + ": cannot read the calibration text");
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CalibStats st;
  st.text_file = text_file;
  st.text_checksum = checksum_bytes(text.data(), text.size());
  st.ctx = ctx = std::min(ctx, model.ctx());
  const Tokenizer& tok = model.tokenizer();
  const std::vector<int32_t> stream = tok.encode(text, /*add_special=*/false);
  if (stream.empty()) throw Error(text_file + ": the calibration text holds no tokens");
  const int32_t bos = tok.bos_id();

  Session s(model);
  s.set_observer([&](const std::string& name, const float* x, int64_t m, int64_t k) {
    CalibStats::Tensor& t = st.tensors[name];
    if (t.sum_sq.empty()) t.sum_sq.assign((size_t)k, 0.0);
    if ((int64_t)t.sum_sq.size() != k)
      throw Error(ErrorCode::internal, "calibration: tensor '" + name + "' seen with two input widths");
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < k; ++j) t.sum_sq[j] += (double)x[i * k + j] * x[i * k + j];
    t.rows += m;
  });
  // Every row goes through the head too, so lm_head (or the tied embedding) gets statistics.
  std::vector<float> logits((size_t)(ctx * model.config().vocab_size));
  size_t next = 0;
  while (st.tokens < max_tokens && next < stream.size()) {
    std::vector<int32_t> w;
    const int64_t room = std::min(ctx, max_tokens - st.tokens);
    if (bos >= 0) w.push_back(bos);
    while ((int64_t)w.size() < room && next < stream.size()) w.push_back(stream[next++]);
    if (w.size() < 2) break;  // a lone BOS teaches nothing
    s.reset();
    s.eval(w.data(), (int64_t)w.size(), logits.data(), /*all_logits=*/true);
    st.tokens += (int64_t)w.size();
    st.windows.push_back(std::move(w));
  }
  st.finish();
  return st;
}

CalibStats collect_calibration(const std::string& source, const std::string& text_file, int64_t max_tokens,
                               int64_t ctx, int threads) {
  ConvertOptions f32;
  f32.bits = 32;
  f32.threads = threads;
  ImportedModel m = import_model(source, f32);
  LoadParams p;
  p.threads = threads;
  const std::unique_ptr<Model> model =
      Model::load(Manifest::from_memory(m.header, std::move(m.weights), std::move(m.tokenizer_files), source), p);
  return collect_calibration(*model, text_file, max_tokens, ctx);
}

const std::vector<float>* InputMoments::of(const std::string& tensor) const {
  const auto it = h.find(tensor);
  return it == h.end() ? nullptr : it->second.get();
}

namespace {

// H += X^T X for X (m, k): the fp32 matmul kernels with X^T (k, m) as both the weights and the
// input, so the k^2 m products run at the kernels' rate rather than a scalar loop's.
void add_moments(const float* x, int64_t m, int64_t k, std::vector<float>& h) {
  std::vector<float> xt((size_t)(k * m)), y((size_t)(k * k));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) xt[j * m + i] = x[i * k + j];
  matmul(QMatrix{QType{Base::f32, 32}, k, m, reinterpret_cast<const uint8_t*>(xt.data())}, xt.data(), k, y.data());
  for (size_t i = 0; i < h.size(); ++i) h[i] += y[i];
}

}  // namespace

InputMoments collect_input_moments(const Model& model, const std::vector<std::vector<int32_t>>& windows) {
  if (windows.empty()) throw Error("GPTQ: the calibration holds no windows");
  InputMoments out;
  std::map<std::string, std::shared_ptr<std::vector<float>>> acc;
  std::map<std::string, std::string> canonical;  // projection -> the one whose H it shares
  std::vector<float> last;                        // the previous projection's input
  std::string last_name;
  Session s(model);
  s.set_observer([&](const std::string& name, const float* x, int64_t m, int64_t k) {
    auto it = canonical.find(name);
    if (it == canonical.end()) {
      // Projections of one step that read the same input (q, k, v) arrive one after another.
      const bool same = !last_name.empty() && last.size() == (size_t)(m * k) && acc.at(canonical.at(last_name))->size() == (size_t)(k * k) &&
                        std::equal(last.begin(), last.end(), x);
      it = canonical.emplace(name, same ? canonical.at(last_name) : name).first;
      if (!same) acc[name] = std::make_shared<std::vector<float>>((size_t)(k * k), 0.0f);
    }
    if (it->second == name) add_moments(x, m, k, *acc.at(name));
    last.assign(x, x + m * k);
    last_name = name;
  });
  std::vector<float> logits;
  for (const std::vector<int32_t>& w : windows) {
    if (w.empty()) continue;
    logits.resize(w.size() * (size_t)model.config().vocab_size);
    s.reset();
    s.eval(w.data(), (int64_t)w.size(), logits.data(), /*all_logits=*/true);
    out.rows += (int64_t)w.size();
  }
  for (const auto& [name, c] : canonical) out.h[name] = acc.at(c);
  return out;
}

InputMoments collect_input_moments(const std::string& source, const std::vector<std::vector<int32_t>>& windows,
                                   int threads) {
  ConvertOptions f32;
  f32.bits = 32;
  f32.threads = threads;
  ImportedModel m = import_model(source, f32);
  LoadParams p;
  p.threads = threads;
  const std::unique_ptr<Model> model =
      Model::load(Manifest::from_memory(m.header, std::move(m.weights), std::move(m.tokenizer_files), source), p);
  return collect_input_moments(*model, windows);
}

}  // namespace lowbit
