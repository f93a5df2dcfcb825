// lowbit create / list / show / rm / cp: the model store (store/model_store.h) from the shell.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/model_arg.h"
#include "store/modelfile.h"
#include "cli/store_format.h"
#include "kernels/error.h"
#include "runtime/manifest.h"
#include "runtime/mapped_file.h"
#include "server/model_defaults.h"
#include "store/model_store.h"

namespace lowbit::cli {
namespace {

std::atomic<bool> g_cancel{false};
extern "C" void on_create_signal(int) { g_cancel.store(true); }

const char* kCreateFooter =
    "FROM is a GGUF file, an HF directory, a lowbit manifest directory or a stored model's name.\n"
    "Without --quantize/--bits a GGUF keeps each tensor's own type (as `lowbit convert` without\n"
    "--bits) and an HF directory gets 4 bits. Q is a bit width (1, 2, 4, 8, 16, 32) or an\n"
    "Ollama/llama.cpp quantization name (q8_0, q6_K, q5_K_M, q4_0, q4_1, q4_K_M, q4_K_S, q3_K_M,\n"
    "q2_K, f16, ...), stored as the lowbit type of no fewer bits (q6_K and q5_* -> 8 bits, q3_K_* -> 4).\n"
    "NAME is name[:tag] (tag 'latest' when left out); a model of that name is replaced. Nothing is\n"
    "visible under NAME until it is complete, and a failed or interrupted create leaves nothing.\n";

// --parameter 'NAME VALUE' (or NAME=VALUE) as the JSON object the store keeps: a number where the
// value reads as one, stop strings gathered into a list; checked as the server checks options.
nlohmann::ordered_json parameters_json(const std::vector<std::string>& given) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const std::string& p : given) {
    const size_t cut = p.find_first_of(" =");
    if (cut == std::string::npos || cut == 0 || cut + 1 >= p.size())
      throw UsageError("--parameter '" + p + "': must be 'NAME VALUE' (e.g. 'temperature 0.2')");
    const std::string name = p.substr(0, cut), value = p.substr(cut + 1);
    if (name == "stop") {
      out[name].push_back(value);
      continue;
    }
    char* end = nullptr;
    const long long i = std::strtoll(value.c_str(), &end, 10);
    if (!*end) {
      out[name] = i;
      continue;
    }
    const double d = std::strtod(value.c_str(), &end);
    out[name] = *end ? nlohmann::ordered_json(value) : nlohmann::ordered_json(d);
  }
  try {
    server::check_parameters(out, std::numeric_limits<int32_t>::max());
  } catch (const server::RequestError& e) {
    throw UsageError(std::string("--parameter: ") + e.what());
  }
  return out;
}

