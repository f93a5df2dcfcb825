// OpenAI's routes: POST /v1/chat/completions and /v1/completions (one object, or Server-Sent
// Events `data: {chunk}` ending `data: [DONE]` when stream is true), GET /v1/models.

#include "server/context.h"
#include "server/generation.h"
#include "server/model_defaults.h"

namespace lowbit::server {
namespace {

using nlohmann::json;

// {"content": [{"token", "logprob", "bytes", "top_logprobs": []}]}, the chat shape.
json logprobs_json(const std::vector<TokenLogprob>& lps) {
  json content = json::array();
  for (const TokenLogprob& t : lps) {
    json bytes = json::array();
    for (unsigned char c : t.token) bytes.push_back((int)c);
    content.push_back({{"token", t.token}, {"logprob", t.logprob}, {"bytes", bytes}, {"top_logprobs", json::array()}});
  }
  return {{"content", content}};
}

json usage(const Outcome& o) {
  return {{"prompt_tokens", o.prompt_tokens},
          {"completion_tokens", o.generated_tokens},
          {"total_tokens", o.prompt_tokens + o.generated_tokens},
          {"prompt_tokens_details", {{"cached_tokens", o.cached_tokens}}}};
}

class OpenAIFormat : public Format {
 public:
  OpenAIFormat(std::string model, bool chat, bool include_usage)
      : model_(std::move(model)), chat_(chat), include_usage_(include_usage),
        id_(new_id(chat ? "chatcmpl" : "cmpl")), created_(unix_now()) {}

  const char* stream_content_type() const override { return "text/event-stream"; }

  std::string begin() override {
    if (!chat_) return "";
    // The first chunk names the role, as OpenAI's does.
    return event(chunk(json{{"role", "assistant"}, {"content", ""}}, nullptr));
  }

  std::string piece(const std::string& text, const std::vector<TokenLogprob>& lps) override {
    json j = chat_ ? chunk(json{{"content", text}}, nullptr) : chunk(text, nullptr);
    if (!lps.empty()) j["choices"][0]["logprobs"] = logprobs_json(lps);
    return event(j);
  }

  // The reasoning as vLLM's and llama.cpp's servers give it, reasoning_content beside content.
  std::string thinking_piece(const std::string& text) override {
    return chat_ ? event(chunk(json{{"reasoning_content", text}}, nullptr)) : "";
  }

  std::string end(const Outcome& o) override {
    std::string out;
    if (!o.tool_calls.empty()) {
      // Each call whole in one delta (a client joins the argument pieces of a delta sequence; one
      // piece is such a sequence).
      json calls = tool_calls(o);
      for (size_t i = 0; i < calls.size(); ++i) calls[i]["index"] = i;
      out = event(chunk(json{{"tool_calls", calls}}, nullptr));
    }
    json last = chat_ ? chunk(json::object(), finish(o)) : chunk("", finish(o));
    if (!o.logprobs.empty()) last["choices"][0]["logprobs"] = logprobs_json(o.logprobs);
    out += event(last);
    if (include_usage_) {
      json u = base();
      u["choices"] = json::array();
      u["usage"] = usage(o);
      out += event(u);
    }
    return out + "data: [DONE]\n\n";
  }

  std::string keep_alive() override { return ": keep-alive\n\n"; }  // an SSE comment

  std::string error(const std::string& message) override {
    return event(json{{"error", {{"message", message}, {"type", "server_error"}, {"param", nullptr}, {"code", nullptr}}}}) +
           "data: [DONE]\n\n";
  }

  json whole(const Outcome& o) override {
    json j = base(false);
    json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish(o)}};
    if (!o.logprobs.empty()) choice["logprobs"] = logprobs_json(o.logprobs);
    if (chat_) {
      choice["message"] = {{"role", "assistant"}, {"content", o.text}};
      if (!o.thinking.empty()) choice["message"]["reasoning_content"] = o.thinking;
      if (!o.tool_calls.empty()) {
        // A reply that only calls has no content (null), as OpenAI's.
        if (o.text.empty()) choice["message"]["content"] = nullptr;
        choice["message"]["tool_calls"] = tool_calls(o);
      }
    } else {
      choice["text"] = o.text;
    }
    j["choices"] = json::array({choice});
    j["usage"] = usage(o);
    return j;
  }

 private:
  json base(bool streamed = true) const {
    const char* object = chat_ ? (streamed ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    return {{"id", id_}, {"object", object}, {"created", created_}, {"model", model_}, {"system_fingerprint", "lowbit"}};
  }

  static const char* finish(const Outcome& o) { return o.tool_calls.empty() ? finish_word(o.finish) : "tool_calls"; }

  // [{"id", "type": "function", "function": {"name", "arguments": "<JSON text>"}}]: the
  // arguments as the model wrote them, keys in its order.
  static json tool_calls(const Outcome& o) {
    json calls = json::array();
    for (const ToolCall& c : o.tool_calls)
      calls.push_back({{"id", new_id("call", '_')}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments.dump()}}}});
    return calls;
  }

  // delta: the chat delta, or the completion text.
  json chunk(const json& delta, const json& finish) const {
    json j = base();
    json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish}};
    if (chat_) choice["delta"] = delta;
    else choice["text"] = delta;
    j["choices"] = json::array({choice});
    if (include_usage_) j["usage"] = nullptr;
    return j;
  }

  static std::string event(const json& j) { return "data: " + dump(j) + "\n\n"; }

  std::string model_;
  bool chat_, include_usage_;
  std::string id_;
  int64_t created_;
};

template <class Parse>
void generation_route(httplib::Server& http, Context& ctx, const char* path, Parse parse, bool chat) {
  http.Post(path, [&ctx, parse, chat](const httplib::Request& req, httplib::Response& res) {
    try {
      const auto body = parse_body(req.body);
      GenerationRequest r = parse(body, ctx.params.ctx);
      apply_defaults(ctx.store.defaults(r.model), body, ctx.params.ctx, r);
      generate_response(ctx, r, std::make_shared<OpenAIFormat>(r.model, chat, r.include_usage), res);
    } catch (const std::exception& e) {
      answer_exception(res, e, true);
    }
  });
}

}  // namespace

void add_openai_routes(httplib::Server& http, Context& ctx) {
  generation_route(http, ctx, "/v1/chat/completions", parse_openai_chat, true);
  generation_route(http, ctx, "/v1/completions", parse_openai_completion, false);
  auto model_object = [](const StoredModel& m) {
    return json{{"id", m.name}, {"object", "model"}, {"created", unix_now()}, {"owned_by", "lowbit"}};
  };
  http.Get("/v1/models", [&ctx, model_object](const httplib::Request&, httplib::Response& res) {
    try {
      json data = json::array();
      for (const StoredModel& m : ctx.store.list()) data.push_back(model_object(m));
      set_json(res, {{"object", "list"}, {"data", data}});
    } catch (const std::exception& e) {
      answer_exception(res, e, true);
    }
  });
  // One stored model by name, as the store reads it ("smollm2" is "smollm2:latest").
  http.Get(R"(/v1/models/(.+))", [&ctx, model_object](const httplib::Request& req, httplib::Response& res) {
    try {
      const std::string name = req.matches[1];
      if (const auto m = ctx.store.find(name)) return set_json(res, model_object(*m));
      openai_error(res, 404, "model: '" + name + "' is not in the model store", "model", "model_not_found");
    } catch (const std::exception& e) {
      answer_exception(res, e, true);
    }
  });
}

}  // namespace lowbit::server
