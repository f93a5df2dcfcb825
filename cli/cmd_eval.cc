// lowbit eval: a quantized manifest against its fp32 reference, or a sweep over quantization
// settings of one HF model (eval/eval.h). Exit codes: 0 ok, 1 error, 2 usage, 3 a gate failed.
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/model_arg.h"
#include "cli/progress.h"
#include "convert/load.h"
#include "kernels/error.h"
#include "eval/eval.h"
#include "runtime/mapped_file.h"

namespace fs = std::filesystem;

namespace lowbit::cli {
namespace {

constexpr int kGateFailed = 3;

const char* kEvalFooter =
    "usage: lowbit eval QUANT_MANIFEST (--ref FP32_MANIFEST | --ref-logits F) --text FILE [options]\n"
    "       lowbit eval --sweep HF_DIR --text FILE [--bits ..] [--groups ..] [--quantizers ..] [--plot OUT]\n"
    "The text is tokenized whole and cut into --ctx windows (default 256), each starting with BOS;\n"
    "the second half of each window is scored (--max-tokens: stop after T scored tokens, 0 = all).\n"
    "Reports perplexity of both models, delta perplexity, mean and p99 KL(P_fp32 || P_quant) and\n"
    "top-1 agreement, each with a 95% confidence interval. --save-ref stores the fp32 log-probs\n"
    "(4 bytes x vocab per scored token); --ref-logits reuses them (then --ref may be left out).\n"
    "Gates (exit status 3 when one fails): --max-kld nats, --max-ppl-delta-pct %, --min-top1 %.\n"
    "--plot runs the lowbit package's plot.py with a Python that has matplotlib:\n"
    "$LOWBIT_PYTHON, else the Python of the installed lowbit package or the source tree's .venv,\n"
    "else python3; a plot that cannot be made is an error (exit status 1).\n";

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string est(const char* f, const Estimate& e) {
  return fmt(f, e.value) + " [" + fmt(f, e.lo) + ", " + fmt(f, e.hi) + "]";
}

void print_result(const EvalResult& r) {
  std::printf("%lld scored tokens in %lld windows of %lld, %.1f s\n", (long long)r.tokens,
              (long long)r.windows, (long long)r.ctx, r.seconds);
  std::printf("%-22s %-12s %s\n", "metric", "value", "95% CI");
  auto line = [](const char* name, const char* f, const Estimate& e) {
    std::printf("%-22s %-12s [%s, %s]\n", name, fmt(f, e.value).c_str(), fmt(f, e.lo).c_str(), fmt(f, e.hi).c_str());
  };
  line("ppl quant", "%.4f", r.ppl_quant);
  line("ppl fp32", "%.4f", r.ppl_ref);
  line("delta ppl", "%+.4f", r.delta_ppl);
  line("delta ppl %", "%+.3f", r.delta_ppl_pct);
  line("KL mean (nats)", "%.6f", r.kl_mean);
  line("KL p99 (nats)", "%.5f", r.kl_p99);
  std::printf("%-22s %.5f\n", "KL max (nats)", r.kl_max);
  line("same top-1 %", "%.2f", r.top1_pct);
}

void write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream f(path);
  f << j.dump(1) << "\n";
  if (!f) throw Error(path + ": cannot write");
}

// The directory holding this executable, then its parents: where plot.py and a Python are
// looked for.
std::vector<fs::path> exe_ancestors() {
  std::vector<fs::path> out;
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return out;
  fs::path p = fs::path(std::string(buf, (size_t)n)).parent_path();
  for (int i = 0; i < 6 && !p.empty(); ++i, p = p.parent_path()) {
    out.push_back(p);
    if (p == p.parent_path()) break;
  }
  return out;
}

// Runs argv (quiet: output to /dev/null); returns the exit status (-1 if it could not start).
int run_process(const std::vector<std::string>& argv, bool quiet) {
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (quiet) {
      if (std::FILE* devnull = std::fopen("/dev/null", "w")) {
        dup2(fileno(devnull), STDOUT_FILENO);
        dup2(fileno(devnull), STDERR_FILENO);
      }
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Draws the sweep with lowbit/plot.py, run as a file so that it needs only matplotlib (a CMake
// build has no compiled lowbit._core for `python -m lowbit.plot` to import). Two layouts:
//  - the pip-installed package: <prefix>/lib/pythonX.Y/site-packages/lowbit/bin/lowbit, with
//    plot.py one level up, and the package's Python in $LOWBIT_PYTHON (set by python -m lowbit and
//    the `lowbit` script) or in <prefix>/bin;
//  - the source tree: build/lowbit, with python/lowbit/plot.py and .venv beside build/.
// Throws Error saying why when the plot cannot be made: a requested plot is part of the result.
void plot_sweep(const std::string& json_path, const std::string& out_path) {
  const std::vector<fs::path> up = exe_ancestors();
  std::string script;
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("LOWBIT_PYTHON"); env && *env) candidates.push_back(env);
  if (up.size() >= 2 && up[0].filename() == "bin" && fs::exists(up[1] / "plot.py")) {
    script = (up[1] / "plot.py").string();
    if (up.size() >= 6) candidates.push_back((up[5] / "bin/python3").string());
  }
  for (const fs::path& p : up) {
    if (fs::exists(p / ".venv/bin/python")) candidates.push_back((p / ".venv/bin/python").string());
    if (script.empty() && fs::exists(p / "python/lowbit/plot.py")) script = (p / "python/lowbit/plot.py").string();
  }
  candidates.push_back("python3");
  if (script.empty())
    throw Error("--plot: lowbit/plot.py not found beside the lowbit executable (installed package) nor in "
                "python/lowbit/ of a source tree above it");
  std::string tried;
  for (const std::string& py : candidates) {
    if (run_process({py, "-c", "import matplotlib"}, true) != 0) {
      tried += (tried.empty() ? "" : ", ") + py;
      continue;
    }
    const int rc = run_process({py, script, json_path, out_path}, false);
    if (rc != 0) throw Error("--plot: " + py + " " + script + " exited with status " + std::to_string(rc));
    std::printf("wrote %s\n", out_path.c_str());
    return;
  }
  throw Error("--plot: no Python with matplotlib (tried " + tried + "; set LOWBIT_PYTHON)");
}

int sweep_main(const std::string& hf_dir, const std::string& text, SweepOptions opt, const std::string& json_out,
               const std::string& plot_out) {
  ProgressBar bar("sweep");
  opt.progress = [&](const std::string& stage, double f, const std::string& detail) {
    bar.update(f, stage + " " + detail);
  };
  const SweepResult res = run_sweep(hf_dir, text, opt);
  bar.finish();
  std::printf("sweep of %s on %s, ctx %lld, %lld scored tokens\n", hf_dir.c_str(), text.c_str(),
              (long long)res.ctx, (long long)(res.rows.empty() ? 0 : res.rows[0].result.tokens));
  std::printf("%-22s %7s %9s %9s %24s %26s %8s %16s\n", "type", "bpw", "bytes", "ppl", "dppl % [95% CI]",
              "KL mean [95% CI]", "KL p99", "top-1 % [CI]");
  for (const SweepRow& r : res.rows) {
    const EvalResult& e = r.result;
    std::printf("%-22s %7.3f %9lld %9.4f %24s %26s %8.4f %16s\n", r.name.c_str(), r.bits_per_weight,
                (long long)r.size_bytes, e.ppl_quant.value, est("%+.2f", e.delta_ppl_pct).c_str(),
                est("%.5f", e.kl_mean).c_str(), e.kl_p99.value, est("%.1f", e.top1_pct).c_str());
  }
  std::string json_path = json_out;
  if (json_path.empty() && !plot_out.empty())
    json_path = (fs::temp_directory_path() / ("lowbit-sweep-" + std::to_string(getpid()) + ".json")).string();
  if (!json_path.empty()) write_json(json_path, to_json(res));
  if (!json_out.empty()) std::printf("wrote %s\n", json_out.c_str());
  if (!plot_out.empty()) {
    try {
      plot_sweep(json_path, plot_out);
    } catch (...) {
      if (json_out.empty()) fs::remove(json_path);
      throw;
    }
    if (json_out.empty()) fs::remove(json_path);
  }
  return 0;
}

// A check of comma-separated lists: each item must pass item_ok.
std::function<std::string(const std::string&)> list_of(std::function<std::string(const std::string&)> item_ok) {
  return [item_ok](const std::string& v) -> std::string {
    const std::vector<std::string> items = split_list(v);
    if (items.empty()) return "'" + v + "' has no items";
    for (const std::string& i : items)
      if (std::string why = item_ok(i); !why.empty()) return why;
    return {};
  };
}

int eval_main(int argc, char** argv) {
  std::string quant_dir, ref_dir, text, json_out, save_ref, ref_logits, sweep_dir, plot_out, work_dir, models;
  std::string bits_list, groups_list, quantizers_list;
  int64_t ctx = 256, max_tokens = 0;
  int threads = 0;
  bool per_tensor = false;
  double max_kld = 0, max_ppl_delta_pct = 0, min_top1 = 0;
  Gates gates;
  SweepOptions sopt;

  Args args("lowbit eval", "Accuracy of a quantized model against its fp32 self (perplexity, KL divergence, top-1).",
            kEvalFooter);
  args.positional("QUANT_MANIFEST", quant_dir, "the quantized model: manifest, GGUF, HF directory or stored name (not with --sweep)").metavar("MODEL");
  args.text("--ref", ref_dir, "the fp32 model (a path or stored name)").metavar("MODEL");
  add_models(args, models);
  args.text("--text", text, "UTF-8 text file to score").metavar("FILE").required();
  add_ctx(args, ctx, "tokens per window (default 256)");
  args.integer("--max-tokens", max_tokens, "stop after T scored tokens (default 0: the whole text)", 0).metavar("T");
  args.text("--json", json_out, "write the results as JSON to OUT").metavar("OUT");
  args.flag("--per-tensor", per_tensor, "also the error of every matmul on real activations (needs --ref)");
  args.text("--save-ref", save_ref, "store the fp32 log-probs in F").metavar("F");
  args.text("--ref-logits", ref_logits, "reuse log-probs stored with --save-ref").metavar("F");
  args.number("--max-kld", max_kld, "gate: mean KL divergence at most X nats");
  args.number("--max-ppl-delta-pct", max_ppl_delta_pct, "gate: perplexity at most Y % above fp32").metavar("Y");
  args.number("--min-top1", min_top1, "gate: same top-1 token at least Z % of the time, in [0, 100]")
      .metavar("Z")
      .check([](const std::string& v) -> std::string {
        const double d = std::strtod(v.c_str(), nullptr);
        return d < 0 || d > 100 ? "'" + v + "' must be in [0, 100]" : std::string();
      });
  bool fp32_acts = false;
  args.flag("--fp32-acts", fp32_acts,
            "keep activations fp32 where the ISA has such a path (8-bit grouped weights in windows of "
            "128+ tokens on AVX2): the weights' own error, without activation rounding");
  add_threads(args, threads);
  args.text("--sweep", sweep_dir, "sweep the quantization settings of this HF model instead").metavar("HF_DIR");
  args.text("--bits", bits_list, "with --sweep: bit widths (default 8,4,2,1)")
      .metavar("8,4,..")
      .check(list_of([](const std::string& i) { return integer_problem(i, 1, 64); }));
  args.text("--groups", groups_list, "with --sweep: group sizes or row (default row,32,64,128)")
      .metavar("row,32,..")
      .check(list_of([](const std::string& i) { return i == "row" ? std::string() : integer_problem(i, 1, UINT32_MAX); }));
  args.text("--quantizers", quantizers_list, "with --sweep: rtn, search (default both)")
      .metavar("rtn,search")
      .check(list_of([](const std::string& i) {
        return i == "rtn" || i == "search" ? std::string() : "'" + i + "' is not rtn or search";
      }));
  args.text("--plot", plot_out, "with --sweep: draw bits per weight against KL to OUT.png or .svg").metavar("OUT");
  args.text("--work-dir", work_dir, "with --sweep: where the converted models go").metavar("DIR");
  if (!args.parse(argc, argv)) return 0;
  if (args.given("--max-kld")) gates.max_kld = max_kld;
  if (args.given("--max-ppl-delta-pct")) gates.max_ppl_delta_pct = max_ppl_delta_pct;
  if (args.given("--min-top1")) gates.min_top1_pct = min_top1;
  const bool sweep_lists = args.given("--bits") || args.given("--groups") || args.given("--quantizers");
  if (args.given("--bits")) {
    sopt.bits.clear();
    for (const auto& b : split_list(bits_list)) sopt.bits.push_back(std::stoi(b));
  }
  if (args.given("--groups")) {
    sopt.groups.clear();
    for (const auto& g : split_list(groups_list)) sopt.groups.push_back(g == "row" ? 0 : (uint32_t)std::stoul(g));
  }
  if (args.given("--quantizers")) {
    sopt.quantizers.clear();
    for (const auto& q : split_list(quantizers_list)) sopt.quantizers.push_back(parse_quantizer(q));
  }
  std::vector<std::string> pos;
  if (!quant_dir.empty()) pos.push_back(quant_dir);
  if (!sweep_dir.empty()) {
    if (!pos.empty() || !ref_dir.empty() || per_tensor || !save_ref.empty() || !ref_logits.empty() ||
        gates.max_kld || gates.max_ppl_delta_pct || gates.min_top1_pct)
      throw UsageError("--sweep takes HF_DIR and the sweep options only (no manifest, --ref, gates or reference files)");
    sopt.ctx = ctx;
    sopt.max_tokens = max_tokens;
    sopt.threads = threads;
    sopt.work_dir = work_dir;
    return sweep_main(sweep_dir, text, sopt, json_out, plot_out);
  }
  if (sweep_lists || !plot_out.empty() || !work_dir.empty())
    throw UsageError("--bits, --groups, --quantizers, --plot and --work-dir go with --sweep");
  if (pos.size() != 1) throw UsageError("QUANT_MANIFEST is required (or --sweep HF_DIR)");
  if (ref_dir.empty() && ref_logits.empty()) throw UsageError("--ref or --ref-logits is required");
  if (!save_ref.empty() && !ref_logits.empty()) throw UsageError("--save-ref and --ref-logits exclude each other");
  if (per_tensor && ref_dir.empty()) throw UsageError("--per-tensor needs --ref");

  LoadParams lp = eval_load_params(threads, ctx);
  if (fp32_acts) lp.int8_acts = false;
  std::unique_ptr<Model> quant = load_model(resolve_model(pos[0], models), lp);
  std::unique_ptr<Model> ref = ref_dir.empty() ? nullptr : load_model(resolve_model(ref_dir, models), lp);
  const Tokenizer& tok = ref ? ref->tokenizer() : quant->tokenizer();
  const EvalWindows windows = make_windows(tok, read_file(text, "the text file"), text, ctx, max_tokens);

  EvalOptions eo;
  eo.save_ref = save_ref;
  eo.ref_logits = ref_logits;
  ProgressBar bar("eval");
  const auto t0 = std::chrono::steady_clock::now();
  eo.progress = [&](int64_t done, int64_t total) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    bar.update((double)done / (double)total, fmt("%.0f tok/s", s > 0 ? done / s : 0.0));
  };
  const EvalResult r = evaluate(*quant, ref.get(), windows, eo);
  bar.finish();
  std::printf("%s vs %s on %s\n", pos[0].c_str(), ref ? ref_dir.c_str() : ref_logits.c_str(), text.c_str());
  print_result(r);
  if (!save_ref.empty()) std::printf("wrote reference log-probs to %s\n", save_ref.c_str());

  nlohmann::json j = to_json(r);
  j["quant"] = pos[0];
  j["ref"] = ref_dir;
  j["text"] = text;
  if (per_tensor) {
    ProgressBar tbar("per-tensor");
    TensorErrorOptions to;
    to.progress = [&](int64_t done, int64_t total) {
      tbar.update((double)done / (double)total, std::to_string(done) + "/" + std::to_string(total));
    };
    const std::vector<TensorError> errs = tensor_errors(*quant, *ref, windows, to);
    tbar.finish();
    std::printf("\n%-44s %-13s %11s %11s %11s %6s\n", "tensor", "type", "rel ||dW||", "rel ||dWx||",
                "kernel", "rows");
    j["tensors"] = nlohmann::json::array();
    for (const TensorError& e : errs) {
      std::printf("%-44s %-13s %11.5f %11.5f %11.5f %6lld\n", e.name.c_str(), e.type.c_str(), e.weight_rel_err,
                  e.output_rel_err, e.kernel_rel_err, (long long)e.act_rows);
      j["tensors"].push_back(to_json(e));
    }
  }
  const std::vector<std::string> failed = check_gates(r, gates);
  j["gates_failed"] = failed;
  if (!json_out.empty()) {
    write_json(json_out, j);
    std::printf("wrote %s\n", json_out.c_str());
  }
  for (const std::string& f : failed) std::fprintf(stderr, "gate failed: %s\n", f.c_str());
  return failed.empty() ? 0 : kGateFailed;
}

Registrar reg_eval("eval", "accuracy of a quantized model against its fp32 self (ppl, KL, top-1)", eval_main);

}  // namespace
}  // namespace lowbit::cli
