// lowbit run: stream a generation from a model: one chat turn, a text continuation (--raw, or a
// model without a chat template), or an interactive chat.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/chat_repl.h"
#include "cli/chat_settings.h"
#include "cli/command.h"
#include "cli/model_arg.h"
#include "cli/pull.h"
#include "cli/reply_printer.h"
#include "convert/load.h"
#include "kernels/error.h"
#include "runtime/chat/thinking.h"
#include "runtime/generate.h"
#include "runtime/json_schema.h"
#include "runtime/mapped_file.h"
#include "server/pull.h"
#include "store/model_store.h"

namespace lowbit::cli {
namespace {

constexpr int kInterrupted = 130;  // 128 + SIGINT, what a shell reports for a process Ctrl-C killed

std::atomic<bool> g_interrupted{false};

// The first Ctrl-C asks the generation to stop at its next token, so what was generated and the
// speed figures are still printed; a second one (say during a long prompt, before any token)
// kills the process as usual.
extern "C" void on_sigint(int) {
  g_interrupted.store(true);
  std::signal(SIGINT, SIG_DFL);
}

// --format: "json" (any object: no schema), an inline schema, or a file holding one.
std::shared_ptr<const JsonSchema> format_schema(const std::string& format) {
  if (format == "json") return nullptr;
  if (format.empty()) throw UsageError("--format: give json, a JSON schema or a schema file");
  const bool inline_schema = format[0] == '{';
  if (!inline_schema && !std::filesystem::exists(format))
    throw UsageError("--format: '" + format + "' is not json, a JSON schema or a schema file");
  const std::string text = inline_schema ? format : read_file(format, "--format schema");
  const nlohmann::json schema = nlohmann::json::parse(text, nullptr, false);
  const std::string what = inline_schema ? "--format" : "--format " + format;
  if (schema.is_discarded()) throw UsageError(what + ": not valid JSON (give json, a JSON schema or a schema file)");
  try {
    return JsonSchema::compile(schema, what);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

const char* kFooter =
    "MODEL is a manifest directory (lowbit convert), or a GGUF file or HF directory, imported in\n"
    "memory at load (a GGUF keeps its own types; an HF directory gets 4 bits), or the name of a\n"
    "model in the store (lowbit list). An existing path wins over a name.\n"
    "With a prompt (-p, PROMPT, or the whole of stdin when it is not a terminal), as Ollama does:\n"
    "a model with a chat template answers it as one user message (after --system, else the\n"
    "template's own system message) and only the reply is printed; with --raw, or for a model\n"
    "without a template, the prompt is continued as text and echoed before the continuation.\n"
    "Without a prompt and with stdin a terminal: an interactive chat in the model's chat template\n"
    "(/bye or Ctrl-D ends it, Ctrl-C stops a reply, /clear forgets the conversation, /? helps);\n"
    "-n then limits each reply (default: until the model ends it or the context is full).\n"
    "With a prompt the text streams, then the prompt and generation tokens/s go to stderr; --json\n"
    "prints one object at the end instead (text, ids, token counts, tokens/s, stop_reason, seed,\n"
    "templated). Settings are checked, and the prompt's length against the context, before\n"
    "anything is printed. Without --seed the sampler is seeded from the clock and the OS's\n"
    "entropy, so each run differs; the seed used is printed (with the speed line, or as \"seed\"\n"
    "in --json) to repeat a run. Ctrl-C stops the generation: what was generated and the speed\n"
    "line are printed, and the exit status is 130.\n";

// The model's chat template for a prompt; nullptr when it has none. A template that does not
// parse is an error that says how to go on without it.
std::unique_ptr<ChatTemplate> template_for_prompt(const Model& model, const std::string& label) {
  try {
    return chat_template_of(model.tokenizer());
  } catch (const Error& e) {
    throw Error(e.code(), label + ": " + e.what() + " (--raw continues the prompt as text without it)");
  }
}

uint64_t fresh_seed() {
  std::random_device rd;
  const uint64_t clock = (uint64_t)std::chrono::high_resolution_clock::now().time_since_epoch().count();
  // 32 bits: short enough to retype as --seed, and runs still differ.
  return (rd() ^ clock ^ (clock >> 32)) & 0xffffffffu;
}

// MODEL as every command resolves it; a Hugging Face name (hf.co/USER/REPO[:QUANT]) not in the
// store yet is pulled first, as `ollama run` pulls what it does not have.
std::string resolve_or_pull(const std::string& model, const std::string& models, bool quiet) {
  ModelStore store(models_root(models));
  std::error_code ec;
  if (server::is_hub_name(model) && !std::filesystem::exists(model, ec) && !store.find(model)) {
    if (!quiet) std::fprintf(stderr, "lowbit run: pulling %s\n", model.c_str());
    pull_with_progress(store, model, 0, false, quiet);
  }
  return store.resolve(model);
}

// A stored model's defaults (its SYSTEM and PARAMETERs: `lowbit create --system/--parameter`)
// where the command line sets nothing itself, as `ollama run` applies a Modelfile's. Returns
// whether they set num_predict.
bool apply_defaults(const ModelDefaults& d, const Args& args, bool raw, std::string& system, GenerateParams& gp,
                    LoadParams& lp) {
  if (!raw && !args.given("--system") && !d.system.empty()) system = d.system;
  static const std::map<std::string, std::string> kFlag = {
      {"temperature", "--temp"}, {"top_k", "--top-k"}, {"top_p", "--top-p"}, {"min_p", "--min-p"},
      {"repeat_penalty", "--repeat-penalty"}, {"presence_penalty", "--presence-penalty"},
      {"frequency_penalty", "--frequency-penalty"}, {"seed", "--seed"}, {"num_predict", "-n"}, {"stop", "--stop"},
      {"num_ctx", "--ctx"}, {"repeat_last_n", ""}};
  bool max_tokens = false;
  ChatSettings s;
  s.gen = gp;
  for (const auto& [name, value] : d.parameters.items()) {
    const auto flag = kFlag.find(name);
    if (flag == kFlag.end() || (!flag->second.empty() && args.given(flag->second))) continue;
    if (name == "num_ctx" && value.is_number_integer()) {
      lp.ctx = value.get<int64_t>();
    } else if (name == "stop" && value.is_array()) {
      s.gen.stop.clear();
      for (const auto& v : value) s.gen.stop.push_back(v.get<std::string>());
    } else if (!(name == "seed" && value.is_number() && value.get<double>() < 0)) {  // Ollama's -1: a fresh seed
      const std::string said = set_parameter(s, name + " " + (value.is_string() ? value.get<std::string>() : value.dump()));
      if (said.rfind("error: ", 0) == 0)
        throw Error(ErrorCode::bad_format, "the model's default " + name + ": " + said.substr(7));
      max_tokens = max_tokens || name == "num_predict";
    }
  }
  gp = s.gen;
  return max_tokens;
}

int run_main(int argc, char** argv) {
  std::string model_dir, prompt, positional_prompt, system, models, isa = "auto", format;
  bool json_out = false, no_bos = false, raw = false, verbose = false, think_flag = false, hide_thinking = false;
  GenerateParams gp;
  LoadParams lp;
  uint64_t seed = 0;

  Args args("lowbit run", "Generates text from a model, streaming it as it comes.", kFooter);
  args.positional("MODEL", model_dir, "manifest directory, GGUF file, HF directory or stored model name")
      .metavar("MODEL")
      .required();
  Opt pos_prompt = args.positional("PROMPT", positional_prompt, "the message to answer or text to continue (as -p)")
                       .metavar("PROMPT");
  args.text("-p,--prompt", prompt,
            "the message to answer, or with --raw the text to continue (may be \"\"); left out: stdin, or a chat "
            "when stdin is a terminal")
      .excludes(pos_prompt);
  args.flag("--raw", raw, "continue the prompt as text: no chat template");
  args.text("--format", format,
            "json: the output is one JSON object; or a JSON schema (inline, starting with '{', or a file) the output "
            "is one value of (tokens that cannot continue one are never sampled)")
      .metavar("json|SCHEMA");
  args.text("--system", system, "the system message of a chat or a templated prompt (default: the template's own)")
      .metavar("TEXT");
  add_models(args, models);
  args.integer("-n", gp.max_tokens, "new tokens at most (default 256; 0 runs the prompt only)");
  args.number("--temp", gp.sampler.temperature, "temperature >= 0 (default 0: greedy)").metavar("T");
  args.integer("--top-k", gp.sampler.top_k, "keep the K most likely tokens (default 0: off)").metavar("K");
  args.number("--top-p", gp.sampler.top_p, "keep the most likely tokens up to this probability, in (0, 1] (default 1: off)")
      .metavar("P");
  args.number("--min-p", gp.sampler.min_p, "drop tokens less likely than P x the most likely, in [0, 1] (default 0: off)")
      .metavar("P");
  args.number("--repeat-penalty", gp.sampler.repetition_penalty,
              "> 0: divides the logits of the last 64 tokens (default 1: off)")
      .metavar("R");
  args.number("--presence-penalty", gp.sampler.presence_penalty,
              "in [-2, 2]: subtracted from the logit of each token among the last 64 (default 0: off)")
      .metavar("P");
  args.number("--frequency-penalty", gp.sampler.frequency_penalty,
              "in [-2, 2]: times its count among the last 64, subtracted from a token's logit (default 0: off)")
      .metavar("F");
  args.seed("--seed", seed, "sampler seed (default: a fresh one each run)");
  args.texts("--stop", gp.stop, "stop when the text contains STR (not printed); repeatable").metavar("STR");
  add_ctx(args, lp.ctx, "context length in tokens, prompt included (default: the model's trained context)");
  add_threads(args, lp.threads);
  add_isa(args, isa);
  add_gpu_layers(args, lp.gpu_layers);
  args.flag("--no-bos", no_bos, "do not add BOS in front of the prompt");
  args.flag("--json", json_out, "print one JSON object at the end instead of streaming");
  args.flag("--verbose", verbose, "the chat: print the prompt and generation rates after each reply (/set verbose)");
  args.flag("--think", think_flag,
            "a thinking model reasons before it answers (default: as its template does); --think=false: it answers "
            "at once");
  args.flag("--hidethinking", hide_thinking, "print a thinking model's answer without its reasoning");
  if (!args.parse(argc, argv)) return 0;
  std::optional<bool> think;
  if (args.given("--think")) think = think_flag;
  lp.isa = parse_isa(isa);
  gp.add_bos = !no_bos;
  if (args.given("PROMPT")) prompt = positional_prompt;
  bool chat = !args.given("-p") && !args.given("PROMPT");
  if (chat && !isatty(STDIN_FILENO)) {  // `echo QUESTION | lowbit run MODEL`, as Ollama reads it
    prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    while (!prompt.empty() && (prompt.back() == '\n' || prompt.back() == '\r')) prompt.pop_back();
    if (prompt.empty())
      throw UsageError("no prompt: give -p, PROMPT or text on stdin (the interactive chat needs stdin a terminal)");
    chat = false;
  }
  if (chat && json_out) throw UsageError("--json needs a prompt (-p, PROMPT or stdin); the chat prints text");
  if (chat && raw) throw UsageError("--raw needs a prompt (-p, PROMPT or stdin) to continue");
  if (raw && args.given("--system")) throw UsageError("--system goes with the chat template, which --raw leaves out");
  if (raw && think) throw UsageError("--think goes with the chat template, which --raw leaves out");
  const std::shared_ptr<const JsonSchema> schema = args.given("--format") ? format_schema(format) : nullptr;
  gp.sampler.seed = args.given("--seed") ? seed : fresh_seed();
  check_setting(args, invalid_setting(gp),
                {{"max_tokens", "-n"}, {"temperature", "--temp"}, {"top_k", "--top-k"}, {"top_p", "--top-p"},
                 {"min_p", "--min-p"}, {"repetition_penalty", "--repeat-penalty"},
                 {"presence_penalty", "--presence-penalty"}, {"frequency_penalty", "--frequency-penalty"},
                 {"stop", "--stop"}});
  // The flags are checked first (a usage error whatever the model); a stored model's defaults
  // then fill in what they leave, each checked as /set parameter checks it.
  const std::string resolved = resolve_or_pull(model_dir, models, json_out);
  const bool defaults_set_max_tokens = apply_defaults(ModelStore::read_defaults(resolved), args, raw, system, gp, lp);

  LoadInfo info;
  auto model = load_model(resolved, lp, &info);
  if (info.imported && !json_out)
    std::fprintf(stderr, "lowbit run: imported %s (%s) in memory in %.2f s (`lowbit convert` writes it once)\n",
                 model_dir.c_str(), info.format.c_str(), info.import_seconds);
  if (lp.gpu_layers != 0 && !json_out)
    std::fprintf(stderr, "lowbit run: %s (%s)\n", model->placement().c_str(), model->plan().c_str());
  const int64_t trained = model->config().max_ctx;
  if (trained > 0 && model->ctx() > trained)
    std::fprintf(stderr,
                 "lowbit run: warning: --ctx %lld is longer than the %lld positions the model was trained on; "
                 "text past position %lld is likely to degrade\n",
                 (long long)model->ctx(), (long long)trained, (long long)trained);
  if (!format.empty()) gp.json = std::make_shared<const JsonTokens>(model->tokenizer());
  gp.schema = schema;
  if (chat) {  // with --format every reply is held to it, as `ollama run --format` does
    ChatOptions co;
    co.gen = gp;
    co.max_tokens_given = args.given("-n") || defaults_set_max_tokens;
    co.system = system;
    co.verbose = verbose;
    co.model_label = model_dir;
    co.think = think;
    co.hide_thinking = hide_thinking;
    return run_chat(*model, co);
  }
  // One chat turn unless --raw or the model has no template (then the text is continued).
  const std::unique_ptr<ChatTemplate> tmpl = raw ? nullptr : template_for_prompt(*model, model_dir);
  if (!tmpl && args.given("--system"))
    throw UsageError("--system: " + model_dir + " has no chat template to put a system message in");
  if (think && !tmpl) throw UsageError("--think: " + model_dir + " has no chat template");
  const bool thinks = tmpl && template_thinks(*tmpl);
  if (think.value_or(false) && !thinks)
    throw Error(ErrorCode::invalid_argument, "--think: " + model_dir + " does not support thinking (its chat template writes no </think>)");
  const nlohmann::json turn = nlohmann::json::array({{{"role", "user"}, {"content", prompt}}});
  std::string rendered;
  std::vector<int32_t> prompt_ids =
      tmpl ? conversation_ids(model->tokenizer(), *tmpl, system, turn, gp.add_bos, thinking_vars(thinks, think), &rendered)
           : model->tokenizer().encode(prompt, gp.add_bos);
  if ((int64_t)prompt_ids.size() > model->ctx())
    throw Error("the prompt is " + std::to_string(prompt_ids.size()) + " tokens but the context holds " +
                std::to_string(model->ctx()) +
                (lp.ctx ? " (--ctx)" : " (the model's trained context; --ctx sets another)"));

  Session session(*model);
  std::signal(SIGINT, on_sigint);
  if (!json_out && !tmpl) {  // the continuation reads on from the prompt, as it would in a terminal
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    std::fflush(stdout);
  }
  ReplyPrinter printer(json_out ? nullptr : stdout, thinks && think != false, prompt_opens_thinking(rendered),
                      hide_thinking);
  GenerateResult r = generate(session, std::move(prompt_ids), gp, [&](const std::string& piece, int32_t) {
    printer.piece(piece);
    return !g_interrupted.load();
  });
  printer.finish();
  std::signal(SIGINT, SIG_DFL);
  // The callback stops the generation only on Ctrl-C.
  const bool interrupted = r.stop_reason == "callback";
  if (interrupted) r.stop_reason = "interrupted";
  if (json_out) {
    nlohmann::json j = {{"text", printer.content()},
                        {"ids", r.ids},
                        {"prompt_tokens", r.prompt_ids.size()},
                        {"generated_tokens", r.ids.size()},
                        {"prompt_tokens_per_s", r.prompt_tokens_per_s()},
                        {"gen_tokens_per_s", r.gen_tokens_per_s()},
                        {"stop_reason", r.stop_reason},
                        {"seed", gp.sampler.seed},
                        {"templated", tmpl != nullptr}};
    if (!printer.thinking().empty()) j["thinking"] = printer.thinking();
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
    std::fflush(stdout);
    const std::string seed_note =
        gp.sampler.temperature > 0 ? ", seed " + std::to_string(gp.sampler.seed) : std::string();
    std::fprintf(stderr, "prompt: %zu tokens, %.1f tokens/s | generation: %zu tokens, %.1f tokens/s (%s%s)\n",
                 r.prompt_ids.size(), r.prompt_tokens_per_s(), r.ids.size(), r.gen_tokens_per_s(),
                 r.stop_reason.c_str(), seed_note.c_str());
  }
  std::fflush(stdout);
  return interrupted ? kInterrupted : 0;
}

Registrar reg("run", "generate text from a model: manifest, GGUF or HF directory (streams tokens)", run_main);

}  // namespace
}  // namespace lowbit::cli
