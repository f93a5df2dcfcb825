#include "convert/calib.h"

#include <cmath>
#include <cstdio>
#include <algorithm>

#include "convert/convert.h"
#include "kernels/error.h"
#include "kernels/matmul.h"
#include "runtime/manifest.h"
#include "runtime/mapped_file.h"

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

namespace {

std::string xxh3_text(uint64_t h) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
  return std::string("xxh3:") + hex;
}

uint64_t parse_xxh3(const std::string& ck, const char* field) {
  if (ck.rfind("xxh3:", 0) != 0 || ck.size() != 21 || ck.find_first_not_of("0123456789abcdef", 5) != std::string::npos)
    throw Error(std::string(field) + " '" + ck + "' is not xxh3:<16 hex>");
  return std::stoull(ck.substr(5), nullptr, 16);
}

}  // namespace

nlohmann::json CalibStats::recipe() const {
  nlohmann::json r = {{"ctx", ctx}, {"tokens", tokens}};
  if (!text_file.empty()) {
    r["text"] = text_file;
    r["text_checksum"] = xxh3_text(text_checksum);
  }
  if (!questions_file.empty())
    r["chat"] = {{"questions", questions_file},
                 {"checksum", xxh3_text(questions_checksum)},
                 {"answer_tokens", answer_tokens},
                 {"conversations", conversations}};
  return r;
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
    if (!j.contains("text") && !j.contains("chat")) throw Error("neither 'text' nor 'chat' says what was run");
    if (j.contains("text")) {
      st.text_file = j.at("text").get<std::string>();
      st.text_checksum = parse_xxh3(j.at("text_checksum").get<std::string>(), "text_checksum");
    }
    if (j.contains("chat")) {
      const nlohmann::json& c = j.at("chat");
      st.questions_file = c.at("questions").get<std::string>();
      st.questions_checksum = parse_xxh3(c.at("checksum").get<std::string>(), "chat.checksum");
      st.answer_tokens = c.at("answer_tokens").get<int64_t>();
      st.conversations = c.at("conversations").get<int64_t>();
    }
    st.ctx = j.at("ctx").get<int64_t>();
    st.tokens = j.at("tokens").get<int64_t>();
    st.windows = j.at("windows").get<std::vector<std::vector<int32_t>>>();
    if (st.conversations < 0 || st.conversations > (int64_t)st.windows.size())
      throw Error("chat.conversations " + std::to_string(st.conversations) + " is not between 0 and the " +
                  std::to_string(st.windows.size()) + " windows");
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

// Every projection's H from the observer's calls of a pass over the windows.
class MomentsAccumulator {
 public:
  void observe(const std::string& name, const float* x, int64_t m, int64_t k) {
    auto it = canonical_.find(name);
    if (it == canonical_.end()) {
      // Projections of one step that read the same input (q, k, v) arrive one after another.
      const bool same = !last_name_.empty() && last_.size() == (size_t)(m * k) &&
                        acc_.at(canonical_.at(last_name_))->size() == (size_t)(k * k) &&
                        std::equal(last_.begin(), last_.end(), x);
      it = canonical_.emplace(name, same ? canonical_.at(last_name_) : name).first;
      if (!same) acc_[name] = std::make_shared<std::vector<float>>((size_t)(k * k), 0.0f);
    }
    if (it->second == name) add_moments(x, m, k, *acc_.at(name));
    last_.assign(x, x + m * k);
    last_name_ = name;
  }
  InputMoments finish(int64_t rows) const {
    InputMoments out;
    out.rows = rows;
    for (const auto& [name, c] : canonical_) out.h[name] = acc_.at(c);
    return out;
  }

 private:
  std::map<std::string, std::shared_ptr<std::vector<float>>> acc_;
  std::map<std::string, std::string> canonical_;  // projection -> the one whose H it shares
  std::vector<float> last_;                       // the previous projection's input
  std::string last_name_;
};

}  // namespace

