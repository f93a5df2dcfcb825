// The C API's chat templates and tool calling (include/lowbit.h), as lowbit_capi.cc's entry
// points are written: each body inside guard().
#include "capi/capi_internal.h"

using namespace lowbit;
using namespace lowbit::capi;

extern "C" {

// ---- chat templates -------------------------------------------------------------------------

namespace {

void apply_template(const std::string& fn, const lowbit_model* model, const char* messages_json,
                    int add_generation_prompt, const char* vars_json, char* text, size_t capacity, size_t* text_len) {
  check(model, Kind::model, fn.c_str(), "model");
  need(messages_json, fn.c_str(), "messages_json");
  need(text_len, fn.c_str(), "text_len");
  if (!text && capacity) fail(LOWBIT_INVALID_ARGUMENT, fn + ": text is NULL but capacity is not 0");
  const nlohmann::ordered_json messages = messages_arg(messages_json, fn);
  nlohmann::ordered_json vars;
  if (vars_json) {
    try {
      vars = nlohmann::ordered_json::parse(vars_json);
    } catch (const nlohmann::json::exception& e) {
      fail(LOWBIT_INVALID_ARGUMENT, fn + ": vars_json is not JSON: " + e.what());
    }
    if (!vars.is_object()) fail(LOWBIT_INVALID_ARGUMENT, fn + ": vars_json is not a JSON object");
  }
  const std::unique_ptr<ChatTemplate> tmpl = chat_template_of(model->model->tokenizer());
  if (!tmpl) fail(LOWBIT_NOT_FOUND, fn + ": the model has no chat template");
  std::string s;
  try {
    s = tmpl->render(messages, add_generation_prompt != 0, nullptr, vars);
  } catch (const Error& e) {  // raise_exception() in the template, or a message it cannot read
    fail(LOWBIT_INVALID_ARGUMENT, fn + ": the template refused the messages: " + e.what());
  }
  return_text(s, text, capacity, text_len, fn);
}

}  // namespace

lowbit_status lowbit_chat_apply_template(const lowbit_model* model, const char* messages_json,
                                         int add_generation_prompt, char* text, size_t capacity, size_t* text_len) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    apply_template("lowbit_chat_apply_template", model, messages_json, add_generation_prompt, nullptr, text, capacity,
                   text_len);
  });
}

lowbit_status lowbit_chat_apply_template_vars(const lowbit_model* model, const char* messages_json,
                                              int add_generation_prompt, const char* vars_json, char* text,
                                              size_t capacity, size_t* text_len) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    apply_template("lowbit_chat_apply_template_vars", model, messages_json, add_generation_prompt, vars_json, text,
                   capacity, text_len);
  });
}

// ---- thinking models ------------------------------------------------------------------------

int lowbit_chat_thinks(const lowbit_model* model) {
  int thinks = 0;
  guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(model, Kind::model, "lowbit_chat_thinks", "model");
    const std::unique_ptr<ChatTemplate> tmpl = chat_template_of(model->model->tokenizer());
    thinks = tmpl && template_thinks(*tmpl) ? 1 : 0;
  });
  return thinks;
}

lowbit_status lowbit_thinking_create(const char* prompt, lowbit_thinking** out) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    need(out, "lowbit_thinking_create", "out");
    *out = nullptr;
    auto t = std::make_unique<lowbit_thinking>(lowbit_thinking{ThinkingSplitter(prompt && prompt_opens_thinking(prompt)), {}});
    *out = track(std::move(t), Kind::thinking);
  });
}

void lowbit_thinking_free(lowbit_thinking* thinking) { release(thinking, Kind::thinking, "lowbit_thinking_free"); }

lowbit_status lowbit_thinking_feed(lowbit_thinking* thinking, const char* piece, size_t piece_len, int end) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    const char* fn = "lowbit_thinking_feed";
    check(thinking, Kind::thinking, fn, "thinking");
    if (!piece && piece_len) fail(LOWBIT_INVALID_ARGUMENT, std::string(fn) + ": piece is NULL but piece_len is not 0");
    ThinkingSplitter::Parts p = thinking->splitter.feed(piece_len ? std::string(piece, piece_len) : std::string());
    if (end) {
      ThinkingSplitter::Parts rest = thinking->splitter.finish();
      p.thinking += rest.thinking;
      p.content += rest.content;
    }
    thinking->last = std::move(p);
  });
}

const char* lowbit_thinking_reasoning(const lowbit_thinking* thinking) {
  return thinking && is_live(thinking, Kind::thinking) ? thinking->last.thinking.c_str() : nullptr;
}

const char* lowbit_thinking_answer(const lowbit_thinking* thinking) {
  return thinking && is_live(thinking, Kind::thinking) ? thinking->last.content.c_str() : nullptr;
}

lowbit_status lowbit_chat_tokenize(const lowbit_model* model, const char* text, size_t text_len, int32_t* tokens,
                                   size_t capacity, size_t* n_tokens) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    const std::string_view t = text_arg(model, text, text_len, tokens, capacity, n_tokens, "lowbit_chat_tokenize");
    return_ids(encode_conversation(model->model->tokenizer(), std::string(t)), tokens, capacity, n_tokens,
               "lowbit_chat_tokenize");
  });
}

