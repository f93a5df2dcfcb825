// Tool calling over a model's chat template. A template that offers tools also shows, when it
// renders an assistant message that called one, the text the model was trained to write for a
// call (Qwen2.5 and Hermes: `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`; Llama
// 3.x: a bare `{"name": ..., "parameters": {...}}`). ToolCallSyntax learns that text by rendering
// one probe call, so no model family is written into lowbit; it then reads calls back out of a
// reply and builds the JSON schema that holds a reply to a call of the offered tools.
//
// Thread safety: a ToolCallSyntax is immutable after of(); its methods may be called from any
// number of threads at once.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lowbit {

class ChatTemplate;

struct ToolCall {
  std::string name;
  nlohmann::ordered_json arguments;  // an object
};

// What a reply says: its text outside the calls, and the calls in order.
struct ToolReply {
  std::string content;
  std::vector<ToolCall> calls;
};

class ToolCallSyntax {
 public:
  // How tmpl writes a call, or nullopt when it cannot be offered tools: its rendering ignores
  // `tools`, it renders no readable JSON object for an assistant's tool_calls, or it refuses the
  // probe conversation (a system message, a user message, an assistant message with one call).
  static std::optional<ToolCallSyntax> of(const ChatTemplate& tmpl);

  const std::string& prefix() const { return prefix_; }  // before a call's object ("<tool_call>\n"; "" for bare JSON)
  const std::string& suffix() const { return suffix_; }  // after it ("\n</tool_call>")
  const std::string& name_key() const { return name_key_; }            // "name"
  const std::string& arguments_key() const { return arguments_key_; }  // "arguments" or "parameters"
  // The template writes the arguments as a JSON string holding the object, not as the object.
  bool arguments_as_string() const { return arguments_as_string_; }

  // The calls in a reply, of tools named in `tools` (an array of {"type": "function", "function":
  // {"name", ...}}). With a prefix: each call is the prefix (whitespace around it optional), a
  // JSON object naming a tool, then optionally the suffix; calls may follow one another; text
  // before the first is the content, and a reply with anything unreadable after a prefix is all
  // content. Without one: a reply that is one such object alone is a call. Never throws.
  ToolReply parse(const std::string& text, const nlohmann::ordered_json& tools) const;

  // Where, in a reply streamed so far, a call may have begun: text before this offset can be
  // sent as content, the rest is held until the reply ends (text.size() when nothing is held).
  size_t hold_from(const std::string& text) const;

  // What a reply forced to call `tool` (one element of tools) continues after: the prefix and the
  // object's text up to the arguments value, in the template's own spelling (`<tool_call>\n{"name":
  // "get_weather", "arguments": `). Empty when the template writes the arguments before the name.
  std::string forced_opening(const std::string& name) const;
  // And what closes the object after the arguments value ("}").
  const std::string& forced_closing() const { return after_arguments_; }

  // A reply made to call one of tools[candidates] (OpenAI's tool_choice "required" or a named
  // function): the text the prompt ends with, the schema the generated rest is held to, and what
  // closes it. One function: the template's own opening of its call, then its arguments held to
  // its parameters (an object when it gives none). Several: the prefix, then one call object of
  // any of them. Throws Error(invalid_argument) for more candidates than the recognizer follows
  // at once (JsonPrefix::kMaxPaths).
  struct Forced {
    std::string reply_start, reply_end;
    nlohmann::json schema;
  };
  Forced force(const nlohmann::ordered_json& tools, const std::vector<size_t>& candidates) const;
  // The schema of one call object (after the prefix) of any of tools[candidates]: what a forced
  // call of several tools is held to, and what a call the model opens by itself (tool_choice
  // "auto") is held to once it has written the prefix. Throws as force() does.
  nlohmann::json call_schema(const nlohmann::ordered_json& tools, const std::vector<size_t>& candidates) const;
  // A forced reply read back: its call, or (cut short, e.g. by the token limit) all content.
  ToolReply read_forced(const Forced& f, const std::string& generated, const nlohmann::ordered_json& tools) const;
  // What a reply needs by OpenAI's tool_choice: "auto" (the reply is read for calls), "none" (the
  // tools are shown, the reply is text), "required" (the reply is one call of any of the tools) or
  // a function's name (one call of it): the front ends without a call trigger (the Python module,
  // the C API) take this; `lowbit serve` also holds an "auto" call once the model opens one.
  // Throws Error(invalid_argument) for a choice that is none of those, or as force() does.
  struct Plan {
    bool active = true;    // the reply is read for calls
    bool forced = false;   // the prompt ends with forced_reply.reply_start, the reply held to its schema
    Forced forced_reply;   // when forced
  };
  Plan plan(const nlohmann::ordered_json& tools, const std::string& choice) const;
  // A finished reply read back as the plan says.
  ToolReply read(const Plan& p, const std::string& reply, const nlohmann::ordered_json& tools) const;
  // The indices of the tools a forced call may be to: the one named `name`, or all when name is "".
  static std::vector<size_t> candidates(const nlohmann::ordered_json& tools, const std::string& name);
  // The schema a tool's arguments are held to: its parameters, or any object.
  static nlohmann::json arguments_schema(const nlohmann::ordered_json& tool);

 private:
  std::string prefix_, suffix_, name_key_, arguments_key_;
  bool arguments_as_string_ = false;
  // The probe object's text around its name and arguments values, the name replaced by a hole:
  // `{"name": "` + name + `", "arguments": ` ... `}`; empty before_name_ when the arguments come
  // first.
  std::string before_name_, after_name_, after_arguments_;
};

}  // namespace lowbit