std::vector<std::vector<int32_t>> text_windows(const Tokenizer& tok, const std::string& text_file,
                                               int64_t max_tokens, int64_t ctx, uint64_t* checksum) {
  const std::string text = read_file(text_file, "the calibration text (--calib)");
  *checksum = checksum_bytes(text.data(), text.size());
  const std::vector<int32_t> stream = tok.encode(text, /*add_special=*/false);
  if (stream.empty()) throw Error(text_file + ": the calibration text holds no tokens");
  const int32_t bos = tok.bos_id();
  std::vector<std::vector<int32_t>> windows;
  int64_t fed = 0;
  size_t next = 0;
  while (fed < max_tokens && next < stream.size()) {
    std::vector<int32_t> w;
    const int64_t room = std::min(ctx, max_tokens - fed);
    if (bos >= 0) w.push_back(bos);
    while ((int64_t)w.size() < room && next < stream.size()) w.push_back(stream[next++]);
    if (w.size() < 2) break;  // a lone BOS teaches nothing
    fed += (int64_t)w.size();
    windows.push_back(std::move(w));
  }
  return windows;
}

CalibStats collect_calibration(const Model& model, const CalibSources& src, InputMoments* moments) {
  if (src.text_file.empty() && src.questions_file.empty())
    throw Error("calibration needs a text (--calib) or questions (--calib-chat)");
  if (src.text_tokens < 2)
    throw Error("--calib-tokens " + std::to_string(src.text_tokens) + " is too small (at least 2)");
  if (src.answer_tokens < 1)
    throw Error("--calib-chat-tokens " + std::to_string(src.answer_tokens) + " is too small (at least 1)");
  if (src.ctx < 2) throw Error("calibration context " + std::to_string(src.ctx) + " is too small (at least 2)");
  CalibStats st;
  st.ctx = std::min(src.ctx, model.ctx());
  if (!src.text_file.empty()) {
    st.text_file = src.text_file;
    st.windows = text_windows(model.tokenizer(), src.text_file, src.text_tokens, st.ctx, &st.text_checksum);
  }
  if (!src.questions_file.empty()) {
    st.questions_file = src.questions_file;
    st.answer_tokens = src.answer_tokens;
    std::vector<std::vector<int32_t>> chats =
        chat_windows(model, src.questions_file, src.answer_tokens, st.ctx, &st.questions_checksum, src.progress);
    st.conversations = (int64_t)chats.size();
    for (auto& w : chats) st.windows.push_back(std::move(w));
  }

  MomentsAccumulator acc;
  Session s(model);
  s.set_observer([&](const std::string& name, const float* x, int64_t m, int64_t k) {
    CalibStats::Tensor& t = st.tensors[name];
    if (t.sum_sq.empty()) t.sum_sq.assign((size_t)k, 0.0);
    if ((int64_t)t.sum_sq.size() != k)
      throw Error(ErrorCode::internal, "calibration: tensor '" + name + "' seen with two input widths");
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < k; ++j) t.sum_sq[j] += (double)x[i * k + j] * x[i * k + j];
    t.rows += m;
    if (moments) acc.observe(name, x, m, k);
  });
  // Every row goes through the head too, so lm_head (or the tied embedding) gets statistics.
  std::vector<float> logits;
  for (const std::vector<int32_t>& w : st.windows) {
    logits.resize(w.size() * (size_t)model.config().vocab_size);
    s.reset();
    s.eval(w.data(), (int64_t)w.size(), logits.data(), /*all_logits=*/true);
    st.tokens += (int64_t)w.size();
  }
  st.finish();
  if (moments) *moments = acc.finish(st.tokens);
  return st;
}

std::unique_ptr<Model> load_f32_model(const std::string& source, int threads) {
  ConvertOptions f32;
  f32.bits = 32;
  f32.threads = threads;
  ImportedModel m = import_model(source, f32);
  LoadParams p;
  p.threads = threads;
  return Model::load(Manifest::from_memory(m.header, std::move(m.weights), std::move(m.tokenizer_files), source), p);
}

const std::vector<float>* InputMoments::of(const std::string& tensor) const {
  const auto it = h.find(tensor);
  return it == h.end() ? nullptr : it->second.get();
}

InputMoments collect_input_moments(const Model& model, const std::vector<std::vector<int32_t>>& windows) {
  if (windows.empty()) throw Error("GPTQ: the calibration holds no windows");
  MomentsAccumulator acc;
  Session s(model);
  s.set_observer([&](const std::string& name, const float* x, int64_t m, int64_t k) { acc.observe(name, x, m, k); });
  std::vector<float> logits;
  int64_t rows = 0;
  for (const std::vector<int32_t>& w : windows) {
    if (w.empty()) continue;
    logits.resize(w.size() * (size_t)model.config().vocab_size);
    s.reset();
    s.eval(w.data(), (int64_t)w.size(), logits.data(), /*all_logits=*/true);
    rows += (int64_t)w.size();
  }
  return acc.finish(rows);
}

}  // namespace lowbit
