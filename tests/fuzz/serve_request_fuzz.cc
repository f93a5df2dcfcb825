// libFuzzer target over the server's request parsing (server/request.h): any bytes as the body of
// each generation route (/v1/responses included) and of /api/embed. Junk must be refused with RequestError only (never
// another exception, a crash or UB), as a 4xx whose one-line message names the field it blames;
// an accepted request must keep the parser's promises (sampler settings the library accepts,
// max_tokens -1 or in [0, max_ctx], num_ctx in [0, max_ctx], no empty stop string), and a JSON
// schema it accepted must hold up in the recognizer (runtime/json_mode.h). The same bytes, read as
// a model's reply, go through the tool-call reader (runtime/chat/tool_calls.h), which must never
// throw and must return content that is the reply or a prefix of it.
// Seeds: tests/fuzz/corpus_serve_request (request bodies from Ollama's and OpenAI's docs).
#include <stdint.h>
#include <string.h>

#include <string>

#include "runtime/chat/chat_template.h"
#include "runtime/chat/tool_calls.h"
#include "runtime/json_mode.h"
#include "server/request.h"

namespace {

constexpr int64_t kMaxCtx = 4096;

void check_error(const lowbit::server::RequestError& e) {
  if (e.status() < 400 || e.status() >= 500) __builtin_trap();
  if (strchr(e.what(), '\n')) __builtin_trap();  // messages are one line
  if (!e.field().empty() && std::string(e.what()).find(e.field()) == std::string::npos) __builtin_trap();
}

void check_request(const lowbit::server::GenerationRequest& r) {
  if (lowbit::invalid_setting(r.sampler)) __builtin_trap();
  if (r.max_tokens < -1 || r.max_tokens > kMaxCtx * 1024 * 1024) __builtin_trap();
  if (r.num_ctx < 0 || r.num_ctx > kMaxCtx) __builtin_trap();
  for (const std::string& s : r.stop)
    if (s.empty()) __builtin_trap();
  if (r.model.empty()) __builtin_trap();
  if (!r.messages.is_array()) __builtin_trap();
  for (const auto& m : r.messages)
    if (!m.is_object() || !m.contains("role") || !m.at("role").is_string() || !m.contains("content") ||
        !m.at("content").is_string())
      __builtin_trap();
  if (r.keep_alive.seconds < 0) __builtin_trap();
  if (r.schema && !r.json) __builtin_trap();
  // Tools as the template and the reply reader rely on them.
  if (!r.tools.is_null()) {
    if (!r.tools.is_array() || r.tools.empty()) __builtin_trap();
    for (const auto& t : r.tools)
      if (!t.contains("function") || !t.at("function").contains("name") || !t.at("function").at("name").is_string())
        __builtin_trap();
  }
  if (r.tool_choice == lowbit::server::GenerationRequest::ToolChoice::named) {
    bool offered = false;
    for (const auto& t : r.tools) offered = offered || t.at("function").at("name") == r.tool_name;
    if (!offered) __builtin_trap();
  }
  for (const auto& m : r.messages)
    if (m.contains("tool_calls"))
      for (const auto& c : m.at("tool_calls"))
        if (!c.at("function").at("arguments").is_object()) __builtin_trap();
}

// A template in Qwen2.5's shape: calls as <tool_call>\n{"name": ..., "arguments": ...}\n</tool_call>.
const lowbit::ToolCallSyntax& tool_syntax() {
  static const lowbit::ToolCallSyntax s = *lowbit::ToolCallSyntax::of(lowbit::ChatTemplate(
      "{% if tools %}{{ tools | tojson }}{% endif %}{% for m in messages %}<{{ m.role }}>{{ m.content }}"
      "{% for c in m.tool_calls or [] %}<tool_call>\n{{ {'name': c.function.name, 'arguments': c.function.arguments} | tojson }}"
      "\n</tool_call>{% endfor %}</s>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
      "", ""));
  return s;
}

void read_reply(const std::string& text) {
  static const nlohmann::ordered_json tools = nlohmann::ordered_json::parse(
      R"([{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "g"}}])");
  const lowbit::ToolReply r = tool_syntax().parse(text, tools);
  if (r.content != text && text.compare(0, r.content.size(), r.content) != 0) __builtin_trap();
  for (const auto& c : r.calls)
    if ((c.name != "f" && c.name != "g") || !c.arguments.is_object()) __builtin_trap();
  const size_t hold = tool_syntax().hold_from(text);
  if (hold > text.size()) __builtin_trap();
  if (!r.calls.empty() && hold > r.content.size()) __builtin_trap();  // never sent past the content
}

// A schema that compiled is then walked by the recognizer over the same bytes (as a model's
// output would be), so what the compiler accepts is also what the recognizer can hold.
void walk(const lowbit::server::GenerationRequest& r, const std::string& bytes) {
  if (!r.schema) return;
  lowbit::JsonPrefix p(*r.schema);
  for (unsigned char c : bytes) {
    lowbit::JsonPrefix before = p;
    if (!p.feed(c)) p = before;  // skip a byte that cannot come, keep walking
  }
  (void)p.complete();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit::server;
  const std::string body(reinterpret_cast<const char*>(data), size);
  read_reply(body);
  nlohmann::ordered_json j;
  try {
    j = parse_body(body);
  } catch (const RequestError& e) {
    check_error(e);
    return 0;
  }
  using Parser = GenerationRequest (*)(const nlohmann::ordered_json&, int64_t);
  // The Responses route as the server runs it, with one kept conversation to continue.
  static const nlohmann::ordered_json kept = {{{"role", "user"}, {"content", "hi"}}, {{"role", "assistant"}, {"content", "hello"}}};
  auto responses = [](const nlohmann::ordered_json& b, int64_t max_ctx) {
    const ResponsesRequest r = parse_openai_responses(b, max_ctx, [](const std::string& id) {
      return id == "resp_kept" ? &kept : nullptr;
    });
    if (!r.conversation.is_array() || !r.input_items.is_array() || r.input_items.empty()) __builtin_trap();
    return r.chat;
  };
  for (Parser p : {parse_ollama_generate, parse_ollama_chat, parse_openai_chat, parse_openai_completion,
                   static_cast<Parser>(responses)}) {
    try {
      const GenerationRequest r = p(j, kMaxCtx);
      check_request(r);
      walk(r, body);
    } catch (const RequestError& e) {
      check_error(e);
    }
  }
  try {
    const EmbedRequest e = parse_embed(j);
    if (e.model.empty()) __builtin_trap();
  } catch (const RequestError& e) {
    check_error(e);
  }
  return 0;
}
