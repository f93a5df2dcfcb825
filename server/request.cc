#include "server/request.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include "kernels/error.h"
#include "runtime/tokenizer/tokenizer_unicode.h"
#include "server/request_fields.h"

namespace lowbit::server {
namespace {

using json = nlohmann::ordered_json;

}  // namespace

std::string one_line(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c >= 0x20 && c != 0x7f) {
      out += (char)c;
    } else if (c == '\n' || c == '\r' || c == '\t') {
      out += c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t";
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// The field helpers of request_fields.h.
[[noreturn]] void bad(const std::string& field, const std::string& what) {
  throw RequestError(400, field, field + ": " + what);
}

// The schema's own errors name the keyword and its place under field ("format.properties.age").
std::shared_ptr<const JsonSchema> compile_schema(const json& schema, const std::string& field) {
  try {
    return JsonSchema::compile(nlohmann::json(schema), field);
  } catch (const Error& e) {
    throw RequestError(400, field, e.what());
  }
}

namespace {

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a number";
    default: return "an integer";
  }
}

}  // namespace

[[noreturn]] void wrong_type(const std::string& field, const json& v, const char* want) {
  bad(field, std::string("must be ") + want + ", got " + type_name(v));
}


// Present and not null: JSON clients often send null for "not set".
const json* field(const json& obj, const std::string& key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

std::optional<std::string> opt_string(const json& obj, const std::string& key, const std::string& name) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(name, *v, "a string");
  return v->get<std::string>();
}

std::optional<bool> opt_bool(const json& obj, const std::string& key, const std::string& name) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_type(name, *v, "a boolean");
  return v->get<bool>();
}

// A whole number: an integer, or a float with no fraction (JavaScript clients send 64.0).
std::optional<int64_t> opt_int(const json& obj, const std::string& key, const std::string& name) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (v->is_number_integer()) {
    if (v->is_number_unsigned() && v->get<uint64_t>() > (uint64_t)std::numeric_limits<int64_t>::max())
      bad(name, "is too large");
    return v->get<int64_t>();
  }
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return (int64_t)d;
    bad(name, "must be a whole number, got " + v->dump());
  }
  wrong_type(name, *v, "an integer");
}

std::optional<double> opt_number(const json& obj, const std::string& key, const std::string& name) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(name, *v, "a number");
  return v->get<double>();
}

void check_object(const json& v, const std::string& name) {
  if (!v.is_object()) wrong_type(name, v, "an object");
}

// A function's name as tools, tool_choice and tool calls give it: OpenAI's rule (letters, digits,
// '_' and '-', at most 64), with '.' as some Ollama tools use. The name is written into the
// prompt and into a forced call as it is, so nothing in it may need escaping.
void check_function_name(const json& v, const std::string& name) {
  if (!v.is_string()) wrong_type(name, v, "a string");
  const std::string s = v.get<std::string>();
  bool ok = !s.empty() && s.size() <= 64;
  for (char c : s) ok = ok && (std::isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.');
  if (!ok) bad(name, "must be 1 to 64 letters, digits, '_', '-' or '.', got " + v.dump());
}

namespace {

// Stop strings: Ollama's options.stop is an array; OpenAI's stop a string or an array of up to 4.
std::vector<std::string> parse_stop(const json& v, const std::string& name, size_t max_count) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_string()) wrong_type(name + "[" + std::to_string(i) + "]", v[i], "a string");
      out.push_back(v[i].get<std::string>());
    }
  } else {
    wrong_type(name, v, "a string or an array of strings");
  }
  if (out.size() > max_count) bad(name, "at most " + std::to_string(max_count) + " stop strings");
  for (size_t i = 0; i < out.size(); ++i)
    if (out[i].empty()) bad(name + "[" + std::to_string(i) + "]", "must not be empty");
  return out;
}

// A sampler setting the library refuses, under the name the client used for it.
void check_sampler(const SamplerParams& p, const std::string& prefix, const std::string& penalty_name) {
  if (const auto bad_setting = invalid_setting(p)) {
    std::string name = bad_setting->field == "repetition_penalty" ? penalty_name : bad_setting->field;
    bad(prefix.empty() ? std::string(name) : prefix + "." + name, "must be " + bad_setting->requirement);
  }
}

