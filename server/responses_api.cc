// OpenAI's Responses API: POST /v1/responses (stateless, as Ollama's). The answer is a response
// object whose output holds a message item (the text as one output_text part) and a
// function_call item per tool call; streamed, the same built up by Server-Sent Events, each
// `event: TYPE` with its data carrying the type and a sequence number: response.created and
// .in_progress, the message item's output_item.added, content_part.added, output_text.delta per
// piece, output_text.done, content_part.done and output_item.done, then per call output_item.added,
// function_call_arguments.delta and .done, output_item.done, and last response.completed (or
// response.incomplete when max_output_tokens or the context ran out, response.failed on an error).
#include "server/context.h"
#include "server/generation.h"

namespace lowbit::server {
namespace {

using nlohmann::json;

class ResponsesFormat : public Format {
 public:
  explicit ResponsesFormat(const GenerationRequest& r)
      : model_(r.model), id_(new_id("resp", '_')), message_id_(new_id("msg", '_')), created_(unix_now()),
        temperature_(r.sampler.temperature), top_p_(r.sampler.top_p), max_output_tokens_(r.max_tokens),
        parallel_tool_calls_(r.parallel_tool_calls) {
    for (const auto& t : r.tools.is_array() ? r.tools : nlohmann::ordered_json::array()) {
      json flat = {{"type", "function"}};
      for (const auto& [k, v] : t.at("function").items()) flat[k] = v;
      tools_.push_back(std::move(flat));
    }
  }

  const char* stream_content_type() const override { return "text/event-stream"; }

  std::string begin() override {
    const json r = response("in_progress", json::array(), nullptr);
    std::string out = event("response.created", {{"response", r}});  // one statement each: numbered in order
    return out + event("response.in_progress", {{"response", r}});
  }

  std::string piece(const std::string& text, const std::vector<TokenLogprob>&) override {
    std::string out = open_message();
    text_ += text;
    return out + event("response.output_text.delta", {{"item_id", message_id_}, {"output_index", 0}, {"content_index", 0},
                                                      {"delta", text}, {"logprobs", json::array()}});
  }

  std::string end(const Outcome& o) override {
    std::string out;
    json items = json::array();
    if (open_ || o.tool_calls.empty()) {  // a reply of calls alone has no message item
      out += open_message();
      const json part = text_part(text_);
      out += event("response.output_text.done", {{"item_id", message_id_}, {"output_index", 0}, {"content_index", 0},
                                                 {"text", text_}, {"logprobs", json::array()}});
      out += event("response.content_part.done",
                   {{"item_id", message_id_}, {"output_index", 0}, {"content_index", 0}, {"part", part}});
      items.push_back(message_item("completed", json::array({part})));
      out += event("response.output_item.done", {{"output_index", 0}, {"item", items.back()}});
    }
    for (const ToolCall& c : o.tool_calls) {
      const int index = (int)items.size();
      json item = call_item(c);
      json started = item;
      started["status"] = "in_progress";
      started["arguments"] = "";
      out += event("response.output_item.added", {{"output_index", index}, {"item", started}});
      out += event("response.function_call_arguments.delta",
                   {{"item_id", item["id"]}, {"output_index", index}, {"delta", item["arguments"]}});
      out += event("response.function_call_arguments.done", {{"item_id", item["id"]}, {"output_index", index},
                                                             {"name", c.name}, {"arguments", item["arguments"]}});
      out += event("response.output_item.done", {{"output_index", index}, {"item", item}});
      items.push_back(std::move(item));
    }
    const bool cut = o.finish == FinishReason::length || o.finish == FinishReason::context;
    const json r = response(cut ? "incomplete" : "completed", items, &o);
    return out + event(cut ? "response.incomplete" : "response.completed", {{"response", r}});
  }

  std::string keep_alive() override { return ": keep-alive\n\n"; }  // an SSE comment

