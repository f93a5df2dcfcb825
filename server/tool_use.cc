#include "server/tool_use.h"

#include "kernels/error.h"
#include "runtime/json_prefix.h"

namespace lowbit::server {
namespace {

using ojson = nlohmann::ordered_json;

std::shared_ptr<const JsonSchema> compile(const nlohmann::json& schema, const std::string& field) {
  try {
    return JsonSchema::compile(schema, field);
  } catch (const Error& e) {
    throw RequestError(400, field, std::string(e.what()) + " (a forced tool call holds its arguments to this schema)");
  }
}

// A tool's parameters as a schema for its arguments: an object, whatever else it says.
nlohmann::json arguments_schema(const ojson& tool) {
  const ojson& f = tool["function"];
  if (!f.contains("parameters") || f["parameters"].is_null()) return {{"type", "object"}};
  return nlohmann::json(f["parameters"]);
}

}  // namespace

ToolUse::ToolUse(const LoadedModel& m, const GenerationRequest& req)
    : tools_(req.tools), parallel_(req.parallel_tool_calls) {
  using TC = GenerationRequest::ToolChoice;
  if (req.tools.is_null()) return;
  if (!m.tool_syntax)
    throw RequestError(400, "tools",
                       "tools: '" + req.model + "' does not support tools (its chat template " +
                           (m.chat_template ? "writes no tool calls" : "is missing") + ")");
  if (req.tool_choice == TC::none) return;  // the template shows the tools; the reply is text
  syntax_ = &*m.tool_syntax;
  if (req.tool_choice == TC::automatic) return;

  forced_ = true;
  if (req.json) throw RequestError(400, "tool_choice", "tool_choice: a forced call cannot also follow response_format");
  std::vector<size_t> candidates;
  for (size_t i = 0; i < req.tools.size(); ++i)
    if (req.tool_choice == TC::required || req.tools[i]["function"]["name"] == req.tool_name) candidates.push_back(i);
  auto field_of = [](size_t i) { return "tools[" + std::to_string(i) + "].function.parameters"; };
  const std::string one_name =
      candidates.size() == 1 ? req.tools[candidates[0]]["function"]["name"].get<std::string>() : "";
  if (!one_name.empty() && !syntax_->forced_opening(one_name).empty()) {
    // One function: the prompt ends with the call's text up to its arguments, which are held to
    // the function's parameters.
    reply_start_ = syntax_->forced_opening(one_name);
    reply_end_ = syntax_->forced_closing();
    schema_ = compile(arguments_schema(req.tools[candidates[0]]), field_of(candidates[0]));
    return;
  }
  // Several: the reply is one call object of any of them, after the syntax's prefix.
  if (candidates.size() > (size_t)JsonPrefix::kMaxPaths)
    throw RequestError(400, "tool_choice",
                       "tool_choice: \"required\" holds a reply to a call of at most " +
                           std::to_string(JsonPrefix::kMaxPaths) + " tools, got " + std::to_string(candidates.size()) +
                           "; name one function, or use \"auto\"");
  nlohmann::json any = nlohmann::json::array();
  for (size_t i : candidates) {
    compile(arguments_schema(req.tools[i]), field_of(i));  // its own errors, under its own name
    nlohmann::json args = syntax_->arguments_as_string() ? nlohmann::json{{"type", "string"}} : arguments_schema(req.tools[i]);
    any.push_back({{"type", "object"},
                   {"properties",
                    {{syntax_->name_key(), {{"const", req.tools[i]["function"]["name"].get<std::string>()}}},
                     {syntax_->arguments_key(), args}}},
                   {"required", nlohmann::json::array({syntax_->name_key(), syntax_->arguments_key()})}});
  }
  reply_start_ = syntax_->prefix();
  reply_end_ = syntax_->suffix();
  schema_ = compile(any.size() == 1 ? any[0] : nlohmann::json{{"anyOf", any}}, "tools");
}

size_t ToolUse::sendable(const std::string& generated) const {
  if (!syntax_) return generated.size();
  return forced_ ? 0 : syntax_->hold_from(generated);
}

ToolReply ToolUse::read(const std::string& generated) const {
  if (!syntax_) return ToolReply{generated, {}};
  if (forced_) {
    ToolReply r = syntax_->parse(reply_start_ + generated + reply_end_, tools_);
    // A call cut short (the token limit) is no call: what was generated is the reply.
    return r.calls.empty() ? ToolReply{generated, {}} : ToolReply{"", std::move(r.calls)};
  }
  ToolReply r = syntax_->parse(generated, tools_);
  if (!parallel_ && r.calls.size() > 1) r.calls.resize(1);
  return r;
}

}  // namespace lowbit::server