// Ollama's defaults (its api/types.go DefaultOptions), so a client sees the behaviour it expects.
void ollama_defaults(GenerationRequest& r) {
  r.sampler.temperature = 0.8f;
  r.sampler.top_k = 40;
  r.sampler.top_p = 0.9f;
  r.sampler.min_p = 0.0f;
  r.sampler.repetition_penalty = 1.1f;
  r.sampler.repetition_window = 64;
}

// int32 range: Ollama's Go ints for these are 64-bit, but a count past 2^31 is a mistake, never a
// request this server could meet.
constexpr int64_t kMaxCount = std::numeric_limits<int32_t>::max();

void parse_ollama_options(const json& body, GenerationRequest& r, int64_t max_ctx) {
  const json* o = field(body, "options");
  if (!o) return;
  check_object(*o, "options");
  if (auto v = opt_number(*o, "temperature", "options.temperature")) r.sampler.temperature = (float)*v;
  if (auto v = opt_int(*o, "top_k", "options.top_k")) {
    if (*v < 0 || *v > kMaxCount) bad("options.top_k", "must be in [0, 2^31), got " + std::to_string(*v));
    r.sampler.top_k = (int)*v;
  }
  if (auto v = opt_number(*o, "top_p", "options.top_p")) r.sampler.top_p = (float)*v;
  if (auto v = opt_number(*o, "min_p", "options.min_p")) r.sampler.min_p = (float)*v;
  if (auto v = opt_number(*o, "repeat_penalty", "options.repeat_penalty")) r.sampler.repetition_penalty = (float)*v;
  if (auto v = opt_number(*o, "presence_penalty", "options.presence_penalty")) r.sampler.presence_penalty = (float)*v;
  if (auto v = opt_number(*o, "frequency_penalty", "options.frequency_penalty")) r.sampler.frequency_penalty = (float)*v;
  if (auto v = opt_int(*o, "repeat_last_n", "options.repeat_last_n")) {
    // Ollama: -1 means the whole context, 0 off.
    if (*v < -1 || *v > kMaxCount) bad("options.repeat_last_n", "must be >= -1, got " + std::to_string(*v));
    r.sampler.repetition_window = *v == -1 ? (int)std::min<int64_t>(max_ctx, kMaxCount) : (int)*v;
  }
  if (auto v = opt_int(*o, "seed", "options.seed")) {
    // Ollama: -1 (its default) draws a fresh seed.
    if (*v >= 0) {
      r.sampler.seed = (uint64_t)*v;
      r.seed_given = true;
    }
  }
  if (auto v = opt_int(*o, "num_predict", "options.num_predict")) {
    // -1: until the context is full; -2 (fill the context) reads the same here.
    if (*v < -2) bad("options.num_predict", "must be >= -2 (-1: no limit), got " + std::to_string(*v));
    if (*v > kMaxCount) bad("options.num_predict", "must be < 2^31, got " + std::to_string(*v));
    r.max_tokens = *v < 0 ? -1 : *v;
  }
  if (auto v = opt_int(*o, "num_ctx", "options.num_ctx")) {
    if (*v < 1 || *v > max_ctx)
      bad("options.num_ctx", "must be in [1, " + std::to_string(max_ctx) + "] (the server's --ctx), got " +
                                 std::to_string(*v));
    r.num_ctx = *v;
  }
  if (const json* s = field(*o, "stop")) r.stop = parse_stop(*s, "options.stop", 64);
  check_sampler(r.sampler, "options", "repeat_penalty");
}

// Ollama's think: true/false, or a level (gpt-oss's "high", "medium", "low"), which thinks; null is
// the model's default.
void parse_ollama_think(const json& body, GenerationRequest& r) {
  const json* t = field(body, "think");
  if (!t) return;
  if (t->is_boolean()) {
    r.think = t->get<bool>();
  } else if (t->is_string() && (*t == "high" || *t == "medium" || *t == "low")) {
    r.think = true;
  } else {
    bad("think", "must be true, false, \"high\", \"medium\" or \"low\", got " + t->dump());
  }
}

