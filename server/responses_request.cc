// OpenAI's Responses API request (POST /v1/responses) read into the chat request it amounts to:
// its items become chat messages (a function_call an assistant message's tool call, a
// function_call_output a "tool" message, a reasoning item the next assistant turn's
// reasoning_content), its flat tools the chat form, instructions a first
// system message, and a previous_response_id the kept conversation it continues, before the
// input. Everything it maps is checked here under the names the client wrote
// ("input[2].call_id", "tools[0].name", "text.format.schema"), so the chat parser that reads the
// rest (model, stream, temperature, top_p) never blames a field the client did not send.
#include <algorithm>
#include <string>
#include <vector>

#include "server/request.h"
#include "server/request_fields.h"

namespace lowbit::server {
namespace {

using json = nlohmann::ordered_json;

std::string required(const json& obj, const std::string& key, const std::string& name) {
  const auto v = opt_string(obj, key, name);
  if (!v) bad(name, "is required");
  return *v;
}

// A message's or a function output's content: a string, or text parts.
std::string item_text(const json& v, const std::string& name) {
  if (v.is_string()) return v.get<std::string>();
  if (!v.is_array()) wrong_type(name, v, "a string or an array of content parts");
  std::string text;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string part = name + "[" + std::to_string(i) + "]";
    check_object(v[i], part);
    const std::string type = required(v[i], "type", part + ".type");
    if (type != "input_text" && type != "output_text")
      bad(part + ".type", "only \"input_text\" and \"output_text\" parts are supported (no images or files), got \"" +
                              type + "\"");
    text += required(v[i], "text", part + ".text");
  }
  return text;
}

json function_call(const json& item, const std::string& name) {
  const std::string call_id = required(item, "call_id", name + ".call_id");
  const json* fname = field(item, "name");
  if (!fname) bad(name + ".name", "is required");
  check_function_name(*fname, name + ".name");
  const std::string text = required(item, "arguments", name + ".arguments");
  json args;
  try {
    args = json::parse(text);
  } catch (const json::exception&) {
    bad(name + ".arguments", "is not the JSON text of an object: " + json(text).dump());
  }
  if (!args.is_object()) bad(name + ".arguments", "must be the JSON text of an object");
  return {{"id", call_id}, {"type", "function"}, {"function", {{"name", *fname}, {"arguments", std::move(args)}}}};
}

// The input's items as chat messages (instructions not among them), and into items the input as
// the client sent it, a string as the one user message it stands for and a message's string
// content as one text part.
// A reasoning item's text (a thinking model's earlier reasoning, as the client sends back what a
// response output): its reasoning_text parts, else its summary_text parts.
std::string reasoning_text(const json& item, const std::string& name) {
  std::string text;
  for (const char* key : {"content", "summary"}) {
    const json* parts = field(item, key);
    if (!parts) continue;
    if (!parts->is_array()) wrong_type(name + "." + key, *parts, "an array of parts");
    for (size_t i = 0; i < parts->size(); ++i) {
      const std::string part = name + "." + key + "[" + std::to_string(i) + "]";
      check_object((*parts)[i], part);
      text += required((*parts)[i], "text", part + ".text");
    }
    if (!text.empty()) break;
  }
  return text;
}

json messages_of(const json& body, json& items) {
  json out = json::array();
  std::string reasoning;  // a reasoning item's, for the assistant turn it precedes
  auto assistant_turn = [&](json& msg) {
    if (!reasoning.empty()) msg["reasoning_content"] = std::move(reasoning);
    reasoning.clear();
  };
  const json* in = field(body, "input");
  if (!in) bad("input", "is required");
  if (in->is_string()) {
    items.push_back({{"type", "message"}, {"role", "user"}, {"content", {{{"type", "input_text"}, {"text", *in}}}}});
    out.push_back({{"role", "user"}, {"content", *in}});
    return out;
  }
  if (!in->is_array()) wrong_type("input", *in, "a string or an array of items");
  if (in->empty()) bad("input", "must hold at least one item");
  for (size_t i = 0; i < in->size(); ++i) {
    const std::string name = "input[" + std::to_string(i) + "]";
    const json& item = (*in)[i];
    check_object(item, name);
    const std::string type = opt_string(item, "type", name + ".type").value_or("message");
    items.push_back(item);
    items.back()["type"] = type;
    if (type == "message") {
      std::string role = required(item, "role", name + ".role");
      if (role == "developer") role = "system";  // the newer name; chat templates know "system"
      if (role != "user" && role != "assistant" && role != "system")
        bad(name + ".role", "must be \"user\", \"assistant\", \"system\" or \"developer\", got \"" + role + "\"");
      const json* content = field(item, "content");
      if (!content) bad(name + ".content", "is required");
      out.push_back({{"role", role}, {"content", item_text(*content, name + ".content")}});
      if (role == "assistant") assistant_turn(out.back());
      if (content->is_string())  // listed as OpenAI lists a message: its content as parts
        items.back()["content"] = {{{"type", role == "assistant" ? "output_text" : "input_text"}, {"text", *content}}};
    } else if (type == "function_call") {
      // A turn's calls are one assistant message's tool_calls, as chat completions carries them.
      json call = function_call(item, name);
      if (out.empty() || out.back()["role"] != "assistant") out.push_back({{"role", "assistant"}, {"content", ""}});
      assistant_turn(out.back());
      out.back()["tool_calls"].push_back(std::move(call));
    } else if (type == "function_call_output") {
      const std::string call_id = required(item, "call_id", name + ".call_id");
      const json* output = field(item, "output");
      if (!output) bad(name + ".output", "is required");
      out.push_back({{"role", "tool"}, {"tool_call_id", call_id}, {"content", item_text(*output, name + ".output")}});
    } else if (type == "reasoning") {
      reasoning += reasoning_text(item, name);
    } else {
      bad(name + ".type", "'" + type + "' items are not supported: \"message\", \"reasoning\", \"function_call\" "
                          "and \"function_call_output\" are");
    }
  }
  return out;
}

json tool_choice_of(const json& c, const json& tools) {
  if (!c.is_object()) return c;  // "none", "auto", "required": the chat parser reads them by this name
  const std::string type = required(c, "type", "tool_choice.type");
  if (type != "function") bad("tool_choice.type", "only \"function\" is supported, got \"" + type + "\"");
  const json* fname = field(c, "name");
  if (!fname) bad("tool_choice.name", "is required");
  check_function_name(*fname, "tool_choice.name");
  bool offered = false;
  if (tools.is_array())
    for (const json& t : tools) offered = offered || t["function"]["name"] == *fname;
  if (!offered) bad("tool_choice.name", "'" + fname->get<std::string>() + "' is not one of the request's tools");
  return {{"type", "function"}, {"function", {{"name", *fname}}}};
}

}  // namespace