int create_main(int argc, char** argv) {
  std::string name, from, models, quantize, template_file, system, modelfile;
  std::vector<std::string> parameters;
  int64_t bits = 0;
  CreateOptions opt;
  Args args("lowbit create", "Imports a model into the store under a name.", kCreateFooter);
  args.positional("NAME", name, "the model's name, name[:tag]").metavar("NAME").required();
  Opt from_arg =
      args.positional("FROM", from, "GGUF file, HF directory, manifest directory or stored model").metavar("FROM");
  args.text("-f,--file", modelfile,
            "an Ollama Modelfile: its FROM, SYSTEM, PARAMETER and TEMPLATE (Jinja) lines; flags given too win")
      .metavar("MODELFILE")
      .excludes(from_arg);
  Opt q = args.text("-q,--quantize", quantize, "quantization name or bit width (default: the source's types)");
  q.metavar("Q");
  args.integer("--bits", bits, "bit width of the linear layers: 1, 2, 4, 8, 16 or 32", 1, 32).metavar("B").excludes(q);
  args.text("--template", template_file, "a Jinja chat template file to use instead of the source's").metavar("FILE");
  args.text("--system", system, "the default system message (Ollama's SYSTEM)").metavar("TEXT");
  args.texts("--parameter", parameters,
             "a default setting, 'NAME VALUE' under Ollama's names (PARAMETER): temperature, top_k, top_p, min_p, "
             "seed, num_predict, num_ctx, repeat_penalty, repeat_last_n, presence_penalty, frequency_penalty, stop; "
             "repeatable")
      .metavar("'NAME VALUE'");
  add_threads(args, opt.threads);
  add_models(args, models);
  if (!args.parse(argc, argv)) return 0;
  opt.quantize = args.given("--bits") ? std::to_string(bits) : quantize;
  if (args.given("--file")) {
    const Modelfile mf = parse_modelfile(read_file(modelfile, "the Modelfile"), modelfile);
    from = mf.from;
    opt.system = mf.system;
    opt.chat_template = mf.chat_template;
    parameters.insert(parameters.begin(), mf.parameters.begin(), mf.parameters.end());  // the flags' come last: they win
  } else if (!args.given("FROM")) {
    throw UsageError("FROM is required (or -f MODELFILE with a FROM line)");
  }
  if (args.given("--template")) opt.chat_template = read_file(template_file, "the --template file");
  if (args.given("--system")) opt.system = system;
  opt.parameters = parameters_json(parameters);
  std::signal(SIGINT, on_create_signal);
  std::signal(SIGTERM, on_create_signal);
  opt.cancel = &g_cancel;
  const bool tty = isatty(STDERR_FILENO);
  ModelStore store(models_root(models));
  const StoredModel m = store.create(name, from, opt, [&](const std::string& line) {
    if (tty) std::fprintf(stderr, "\r\033[K%.100s", line.c_str());
  });
  if (tty) std::fprintf(stderr, "\r\033[K");
  std::printf("created %s (%s, %s, %s) in %s\n", m.name.c_str(), m.details.parameter_size.c_str(),
              m.details.quantization_level.c_str(), human_bytes(m.size).c_str(), m.dir.c_str());
  return 0;
}

int list_main(int argc, char** argv) {
  std::string models;
  bool json_out = false;
  Args args("lowbit list", "Lists the models in the store.");
  add_models(args, models);
  args.flag("--json", json_out, "print the list as Ollama's /api/tags does");
  if (!args.parse(argc, argv)) return 0;
  const std::vector<StoredModel> all = ModelStore(models_root(models)).list();
  if (json_out) {
    nlohmann::json j = {{"models", nlohmann::json::array()}};
    for (const StoredModel& m : all) j["models"].push_back(stored_model_json(m));
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "ID", "SIZE", "QUANTIZATION", "MODIFIED"}};
  const std::time_t now = std::time(nullptr);
  for (const StoredModel& m : all)
    rows.push_back({m.name, m.digest.substr(0, 12), human_bytes(m.size), m.details.quantization_level,
                    relative_time(m.modified_at, now)});
  print_table(rows);
  return 0;
}

// "temperature 0.2, stop "!"": the defaults on one line.
std::string parameters_line(const nlohmann::ordered_json& parameters) {
  std::string out;
  for (const auto& [k, v] : parameters.items()) out += (out.empty() ? "" : ", ") + k + " " + v.dump();
  return out;
}