// ---- tool calling ---------------------------------------------------------------------------

lowbit_status lowbit_tools_create(const lowbit_model* model, const char* tools_json, const char* tool_choice,
                                  lowbit_tools** out) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    const std::string fn = "lowbit_tools_create";
    check(model, Kind::model, fn.c_str(), "model");
    need(tools_json, fn.c_str(), "tools_json");
    need(out, fn.c_str(), "out");
    *out = nullptr;
    auto t = std::make_unique<lowbit_tools>();
    try {
      t->tools = nlohmann::ordered_json::parse(tools_json);
    } catch (const nlohmann::json::exception& e) {
      fail(LOWBIT_INVALID_ARGUMENT, fn + ": tools_json is not JSON: " + e.what());
    }
    // The shape the template and the call reader rely on, as OpenAI's and Ollama's APIs send it.
    if (!t->tools.is_array() || t->tools.empty()) fail(LOWBIT_INVALID_ARGUMENT, fn + ": tools_json is not a non-empty JSON array");
    for (size_t i = 0; i < t->tools.size(); ++i) {
      const auto& tool = t->tools[i];
      const std::string at = fn + ": tools_json[" + std::to_string(i) + "]";
      if (!tool.is_object() || tool.value("type", "") != "function")
        fail(LOWBIT_INVALID_ARGUMENT, at + " is not {\"type\": \"function\", \"function\": {...}}");
      const auto f = tool.find("function");
      if (f == tool.end() || !f->is_object() || !f->contains("name") || !(*f)["name"].is_string())
        fail(LOWBIT_INVALID_ARGUMENT, at + ".function.name: a string is required");
      if (f->contains("parameters") && !(*f)["parameters"].is_null() && !(*f)["parameters"].is_object())
        fail(LOWBIT_INVALID_ARGUMENT, at + ".function.parameters: must be a JSON schema object");
    }
    t->model = model->model;
    t->tmpl = chat_template_of(model->model->tokenizer());
    if (!t->tmpl) fail(LOWBIT_NOT_FOUND, fn + ": the model has no chat template");
    auto syntax = ToolCallSyntax::of(*t->tmpl);
    if (!syntax) fail(LOWBIT_INVALID_ARGUMENT, fn + ": the model's chat template writes no tool calls");
    t->syntax = *syntax;
    t->plan = t->syntax.plan(t->tools, tool_choice ? tool_choice : "auto");
    if (t->plan.forced) t->format = t->plan.forced_reply.schema.dump();
    *out = track(std::move(t), Kind::tools);
  });
}

void lowbit_tools_free(lowbit_tools* tools) { release(tools, Kind::tools, "lowbit_tools_free"); }

lowbit_status lowbit_tools_apply_template(const lowbit_tools* tools, const char* messages_json, char* text,
                                          size_t capacity, size_t* text_len) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    const std::string fn = "lowbit_tools_apply_template";
    check(tools, Kind::tools, fn.c_str(), "tools");
    need(messages_json, fn.c_str(), "messages_json");
    need(text_len, fn.c_str(), "text_len");
    if (!text && capacity) fail(LOWBIT_INVALID_ARGUMENT, fn + ": text is NULL but capacity is not 0");
    std::string s;
    try {
      s = tools->tmpl->render(messages_arg(messages_json, fn), true, tools->tools);
    } catch (const Error& e) {  // raise_exception() in the template, or a message it cannot read
      fail(LOWBIT_INVALID_ARGUMENT, fn + ": the template refused the messages: " + e.what());
    }
    return_text(s + tools->plan.forced_reply.reply_start, text, capacity, text_len, fn);
  });
}

const char* lowbit_tools_format(const lowbit_tools* tools) {
  if (!tools || !is_live(tools, Kind::tools)) return nullptr;
  return tools->format.empty() ? nullptr : tools->format.c_str();
}

lowbit_status lowbit_tools_read_reply(const lowbit_tools* tools, const char* reply, size_t reply_len, char* json,
                                      size_t capacity, size_t* json_len) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    const std::string fn = "lowbit_tools_read_reply";
    check(tools, Kind::tools, fn.c_str(), "tools");
    need(json_len, fn.c_str(), "json_len");
    if (!reply && reply_len) fail(LOWBIT_INVALID_ARGUMENT, fn + ": reply is NULL");
    if (!json && capacity) fail(LOWBIT_INVALID_ARGUMENT, fn + ": json is NULL but capacity is not 0");
    const ToolReply r = tools->syntax.read(tools->plan, std::string(reply ? reply : "", reply_len), tools->tools);
    nlohmann::ordered_json out = {{"content", r.content}, {"tool_calls", nlohmann::ordered_json::array()}};
    for (const ToolCall& c : r.calls) out["tool_calls"].push_back({{"name", c.name}, {"arguments", c.arguments}});
    return_text(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), json, capacity, json_len, fn);
  });
}

}  // extern "C"
