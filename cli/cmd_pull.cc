// lowbit pull: a model from the Hugging Face Hub into the store (server/hf_pull.h).
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
#include "server/hf_pull.h"
#include "store/blobs.h"
#include "store/model_store.h"

namespace lowbit::cli {
namespace {

const char* kFooter =
    "NAME is Ollama's name for a Hugging Face model: hf.co/USER/REPO[:QUANT]. A repository of GGUF\n"
    "files gives the file whose name ends in QUANT (Q4_K_M when none is named, or its only GGUF), kept\n"
    "in its own types; a repository of safetensors gives its HF model converted at QUANT (a bit width\n"
    "or an Ollama quantization name; 4 bits when none). Each file is checked against the SHA-256 the\n"
    "Hub lists; files already fetched are not fetched again. The model is stored as\n"
    "hf.co/USER/REPO:QUANT (tag 'latest' when no QUANT). The Hub is $HF_ENDPOINT (default\n"
    "https://huggingface.co); $HF_TOKEN, when set, is sent as a Bearer token (private or gated models).\n";

int pull_main(int argc, char** argv) {
  std::string name, models;
  int threads = 0;
  Args args("lowbit pull", "Fetches a model from the Hugging Face Hub into the store.", kFooter);
  args.positional("NAME", name, "hf.co/USER/REPO[:QUANT]").metavar("NAME").required();
  add_threads(args, threads);
  add_models(args, models);
  if (!args.parse(argc, argv)) return 0;
  if (!server::is_hub_name(name))
    throw UsageError("'" + name + "': only Hugging Face models can be pulled, as hf.co/USER/REPO[:QUANT]");
  ModelStore store(models_root(models));
  const StoredModel m = pull_with_progress(store, name, threads, false);
  std::printf("pulled %s (%s, %s, %s) in %s\n", m.name.c_str(), m.details.parameter_size.c_str(),
              m.details.quantization_level.c_str(), human_bytes(m.size).c_str(), m.dir.c_str());
  return 0;
}

}  // namespace

StoredModel pull_with_progress(ModelStore& store, const std::string& name, int threads, bool quiet) {
  static std::atomic<bool> cancel{false};
  cancel.store(false);
  auto* old_int = std::signal(SIGINT, [](int) { cancel.store(true); });
  auto* old_term = std::signal(SIGTERM, [](int) { cancel.store(true); });
  server::PullOptions opt;
  opt.threads = threads;
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

Registrar reg("pull", "fetch a model from the Hugging Face Hub (hf.co/USER/REPO[:QUANT]) into the store", pull_main);

}  // namespace
}  // namespace lowbit::cli
