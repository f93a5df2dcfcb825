// Ollama's generation routes (its docs/api.md): POST /api/generate and /api/chat, streamed as
// newline-delimited JSON objects (the default) or answered as one object (stream: false).
#include "server/context.h"
#include "server/generation.h"
#include "server/model_defaults.h"

namespace lowbit::server {
namespace {

using nlohmann::json;

int64_t ns(double seconds) { return (int64_t)(seconds * 1e9); }

class OllamaFormat : public Format {
 public:
  OllamaFormat(std::string model, bool chat) : model_(std::move(model)), chat_(chat) {}
  const char* stream_content_type() const override { return "application/x-ndjson"; }

  std::string piece(const std::string& text, const std::vector<TokenLogprob>&) override { return dump(chunk(text, false)) + "\n"; }

  std::string thinking_piece(const std::string& text) override {
    json j = chunk("", false);
    thinking_of(j) = text;
    return dump(j) + "\n";
  }

  std::string end(const Outcome& o) override {
    std::string out;
    if (!o.tool_calls.empty()) {
      // The calls come in a chunk of their own before the last, as Ollama streams them.
      json calls = chunk("", false);
      calls["message"]["tool_calls"] = tool_calls(o);
      out = dump(calls) + "\n";
    }
    json j = chunk("", true);
    add_final(j, o);
    return out + dump(j) + "\n";
  }

  std::string error(const std::string& message) override { return dump(json{{"error", message}}) + "\n"; }

  json whole(const Outcome& o) override {
    json j = chunk(o.text, true);
    if (!o.thinking.empty()) thinking_of(j) = o.thinking;
    if (!o.tool_calls.empty()) j["message"]["tool_calls"] = tool_calls(o);
    add_final(j, o);
    return j;
  }

  json loaded(bool unload) override {
    json j = chunk("", true);
    j["done_reason"] = unload ? "unload" : "load";
    return j;
  }

 private:
  json chunk(const std::string& text, bool done) const {
    json j = {{"model", model_}, {"created_at", rfc3339_now()}};
    if (chat_) j["message"] = {{"role", "assistant"}, {"content", text}};
    else j["response"] = text;
    j["done"] = done;
    return j;
  }

  // Where the reasoning goes: the chat's message.thinking, generate's thinking.
  json& thinking_of(json& j) const { return chat_ ? j["message"]["thinking"] : j["thinking"]; }

  // [{"function": {"name", "arguments": {...}}}], the arguments an object.
  static json tool_calls(const Outcome& o) {
    json calls = json::array();
    for (const ToolCall& c : o.tool_calls)
      calls.push_back({{"function", {{"name", c.name}, {"arguments", json(c.arguments)}}}});
    return calls;
  }

  static void add_final(json& j, const Outcome& o) {
    j["done_reason"] = finish_word(o.finish);
    j["total_duration"] = ns(o.total_seconds);
    j["load_duration"] = ns(o.load_seconds);
    j["prompt_eval_count"] = o.prompt_tokens;
    j["prompt_eval_duration"] = ns(o.prompt_seconds);
    j["eval_count"] = o.generated_tokens;
    j["eval_duration"] = ns(o.eval_seconds);
  }

  std::string model_;
  bool chat_;
};

template <class Parse>
void generation_route(httplib::Server& http, Context& ctx, const char* path, Parse parse, bool chat) {
  http.Post(path, [&ctx, parse, chat](const httplib::Request& req, httplib::Response& res) {
    try {
      const auto body = parse_body(req.body);
      GenerationRequest r = parse(body, ctx.params.ctx);
      apply_defaults(ctx.store.defaults(r.model), body, ctx.params.ctx, r);
      generate_response(ctx, r, std::make_shared<OllamaFormat>(r.model, chat), res);
    } catch (const std::exception& e) {
      answer_exception(res, e, false);
    }
  });
}

}  // namespace

void add_ollama_routes(httplib::Server& http, Context& ctx) {
  generation_route(http, ctx, "/api/generate", parse_ollama_generate, false);
  generation_route(http, ctx, "/api/chat", parse_ollama_chat, true);
}

}  // namespace lowbit::server
