// lowbit convert / lowbit verify.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/command.h"
#include "cli/progress.h"
#include "convert/convert.h"
#include "kernels/error.h"
#include "runtime/manifest.h"

namespace lowbit::cli {
namespace {

std::atomic<bool> g_cancel{false};
extern "C" void on_signal(int) { g_cancel.store(true); }

const char* kConvertUsage =
    "usage: lowbit convert HF_DIR OUT_DIR --bits {1,2,4,8,16,32} [--group 32|64|128|256|row]\n"
    "         [--scheme sym|asym] [--quantizer rtn|search] [--keep NAME_GLOB=TYPE ...]\n"
    "         [--threads T] [--force] [--allow-nonfinite]\n"
    "Defaults: --group 32, --scheme sym at 8 bits and asym below, --quantizer search;\n"
    "norms stay f32, embeddings and lm_head q8_g32_sym (f16/f32 with --bits 16/32).\n"
    "TYPE is f32, f16, bf16, qB (B bits, group 32) or qB_gG_sym|asym / qB_row_sym|asym.\n";

int convert_main(int argc, char** argv) {
  ConvertOptions opt;
  std::vector<std::string> pos;
  bool bits_set = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&] { return option_value(argc, argv, i); };
    if (a == "-h" || a == "--help") {
      std::fputs(kConvertUsage, stdout);
      return 0;
    } else if (a == "--bits") {
      opt.bits = std::stoi(value());
      bits_set = true;
    } else if (a == "--group") {
      const std::string g = value();
      opt.group = g == "row" ? 0 : (uint32_t)std::stoul(g);
    } else if (a == "--scheme") {
      const std::string s = value();
      if (s != "sym" && s != "asym") throw Error("--scheme must be sym or asym, not '" + s + "'");
      opt.scheme = s == "sym" ? (int)Scheme::sym : (int)Scheme::asym;
    } else if (a == "--quantizer") {
      opt.quantizer = parse_quantizer(value());
    } else if (a == "--keep") {
      const std::string k = value();
      const auto eq = k.rfind('=');
      if (eq == std::string::npos || eq == 0) throw Error("--keep takes NAME_GLOB=TYPE, not '" + k + "'");
      opt.keep.emplace_back(k.substr(0, eq), k.substr(eq + 1));
    } else if (a == "--threads") {
      opt.threads = std::stoi(value());
    } else if (a == "--force") {
      opt.force = true;
    } else if (a == "--allow-nonfinite") {
      opt.allow_nonfinite = true;
    } else if (!a.empty() && a[0] == '-') {
      throw Error("unknown option " + a + "\n" + kConvertUsage);
    } else {
      pos.push_back(a);
    }
  }
  if (pos.size() != 2 || !bits_set) {
    std::fputs(kConvertUsage, stderr);
    return 2;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  opt.cancel = &g_cancel;
  ProgressBar bar("convert");
  opt.progress = [&](const ConvertProgress& p) {
    bar.update((double)p.bytes_done / (double)std::max<int64_t>(1, p.bytes_total),
               std::to_string(p.tensor) + "/" + std::to_string(p.tensors) + " " + p.name);
  };
  const ConvertSummary s = convert_model(pos[0], pos[1], opt);
  bar.finish();
  std::printf(
      "converted %lld tensors, %lld weights: %.1f MB -> %.1f MB, %.3f bits/weight, %.2f s, %.1f MB/s "
      "of input\n",
      (long long)s.tensors, (long long)s.weights, s.input_bytes / 1e6, s.output_bytes / 1e6,
      s.bits_per_weight(), s.seconds, s.input_mb_per_s());
  if (s.nonfinite_replaced)
    std::printf("warning: %lld non-finite weights were stored as 0 (--allow-nonfinite)\n",
                (long long)s.nonfinite_replaced);
  std::printf("wrote %s\n", pos[1].c_str());
  return 0;
}

int verify_main(int argc, char** argv) {
  if (argc != 2 || !std::strcmp(argv[1], "--help")) {
    std::fputs("usage: lowbit verify MANIFEST_DIR\nRe-reads a manifest: structure, every tensor "
               "against the architecture, and every checksum.\n", argc == 2 ? stdout : stderr);
    return argc == 2 ? 0 : 2;
  }
  const Manifest m = Manifest::open(argv[1]);
  m.verify_checksums();
  std::printf("%s: ok (%zu tensors, %llu bytes of weights, format_version %d, architecture %s)\n",
              argv[1], m.header().tensors.size(), (unsigned long long)m.weights_bytes(),
              m.header().format_version, m.config().arch.c_str());
  return 0;
}

Registrar reg_convert("convert", "HF safetensors directory -> quantized manifest", convert_main);
Registrar reg_verify("verify", "check a manifest's structure and checksums", verify_main);

}  // namespace
}  // namespace lowbit::cli
