#include "server/model_defaults.h"

#include <vector>

#include "server/request_fields.h"

namespace lowbit::server {
namespace {

using json = nlohmann::ordered_json;

// Each parameter a model may default: its Ollama name, the request fields of the OpenAI routes
// that set it (none: those routes have no field for it), and how it carries over from a parsed
// request of its own to the request it defaults.
struct Parameter {
  const char* name;
  std::vector<const char*> openai;
  void (*take)(const GenerationRequest& from, GenerationRequest& to);
};

const std::vector<Parameter>& parameters() {
  static const std::vector<Parameter> all = {
      {"temperature", {"temperature"}, [](auto& f, auto& t) { t.sampler.temperature = f.sampler.temperature; }},
      {"top_p", {"top_p"}, [](auto& f, auto& t) { t.sampler.top_p = f.sampler.top_p; }},
      {"top_k", {}, [](auto& f, auto& t) { t.sampler.top_k = f.sampler.top_k; }},
      {"min_p", {}, [](auto& f, auto& t) { t.sampler.min_p = f.sampler.min_p; }},
      {"repeat_penalty", {}, [](auto& f, auto& t) { t.sampler.repetition_penalty = f.sampler.repetition_penalty; }},
      {"repeat_last_n", {}, [](auto& f, auto& t) { t.sampler.repetition_window = f.sampler.repetition_window; }},
      {"presence_penalty", {"presence_penalty"}, [](auto& f, auto& t) { t.sampler.presence_penalty = f.sampler.presence_penalty; }},
      {"frequency_penalty", {"frequency_penalty"},
       [](auto& f, auto& t) { t.sampler.frequency_penalty = f.sampler.frequency_penalty; }},
      {"seed", {"seed"},
       [](auto& f, auto& t) {
         t.sampler.seed = f.sampler.seed;
         t.seed_given = f.seed_given;
       }},
      {"num_predict", {"max_tokens", "max_completion_tokens", "max_output_tokens"},
       [](auto& f, auto& t) { t.max_tokens = f.max_tokens; }},
      {"num_ctx", {}, [](auto& f, auto& t) { t.num_ctx = f.num_ctx; }},
      {"stop", {"stop"}, [](auto& f, auto& t) { t.stop = f.stop; }},
  };
  return all;
}

const Parameter* parameter(const std::string& name) {
  for (const Parameter& p : parameters())
    if (name == p.name) return &p;
  return nullptr;
}

// The parameters as an Ollama request's options, parsed by that route's parser.
GenerationRequest parsed(const json& params, int64_t max_ctx) {
  return parse_ollama_generate({{"model", "defaults"}, {"options", params}}, max_ctx);
}

bool ollama_route(Route r) { return r == Route::ollama_generate || r == Route::ollama_chat; }

}  // namespace

void check_parameters(const json& params, int64_t max_ctx) {
  check_object(params, "parameters");
  for (const auto& [name, value] : params.items())
    if (!parameter(name)) {
      std::string known;
      for (const Parameter& p : parameters()) known += std::string(known.empty() ? "" : ", ") + p.name;
      bad("parameters." + name, "is not a parameter lowbit knows (" + known + ")");
    }
  try {
    parsed(params, max_ctx);
  } catch (const RequestError& e) {  // "options.top_p: ..." -> "parameters.top_p: ..."
    std::string field = e.field(), what = e.what();
    if (field.rfind("options", 0) == 0) field.replace(0, 7, "parameters");
    if (what.rfind("options", 0) == 0) what.replace(0, 7, "parameters");
    throw RequestError(400, field, what);
  }
}

void apply_defaults(const ModelDefaults& d, const json& body, int64_t max_ctx, GenerationRequest& r) {
  if (d.empty()) return;
  if (!d.parameters.empty()) {
    const GenerationRequest from = parsed(d.parameters, max_ctx);
    const json* options = ollama_route(r.route) ? field(body, "options") : nullptr;
    for (const auto& [name, value] : d.parameters.items()) {
      const Parameter* p = parameter(name);
      if (!p) continue;  // checked when the model was made; a newer lowbit's name is left alone
      bool sent = false;
      if (ollama_route(r.route)) sent = options && options->is_object() && field(*options, name);
      else
        for (const char* key : p->openai) sent = sent || field(body, key);
      if (!sent) p->take(from, r);
    }
  }
  if (d.system.empty()) return;
  if (r.route == Route::ollama_generate) {
    if (r.system.empty() && !field(body, "system")) r.system = d.system;
    return;
  }
  if (r.route == Route::openai_completion) return;  // a raw prompt: no messages
  for (const json& m : r.messages)
    if (m.is_object() && m.value("role", "") == "system") return;
  r.messages.insert(r.messages.begin(), json{{"role", "system"}, {"content", d.system}});
}

std::string parameters_text(const json& params) {
  std::string out;
  auto line = [&](const std::string& name, const json& v) {
    std::string name_col = name;
    name_col.resize(std::max<size_t>(name.size() + 1, 31), ' ');  // Ollama's column
    out += name_col + (v.is_string() ? json(v).dump() : v.dump()) + "\n";
  };
  for (const auto& [name, value] : params.items()) {
    if (value.is_array())
      for (const json& v : value) line(name, v);
    else
      line(name, value);
  }
  return out;
}

}  // namespace lowbit::server
