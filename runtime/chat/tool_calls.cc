#include "runtime/chat/tool_calls.h"

#include <set>

#include "kernels/error.h"
#include "runtime/chat/chat_template.h"
#include "runtime/chat/thinking.h"
#include "runtime/json_prefix.h"

namespace lowbit {
namespace {

using ojson = nlohmann::ordered_json;

// Names no template writes by itself, so finding them in a rendering finds the probe.
const char kProbeName[] = "lowbit_probe_tool";
const char kProbeArg[] = "lowbit_probe_arg";
const char kProbeValue[] = "lowbit_probe_value";
const char kProbeReply[] = "lowbit probe reply";

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

size_t rtrim_end(const std::string& s, size_t end) {
  while (end > 0 && is_space(s[end - 1])) --end;
  return end;
}

// The offset just past the '}' closing the object that opens at s[start], or npos when the text
// ends first (strings and their escapes skipped, so braces inside them do not count).
size_t object_end(const std::string& s, size_t start) {
  if (start >= s.size() || s[start] != '{') return std::string::npos;
  int depth = 0;
  bool in_string = false;
  for (size_t i = start; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return c == '}' ? i + 1 : std::string::npos;
    }
  }
  return std::string::npos;
}

std::set<std::string> tool_names(const ojson& tools) {
  std::set<std::string> names;
  if (!tools.is_array()) return names;
  for (const ojson& t : tools) {
    if (!t.is_object()) continue;
    const ojson& f = t.contains("function") ? t["function"] : t;
    if (f.is_object() && f.contains("name") && f["name"].is_string()) names.insert(f["name"].get<std::string>());
  }
  return names;
}

}  // namespace

