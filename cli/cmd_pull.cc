// lowbit pull: a model from the Hugging Face Hub or an Ollama registry into the store (server/pull.h).
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <string>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/model_arg.h"
#include "cli/pull.h"
#include "cli/store_format.h"
#include "server/pull.h"
#include "store/blobs.h"
#include "store/model_store.h"

namespace lowbit::cli {
namespace {

const char* kFooter =
    "NAME is a model by Ollama's name for it. hf.co/USER/REPO[:QUANT] is a Hugging Face repository:\n"
    "of GGUF files (the file whose name ends in QUANT; Q4_K_M when none is named, or its only GGUF,\n"
    "kept in its own types) or of safetensors (converted at QUANT: a bit width or an Ollama\n"
    "quantization name; 4 bits when none); $HF_ENDPOINT (default https://huggingface.co), and\n"
    "$HF_TOKEN as a Bearer token when set. Any other NAME, [HOST/][NAMESPACE/]MODEL[:TAG], is an\n"
    "Ollama registry's (registry.ollama.ai, library, latest when left out): its GGUF, with the chat\n"
    "template the GGUF carries, and its system message and parameters as the model's defaults.\n"
    "Each file is checked against its SHA-256; a model pulled again from the same files is up to\n"
    "date (nothing is fetched), a download cut off goes on where it stopped, and downloads are not\n"
    "kept beside the model they became. Stored\n"
    "as hf.co/USER/REPO:QUANT, or MODEL:TAG (NAMESPACE/MODEL:TAG outside library).\n";

int pull_main(int argc, char** argv) {
  std::string name, models;
  int threads = 0;
  bool insecure = false;
  Args args("lowbit pull", "Fetches a model from the Hugging Face Hub into the store.", kFooter);
  args.positional("NAME", name, "hf.co/USER/REPO[:QUANT], or [HOST/][NAMESPACE/]MODEL[:TAG] of an Ollama registry")
      .metavar("NAME")
      .required();
  args.flag("--insecure", insecure, "an Ollama registry over plain HTTP");
  add_threads(args, threads);
  add_models(args, models);
  if (!args.parse(argc, argv)) return 0;
  ModelStore store(models_root(models));
  const StoredModel m = pull_with_progress(store, name, threads, insecure, false);
  std::printf("pulled %s (%s, %s, %s) in %s\n", m.name.c_str(), m.details.parameter_size.c_str(),
              m.details.quantization_level.c_str(), human_bytes(m.size).c_str(), m.dir.c_str());
  return 0;
}

}  // namespace

StoredModel pull_with_progress(ModelStore& store, const std::string& name, int threads, bool insecure, bool quiet) {
  static std::atomic<bool> cancel{false};
  cancel.store(false);
  auto* old_int = std::signal(SIGINT, [](int) { cancel.store(true); });
  auto* old_term = std::signal(SIGTERM, [](int) { cancel.store(true); });
  server::PullOptions opt;
  opt.threads = threads;
  opt.insecure = insecure;
  opt.cancel = &cancel;
  const bool tty = !quiet && isatty(STDERR_FILENO);
  auto restore = [&] {
    std::signal(SIGINT, old_int);
    std::signal(SIGTERM, old_term);
    if (tty) std::fprintf(stderr, "\r\033[K");
  };
  try {
    StoredModel m = server::pull_model(store, BlobStore(store.root()), name, opt, [&](const server::PullProgress& p) {
      if (!tty) return;
      std::string line = p.status;
      if (p.total) line += ": " + human_bytes((int64_t)p.completed) + " / " + human_bytes((int64_t)p.total);
      std::fprintf(stderr, "\r\033[K%.100s", line.c_str());
    });
    restore();
    return m;
  } catch (...) {
    restore();
    throw;
  }
}

namespace {

Registrar reg("pull", "fetch a model from the Hugging Face Hub (hf.co/USER/REPO[:QUANT]) or an Ollama registry", pull_main);

}  // namespace
}  // namespace lowbit::cli
