// lowbit convert / lowbit verify.
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/progress.h"
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
    "TYPE is f32, f16, bf16, qB (B bits, group 32) or qB_gG_sym|asym / qB_row_sym|asym.\n";

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
  add_threads(args, opt.threads);
  args.flag("--force", opt.force, "replace OUT_DIR if it exists");
  args.flag("--allow-nonfinite", opt.allow_nonfinite, "store NaN/inf weights as 0 instead of failing");
  if (!args.parse(argc, argv)) return 0;
  opt.source_types = !args.given("--bits");
  if (!quantizer.empty()) opt.quantizer = parse_quantizer(quantizer);
  opt.group = group == "row" ? 0 : (uint32_t)std::stoul(group);
  if (!scheme.empty()) opt.scheme = scheme == "sym" ? (int)Scheme::sym : (int)Scheme::asym;
  for (const std::string& k : keep) {
    const auto eq = k.rfind('=');
    opt.keep.emplace_back(k.substr(0, eq), k.substr(eq + 1));
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
