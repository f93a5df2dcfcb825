#include "server/tool_use.h"

#include "kernels/error.h"
#include "runtime/json_prefix.h"

namespace lowbit::server {
namespace {

std::shared_ptr<const JsonSchema> compile(const nlohmann::json& schema, const std::string& field) {
  try {
    return JsonSchema::compile(schema, field);
  } catch (const Error& e) {
    throw RequestError(400, field, std::string(e.what()) + " (a forced tool call holds its arguments to this schema)");
  }
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
  syntax_ = m.tool_syntax;
  if (req.tool_choice == TC::automatic) {
    // A call the model opens is held to the tools' schemas; a request that cannot be (JSON mode
    // over the whole reply, bare calls, more tools than the recognizer follows, a parameters
    // schema it cannot hold) reads calls as written.
    const std::vector<size_t> all = ToolCallSyntax::candidates(req.tools, "");
    if (req.json || syntax_->prefix().empty() || all.size() > (size_t)JsonPrefix::kMaxPaths) return;
    try {
      call_schema_ = JsonSchema::compile(syntax_->call_schema(req.tools, all), "tools");
      trigger_ = syntax_->prefix();
    } catch (const Error&) {
      call_schema_ = nullptr;
    }
    return;
  }

  if (req.json) throw RequestError(400, "tool_choice", "tool_choice: a forced call cannot also follow response_format");
  const std::vector<size_t> candidates =
      ToolCallSyntax::candidates(req.tools, req.tool_choice == TC::named ? req.tool_name : "");
  // Each tool's own schema errors under its own name, before the combined schema's.
  for (size_t i : candidates)
    compile(ToolCallSyntax::arguments_schema(req.tools[i]), "tools[" + std::to_string(i) + "].function.parameters");
  try {
    forced_ = syntax_->force(req.tools, candidates);
  } catch (const Error& e) {
    throw RequestError(400, "tool_choice", std::string("tool_choice: ") + e.what());
  }
  schema_ = compile(forced_->schema, "tools");
}

size_t ToolUse::sendable(const std::string& generated) const {
  if (!syntax_) return generated.size();
  return forced_ ? 0 : syntax_->hold_from(generated);
}

ToolReply ToolUse::read(const std::string& generated) const {
  if (!syntax_) return ToolReply{generated, {}};
  if (forced_) return syntax_->read_forced(*forced_, generated, tools_);
  ToolReply r = syntax_->parse(generated, tools_);
  if (!parallel_ && r.calls.size() > 1) r.calls.resize(1);
  return r;
}

}  // namespace lowbit::server
