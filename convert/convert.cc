#include "convert/convert.h"

#include <fnmatch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include "convert/allocate.h"
#include "convert/calib.h"
#include "convert/source.h"
#include "kernels/error.h"
#include "kernels/quantize.h"
#include "kernels/thread_pool.h"
#include "runtime/manifest.h"

namespace lowbit {

namespace fs = std::filesystem;

namespace {

QType linear_type(const ConvertOptions& opt) {
  if (opt.bits == 32) return {Base::f32, 32};
  if (opt.bits == 16) return {Base::f16, 16};
  QType t{Base::q, (uint8_t)opt.bits, Scheme::sym, opt.group};
  t.scheme = opt.scheme >= 0 ? (Scheme)opt.scheme : opt.bits == 8 ? Scheme::sym : Scheme::asym;
  check_type(t);
  return t;
}

void write_zeros(std::ofstream& out, int64_t n) {
  static const char zeros[kTensorAlign] = {};
  out.write(zeros, n);
}

}  // namespace

QType recipe_type(const ConvertOptions& opt, const std::string& name, bool f32,
                  bool is_embedding_or_head) {
  QType t;
  if (f32) return {Base::f32, 32};
  if (is_embedding_or_head) {
    // 8-bit embeddings and head cost little (one lookup row per token; the head is one matrix)
    // and keep the logits close to fp32; below 8 bits they dominate the error of small models.
    t = opt.bits >= 16 ? linear_type(opt) : parse_type("q8_g32_sym");
  } else {
    t = linear_type(opt);
  }
  for (const auto& [glob, type] : opt.keep)
    if (fnmatch(glob.c_str(), name.c_str(), 0) == 0) t = parse_type(type);
  return t;
}

void check_gptq_damp(double damp) {
  if (!(damp > 0 && damp < 1e3)) throw Error("--gptq-damp " + std::to_string(damp) + " is not in (0, 1000)");
}

namespace {

void validate_options(const ConvertOptions& opt) {
  if (opt.bits != 1 && opt.bits != 2 && opt.bits != 4 && opt.bits != 8 && opt.bits != 16 && opt.bits != 32)
    throw Error("--bits " + std::to_string(opt.bits) + " is not one of 1, 2, 4, 8, 16, 32");
  linear_type(opt);  // validates group and scheme before any work
  if (opt.calib && opt.quantizer != Quantizer::search)
    throw Error("--calib needs --quantizer search (round to nearest has no error to weigh)");
  if (opt.moments && !opt.calib) throw Error("--gptq needs --calib TEXT, --calib-chat QUESTIONS or --calib-load FILE");
  if (opt.moments) check_gptq_damp(opt.gptq_damp);
  for (const auto& [glob, type] : opt.keep) parse_type(type);
}

// Where the tensors go: a file written in order, or one buffer sized up front.
class Sink {
 public:
  virtual ~Sink() = default;
  // A buffer for the tensor's bytes; valid until commit().
  virtual uint8_t* begin(const TensorEntry& e) = 0;
  virtual void commit(const TensorEntry& e) = 0;
};

// The type each tensor gets, in file order, before any is read (so an in-memory import can size
// its buffer and a bad --keep fails before work is done).
std::vector<TensorEntry> plan_tensors(const ModelSource& src, const ConvertOptions& opt) {
  std::vector<TensorEntry> out;
  int64_t offset = 0;
  for (const TensorSpec& s : expected_tensors(src.config())) {
    TensorEntry e;
    e.name = s.name;
    e.shape = s.shape;
    const bool is_embed = s.role == Role::embed || s.role == Role::lm_head;
    const std::optional<QType> own = opt.source_types ? src.source_type(s) : std::nullopt;
    e.type = own ? *own : recipe_type(opt, s.name, stays_f32(s), is_embed);
    if (const auto it = opt.tensor_types.find(s.name); it != opt.tensor_types.end()) {
      e.type = it->second;
      for (const auto& [glob, type] : opt.keep)
        if (fnmatch(glob.c_str(), s.name.c_str(), 0) == 0) e.type = parse_type(type);
    }
    if (own)  // --keep still overrides the source's types
      for (const auto& [glob, type] : opt.keep)
        if (fnmatch(glob.c_str(), s.name.c_str(), 0) == 0) e.type = parse_type(type);
    if (e.shape.size() == 1 && e.type.base != Base::f32)
      throw Error("--keep: tensor '" + s.name + "' is a vector and stays f32");
    e.offset = offset;
    e.bytes = q_layout(e.type, e.rows(), e.cols()).bytes;
    offset += round_up(e.bytes, kTensorAlign);
    out.push_back(std::move(e));
  }
  return out;
}

double relative_error(const QType& t, const uint8_t* packed, const std::vector<float>& w, int64_t rows,
                      int64_t cols, ThreadPool& pool) {
  std::vector<float> back(w.size());
  dequantize(t, packed, rows, cols, back.data(), &pool);
  double err = 0, norm = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    err += ((double)back[i] - w[i]) * ((double)back[i] - w[i]);
    norm += (double)w[i] * w[i];
  }
  return norm > 0 ? std::sqrt(err / norm) : std::sqrt(err);
}

// Reads, converts and hands every tensor to the sink; fills the header's tensor table.
ConvertSummary emit_tensors(const ModelSource& src, const ConvertOptions& opt, std::vector<TensorEntry> plan,
                            Sink& sink, ManifestHeader& h) {
  ConvertSummary sum;
  ThreadPool pool(opt.threads);
  const std::vector<TensorSpec> specs = expected_tensors(src.config());
  int64_t bytes_total = 0, bytes_done = 0;
  for (const TensorSpec& s : specs) bytes_total += src.source_bytes(s);
  const std::vector<float>* factored = nullptr;  // the H whose GPTQ factor is in u (q, k, v share one)
  std::vector<float> u;
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& s = specs[i];
    TensorEntry& e = plan[i];
    if (opt.cancel && opt.cancel->load()) throw Error("interrupted; nothing was written");
    const int64_t rows = e.rows(), cols = e.cols();
    uint8_t* dst = sink.begin(e);
    ConvertProgress p{(int64_t)i + 1, (int64_t)specs.size(), s.name, 0, bytes_total, src.source_type_name(s),
                      type_name(e.type)};
    const std::optional<QType> exact = src.exact_type(s);
    if (exact && type_name(*exact) == type_name(e.type)) {
      src.read_exact(s, dst, &pool);
      p.exact = true;
    } else {
      std::vector<float> w = src.read_f32(s, &pool);
      for (float& v : w) {
        if (std::isfinite(v)) continue;
        if (!opt.allow_nonfinite)
          throw Error(src.path() + ": tensor '" + s.name + "' holds a non-finite value (" + std::to_string(v) +
                      "); fix the checkpoint or pass --allow-nonfinite");
        v = 0.0f;
        ++sum.nonfinite_replaced;
      }
      const std::vector<float>* imp = opt.calib ? opt.calib->importance(s.name) : nullptr;
      if (imp && (int64_t)imp->size() != cols)
        throw Error("calibration: tensor '" + s.name + "' has " + std::to_string(cols) + " columns but " +
                    std::to_string(imp->size()) + " statistics");
      const std::vector<float>* h = opt.moments && is_quantized(e.type) ? opt.moments->of(s.name) : nullptr;
      if (h && (int64_t)h->size() != cols * cols)
        throw Error("calibration: tensor '" + s.name + "' has " + std::to_string(cols) + " columns but a " +
                    std::to_string(h->size()) + "-value second moment");
      try {
        if (h) {
          if (h != factored) u = gptq_factor(h->data(), cols, opt.gptq_damp), factored = h;
          quantize_gptq(e.type, w.data(), rows, cols, dst, u.data(), opt.quantizer, &pool, imp ? imp->data() : nullptr);
        } else {
          quantize(e.type, w.data(), rows, cols, dst, opt.quantizer, &pool, imp ? imp->data() : nullptr);
        }
      } catch (const Error& err) {
        throw Error("tensor '" + s.name + "': " + err.what());
      }
      if (is_quantized(e.type)) p.rel_error = relative_error(e.type, dst, w, rows, cols, pool);
    }
    src.release(s);  // bounded memory: only this tensor's pages stay resident
    e.checksum = checksum_bytes(dst, e.bytes);
    sink.commit(e);
    sum.weights += rows * cols;
    bytes_done += src.source_bytes(s);
    p.bytes_done = bytes_done;
    h.tensors.push_back(e);
    if (opt.progress) opt.progress(p);
  }
  sum.tensors = (int64_t)specs.size();
  sum.input_bytes = bytes_total;
  sum.output_bytes = plan.empty() ? 0 : plan.back().offset + round_up(plan.back().bytes, kTensorAlign);
  return sum;
}