void parse_common_ollama(const json& body, GenerationRequest& r, int64_t max_ctx) {
  check_object(body, "body");
  r.model = required_string(body, "model");
  if (auto v = opt_bool(body, "stream", "stream")) r.stream = *v;
  if (const json* k = field(body, "keep_alive")) r.keep_alive = parse_keep_alive(*k, "keep_alive");
  if (const json* f = field(body, "format")) {
    // Constrained decoding (runtime/json_mode.h): "json" for any object, or a JSON schema.
    if (f->is_object()) {
      r.json = true;
      r.schema = compile_schema(*f, "format");
    } else if (f->is_string() && f->get<std::string>() == "json") {
      r.json = true;
    } else if (!(f->is_string() && f->get<std::string>().empty())) {
      bad("format", "must be \"json\" (one JSON object) or a JSON schema (an object)");
    }
  }
  parse_ollama_think(body, r);
  ollama_defaults(r);
  parse_ollama_options(body, r, max_ctx);
}

// Message content: a string, or (OpenAI) an array of parts of which only text is supported.
std::string message_content(const json& v, const std::string& name) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string text;
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string part = name + "[" + std::to_string(i) + "]";
      check_object(v[i], part);
      const std::string type = opt_string(v[i], "type", part + ".type").value_or("");
      if (type != "text") bad(part + ".type", "only \"text\" content parts are supported, got \"" + type + "\"");
      text += opt_string(v[i], "text", part + ".text").value_or("");
    }
    return text;
  }
  wrong_type(name, v, "a string");
}

// An assistant message's tool_calls as the template sees them: each {"function": {"name",
// "arguments"}} with the arguments an object, which is what transformers' templates expect and
// Ollama sends; OpenAI sends their JSON text, read here. Other keys ("id", "type") stay.
json parse_tool_calls(const json& calls, const std::string& name) {
  if (!calls.is_array()) wrong_type(name, calls, "an array");
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    const std::string c = name + "[" + std::to_string(i) + "]";
    check_object(calls[i], c);
    const json* f = field(calls[i], "function");
    if (!f) bad(c + ".function", "is required");
    check_object(*f, c + ".function");
    const json* fname = field(*f, "name");
    if (!fname) bad(c + ".function.name", "is required");
    check_function_name(*fname, c + ".function.name");
    json fn = *f;
    const json* args = field(*f, "arguments");
    if (!args) {
      fn["arguments"] = json::object();
    } else if (args->is_string()) {
      try {
        fn["arguments"] = json::parse(args->get<std::string>());
      } catch (const json::exception&) {
        bad(c + ".function.arguments", "is not the JSON text of an object: " + args->dump());
      }
      if (!fn["arguments"].is_object()) bad(c + ".function.arguments", "must be the JSON text of an object");
    } else if (!args->is_object()) {
      wrong_type(c + ".function.arguments", *args, "an object or the JSON text of one");
    }
    json call = calls[i];
    call["function"] = std::move(fn);
    out.push_back(std::move(call));
  }
  return out;
}

}  // namespace

void parse_reasoning_effort(const json& v, const std::string& name, GenerationRequest& r) {
  if (v.is_null()) return;
  if (!v.is_string()) wrong_type(name, v, "a string");
  const std::string e = v.get<std::string>();
  if (e == "none") r.think = false;
  else if (e == "minimal" || e == "low" || e == "medium" || e == "high") r.think = true;
  else bad(name, "must be \"none\", \"minimal\", \"low\", \"medium\" or \"high\", got \"" + e + "\"");
}

void parse_output_format(const json& format, const std::string& name, const char* holder, GenerationRequest& r) {
  check_object(format, name);
  const auto type = opt_string(format, "type", name + ".type");
  if (!type) bad(name + ".type", "is required");
  if (*type == "json_object") {
    r.json = true;
  } else if (*type == "json_schema") {
    std::string where = name;
    const json* in = &format;
    if (*holder) {
      where += std::string(".") + holder;
      in = field(format, holder);
      if (!in) bad(where, "is required with type \"json_schema\"");
      check_object(*in, where);
    }
    r.json = true;  // without a schema any object, as OpenAI reads it
    if (const json* schema = field(*in, "schema")) r.schema = compile_schema(*schema, where + ".schema");
  } else if (*type != "text") {
    bad(name + ".type",
        "'" + *type + "' is not supported: \"json_schema\", \"json_object\" (one JSON object) and \"text\" are");
  }
}

