// lowbit logits: the raw next-token logits of a prompt, for tests against independent
// reference implementations and for debugging.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/model_arg.h"
#include "convert/load.h"
#include "kernels/error.h"
#include "runtime/model.h"

namespace lowbit::cli {
namespace {

const char* kFooter =
    "Runs the ids (or the encoded text, with BOS) as one batch and writes the logits of every\n"
    "position: --out FILE gets raw little-endian float32 (n_positions x vocab); otherwise the\n"
    "top N (default 5) ids and logits of each position are printed.\n";

int logits_main(int argc, char** argv) {
  std::string model_dir, ids_text, prompt, out, models;
  int top = 5;
  LoadParams lp;
  std::string isa = "auto";
  Args args("lowbit logits", "Prints or dumps the logits of a prompt (testing, debugging).", kFooter);
  args.positional("MODEL", model_dir, "manifest directory, GGUF file, HF directory or stored model name").metavar("MODEL").required();
  Opt ids_opt = args.text("--ids", ids_text, "token ids, separated by spaces").metavar("\"ID ID ...\"");
  Opt prompt_opt = args.text("-p", prompt, "text to encode instead of --ids");
  ids_opt.excludes(prompt_opt);
  args.text("--out", out, "write raw float32 logits to FILE").metavar("FILE");
  args.integer("--top", top, "ids printed per position (default 5)", 1, 1 << 30);
  add_isa(args, isa);
  add_threads(args, lp.threads);
  add_models(args, models);
  add_ctx(args, lp.ctx, "context length to allocate (default: the model's trained context; at least the ids given)");
  if (!args.parse(argc, argv)) return 0;
  lp.isa = parse_isa(isa);
  const bool have_prompt = args.given("-p");
  if (!have_prompt && !args.given("--ids")) throw UsageError("--ids or -p is required");
  lp.load_tokenizer = have_prompt;
  auto model = load_model(resolve_model(model_dir, models), lp);
  std::vector<int32_t> ids;
  if (have_prompt) {
    ids = model->tokenizer().encode(prompt);
  } else {
    std::istringstream in(ids_text);
    long long v;
    while (in >> v) ids.push_back((int32_t)v);
    if (!in.eof()) throw Error("--ids must be integers separated by spaces");
  }
  if (ids.empty()) throw Error("no tokens to evaluate");
  const int64_t vocab = model->config().vocab_size;
  std::vector<float> logits(ids.size() * vocab);
  Session s(*model);
  s.eval(ids.data(), (int64_t)ids.size(), logits.data(), /*all_logits=*/true);
  if (!out.empty()) {
    std::ofstream f(out, std::ios::binary);
    f.write(reinterpret_cast<const char*>(logits.data()), (std::streamsize)(logits.size() * sizeof(float)));
    if (!f) throw Error(out + ": write failed");
    return 0;
  }
  for (size_t t = 0; t < ids.size(); ++t) {
    std::vector<int32_t> order(vocab);
    for (int64_t v = 0; v < vocab; ++v) order[v] = (int32_t)v;
    const float* row = &logits[t * vocab];
    const int n = std::min<int64_t>(top, vocab);
    std::partial_sort(order.begin(), order.begin() + n, order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    std::printf("%zu (id %d):", t, ids[t]);
    for (int j = 0; j < n; ++j) std::printf(" %d:%.4f", order[j], row[order[j]]);
    std::printf("\n");
  }
  return 0;
}

Registrar reg("logits", "print or dump the logits of a prompt (testing, debugging)", logits_main);

}  // namespace
}  // namespace lowbit::cli
