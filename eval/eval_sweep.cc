// The sweep (eval.h): convert one HF model at every bits x group x quantizer, evaluate each
// against the fp32 conversion of the same model on the same windows.
#include <unistd.h>

#include <filesystem>
#include <random>

#include "convert/convert.h"
#include "kernels/error.h"
#include "eval/eval.h"
#include "runtime/mapped_file.h"

namespace fs = std::filesystem;

namespace lowbit {
namespace {

// Removes the directory it made, unless the caller named one.
struct WorkDir {
  explicit WorkDir(const std::string& requested) {
    if (!requested.empty()) {
      path = requested;
      fs::create_directories(path);
      return;
    }
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("lowbit-sweep-" + std::to_string(getpid()) + "-" + std::to_string(rd() % 1000000));
    fs::create_directories(path);
    owned = true;
  }
  ~WorkDir() {
    std::error_code ec;
    if (owned) fs::remove_all(path, ec);
  }
  fs::path path;
  bool owned = false;
};

}  // namespace

SweepResult run_sweep(const std::string& hf_dir, const std::string& text_path, const SweepOptions& opt) {
  if (opt.bits.empty() || opt.groups.empty() || opt.quantizers.empty())
    throw Error("sweep: --bits, --groups and --quantizers each need at least one value");
  for (int b : opt.bits)
    if (b != 1 && b != 2 && b != 4 && b != 8) throw Error("sweep: --bits " + std::to_string(b) + " is not 1, 2, 4 or 8");
  const std::string text = read_file(text_path, "the text file");
  WorkDir work(opt.work_dir);
  const int64_t n_configs = (int64_t)(opt.bits.size() * opt.groups.size() * opt.quantizers.size());
  const double steps = 1.0 + (double)n_configs;  // the reference counts as one step
  auto report = [&](const std::string& stage, double step, const std::string& detail) {
    if (opt.progress) opt.progress(stage, step / steps, detail);
  };

  const LoadParams lp = eval_load_params(opt.threads, opt.ctx);

  ConvertOptions base;
  base.threads = opt.threads;
  base.force = true;
  SweepResult res;
  res.hf_dir = hf_dir;
  res.text = text_path;
  res.ctx = opt.ctx;

  // The fp32 reference, evaluated against itself, saving its log-probs for every other row.
  const fs::path ref_dir = work.path / "f32";
  const fs::path ref_file = work.path / "f32.lbref";
  ConvertOptions o32 = base;
  o32.bits = 32;
  report("f32", 0, "converting");
  const ConvertSummary s32 = convert_model(hf_dir, ref_dir.string(), o32);
  std::unique_ptr<Model> ref = Model::load(ref_dir.string(), lp);
  const EvalWindows windows = make_windows(ref->tokenizer(), text, text_path, opt.ctx, opt.max_tokens);
  EvalOptions eo;
  eo.save_ref = ref_file.string();
  eo.progress = [&](int64_t done, int64_t total) {
    report("f32", (double)done / (double)total, std::to_string(done) + "/" + std::to_string(total) + " tokens");
  };
  SweepRow r32;
  r32.name = "f32";
  r32.type = "f32";
  r32.bits = 32;
  r32.bits_per_weight = s32.bits_per_weight();
  r32.size_bytes = s32.output_bytes;
  r32.result = evaluate(*ref, ref.get(), windows, eo);
  res.rows.push_back(std::move(r32));

  int64_t step = 1;
  for (Quantizer qz : opt.quantizers) {
    for (uint32_t g : opt.groups) {
      for (int b : opt.bits) {
        ConvertOptions o = base;
        o.bits = b;
        o.group = g;
        o.quantizer = qz;
        SweepRow row;
        row.bits = b;
        row.group = g;
        row.quantizer = quantizer_name(qz);
        const std::string label = "q" + std::to_string(b) + (g == 0 ? std::string("_row") : "_g" + std::to_string(g)) +
                                  " " + row.quantizer;
        const fs::path dir = work.path / ("q" + std::to_string(b) + "_" + std::to_string(g) + "_" + row.quantizer);
        report(label, (double)step, "converting");
        const ConvertSummary s = convert_model(hf_dir, dir.string(), o);
        row.bits_per_weight = s.bits_per_weight();
        row.size_bytes = s.output_bytes;
        {
          std::unique_ptr<Model> q = Model::load(dir.string(), lp);
          // The linears' type as the converter recorded it (default scheme: sym at 8 bits, asym below).
          row.type = q->manifest().header().recipe.value("linear_type", label);
          row.name = row.type + " " + row.quantizer;
          EvalOptions e;
          e.ref_logits = ref_file.string();
          e.progress = [&](int64_t done, int64_t total) {
            report(row.name, (double)step + (double)done / (double)total,
                   std::to_string(done) + "/" + std::to_string(total) + " tokens");
          };
          row.result = evaluate(*q, ref.get(), windows, e);
        }
        std::error_code ec;
        fs::remove_all(dir, ec);
        res.rows.push_back(std::move(row));
        ++step;
      }
    }
  }
  return res;
}

nlohmann::json to_json(const SweepResult& s) {
  nlohmann::json rows = nlohmann::json::array();
  for (const SweepRow& r : s.rows)
    rows.push_back({{"name", r.name},
                    {"type", r.type},
                    {"bits", r.bits},
                    {"group", r.group == 0 ? nlohmann::json("row") : nlohmann::json(r.group)},
                    {"quantizer", r.quantizer},
                    {"bits_per_weight", r.bits_per_weight},
                    {"size_bytes", r.size_bytes},
                    {"result", to_json(r.result)}});
  return {{"hf_dir", s.hf_dir}, {"text", s.text}, {"ctx", s.ctx}, {"rows", rows}};
}

}  // namespace lowbit