nlohmann::json recipe_json(const ModelSource& src, const ConvertOptions& opt, const ConvertSummary& sum) {
  nlohmann::json r = {{"bits", opt.source_types ? nlohmann::json("source") : nlohmann::json(opt.bits)},
                      {"group", opt.group == 0 ? nlohmann::json("row") : nlohmann::json(opt.group)},
                      {"scheme", opt.bits >= 16 ? "none" : linear_type(opt).scheme == Scheme::asym ? "asym" : "sym"},
                      {"quantizer", quantizer_name(opt.quantizer)},
                      {"linear_type", opt.source_types ? "source" : type_name(linear_type(opt))},
                      {"keep", nlohmann::json::array()},
                      {"allow_nonfinite", opt.allow_nonfinite},
                      {"nonfinite_replaced", sum.nonfinite_replaced},
                      {"source", fs::absolute(src.path()).lexically_normal().string()},
                      {"source_format", src.format()}};
  for (const auto& [glob, type] : opt.keep) r["keep"].push_back(glob + "=" + type);
  if (opt.calib) r["calibration"] = opt.calib->recipe();
  if (opt.moments) r["gptq"] = {{"damp", opt.gptq_damp}, {"tokens", opt.moments->rows}};
  if (opt.allocation) r["allocation"] = opt.allocation->to_json();
  return r;
}

