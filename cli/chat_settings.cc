#include "cli/chat_settings.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <vector>

namespace lowbit::cli {
namespace {

const char* kNames =
    "temperature, top_k, top_p, min_p, seed, num_predict, repeat_penalty, repeat_last_n, presence_penalty, "
    "frequency_penalty, stop";

bool parse_float(const std::string& v, float& out) {
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || errno || !std::isfinite(d)) return false;
  out = (float)d;
  return true;
}

bool parse_int(const std::string& v, long long& out) {
  char* end = nullptr;
  errno = 0;
  out = std::strtoll(v.c_str(), &end, 10);
  return !v.empty() && !*end && !errno;
}

// The Ollama name of a setting invalid_setting() names by its field.
std::string ollama_name(const std::string& field) {
  if (field == "max_tokens") return "num_predict";
  if (field == "repetition_penalty") return "repeat_penalty";
  if (field == "repetition_window") return "repeat_last_n";
  return field;
}

std::string words(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& w : list) out += (out.empty() ? "" : " ") + w;
  return out;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

std::string set_parameter(ChatSettings& s, const std::string& args) {
  std::istringstream in(args);
  std::string name;
  in >> name;
  std::vector<std::string> values;
  for (std::string w; in >> w;) values.push_back(w);
  if (name.empty()) return std::string("error: /set parameter NAME VALUE; NAME is one of ") + kNames;
  if (values.empty()) return "error: /set parameter " + name + " needs a value";
  ChatSettings next = s;
  SamplerParams& sp = next.gen.sampler;
  const std::string& v = values[0];
  bool parsed = values.size() == 1 || name == "stop";
  long long i = 0;
  if (name == "temperature") parsed = parsed && parse_float(v, sp.temperature);
  else if (name == "top_p") parsed = parsed && parse_float(v, sp.top_p);
  else if (name == "min_p") parsed = parsed && parse_float(v, sp.min_p);
  else if (name == "repeat_penalty") parsed = parsed && parse_float(v, sp.repetition_penalty);
  else if (name == "presence_penalty") parsed = parsed && parse_float(v, sp.presence_penalty);
  else if (name == "frequency_penalty") parsed = parsed && parse_float(v, sp.frequency_penalty);
  else if (name == "top_k" || name == "repeat_last_n" || name == "num_predict" || name == "seed") {
    parsed = parsed && parse_int(v, i) && (name == "seed" ? i >= 0 : i >= INT32_MIN && i <= INT32_MAX);
    if (name == "top_k") sp.top_k = (int)i;
    if (name == "repeat_last_n") sp.repetition_window = (int)i;
    if (name == "seed") sp.seed = (uint64_t)i;
    if (name == "num_predict") {
      // Ollama's -1 (and -2): no limit but the context.
      next.max_tokens_given = i >= 0;
      next.gen.max_tokens = i >= 0 ? i : s.gen.max_tokens;
      parsed = parsed && i >= -2;
    }
  } else if (name == "stop") {
    next.gen.stop = values;
  } else {
    return "error: unknown parameter '" + name + "'; known: " + kNames;
  }
  if (!parsed) return "error: '" + words(values) + "' is not a value for " + name;
  if (const auto bad = invalid_setting(next.gen))
    return "error: " + ollama_name(bad->field) + " must be " + bad->requirement;
  s = next;
  const std::string shown = name == "stop" ? words(values) : v;
  return "Set parameter '" + name + "' to '" + shown + "'";
}

std::string show_parameters(const ChatSettings& s) {
  const SamplerParams& p = s.gen.sampler;
  std::string out;
  auto line = [&](const char* name, const std::string& value) { out += std::string(name) + " " + value + "\n"; };
  line("temperature", number(p.temperature));
  line("top_k", std::to_string(p.top_k));
  line("top_p", number(p.top_p));
  line("min_p", number(p.min_p));
  line("seed", std::to_string(p.seed));
  line("num_predict", s.max_tokens_given ? std::to_string(s.gen.max_tokens) : "-1 (until the context is full)");
  line("repeat_penalty", number(p.repetition_penalty));
  line("repeat_last_n", std::to_string(p.repetition_window));
  line("presence_penalty", number(p.presence_penalty));
  line("frequency_penalty", number(p.frequency_penalty));
  line("stop", s.gen.stop.empty() ? "(none)" : words(s.gen.stop));
  return out;
}

}  // namespace lowbit::cli
