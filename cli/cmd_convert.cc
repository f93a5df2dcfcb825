// lowbit convert / lowbit verify.
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/progress.h"
#include "convert/allocate.h"
#include "convert/calib.h"
#include "convert/convert.h"
#include "kernels/error.h"
#include "runtime/manifest.h"

namespace lowbit::cli {
namespace {

std::atomic<bool> g_cancel{false};
extern "C" void on_signal(int) { g_cancel.store(true); }

const char* kConvertFooter =
    "Without --bits a GGUF file keeps each tensor's own type where lowbit has it (Q4_0, Q4_1, Q8_0,\n"
    "F16, ... exactly) and requantizes the others at no fewer bits (Q6_K -> q8, Q4_K -> q4), printing\n"
    "the relative error each one gained; an HF directory gets --bits 4.\n"
    "Defaults: --group 32, --scheme sym at 8 bits and asym below, --quantizer search;\n"
    "norms stay f32, embeddings and lm_head q8_g32_sym (f16/f32 with --bits 16/32).\n"
    "TYPE is f32, f16, bf16, qB (B bits, group 32) or qB_gG_sym|asym / qB_row_sym|asym, or\n"
    "qB_gG_asym_s6 (scales and minima as 6-bit codes: q4_g32_asym_s6 is 4.4 bits per weight).\n"
    "--calib TEXT runs the source at fp32 over the first --calib-tokens tokens of TEXT (windows of\n"
    "--calib-ctx, each starting with BOS) and keeps each projection's mean squared input per channel;\n"
    "the search quantizer then minimizes the error weighted by it (as llama.cpp's imatrix). The text's\n"
    "name, checksum and token count go into the manifest's recipe.\n"
    "--calib-chat QUESTIONS (one per line) calibrates on conversations instead of, or after, TEXT: each\n"
    "question goes through the model's own chat template, the source at fp32 answers it greedily (at\n"
    "most --calib-chat-tokens tokens), and the prompt, the answer and its end token are one window. A\n"
    "chat model quantized this way keeps more of its chat (docs/ACCURACY.md section 4).\n"
    "--gptq (with --calib, --calib-chat or --calib-load) quantizes every projection by GPTQ: columns in order, each\n"
    "one's rounding error spread over the columns not yet quantized through the inverse of its\n"
    "inputs' second moment (collected on the calibration windows), which minimizes the error of the\n"
    "projection's output rather than of its weights; --gptq-damp adds that fraction of the mean\n"
    "diagonal to the moment (default 0.01).\n"
    "--target-bpw X picks every matrix's type among 1/2/4/8-bit types and f16 to minimize the\n"
    "predicted KL divergence within X bits per weight (the whole weights.bin); the choice is printed\n"
    "and stored in the recipe (convert/allocate.h says how it predicts).\n";

int convert_main(int argc, char** argv) {
  ConvertOptions opt;
  std::string source, out_dir, group = "32", scheme, quantizer;
  std::vector<std::string> keep;
  Args args("lowbit convert", "Converts a HuggingFace directory or a GGUF file into a quantized manifest.",
            kConvertFooter);
  args.positional("SOURCE", source, "HuggingFace model directory (config.json, *.safetensors, tokenizer) or GGUF file")
      .metavar("SOURCE")
      .required();
  args.positional("OUT_DIR", out_dir, "manifest directory to write").metavar("DIR").required();
  args.integer("--bits", opt.bits, "bits of the linear layers: 1, 2, 4, 8 (quantized), 16 (f16) or 32 (f32)")
      .metavar("B");
  args.text("--group", group, "weights per scale: 32, 64, 128, 256 or row").metavar("G").check([](const std::string& v) {
    return v == "row" ? std::string() : integer_problem(v, 1, UINT32_MAX);
  });
  args.choice("--scheme", scheme, "sym or asym (zero point)", {"sym", "asym"});
  args.choice("--quantizer", quantizer, "rtn (round to nearest) or search (least squared error)", {"rtn", "search"});
  args.texts("--keep", keep, "NAME_GLOB=TYPE: the type of the matching tensors; repeatable, the last match wins")
      .metavar("K")
      .check([](const std::string& v) -> std::string {
        const auto eq = v.rfind('=');
        return eq == std::string::npos || eq == 0 ? "'" + v + "' is not NAME_GLOB=TYPE" : std::string();
      });
  CalibSources src;
  std::string calib_save;
  args.text("--calib", src.text_file, "calibrate on this text file (held out from what you evaluate on)").metavar("TEXT");
  args.integer("--calib-tokens", src.text_tokens, "tokens of --calib to run (default 8192)", 2).metavar("N");
  args.text("--calib-chat", src.questions_file, "calibrate on the model's own answers to these questions (one per line)")
      .metavar("QUESTIONS");
  args.integer("--calib-chat-tokens", src.answer_tokens, "tokens per answer of --calib-chat at most (default 200)", 1)
      .metavar("N");
  args.integer("--calib-ctx", src.ctx, "tokens per calibration window (default 512)", 2).metavar("N");
  args.text("--calib-save", calib_save, "write the calibration statistics (JSON) to this file").metavar("FILE");
  std::string calib_load;
  args.text("--calib-load", calib_load, "use statistics written by --calib-save instead of --calib").metavar("FILE");
  bool gptq = false;
  args.flag("--gptq", gptq, "quantize by GPTQ on the calibration's inputs (needs --calib, --calib-chat or --calib-load)");
  args.number("--gptq-damp", opt.gptq_damp, "GPTQ damping, a fraction of the mean diagonal (default 0.01)").metavar("F");
  double target_bpw = 0;
  args.number("--target-bpw", target_bpw,
              "choose each matrix's type so weights.bin is at most X bits per weight (needs a calibration)")
      .metavar("X");
  add_threads(args, opt.threads);
  args.flag("--force", opt.force, "replace OUT_DIR if it exists");
  args.flag("--allow-nonfinite", opt.allow_nonfinite, "store NaN/inf weights as 0 instead of failing");
  if (!args.parse(argc, argv)) return 0;
  opt.source_types = !args.given("--bits");
  check_gptq_damp(opt.gptq_damp);  // flags checked before any calibration runs
  const bool run_calib = !src.text_file.empty() || !src.questions_file.empty();
  if (run_calib && !calib_load.empty()) throw Error("--calib/--calib-chat and --calib-load exclude each other");
  if (gptq && !run_calib && calib_load.empty()) throw Error("--gptq needs --calib TEXT, --calib-chat QUESTIONS or --calib-load FILE");
  if (args.given("--calib-tokens") && src.text_file.empty()) throw Error("--calib-tokens needs --calib TEXT");
  if (args.given("--calib-chat-tokens") && src.questions_file.empty())
    throw Error("--calib-chat-tokens needs --calib-chat QUESTIONS");
  if (!gptq && args.given("--gptq-damp")) throw Error("--gptq-damp needs --gptq");
  if (!quantizer.empty()) opt.quantizer = parse_quantizer(quantizer);
  opt.group = group == "row" ? 0 : (uint32_t)std::stoul(group);
  if (!scheme.empty()) opt.scheme = scheme == "sym" ? (int)Scheme::sym : (int)Scheme::asym;
  for (const std::string& k : keep) {
    const auto eq = k.rfind('=');
    opt.keep.emplace_back(k.substr(0, eq), k.substr(eq + 1));
  }
  CalibStats calib;
  InputMoments moments;
  std::unique_ptr<Model> f32;  // the source at fp32, imported once for calibration and moments
  if (run_calib) {
    if (!src.text_file.empty())
      std::fprintf(stderr, "calibrating on %s (%lld tokens, windows of %lld)...\n", src.text_file.c_str(),
                   (long long)src.text_tokens, (long long)src.ctx);
    if (!src.questions_file.empty())
      std::fprintf(stderr, "calibrating on the answers to %s (%lld tokens each at most)...\n",
                   src.questions_file.c_str(), (long long)src.answer_tokens);
    src.progress = [](int64_t done, int64_t total) {
      std::fprintf(stderr, "\ranswered %lld of %lld questions", (long long)done, (long long)total);
      if (done == total) std::fprintf(stderr, "\n");
    };
    f32 = load_f32_model(source, opt.threads);
    // With --gptq the input moments are collected in the same pass (one fp32 run, not two).
    calib = collect_calibration(*f32, src, gptq ? &moments : nullptr);
    std::fprintf(stderr, "calibrated: %lld tokens in %zu windows (%lld conversations), %zu projections\n",
                 (long long)calib.tokens, calib.windows.size(), (long long)calib.conversations, calib.tensors.size());
    opt.calib = &calib;
    if (!calib_save.empty()) {
      std::ofstream f(calib_save);
      f << calib.to_json().dump() << "\n";
      if (!f) throw Error(calib_save + ": write failed (--calib-save)");
    }
  } else if (!calib_save.empty()) {
    throw Error("--calib-save needs --calib or --calib-chat");
  }
  if (!calib_load.empty()) {
    std::ifstream f(calib_load);
    if (!f) throw Error(calib_load + ": cannot read (--calib-load)");
    nlohmann::json j;
    try {
      f >> j;
    } catch (const nlohmann::json::exception& e) {
      throw Error(calib_load + ": not JSON (" + e.what() + ")");
    }
    calib = CalibStats::from_json(j, calib_load);
    opt.calib = &calib;
  }
  if (gptq) {
    if (!f32) {  // --calib-load: the statistics came from the file, the moments need a pass
      std::fprintf(stderr, "collecting input moments for GPTQ on %zu windows...\n", calib.windows.size());
      moments = collect_input_moments(*load_f32_model(source, opt.threads), calib.windows);
    }
    opt.moments = &moments;
  }
  f32.reset();
  Allocation alloc;
  if (args.given("--target-bpw")) {
    if (!opt.calib)
      throw Error("--target-bpw needs --calib TEXT, --calib-chat QUESTIONS or --calib-load FILE (the sensitivities are measured on it)");
    AllocationOptions ao;
    ao.target_bpw = target_bpw;
    ao.progress = [](const std::string& stage, double f) {
      std::fprintf(stderr, "\rallocating: %s %3.0f%%", stage.c_str(), 100 * f);
      if (f >= 1) std::fprintf(stderr, "\n");
    };
    opt.source_types = false;
    alloc = allocate_bits(source, opt, calib, ao);
    for (const auto& [name, type] : alloc.types) opt.tensor_types[name] = type;
    opt.allocation = &alloc;
    std::printf("allocation for %.3f bits/weight (probe type %s):\n", target_bpw, alloc.probe_type.c_str());
    for (const auto& [role, g] : alloc.role_gain)
      std::printf("  role %-8s probe KL %.5f  gain %.4g\n", role.c_str(), alloc.role_probe_kl[role], g);
    for (const auto& [name, type] : alloc.types) std::printf("  %-48s %s\n", name.c_str(), type_name(type).c_str());
    for (const auto& [name, kl] : alloc.plan_kl)
      std::printf("  plan %-44s measured KL %.5f%s\n", name.c_str(), kl, name == alloc.plan ? "  (chosen)" : "");
    std::printf("planned %.4f bits/weight (%lld of %lld bytes), predicted KL %.5f\n", alloc.bits_per_weight,
                (long long)alloc.bytes, (long long)alloc.budget_bytes, alloc.predicted_kl);
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  opt.cancel = &g_cancel;
  ProgressBar bar("convert");
  opt.progress = [&](const ConvertProgress& p) {
    // A tensor requantized from another quantized type: say what it cost.
    const bool float_source = p.source_type == "F32" || p.source_type == "F16" || p.source_type == "BF16";
    if (p.rel_error >= 0 && !float_source) {
      char err[32];
      std::snprintf(err, sizeof err, "%.3g", p.rel_error);
      bar.note(p.name + ": " + p.source_type + " -> " + p.type + ", relative error " + err);
    }
    bar.update((double)p.bytes_done / (double)std::max<int64_t>(1, p.bytes_total),
               std::to_string(p.tensor) + "/" + std::to_string(p.tensors) + " " + p.name);
  };
  const ConvertSummary s = convert_model(source, out_dir, opt);
  bar.finish();
  std::printf(
      "converted %lld tensors, %lld weights: %.1f MB -> %.1f MB, %.3f bits/weight, %.2f s, %.1f MB/s "
      "of input\n",
      (long long)s.tensors, (long long)s.weights, s.input_bytes / 1e6, s.output_bytes / 1e6,
      s.bits_per_weight(), s.seconds, s.input_mb_per_s());
  if (s.nonfinite_replaced)
    std::printf("warning: %lld non-finite weights were stored as 0 (--allow-nonfinite)\n",
                (long long)s.nonfinite_replaced);
  std::printf("wrote %s\n", out_dir.c_str());
  return 0;
}

int verify_main(int argc, char** argv) {
  std::string dir;
  Args args("lowbit verify",
            "Re-reads a manifest: structure, every tensor against the architecture, and every checksum.");
  args.positional("MANIFEST_DIR", dir, "manifest directory").metavar("DIR").required();
  if (!args.parse(argc, argv)) return 0;
  const Manifest m = Manifest::open(dir);
  m.verify_checksums();
  std::printf("%s: ok (%zu tensors, %llu bytes of weights, format_version %d, architecture %s)\n",
              dir.c_str(), m.header().tensors.size(), (unsigned long long)m.weights_bytes(),
              m.header().format_version, m.config().arch.c_str());
  return 0;
}

Registrar reg_convert("convert", "HF safetensors directory -> quantized manifest", convert_main);
Registrar reg_verify("verify", "check a manifest's structure and checksums", verify_main);

}  // namespace
}  // namespace lowbit::cli
