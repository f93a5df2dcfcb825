#include "convert/convert.h"

#include <fnmatch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "convert/hf_model.h"
#include "kernels/error.h"
#include "kernels/quantize.h"
#include "kernels/thread_pool.h"
#include "runtime/manifest.h"

namespace lowbit {

namespace fs = std::filesystem;

namespace {

// Files a runtime tokenizer or generation config may read; copied so a manifest stands alone.
const char* const kTokenizerFiles[] = {
    "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "vocab.json", "merges.txt", "generation_config.json"};

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

QType recipe_type(const ConvertOptions& opt, const std::string& name, bool is_norm_or_bias,
                  bool is_embedding_or_head) {
  QType t;
  if (is_norm_or_bias) return {Base::f32, 32};
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

ConvertSummary convert_model(const std::string& hf_dir, const std::string& out_dir,
                             const ConvertOptions& opt) {
  const auto start = std::chrono::steady_clock::now();
  if (opt.bits != 1 && opt.bits != 2 && opt.bits != 4 && opt.bits != 8 && opt.bits != 16 && opt.bits != 32)
    throw Error("--bits " + std::to_string(opt.bits) + " is not one of 1, 2, 4, 8, 16, 32");
  linear_type(opt);  // validates group and scheme before any work
  for (const auto& [glob, type] : opt.keep) parse_type(type);
  if (fs::exists(out_dir) && !opt.force)
    throw Error(out_dir + ": already exists (use --force to replace it)");

  const HfModel model = HfModel::open(hf_dir);
  const ModelConfig& cfg = model.config();
  const std::vector<TensorSpec> specs = expected_tensors(cfg);

  fs::path out_path = fs::absolute(fs::path(out_dir)).lexically_normal();
  if (out_path.filename().empty()) out_path = out_path.parent_path();
  const fs::path tmp = out_path.parent_path() /
                       (out_path.filename().string() + ".lowbit-tmp-" + std::to_string(getpid()));
  ConvertSummary sum;
  try {
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    ThreadPool pool(opt.threads);
    ManifestHeader h;
    h.lowbit_version = LOWBIT_VERSION_STRING;
    h.config = cfg;
    std::ofstream weights(tmp / kWeightsFile, std::ios::binary);
    if (!weights) throw Error((tmp / kWeightsFile).string() + ": cannot create");
    int64_t offset = 0, bytes_total = 0, bytes_done = 0;
    for (const TensorSpec& s : specs) bytes_total += (int64_t)model.get(s.name).info->size;

    for (size_t i = 0; i < specs.size(); ++i) {
      const TensorSpec& s = specs[i];
      if (opt.cancel && opt.cancel->load()) throw Error("interrupted; nothing was written");
      const bool is_embed = s.role == Role::embed || s.role == Role::lm_head;
      TensorEntry e;
      e.name = s.name;
      e.shape = s.shape;
      e.type = recipe_type(opt, s.name, s.is_norm_or_bias, is_embed);
      if (e.shape.size() == 1 && e.type.base != Base::f32)
        throw Error("--keep: tensor '" + s.name + "' is a vector and stays f32");
      std::vector<float> w = model.read_f32(s.name);
      const HfTensor& src = model.get(s.name);
      src.file->drop_pages(*src.info);  // bounded memory: only this tensor's pages stay resident
      for (float& v : w) {
        if (std::isfinite(v)) continue;
        if (!opt.allow_nonfinite)
          throw Error(hf_dir + ": tensor '" + s.name + "' holds a non-finite value (" +
                      std::to_string(v) + "); fix the checkpoint or pass --allow-nonfinite");
        v = 0.0f;
        ++sum.nonfinite_replaced;
      }
      const int64_t rows = e.rows(), cols = e.cols();
      std::vector<uint8_t> packed(q_layout(e.type, rows, cols).bytes);
      try {
        quantize(e.type, w.data(), rows, cols, packed.data(), opt.quantizer, &pool);
      } catch (const Error& err) {
        throw Error("tensor '" + s.name + "': " + err.what());
      }
      e.offset = offset;
      e.bytes = (int64_t)packed.size();
      e.checksum = checksum_bytes(packed.data(), packed.size());
      weights.write(reinterpret_cast<const char*>(packed.data()), (std::streamsize)packed.size());
      const int64_t padded = round_up(e.bytes, kTensorAlign);
      write_zeros(weights, padded - e.bytes);
      offset += padded;
      if (!weights) throw Error((tmp / kWeightsFile).string() + ": write failed (disk full?)");
      sum.weights += rows * cols;
      bytes_done += (int64_t)model.get(s.name).info->size;
      h.tensors.push_back(std::move(e));
      if (opt.progress) opt.progress({(int64_t)i + 1, (int64_t)specs.size(), s.name, bytes_done, bytes_total});
    }
    weights.close();
    if (!weights) throw Error((tmp / kWeightsFile).string() + ": write failed");

    for (const char* f : kTokenizerFiles) {
      const fs::path src = fs::path(hf_dir) / f;
      if (!fs::exists(src)) continue;
      fs::copy_file(src, tmp / f);
      h.tokenizer_files.push_back(f);
    }
    h.recipe = {{"bits", opt.bits},
                {"group", opt.group == 0 ? nlohmann::json("row") : nlohmann::json(opt.group)},
                {"scheme", opt.bits >= 16 ? "none" : linear_type(opt).scheme == Scheme::asym ? "asym" : "sym"},
                {"quantizer", quantizer_name(opt.quantizer)},
                {"linear_type", type_name(linear_type(opt))},
                {"keep", nlohmann::json::array()},
                {"allow_nonfinite", opt.allow_nonfinite},
                {"nonfinite_replaced", sum.nonfinite_replaced},
                {"source", fs::absolute(hf_dir).lexically_normal().string()}};
    for (const auto& [glob, type] : opt.keep) h.recipe["keep"].push_back(glob + "=" + type);
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
    sum.tensors = (int64_t)specs.size();
    sum.input_bytes = bytes_total;
    sum.output_bytes = offset;
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return sum;
}

}  // namespace lowbit