// The tools of a chat request, as sent (their key order is what the template's tojson shows);
// flat (the Responses API's {"type": "function", "name", ...}): read under those names and
// returned in the chat form.
json parse_tools(const json& body, bool flat) {
  const json* t = field(body, "tools");
  if (!t || (t->is_array() && t->empty())) return nullptr;
  if (!t->is_array()) wrong_type("tools", *t, "an array");
  json nested = json::array();
  std::vector<std::string> names;
  for (size_t i = 0; i < t->size(); ++i) {
    const std::string n = "tools[" + std::to_string(i) + "]";
    const json& tool = (*t)[i];
    check_object(tool, n);
    const auto type = opt_string(tool, "type", n + ".type");
    if (flat && !type) bad(n + ".type", "is required");
    if (type && *type != "function") bad(n + ".type", "only \"function\" tools are supported, got \"" + *type + "\"");
    const std::string fn = flat ? n : n + ".function";
    const json* f = flat ? &tool : field(tool, "function");
    if (!f) bad(fn, "is required");
    check_object(*f, fn);
    const json* fname = field(*f, "name");
    if (!fname) bad(fn + ".name", "is required");
    check_function_name(*fname, fn + ".name");
    const auto description = opt_string(*f, "description", fn + ".description");
    const json* parameters = field(*f, "parameters");
    if (parameters) check_object(*parameters, fn + ".parameters");
    const std::string name = fname->get<std::string>();
    if (std::find(names.begin(), names.end(), name) != names.end()) bad(fn + ".name", "'" + name + "' names two tools");
    names.push_back(name);
    if (!flat) continue;
    opt_bool(tool, "strict", n + ".strict");  // calls are held to their schema either way
    json function = {{"name", name}};
    if (description) function["description"] = *description;
    if (parameters) function["parameters"] = *parameters;
    nested.push_back({{"type", "function"}, {"function", std::move(function)}});
  }
  return flat ? nested : *t;
}

