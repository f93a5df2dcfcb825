// lowbit eval: a quantized manifest against its fp32 reference, or a sweep over quantization
// settings of one HF model (eval/eval.h). Exit codes: 0 ok, 1 error, 2 usage, 3 a gate failed.
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/progress.h"
#include "kernels/error.h"
#include "eval/eval.h"

namespace fs = std::filesystem;

namespace lowbit::cli {
namespace {

constexpr int kGateFailed = 3;

const char* kEvalUsage =
    "usage: lowbit eval QUANT_MANIFEST --ref FP32_MANIFEST --text FILE [--ctx N] [--max-tokens T]\n"
    "         [--json OUT] [--per-tensor] [--save-ref F | --ref-logits F]\n"
    "         [--max-kld X] [--max-ppl-delta-pct Y] [--min-top1 Z] [--threads T]\n"
    "       lowbit eval --sweep HF_DIR --text FILE [--bits 8,4,2,1] [--groups row,32,64,128]\n"
    "         [--quantizers rtn,search] [--ctx N] [--max-tokens T] [--json OUT] [--plot OUT.png|svg]\n"
    "         [--threads T] [--work-dir DIR]\n"
    "The text is tokenized whole and cut into --ctx windows (default 256), each starting with BOS;\n"
    "the second half of each window is scored (--max-tokens: stop after T scored tokens, 0 = all).\n"
    "Reports perplexity of both models, delta perplexity, mean and p99 KL(P_fp32 || P_quant) and\n"
    "top-1 agreement, each with a 95% confidence interval. --save-ref stores the fp32 log-probs\n"
    "(4 bytes x vocab per scored token); --ref-logits reuses them (then --ref may be left out).\n"
    "Gates (exit code 3 when one fails): --max-kld nats, --max-ppl-delta-pct %, --min-top1 %.\n"
    "--plot needs a Python with matplotlib: $LOWBIT_PYTHON, else .venv/bin/python of the\n"
    "source tree, else python3.\n";

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

double parse_double(const std::string& opt, const std::string& v) {
  try {
    size_t used = 0;
    const double d = std::stod(v, &used);
    if (used == v.size()) return d;
  } catch (const std::exception&) {
  }
  throw Error(opt + " takes a number, not '" + v + "'");
}

int64_t parse_int(const std::string& opt, const std::string& v) {
  try {
    size_t used = 0;
    const long long d = std::stoll(v, &used);
    if (used == v.size()) return d;
  } catch (const std::exception&) {
  }
  throw Error(opt + " takes an integer, not '" + v + "'");
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

// The directory holding this executable, then its parents: where the source tree's .venv and
// python/ are looked for.
std::vector<fs::path> exe_ancestors() {
  std::vector<fs::path> out;
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return out;
  fs::path p = fs::path(std::string(buf, (size_t)n)).parent_path();
  for (int i = 0; i < 4 && !p.empty(); ++i, p = p.parent_path()) {
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

// Draws the sweep with python/lowbit/plot.py; prints why when it cannot.
void plot_sweep(const std::string& json_path, const std::string& out_path) {
  std::string python_dir;
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("LOWBIT_PYTHON"); env && *env) candidates.push_back(env);
  for (const fs::path& p : exe_ancestors()) {
    if (candidates.size() < 2 && fs::exists(p / ".venv/bin/python")) candidates.push_back((p / ".venv/bin/python").string());
    if (python_dir.empty() && fs::exists(p / "python/lowbit/plot.py")) python_dir = (p / "python").string();
  }
  candidates.push_back("python3");
  if (python_dir.empty()) {
    std::printf("plot skipped: python/lowbit/plot.py not found near the lowbit executable\n");
    return;
  }
  for (const std::string& py : candidates) {
    if (run_process({py, "-c", "import matplotlib"}, true) != 0) continue;
    // Run as a file, not `-m lowbit.plot`: the package's __init__ needs the compiled _core,
    // which a CMake-only build does not have; plot.py needs only matplotlib.
    const std::string script = python_dir + "/lowbit/plot.py";
    const int rc = run_process({py, script, json_path, out_path}, false);
    if (rc == 0)
      std::printf("wrote %s\n", out_path.c_str());
    else
      std::printf("plot failed: %s %s exited with %d\n", py.c_str(), script.c_str(), rc);
    return;
  }
  std::string tried;
  for (const auto& c : candidates) tried += (tried.empty() ? "" : ", ") + c;
  std::printf("plot skipped: no Python with matplotlib (tried %s; set LOWBIT_PYTHON)\n", tried.c_str());
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
    plot_sweep(json_path, plot_out);
    if (json_out.empty()) fs::remove(json_path);
  }
  return 0;
}

int eval_main(int argc, char** argv) {
  std::string ref_dir, text, json_out, save_ref, ref_logits, sweep_dir, plot_out, work_dir;
  int64_t ctx = 256, max_tokens = 0;
  int threads = 0;
  bool per_tensor = false;
  Gates gates;
  SweepOptions sopt;
  bool sweep_lists = false;
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] { return option_value(argc, argv, i); };
    if (a == "-h" || a == "--help") {
      std::fputs(kEvalUsage, stdout);
      return 0;
    } else if (a == "--ref") {
      ref_dir = value();
    } else if (a == "--text") {
      text = value();
    } else if (a == "--ctx") {
      ctx = parse_int(a, value());
    } else if (a == "--max-tokens") {
      max_tokens = parse_int(a, value());
    } else if (a == "--json") {
      json_out = value();
    } else if (a == "--per-tensor") {
      per_tensor = true;
    } else if (a == "--save-ref") {
      save_ref = value();
    } else if (a == "--ref-logits") {
      ref_logits = value();
    } else if (a == "--max-kld") {
      gates.max_kld = parse_double(a, value());
    } else if (a == "--max-ppl-delta-pct") {
      gates.max_ppl_delta_pct = parse_double(a, value());
    } else if (a == "--min-top1") {
      const double v = parse_double(a, value());
      if (v < 0 || v > 100) throw Error("--min-top1 is a percentage in [0, 100], not " + fmt("%g", v));
      gates.min_top1_pct = v;
    } else if (a == "--threads") {
      threads = (int)parse_int(a, value());
    } else if (a == "--sweep") {
      sweep_dir = value();
    } else if (a == "--bits") {
      sopt.bits.clear();
      for (const auto& b : split_list(value())) sopt.bits.push_back((int)parse_int(a, b));
      sweep_lists = true;
    } else if (a == "--groups") {
      sopt.groups.clear();
      for (const auto& g : split_list(value())) sopt.groups.push_back(g == "row" ? 0 : (uint32_t)parse_int(a, g));
      sweep_lists = true;
    } else if (a == "--quantizers") {
      sopt.quantizers.clear();
      for (const auto& q : split_list(value())) sopt.quantizers.push_back(parse_quantizer(q));
      sweep_lists = true;
    } else if (a == "--plot") {
      plot_out = value();
    } else if (a == "--work-dir") {
      work_dir = value();
    } else if (!a.empty() && a[0] == '-') {
      throw Error("unknown option " + a + "\n" + kEvalUsage);
    } else {
      pos.push_back(a);
    }
  }
  if (text.empty()) {
    std::fputs(kEvalUsage, stderr);
    return 2;
  }
  if (!sweep_dir.empty()) {
    if (!pos.empty() || !ref_dir.empty() || per_tensor || !save_ref.empty() || !ref_logits.empty() ||
        gates.max_kld || gates.max_ppl_delta_pct || gates.min_top1_pct)
      throw Error("--sweep takes HF_DIR and the sweep options only (no manifest, --ref, gates or reference files)");
    sopt.ctx = ctx;
    sopt.max_tokens = max_tokens;
    sopt.threads = threads;
    sopt.work_dir = work_dir;
    return sweep_main(sweep_dir, text, sopt, json_out, plot_out);
  }
  if (sweep_lists || !plot_out.empty() || !work_dir.empty())
    throw Error("--bits, --groups, --quantizers, --plot and --work-dir go with --sweep");
  if (pos.size() != 1 || (ref_dir.empty() && ref_logits.empty())) {
    std::fputs(kEvalUsage, stderr);
    return 2;
  }
  if (!save_ref.empty() && !ref_logits.empty()) throw Error("--save-ref and --ref-logits exclude each other");
  if (per_tensor && ref_dir.empty()) throw Error("--per-tensor needs --ref");

  const LoadParams lp = eval_load_params(threads, ctx);
  std::unique_ptr<Model> quant = Model::load(pos[0], lp);
  std::unique_ptr<Model> ref = ref_dir.empty() ? nullptr : Model::load(ref_dir, lp);
  const Tokenizer& tok = ref ? ref->tokenizer() : quant->tokenizer();
  const EvalWindows windows = make_windows(tok, read_text_file(text), text, ctx, max_tokens);

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