  std::string error(const std::string& message) override {
    json r = response("failed", json::array(), nullptr);
    r["error"] = {{"code", "server_error"}, {"message", message}};
    return event("response.failed", {{"response", r}});
  }

  json whole(const Outcome& o) override {
    json items = json::array();
    if (!o.text.empty() || o.tool_calls.empty()) items.push_back(message_item("completed", json::array({text_part(o.text)})));
    for (const ToolCall& c : o.tool_calls) items.push_back(call_item(c));
    const bool cut = o.finish == FinishReason::length || o.finish == FinishReason::context;
    return response(cut ? "incomplete" : "completed", items, &o);
  }

 private:
  std::string open_message() {
    if (open_) return "";
    open_ = true;
    std::string out =
        event("response.output_item.added", {{"output_index", 0}, {"item", message_item("in_progress", json::array())}});
    return out + event("response.content_part.added",
                       {{"item_id", message_id_}, {"output_index", 0}, {"content_index", 0}, {"part", text_part("")}});
  }

  static json text_part(const std::string& text) {
    return {{"type", "output_text"}, {"text", text}, {"annotations", json::array()}, {"logprobs", json::array()}};
  }

  json message_item(const char* status, json content) const {
    return {{"type", "message"}, {"id", message_id_}, {"status", status}, {"role", "assistant"}, {"content", std::move(content)}};
  }

  static json call_item(const ToolCall& c) {
    return {{"type", "function_call"}, {"id", new_id("fc", '_')}, {"call_id", new_id("call", '_')},
            {"name", c.name}, {"arguments", c.arguments.dump()}, {"status", "completed"}};
  }

  // The response object; o: how it ended (usage), null while it runs. Of the request's settings
  // it echoes those the route keeps (sampling, the limit, the tools); "store" is false: nothing is.
  json response(const char* status, json output, const Outcome* o) const {
    json r = {{"id", id_}, {"object", "response"}, {"created_at", created_}, {"status", status}, {"model", model_},
              {"output", std::move(output)}, {"error", nullptr}, {"incomplete_details", nullptr},
              {"max_output_tokens", max_output_tokens_ < 0 ? json(nullptr) : json(max_output_tokens_)},
              {"parallel_tool_calls", parallel_tool_calls_}, {"temperature", temperature_}, {"top_p", top_p_},
              {"tools", tools_}, {"metadata", json::object()}, {"store", false}, {"usage", nullptr}};
    if (o) {
      r["usage"] = {{"input_tokens", o->prompt_tokens}, {"input_tokens_details", {{"cached_tokens", 0}}},
                    {"output_tokens", o->generated_tokens}, {"output_tokens_details", {{"reasoning_tokens", 0}}},
                    {"total_tokens", o->prompt_tokens + o->generated_tokens}};
      if (std::string(status) == "incomplete") r["incomplete_details"] = {{"reason", "max_output_tokens"}};
    }
    return r;
  }

  std::string event(const char* type, json data) {
    data["type"] = type;
    data["sequence_number"] = sequence_++;
    return std::string("event: ") + type + "\ndata: " + dump(data) + "\n\n";
  }

  std::string model_, id_, message_id_;
  int64_t created_;
  float temperature_, top_p_;
  int64_t max_output_tokens_;
  bool parallel_tool_calls_;
  json tools_ = json::array();
  bool open_ = false;  // the message item has begun
  std::string text_;   // its text so far
  int64_t sequence_ = 0;
};

}  // namespace

void add_responses_routes(httplib::Server& http, Context& ctx) {
  http.Post("/v1/responses", [&ctx](const httplib::Request& req, httplib::Response& res) {
    try {
      GenerationRequest r = parse_openai_responses(parse_body(req.body), ctx.params.ctx);
      generate_response(ctx, r, std::make_shared<ResponsesFormat>(r), res);
    } catch (const std::exception& e) {
      answer_exception(res, e, true);
    }
  });
}

}  // namespace lowbit::server