namespace {

// OpenAI's tool_choice and parallel_tool_calls (after r.tools is set).
void parse_tool_choice(const json& body, GenerationRequest& r) {
  using TC = GenerationRequest::ToolChoice;
  if (auto v = opt_bool(body, "parallel_tool_calls", "parallel_tool_calls")) r.parallel_tool_calls = *v;
  const json* c = field(body, "tool_choice");
  if (!c) return;
  if (c->is_string()) {
    const std::string s = c->get<std::string>();
    if (s == "none") r.tool_choice = TC::none;
    else if (s == "auto") r.tool_choice = TC::automatic;
    else if (s == "required") r.tool_choice = TC::required;
    else bad("tool_choice", "must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}, got \"" + s + "\"");
  } else if (c->is_object()) {
    if (auto type = opt_string(*c, "type", "tool_choice.type"); type && *type != "function")
      bad("tool_choice.type", "only \"function\" is supported, got \"" + *type + "\"");
    const json* f = field(*c, "function");
    if (!f) bad("tool_choice.function", "is required");
    check_object(*f, "tool_choice.function");
    const json* fname = field(*f, "name");
    if (!fname) bad("tool_choice.function.name", "is required");
    check_function_name(*fname, "tool_choice.function.name");
    r.tool_choice = TC::named;
    r.tool_name = fname->get<std::string>();
    bool offered = false;
    if (r.tools.is_array())
      for (const json& t : r.tools) offered = offered || t["function"]["name"] == r.tool_name;
    if (!offered) bad("tool_choice.function.name", "'" + r.tool_name + "' is not one of the request's tools");
  } else {
    wrong_type("tool_choice", *c, "a string or an object");
  }
  if (r.tool_choice == TC::required && r.tools.is_null()) bad("tool_choice", "\"required\" needs tools");
}

json parse_messages(const json& body, bool openai) {
  const json* m = field(body, "messages");
  if (!m) {
    if (openai) bad("messages", "is required");
    return json::array();
  }
  if (!m->is_array()) wrong_type("messages", *m, "an array");
  json out = json::array();
  for (size_t i = 0; i < m->size(); ++i) {
    const std::string name = "messages[" + std::to_string(i) + "]";
    const json& msg = (*m)[i];
    check_object(msg, name);
    json copy = msg;
    const json* role = field(msg, "role");
    if (!role) bad(name + ".role", "is required");
    if (!role->is_string()) wrong_type(name + ".role", *role, "a string");
    const json* calls = field(msg, "tool_calls");
    if (calls) copy["tool_calls"] = parse_tool_calls(*calls, name + ".tool_calls");
    // An assistant message that only calls tools may have no content (OpenAI sends null).
    if (const json* c = field(msg, "content")) copy["content"] = message_content(*c, name + ".content");
    else if (!calls) bad(name + ".content", "is required");
    else copy["content"] = "";
    if (const json* img = field(msg, "images"); img && !(img->is_array() && img->empty()))
      bad(name + ".images", "images are not supported (no vision model)");
    out.push_back(std::move(copy));
  }
  if (openai && out.empty()) bad("messages", "must hold at least one message");
  return out;
}

// OpenAI's sampling fields. Its defaults: temperature 1, top_p 1, no top-k, no penalties.
void parse_openai_common(const json& body, GenerationRequest& r, int64_t max_ctx) {
  check_object(body, "body");
  r.model = required_string(body, "model");
  r.stream = false;
  r.sampler.temperature = 1.0f;
  r.sampler.top_p = 1.0f;
  if (auto v = opt_bool(body, "stream", "stream")) r.stream = *v;
  if (const json* so = field(body, "stream_options")) {
    check_object(*so, "stream_options");
    if (auto v = opt_bool(*so, "include_usage", "stream_options.include_usage")) r.include_usage = *v;
  }
  if (auto v = opt_number(body, "temperature", "temperature")) {
    if (!(*v >= 0 && *v <= 2)) bad("temperature", "must be in [0, 2]");
    r.sampler.temperature = (float)*v;
  }
  if (auto v = opt_number(body, "top_p", "top_p")) r.sampler.top_p = (float)*v;
  if (auto v = opt_int(body, "seed", "seed")) {
    r.sampler.seed = (uint64_t)*v;
    r.seed_given = true;
  }
  if (auto v = opt_int(body, "n", "n"); v && *v != 1) bad("n", "only n = 1 is supported");
  // Over the last 64 tokens (prompt included), as llama.cpp's server and Ollama count them.
  if (auto v = opt_number(body, "frequency_penalty", "frequency_penalty")) r.sampler.frequency_penalty = (float)*v;
  if (auto v = opt_number(body, "presence_penalty", "presence_penalty")) r.sampler.presence_penalty = (float)*v;
  if (const json* s = field(body, "stop")) r.stop = parse_stop(*s, "stop", 4);
  for (const char* key : {"max_completion_tokens", "max_tokens"}) {
    if (auto v = opt_int(body, key, key)) {
      if (*v < 1 || *v > max_ctx)
        bad(key, "must be in [1, " + std::to_string(max_ctx) + "] (the server's context), got " + std::to_string(*v));
      r.max_tokens = *v;
      break;
    }
  }
  if (const json* k = field(body, "keep_alive")) r.keep_alive = parse_keep_alive(*k, "keep_alive");
  if (const json* f = field(body, "response_format")) parse_output_format(*f, "response_format", "json_schema", r);
  check_sampler(r.sampler, "", "repetition_penalty");
}

}  // namespace

bool GenerationRequest::load_only() const {
  if (route == Route::ollama_generate) return prompt.empty();
  if (route == Route::ollama_chat) return messages.empty();
  return false;
}

std::string required_string(const json& body, const std::string& key) {
  const json* v = field(body, key);
  if (!v) bad(key, "is required");
  if (!v->is_string()) wrong_type(key, *v, "a string");
  std::string s = v->get<std::string>();
  if (s.empty()) bad(key, "must not be empty");
  return s;
}