std::optional<ToolCallSyntax> ToolCallSyntax::of(const ChatTemplate& tmpl) {
  const ojson tools = ojson::array(
      {{{"type", "function"},
        {"function",
         {{"name", kProbeName},
          {"description", "A probe."},
          {"parameters",
           {{"type", "object"}, {"properties", {{kProbeArg, {{"type", "string"}}}}}, {"required", ojson::array({kProbeArg})}}}}}}});
  const ojson user = {{"role", "user"}, {"content", "lowbit probe question"}};
  const ojson call = {{"role", "assistant"},
                      {"content", ""},
                      {"tool_calls", ojson::array({ojson{{"type", "function"},
                                                         {"function", {{"name", kProbeName},
                                                                       {"arguments", {{kProbeArg, kProbeValue}}}}}}})}};
  const ojson plain = {{"role", "assistant"}, {"content", kProbeReply}};
  std::string asked, with_call, with_reply;
  try {
    asked = tmpl.render(ojson::array({user}), true, tools);
    if (asked == tmpl.render(ojson::array({user}), true, ojson())) return std::nullopt;  // tools ignored
    with_call = tmpl.render(ojson::array({user, call}), false, tools);
    with_reply = tmpl.render(ojson::array({user, plain}), false, tools);
  } catch (const Error&) {
    return std::nullopt;
  }
  // What the model writes is what follows the generation prompt: of a thinking model's turn
  // (Qwen3's renders an empty <think> block before a call), the answer after its reasoning, which
  // is where a reply's calls are read from (runtime/chat/thinking.h).
  if (with_call.compare(0, asked.size(), asked) != 0 || with_reply.compare(0, asked.size(), asked) != 0)
    return std::nullopt;
  const bool opened = prompt_opens_thinking(asked);
  std::string written = split_thinking(with_call.substr(asked.size()), opened).content;
  const std::string reply = split_thinking(with_reply.substr(asked.size()), opened).content;
  const size_t r = reply.find(kProbeReply);
  if (r == std::string::npos) return std::nullopt;
  const std::string end_of_turn = reply.substr(r + sizeof kProbeReply - 1);
  if (written.size() >= end_of_turn.size() &&
      written.compare(written.size() - end_of_turn.size(), end_of_turn.size(), end_of_turn) == 0)
    written.resize(written.size() - end_of_turn.size());

  const std::string quoted_name = std::string("\"") + kProbeName + "\"";
  const size_t name_at = written.find(quoted_name);
  if (name_at == std::string::npos) return std::nullopt;
  const size_t start = written.rfind('{', name_at);
  const size_t end = start == std::string::npos ? start : object_end(written, start);
  if (end == std::string::npos) return std::nullopt;
  const std::string object_text = written.substr(start, end - start);
  ojson object;
  try {
    object = ojson::parse(object_text);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  ToolCallSyntax s;
  const ojson want_args = {{kProbeArg, kProbeValue}};
  for (const auto& [key, value] : object.items()) {
    if (value == kProbeName) s.name_key_ = key;
    if (value == want_args) s.arguments_key_ = key;
    if (value.is_string() && value != kProbeName) {
      try {
        if (ojson::parse(value.get<std::string>()) == want_args) {
          s.arguments_key_ = key;
          s.arguments_as_string_ = true;
        }
      } catch (const std::exception&) {
      }
    }
  }
  if (s.name_key_.empty() || s.arguments_key_.empty()) return std::nullopt;
  s.prefix_ = written.substr(0, start);
  s.suffix_ = written.substr(end);

  // The object's own spelling around the name and the arguments, for a forced call.
  const size_t name_in = object_text.find(quoted_name);
  const size_t arg_in = object_text.find(std::string("\"") + kProbeArg + "\"");
  const size_t args_start = arg_in == std::string::npos ? arg_in : object_text.rfind('{', arg_in);
  const size_t args_end = args_start == std::string::npos ? args_start : object_end(object_text, args_start);
  if (!s.arguments_as_string_ && args_end != std::string::npos && args_start > name_in) {
    const size_t after_name = name_in + quoted_name.size() - 1;  // at the name's closing quote
    s.before_name_ = object_text.substr(0, name_in + 1);
    s.after_name_ = object_text.substr(after_name, args_start - after_name);
    s.after_arguments_ = object_text.substr(args_end);
  }
  return s;
}

ToolReply ToolCallSyntax::parse(const std::string& text, const ojson& tools) const {
  ToolReply whole{text, {}};
  const std::set<std::string> names = tool_names(tools);
  auto read_call = [&](const std::string& object_text, ToolCall& out) {
    try {
      const ojson o = ojson::parse(object_text);
      if (!o.is_object() || !o.contains(name_key_) || !o[name_key_].is_string()) return false;
      out.name = o[name_key_].get<std::string>();
      if (!names.count(out.name)) return false;
      const ojson args = o.contains(arguments_key_) ? o[arguments_key_] : ojson::object();
      out.arguments = args.is_string() ? ojson::parse(args.get<std::string>()) : args;
      return out.arguments.is_object();
    } catch (const std::exception&) {
      return false;
    }
  };
  const std::string key = trim(prefix_);
  if (key.empty()) {
    const std::string t = trim(text);
    ToolCall c;
    if (!t.empty() && object_end(t, 0) == t.size() && read_call(t, c)) return ToolReply{"", {c}};
    return whole;
  }
  size_t pos = text.find(key);
  if (pos == std::string::npos) return whole;
  ToolReply out{text.substr(0, rtrim_end(text, pos)), {}};
  const std::string closing = trim(suffix_);
  auto skip_space = [&] {
    while (pos < text.size() && is_space(text[pos])) ++pos;
  };
  while (pos < text.size() && text.compare(pos, key.size(), key) == 0) {
    pos += key.size();
    skip_space();
    const size_t end = object_end(text, pos);
    ToolCall c;
    if (end == std::string::npos || !read_call(text.substr(pos, end - pos), c)) return whole;
    out.calls.push_back(std::move(c));
    pos = end;
    skip_space();
    if (!closing.empty() && text.compare(pos, closing.size(), closing) == 0) pos += closing.size();
    skip_space();
  }
  // Text after the last call (a model that goes on talking) is not part of the reply's content.
  return out;
}

size_t ToolCallSyntax::hold_from(const std::string& text) const {
  const std::string key = trim(prefix_);
  if (key.empty()) {
    size_t i = 0;
    while (i < text.size() && is_space(text[i])) ++i;
    return i == text.size() || text[i] == '{' ? 0 : text.size();
  }
  size_t at = text.find(key);
  if (at == std::string::npos) {
    at = text.size();
    // The earliest tail that is the start of the prefix.
    for (size_t len = std::min(key.size() - 1, text.size()); len > 0; --len) {
      if (text.compare(text.size() - len, len, key, 0, len) == 0) {
        at = text.size() - len;
        break;
      }
    }
  }
  return rtrim_end(text, at);
}

std::string ToolCallSyntax::forced_opening(const std::string& name) const {
  if (before_name_.empty()) return "";
  return prefix_ + before_name_ + name + after_name_;
}

std::vector<size_t> ToolCallSyntax::candidates(const ojson& tools, const std::string& name) {
  std::vector<size_t> out;
  for (size_t i = 0; tools.is_array() && i < tools.size(); ++i)
    if (name.empty() || tools[i].at("function").at("name") == name) out.push_back(i);
  return out;
}

nlohmann::json ToolCallSyntax::arguments_schema(const ojson& tool) {
  const ojson& f = tool.at("function");
  if (!f.contains("parameters") || f["parameters"].is_null()) return {{"type", "object"}};
  return nlohmann::json(f["parameters"]);
}

ToolCallSyntax::Forced ToolCallSyntax::force(const ojson& tools, const std::vector<size_t>& candidates) const {
  auto name_of = [&](size_t i) { return tools.at(i).at("function").at("name").get<std::string>(); };
  Forced f;
  if (candidates.size() == 1 && !forced_opening(name_of(candidates[0])).empty()) {
    f.reply_start = forced_opening(name_of(candidates[0]));
    f.reply_end = forced_closing();
    f.schema = arguments_schema(tools.at(candidates[0]));
    return f;
  }
  f.reply_start = prefix_;
  f.reply_end = suffix_;
  f.schema = call_schema(tools, candidates);
  return f;
}

nlohmann::json ToolCallSyntax::call_schema(const ojson& tools, const std::vector<size_t>& candidates) const {
  if (candidates.empty() || candidates.size() > (size_t)JsonPrefix::kMaxPaths)
    throw Error(ErrorCode::invalid_argument,
                "a forced call is held to one of at most " + std::to_string(JsonPrefix::kMaxPaths) + " tools, got " +
                    std::to_string(candidates.size()) + "; name one function, or let the model choose");
  nlohmann::json any = nlohmann::json::array();
  for (size_t i : candidates) {
    const nlohmann::json args = arguments_as_string_ ? nlohmann::json{{"type", "string"}} : arguments_schema(tools.at(i));
    any.push_back({{"type", "object"},
                   {"properties", {{name_key_, {{"const", tools.at(i).at("function").at("name")}}}, {arguments_key_, args}}},
                   {"required", nlohmann::json::array({name_key_, arguments_key_})}});
  }
  return any.size() == 1 ? any[0] : nlohmann::json{{"anyOf", any}};
}

ToolReply ToolCallSyntax::read_forced(const Forced& f, const std::string& generated, const ojson& tools) const {
  ToolReply r = parse(f.reply_start + generated + f.reply_end, tools);
  return r.calls.empty() ? ToolReply{generated, {}} : ToolReply{"", std::move(r.calls)};
}

ToolCallSyntax::Plan ToolCallSyntax::plan(const ojson& tools, const std::string& choice) const {
  Plan p;
  p.active = choice != "none";
  if (choice == "auto" || choice == "none") return p;
  const std::vector<size_t> which = candidates(tools, choice == "required" ? "" : choice);
  if (which.empty())
    throw Error(ErrorCode::invalid_argument, "tool_choice: '" + choice + "' is none of \"auto\", \"none\", "
                                             "\"required\" or the name of one of the tools");
  p.forced = true;
  p.forced_reply = force(tools, which);
  return p;
}

ToolReply ToolCallSyntax::read(const Plan& p, const std::string& reply, const ojson& tools) const {
  if (!p.active) return {reply, {}};
  return p.forced ? read_forced(p.forced_reply, reply, tools) : parse(reply, tools);
}

}  // namespace lowbit