ResponsesRequest parse_openai_responses(const json& body, int64_t max_ctx, const PreviousTurns& previous) {
  check_object(body, "body");
  if (field(body, "conversation"))
    bad("conversation", "is not supported (this server has no Conversations API): continue a conversation with "
                        "previous_response_id, or send it whole in input");
  if (const auto v = opt_bool(body, "background", "background"); v && *v) bad("background", "is not supported");
  ResponsesRequest out;
  out.store = opt_bool(body, "store", "store").value_or(true);
  out.instructions = opt_string(body, "instructions", "instructions").value_or("");
  out.conversation = json::array();
  if (const auto id = opt_string(body, "previous_response_id", "previous_response_id")) {
    const json* turns = previous ? previous(*id) : nullptr;
    if (!turns)
      bad("previous_response_id", "no response '" + *id + "' is kept here (it was sent with \"store\": false, "
                                  "deleted, dropped as the oldest, or the server restarted since)");
    out.previous_response_id = *id;
    out.conversation = *turns;
  }
  out.input_items = json::array();
  for (json& m : messages_of(body, out.input_items)) out.conversation.push_back(std::move(m));
  json chat = {{"messages", json::array()}};
  if (!out.instructions.empty()) chat["messages"].push_back({{"role", "system"}, {"content", out.instructions}});
  for (const json& m : out.conversation) chat["messages"].push_back(m);
  for (const char* key : {"model", "stream", "temperature", "top_p", "parallel_tool_calls", "seed", "keep_alive"})
    if (const auto it = body.find(key); it != body.end()) chat[key] = *it;
  const json tools = parse_tools(body, true);
  if (!tools.is_null()) chat["tools"] = tools;
  if (const json* c = field(body, "tool_choice")) chat["tool_choice"] = tool_choice_of(*c, tools);
  out.chat = parse_openai_chat(chat, max_ctx);
  GenerationRequest& r = out.chat;
  r.route = Route::openai_responses;
  if (const auto v = opt_int(body, "max_output_tokens", "max_output_tokens")) {
    if (*v < 1 || *v > max_ctx)
      bad("max_output_tokens", "must be in [1, " + std::to_string(max_ctx) + "] (the server's context), got " +
                                   std::to_string(*v));
    r.max_tokens = *v;
  }
  // OpenAI's default is "disabled": a conversation too long for the context is a 400.
  const std::string truncation = opt_string(body, "truncation", "truncation").value_or("disabled");
  if (truncation != "auto" && truncation != "disabled")
    bad("truncation", "must be \"auto\" or \"disabled\", got \"" + truncation + "\"");
  r.truncate = truncation == "auto";
  if (const json* reasoning = field(body, "reasoning")) {
    check_object(*reasoning, "reasoning");
    if (const json* e = field(*reasoning, "effort")) parse_reasoning_effort(*e, "reasoning.effort", r);
  }
  if (const json* text = field(body, "text")) {
    check_object(*text, "text");
    if (const json* format = field(*text, "format")) parse_output_format(*format, "text.format", "", r);
  }
  return out;
}

}  // namespace lowbit::server
