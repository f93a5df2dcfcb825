// A chat request's tools on a loaded model: whether its template can offer them, what a forced
// call (OpenAI's tool_choice "required" or a named function) begins the reply with and holds it
// to, what a stream may send before a call can begin, and the finished reply read back as content
// and calls.
//
// Thread safety: a ToolUse is built per request and used by the one thread that serves it.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "runtime/chat/tool_calls.h"
#include "runtime/json_schema.h"
#include "server/registry.h"
#include "server/request.h"

namespace lowbit::server {

class ToolUse {
 public:
  // Throws RequestError(400) naming the field: tools for a model whose template offers none, a
  // forced call the template's syntax cannot be held to, a tool's parameters schema that cannot
  // be enforced, a forced call together with `format` / `response_format`.
  ToolUse(const LoadedModel& m, const GenerationRequest& req);

  bool active() const { return syntax_.has_value(); }  // the reply is read for calls
  // The tools the template sees (null when the request has none).
  const nlohmann::ordered_json& tools() const { return tools_; }
  // The reply's forced beginning, which the prompt ends with ("" unless forced), and the schema
  // the generated rest is held to (null unless forced).
  std::string reply_start() const { return forced_ ? forced_->reply_start : std::string(); }
  const std::shared_ptr<const JsonSchema>& schema() const { return schema_; }
  // tool_choice "auto": once the reply writes the template's call prefix (trigger, "<tool_call>\n")
  // what follows is held to a call object of the tools (call_schema), until it closes. Null / ""
  // when forced, when the template writes bare calls (no prefix to wait for) or when the
  // tools' parameters cannot be held (then calls are read as written, as before).
  const std::shared_ptr<const JsonSchema>& call_schema() const { return call_schema_; }
  const std::string& trigger() const { return trigger_; }

  // Streaming: how much of the text generated so far may be sent as content now.
  size_t sendable(const std::string& generated) const;
  // The finished reply: its content and calls (all content when it holds no readable call).
  ToolReply read(const std::string& generated) const;

 private:
  // Copies, not references: a stream reads the reply after it has released the request and the
  // model (which keep_alive 0 unloads then).
  nlohmann::ordered_json tools_;
  bool parallel_ = true;
  std::optional<ToolCallSyntax> syntax_;
  std::optional<ToolCallSyntax::Forced> forced_;  // tool_choice required or named
  std::shared_ptr<const JsonSchema> schema_;
  std::shared_ptr<const JsonSchema> call_schema_;
  std::string trigger_;
};

}  // namespace lowbit::server