std::string model_name_field(const json& body) {
  check_object(body, "body");
  if (field(body, "model")) return required_string(body, "model");
  if (field(body, "name")) return required_string(body, "name");
  bad("model", "is required");
}

KeepAlive parse_keep_alive(const json& v, const std::string& name) {
  KeepAlive k;
  k.given = true;
  double seconds = 0;
  if (v.is_number()) {
    seconds = v.get<double>();
    if (!std::isfinite(seconds)) bad(name, "must be finite");
  } else if (v.is_string()) {
    // Go's time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+, or a bare number (Ollama reads
    // "300" as seconds too).
    const std::string s = v.get<std::string>();
    size_t i = 0;
    bool neg = false;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    if (i == s.size()) bad(name, "'" + s + "' is not a duration (e.g. \"5m\", \"1h30m\", \"-1\")");
    bool any = false;
    while (i < s.size()) {
      size_t j = i;
      while (j < s.size() && (std::isdigit((unsigned char)s[j]) || s[j] == '.')) ++j;
      if (j == i) bad(name, "'" + s + "' is not a duration (e.g. \"5m\", \"1h30m\", \"-1\")");
      double num = 0;
      try {
        size_t used = 0;
        num = std::stod(s.substr(i, j - i), &used);
        if (used != j - i) throw std::invalid_argument("");
      } catch (const std::exception&) {
        bad(name, "'" + s + "' is not a duration (e.g. \"5m\", \"1h30m\", \"-1\")");
      }
      size_t u = j;
      while (u < s.size() && std::isalpha((unsigned char)s[u])) ++u;
      const std::string unit = s.substr(j, u - j);
      double scale;
      if (unit.empty()) {
        if (any || u != s.size()) bad(name, "'" + s + "': a number without a unit must stand alone");
        scale = 1;
      } else if (unit == "ns") scale = 1e-9;
      else if (unit == "us" || unit == "µs") scale = 1e-6;
      else if (unit == "ms") scale = 1e-3;
      else if (unit == "s") scale = 1;
      else if (unit == "m") scale = 60;
      else if (unit == "h") scale = 3600;
      else bad(name, "'" + s + "': unknown unit '" + unit + "' (ns, us, ms, s, m, h)");
      seconds += num * scale;
      any = true;
      i = u;
    }
    if (neg) seconds = -seconds;
  } else {
    wrong_type(name, v, "a duration string or a number of seconds");
  }
  if (seconds < 0) k.forever = true;
  else k.seconds = seconds;
  return k;
}

json parse_body(const std::string& body) {
  if (const size_t at = tok::utf8_invalid_offset(body); at != std::string::npos)
    throw RequestError(400, "body", "body: invalid UTF-8 at byte " + std::to_string(at) + " (JSON must be UTF-8)");
  json j;
  try {
    // Exceptions on: the parser throws out_of_range for a number that overflows even when asked
    // not to throw, so catching is the one way to see every refusal.
    j = json::parse(body);
  } catch (const json::exception& e) {
    throw RequestError(400, "body", std::string("body: malformed JSON: ") + e.what());
  }
  if (!j.is_object()) throw RequestError(400, "body", std::string("body: must be a JSON object, got ") + type_name(j));
  return j;
}

GenerationRequest parse_ollama_generate(const json& body, int64_t max_ctx) {
  GenerationRequest r;
  r.route = Route::ollama_generate;
  parse_common_ollama(body, r, max_ctx);
  r.prompt = opt_string(body, "prompt", "prompt").value_or("");
  r.system = opt_string(body, "system", "system").value_or("");
  if (auto v = opt_bool(body, "raw", "raw")) r.raw = *v;
  if (auto v = opt_string(body, "suffix", "suffix"); v && !v->empty()) bad("suffix", "is not supported (no fill-in-the-middle)");
  if (auto v = opt_string(body, "template", "template"); v && !v->empty())
    bad("template", "is not supported (the model's own chat template is used)");
  if (const json* img = field(body, "images"); img && !(img->is_array() && img->empty()))
    bad("images", "images are not supported (no vision model)");
  if (const json* c = field(body, "context"); c && !(c->is_array() && c->empty()))
    bad("context", "is not supported (send the conversation to /api/chat)");
  return r;
}