int show_main(int argc, char** argv) {
  std::string name, models;
  bool json_out = false, template_only = false;
  Args args("lowbit show", "Describes a stored model (or a model path).");
  args.positional("NAME", name, "stored model name, or a manifest directory").metavar("NAME").required();
  add_models(args, models);
  Opt j = args.flag("--json", json_out, "print one JSON object");
  Opt t = args.flag("--template", template_only, "print the model's chat template only").excludes(j);
  bool modelfile_only = false;
  args.flag("--modelfile", modelfile_only, "print the model as a Modelfile (`lowbit create -f` reads it back)")
      .excludes(j)
      .excludes(t);
  if (!args.parse(argc, argv)) return 0;
  ModelStore store(models_root(models));
  std::optional<StoredModel> m;
  try {
    m = store.find(name);
  } catch (const Error&) {
    // Not a valid name: maybe a path (below).
  }
  if (!m) {
    // A manifest directory by path is described alike, so `show` works on what `convert` wrote.
    const std::string dir = store.resolve(name);
    m = ModelStore::describe(dir);
  }
  const Manifest manifest = Manifest::open(m->dir);
  const std::unique_ptr<ChatTemplate> tmpl = model_chat_template(m->dir);
  const std::string templ = tmpl ? tmpl->source() : std::string();
  if (modelfile_only) {
    std::printf("%s", write_modelfile(m->dir, m->defaults, templ).c_str());
    return 0;
  }
  if (template_only) {
    if (templ.empty()) throw Error(ErrorCode::not_found, m->name + ": the model has no chat template");
    std::printf("%s\n", templ.c_str());
    return 0;
  }
  const ModelConfig& c = manifest.config();
  if (json_out) {
    nlohmann::json out = stored_model_json(*m);
    out["path"] = m->dir;
    out["template"] = templ;
    out["capabilities"] = capabilities(tmpl.get());
    out["config"] = config_to_json(c);
    out["recipe"] = manifest.header().recipe;
    out["system"] = m->defaults.system;
    out["parameters"] = m->defaults.parameters;
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::string caps;
  for (const std::string& c : capabilities(tmpl.get())) caps += (caps.empty() ? "" : ", ") + c;
  std::printf("  Model\n");
  std::vector<std::vector<std::string>> rows = {
      {"name", m->name},
      {"architecture", m->details.family},
      {"parameters", m->details.parameter_size},
      {"context length", std::to_string(c.max_ctx)},
      {"embedding length", std::to_string(c.dim)},
      {"layers", std::to_string(c.n_layers)},
      {"quantization", m->details.quantization_level},
      {"parent model", m->details.parent_model.empty() ? "-" : m->details.parent_model},
      {"chat template", templ.empty() ? "none" : "yes (lowbit show --template prints it)"},
      {"capabilities", caps},
      {"system", m->defaults.system.empty() ? "-" : m->defaults.system},
      {"parameters", m->defaults.parameters.empty() ? "-" : parameters_line(m->defaults.parameters)},
      {"size", human_bytes(m->size)},
      {"digest", m->digest},
      {"modified", m->modified_at},
      {"path", m->dir},
  };
  print_table(rows, "    ");
  return 0;
}

int rm_main(int argc, char** argv) {
  std::vector<std::string> names;
  std::string models;
  Args args("lowbit rm", "Removes models from the store.");
  args.positionals("NAME", names, "stored model names").metavar("NAME").required();
  add_models(args, models);
  if (!args.parse(argc, argv)) return 0;
  ModelStore store(models_root(models));
  for (const std::string& n : names) {
    store.remove(n);
    std::printf("deleted '%s'\n", ModelStore::normalize(n).c_str());
  }
  return 0;
}

int cp_main(int argc, char** argv) {
  std::string from, to, models;
  Args args("lowbit cp", "Copies a stored model to a new name (the weights are shared by hard links).");
  args.positional("SOURCE", from, "stored model name").metavar("SOURCE").required();
  args.positional("DEST", to, "new name, name[:tag] (replaced if it exists)").metavar("DEST").required();
  add_models(args, models);
  if (!args.parse(argc, argv)) return 0;
  const StoredModel m = ModelStore(models_root(models)).copy(from, to);
  std::printf("copied '%s' to '%s'\n", ModelStore::normalize(from).c_str(), m.name.c_str());
  return 0;
}

Registrar reg_create("create", "import a GGUF, HF directory or manifest into the model store as NAME", create_main);
Registrar reg_list("list", "list the models in the store", list_main);
Registrar reg_show("show", "describe a stored model (architecture, size, quantization, template)", show_main);
Registrar reg_rm("rm", "remove models from the store", rm_main);
Registrar reg_cp("cp", "copy a stored model to a new name", cp_main);

}  // namespace
}  // namespace lowbit::cli