ManifestHeader new_header(const ModelSource& src) {
  ManifestHeader h;
  h.lowbit_version = LOWBIT_VERSION_STRING;
  h.config = src.config();
  return h;
}

class FileSink final : public Sink {
 public:
  explicit FileSink(const fs::path& path) : path_(path), out_(path, std::ios::binary) {
    if (!out_) throw Error(path.string() + ": cannot create");
  }
  uint8_t* begin(const TensorEntry& e) override {
    buf_.assign(e.bytes, 0);
    return buf_.data();
  }
  void commit(const TensorEntry& e) override {
    out_.write(reinterpret_cast<const char*>(buf_.data()), (std::streamsize)buf_.size());
    write_zeros(out_, round_up(e.bytes, kTensorAlign) - e.bytes);
    if (!out_) throw Error(path_.string() + ": write failed (disk full?)");
  }
  void close() {
    out_.close();
    if (!out_) throw Error(path_.string() + ": write failed");
  }

 private:
  fs::path path_;
  std::ofstream out_;
  std::vector<uint8_t> buf_;
};

class MemorySink final : public Sink {
 public:
  explicit MemorySink(MappedFile& buf) : buf_(buf) {}
  uint8_t* begin(const TensorEntry& e) override { return buf_.writable_data() + e.offset; }
  void commit(const TensorEntry&) override {}

 private:
  MappedFile& buf_;
};

}  // namespace

ConvertSummary convert_model(const std::string& source, const std::string& out_dir, const ConvertOptions& opt) {
  const auto start = std::chrono::steady_clock::now();
  validate_options(opt);
  if (fs::exists(out_dir) && !opt.force) throw Error(out_dir + ": already exists (use --force to replace it)");
  const std::unique_ptr<ModelSource> src = open_source(source);
  std::vector<TensorEntry> plan = plan_tensors(*src, opt);
  // Made before anything is written, so a tokenizer that cannot be made fails early.
  const std::map<std::string, std::string> tokenizer = src->tokenizer_files();

  fs::path out_path = fs::absolute(fs::path(out_dir)).lexically_normal();
  if (out_path.filename().empty()) out_path = out_path.parent_path();
  const fs::path tmp = out_path.parent_path() /
                       (out_path.filename().string() + ".lowbit-tmp-" + std::to_string(getpid()));
  ConvertSummary sum;
  try {
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    ManifestHeader h = new_header(*src);
    FileSink weights(tmp / kWeightsFile);
    sum = emit_tensors(*src, opt, std::move(plan), weights, h);
    weights.close();
    for (const auto& [name, text] : tokenizer) {
      std::ofstream f(tmp / name, std::ios::binary);
      f.write(text.data(), (std::streamsize)text.size());
      if (!f) throw Error((tmp / name).string() + ": write failed");
      h.tokenizer_files.push_back(name);
    }
    h.recipe = recipe_json(*src, opt, sum);
    {
      std::ofstream mj(tmp / kManifestFile);
      mj << header_to_json(h).dump(1) << "\n";
      if (!mj) throw Error((tmp / kManifestFile).string() + ": write failed");
    }
    if (opt.cancel && opt.cancel->load()) throw Error("interrupted; nothing was written");
    // Publish: the rename is atomic, so OUT_DIR is either absent, the old one, or complete.
    if (fs::exists(out_path)) {
      const fs::path old = out_path.parent_path() /
                           (out_path.filename().string() + ".lowbit-old-" + std::to_string(getpid()));
      fs::rename(out_path, old);
      fs::rename(tmp, out_path);
      fs::remove_all(old);
    } else {
      fs::rename(tmp, out_path);
    }
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return sum;
}

ImportedModel import_model(const std::string& source, const ConvertOptions& opt) {
  const auto start = std::chrono::steady_clock::now();
  validate_options(opt);
  const std::unique_ptr<ModelSource> src = open_source(source);
  std::vector<TensorEntry> plan = plan_tensors(*src, opt);
  ImportedModel m;
  m.tokenizer_files = src->tokenizer_files();
  const int64_t total = plan.empty() ? 0 : plan.back().offset + round_up(plan.back().bytes, kTensorAlign);
  m.weights = MappedFile::allocate((size_t)total, source + " (imported in memory)");
  m.header = new_header(*src);
  MemorySink sink(m.weights);
  m.summary = emit_tensors(*src, opt, std::move(plan), sink, m.header);
  for (const auto& [name, text] : m.tokenizer_files) m.header.tokenizer_files.push_back(name);
  m.header.recipe = recipe_json(*src, opt, m.summary);
  m.summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return m;
}

}  // namespace lowbit