GenerationRequest parse_ollama_chat(const json& body, int64_t max_ctx) {
  GenerationRequest r;
  r.route = Route::ollama_chat;
  parse_common_ollama(body, r, max_ctx);
  r.messages = parse_messages(body, false);
  if (auto v = opt_bool(body, "truncate", "truncate")) r.truncate = *v;
  r.tools = parse_tools(body);
  return r;
}

GenerationRequest parse_openai_chat(const json& body, int64_t max_ctx) {
  GenerationRequest r;
  r.route = Route::openai_chat;
  parse_openai_common(body, r, max_ctx);
  r.messages = parse_messages(body, true);
  r.tools = parse_tools(body);
  parse_tool_choice(body, r);
  for (const char* old : {"functions", "function_call"})
    if (field(body, old)) bad(old, "is OpenAI's deprecated form of tool calling: send tools and tool_choice");
  if (auto v = opt_bool(body, "logprobs", "logprobs")) r.logprobs = *v;
  if (auto v = opt_int(body, "top_logprobs", "top_logprobs"); v && *v != 0)
    bad("top_logprobs", "only 0 is supported (the chosen tokens' log-probabilities)");
  if (const json* e = field(body, "reasoning_effort")) parse_reasoning_effort(*e, "reasoning_effort", r);
  if (const json* k = field(body, "chat_template_kwargs")) {
    check_object(*k, "chat_template_kwargs");
    r.template_vars = *k;
    if (const json* t = field(*k, "enable_thinking")) {
      if (!t->is_boolean()) wrong_type("chat_template_kwargs.enable_thinking", *t, "a boolean");
      r.think = t->get<bool>();
    }
  }
  return r;
}

GenerationRequest parse_openai_completion(const json& body, int64_t max_ctx) {
  GenerationRequest r;
  r.route = Route::openai_completion;
  r.max_tokens = 16;  // OpenAI's default for the legacy completions route
  parse_openai_common(body, r, max_ctx);
  const json* p = field(body, "prompt");
  if (!p) bad("prompt", "is required");
  if (p->is_string()) {
    r.prompt = p->get<std::string>();
  } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
    r.prompt = (*p)[0].get<std::string>();
  } else if (p->is_array()) {
    bad("prompt", "only one prompt per request is supported (a string, or an array of one string)");
  } else {
    wrong_type("prompt", *p, "a string");
  }
  if (auto v = opt_bool(body, "echo", "echo"); v && *v) bad("echo", "is not supported");
  if (field(body, "logprobs")) bad("logprobs", "is not supported on /v1/completions (/v1/chat/completions has it)");
  if (auto v = opt_string(body, "suffix", "suffix"); v && !v->empty()) bad("suffix", "is not supported");
  if (auto v = opt_int(body, "best_of", "best_of"); v && *v != 1) bad("best_of", "only best_of = 1 is supported");
  return r;
}

EmbedRequest parse_embed(const json& body) {
  check_object(body, "body");
  EmbedRequest r;
  r.model = required_string(body, "model");
  const json* in = field(body, "input");
  if (!in) bad("input", "is required");
  if (in->is_string()) {
    r.input.push_back(in->get<std::string>());
  } else if (in->is_array()) {
    for (size_t i = 0; i < in->size(); ++i) {
      if (!(*in)[i].is_string()) wrong_type("input[" + std::to_string(i) + "]", (*in)[i], "a string");
      r.input.push_back((*in)[i].get<std::string>());
    }
  } else {
    wrong_type("input", *in, "a string or an array of strings");
  }
  if (auto v = opt_bool(body, "truncate", "truncate")) r.truncate = *v;
  if (const json* k = field(body, "keep_alive")) r.keep_alive = parse_keep_alive(*k, "keep_alive");
  if (auto v = opt_int(body, "dimensions", "dimensions")) {
    if (*v < 1) bad("dimensions", "must be >= 1, got " + std::to_string(*v));
    r.dimensions = *v;
  }
  return r;
}

}  // namespace lowbit::server
