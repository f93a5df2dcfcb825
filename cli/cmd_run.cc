// lowbit run: stream a generation from a manifest.
#include <cstdio>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "kernels/error.h"
#include "runtime/generate.h"

namespace lowbit::cli {
namespace {

const char* kUsage =
    "usage: lowbit run MODEL -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]\n"
    "         [--repeat-penalty R] [--seed S] [--stop STR ...] [--ctx C] [--threads T]\n"
    "         [--isa auto|scalar|avx2|neon] [--no-bos] [--json]\n"
    "MODEL is a manifest directory (lowbit convert). Echoes the prompt and streams the text, then\n"
    "prints prompt and generation tokens/s on stderr; --json prints one object at the end instead.\n"
    "Defaults: -n 256, --temp 0 (greedy), --ctx = the model's context.\n";

int run_main(int argc, char** argv) {
  std::string model_dir, prompt;
  bool have_prompt = false, json_out = false;
  GenerateParams gp;
  LoadParams lp;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] { return option_value(argc, argv, i); };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "-p" || a == "--prompt") {
      prompt = value();
      have_prompt = true;
    } else if (a == "-n") {
      gp.max_tokens = std::stoll(value());
    } else if (a == "--temp") {
      gp.sampler.temperature = std::stof(value());
    } else if (a == "--top-k") {
      gp.sampler.top_k = std::stoi(value());
    } else if (a == "--top-p") {
      gp.sampler.top_p = std::stof(value());
    } else if (a == "--min-p") {
      gp.sampler.min_p = std::stof(value());
    } else if (a == "--repeat-penalty") {
      gp.sampler.repetition_penalty = std::stof(value());
    } else if (a == "--seed") {
      gp.sampler.seed = std::stoull(value());
    } else if (a == "--stop") {
      gp.stop.push_back(value());
    } else if (a == "--ctx") {
      lp.ctx = std::stoll(value());
    } else if (a == "--threads") {
      lp.threads = std::stoi(value());
    } else if (a == "--isa") {
      lp.isa = parse_isa(value());
    } else if (a == "--no-bos") {
      gp.add_bos = false;
    } else if (a == "--json") {
      json_out = true;
    } else if (!a.empty() && a[0] == '-') {
      throw Error("unknown option " + a + "\n" + kUsage);
    } else if (model_dir.empty()) {
      model_dir = a;
    } else {
      throw Error("unexpected argument '" + a + "'");
    }
  }
  if (model_dir.empty() || !have_prompt) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  auto model = Model::load(model_dir, lp);
  Session session(*model);
  if (!json_out) {  // the continuation reads on from the prompt, as it would in a terminal
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    std::fflush(stdout);
  }
  const GenerateResult r = generate(session, prompt, gp, [&](const std::string& piece, int32_t) {
    if (!json_out) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    return true;
  });
  if (json_out) {
    nlohmann::json j = {{"text", r.text},
                        {"prompt_tokens", r.prompt_ids.size()},
                        {"generated_tokens", r.ids.size()},
                        {"prompt_tokens_per_s", r.prompt_tokens_per_s()},
                        {"gen_tokens_per_s", r.gen_tokens_per_s()},
                        {"stop_reason", r.stop_reason}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("\n");
    std::fflush(stdout);
    std::fprintf(stderr, "prompt: %zu tokens, %.1f tokens/s | generation: %zu tokens, %.1f tokens/s (%s)\n",
                 r.prompt_ids.size(), r.prompt_tokens_per_s(), r.ids.size(), r.gen_tokens_per_s(),
                 r.stop_reason.c_str());
  }
  return 0;
}

Registrar reg("run", "generate text from a manifest (streams tokens)", run_main);

}  // namespace
}  // namespace lowbit::cli
