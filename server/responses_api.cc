// OpenAI's Responses API: POST /v1/responses, and the responses it keeps (server/response_store.h):
// GET and DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items. The answer is a response
// object whose output holds a thinking model's reasoning item (its text as one reasoning_text
// part), a message item (the text as one output_text part) and a function_call item per tool
// call; streamed, a reasoning item comes as output_item.added, reasoning_text.delta per piece,
// reasoning_text.done and output_item.done before the message item, and the same built up by Server-Sent Events, each
// `event: TYPE` with its data carrying the type and a sequence number: response.created and
// .in_progress, the message item's output_item.added, content_part.added, output_text.delta per
// piece, output_text.done, content_part.done and output_item.done, then per call output_item.added,
// function_call_arguments.delta and .done, output_item.done, and last response.completed (or
// response.incomplete when max_output_tokens or the context ran out, response.failed on an error).
#include <algorithm>

#include "server/context.h"
#include "server/generation.h"
#include "server/model_defaults.h"
#include "server/response_store.h"

namespace lowbit::server {
namespace {

using nlohmann::json;

class ResponsesFormat : public Format {
 public:
  // store: where the response is kept when it ends (unless the request said "store": false).
  ResponsesFormat(const ResponsesRequest& rr, ResponseStore& store)
      : model_(rr.chat.model), id_(new_id("resp", '_')), message_id_(new_id("msg", '_')), created_(unix_now()),
        temperature_(rr.chat.sampler.temperature), top_p_(rr.chat.sampler.top_p),
        max_output_tokens_(rr.chat.max_tokens), parallel_tool_calls_(rr.chat.parallel_tool_calls),
        instructions_(rr.instructions), previous_(rr.previous_response_id), conversation_(rr.conversation),
        input_items_(rr.input_items),
        store_(rr.store ? &store : nullptr) {
    const GenerationRequest& r = rr.chat;
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
    return out + event("response.output_text.delta", {{"item_id", message_id_}, {"output_index", message_index()},
                                                      {"content_index", 0}, {"delta", text}, {"logprobs", json::array()}});
  }

  std::string thinking_piece(const std::string& text) override {
    std::string out;
    if (!thinking_) {
      thinking_ = true;
      out = event("response.output_item.added", {{"output_index", 0}, {"item", reasoning_item(nullptr)}});
    }
    reasoning_ += text;
    return out + event("response.reasoning_text.delta",
                       {{"item_id", reasoning_id_}, {"output_index", 0}, {"content_index", 0}, {"delta", text}});
  }

  std::string end(const Outcome& o) override {
    std::string out = close_reasoning();
    json items = json::array();
    if (thinking_) items.push_back(reasoning_item(&reasoning_));
    if (open_ || o.tool_calls.empty()) {  // a reply of calls alone has no message item
      out += open_message();
      const json part = text_part(text_);
      const int index = message_index();
      out += event("response.output_text.done", {{"item_id", message_id_}, {"output_index", index}, {"content_index", 0},
                                                 {"text", text_}, {"logprobs", json::array()}});
      out += event("response.content_part.done",
                   {{"item_id", message_id_}, {"output_index", index}, {"content_index", 0}, {"part", part}});
      items.push_back(message_item("completed", json::array({part})));
      out += event("response.output_item.done", {{"output_index", index}, {"item", items.back()}});
    }
    const json calls = call_items(o.tool_calls);
    for (const json& call : calls) {
      const int index = (int)items.size();
      const json& item = call;
      json started = item;
      started["status"] = "in_progress";
      started["arguments"] = "";
      out += event("response.output_item.added", {{"output_index", index}, {"item", started}});
      out += event("response.function_call_arguments.delta",
                   {{"item_id", item["id"]}, {"output_index", index}, {"delta", item["arguments"]}});
      out += event("response.function_call_arguments.done", {{"item_id", item["id"]}, {"output_index", index},
                                                             {"name", item["name"]}, {"arguments", item["arguments"]}});
      out += event("response.output_item.done", {{"output_index", index}, {"item", item}});
      items.push_back(item);
    }
    const bool cut = o.finish == FinishReason::length || o.finish == FinishReason::context;
    const json r = response(cut ? "incomplete" : "completed", items, &o);
    keep(r, text_, reasoning_, o.tool_calls, calls);
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
    if (!o.thinking.empty()) items.push_back(reasoning_item(&o.thinking));
    if (!o.text.empty() || o.tool_calls.empty()) items.push_back(message_item("completed", json::array({text_part(o.text)})));
    const json calls = call_items(o.tool_calls);
    for (const json& c : calls) items.push_back(c);
    const bool cut = o.finish == FinishReason::length || o.finish == FinishReason::context;
    json r = response(cut ? "incomplete" : "completed", items, &o);
    keep(r, o.text, o.thinking, o.tool_calls, calls);
    return r;
  }

 private:
  // The message item comes after the reasoning item, when there is one.
  int message_index() const { return thinking_ ? 1 : 0; }

  std::string open_message() {
    if (open_) return "";
    std::string out = close_reasoning();
    open_ = true;
    out += event("response.output_item.added",
                 {{"output_index", message_index()}, {"item", message_item("in_progress", json::array())}});
    return out + event("response.content_part.added", {{"item_id", message_id_}, {"output_index", message_index()},
                                                       {"content_index", 0}, {"part", text_part("")}});
  }

  // The reasoning item's last events, once the answer begins or the reply ends.
  std::string close_reasoning() {
    if (!thinking_ || reasoning_done_) return "";
    reasoning_done_ = true;
    std::string out = event("response.reasoning_text.done",
                            {{"item_id", reasoning_id_}, {"output_index", 0}, {"content_index", 0}, {"text", reasoning_}});
    return out + event("response.output_item.done", {{"output_index", 0}, {"item", reasoning_item(&reasoning_)}});
  }

  // The reasoning item: in progress (no text yet) when text is null, else completed with it.
  json reasoning_item(const std::string* text) const {
    json content = json::array();
    if (text) content.push_back({{"type", "reasoning_text"}, {"text", *text}});
    return {{"type", "reasoning"}, {"id", reasoning_id_}, {"status", text ? "completed" : "in_progress"},
            {"summary", json::array()}, {"content", content}};
  }

  static json text_part(const std::string& text) {
    return {{"type", "output_text"}, {"text", text}, {"annotations", json::array()}, {"logprobs", json::array()}};
  }

  json message_item(const char* status, json content) const {
    return {{"type", "message"}, {"id", message_id_}, {"status", status}, {"role", "assistant"}, {"content", std::move(content)}};
  }

  static json call_items(const std::vector<ToolCall>& calls) {
    json out = json::array();
    for (const ToolCall& c : calls)
      out.push_back({{"type", "function_call"}, {"id", new_id("fc", '_')}, {"call_id", new_id("call", '_')},
                     {"name", c.name}, {"arguments", c.arguments.dump()}, {"status", "completed"}});
    return out;
  }

  // Keeps the finished response r with the conversation it ends: the reply as the assistant
  // message a chat client would send back (its calls under the ids r gave them).
  void keep(const json& r, const std::string& text, const std::string& reasoning, const std::vector<ToolCall>& calls,
            const json& items) {
    if (!store_) return;
    auto kept = std::make_shared<StoredResponse>();
    kept->response = r;
    kept->conversation = conversation_;
    nlohmann::ordered_json reply = {{"role", "assistant"}, {"content", text}};
    if (!reasoning.empty()) reply["reasoning_content"] = reasoning;  // for a template that shows past reasoning
    for (size_t i = 0; i < calls.size(); ++i)
      reply["tool_calls"].push_back({{"id", items[i]["call_id"]}, {"type", "function"},
                                     {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}});
    kept->conversation.push_back(std::move(reply));
    kept->input_items = input_items_;
    for (auto& item : kept->input_items)  // ids as OpenAI lists them: the client's, else new ones
      if (!item.contains("id") || !item["id"].is_string())
        item["id"] = new_id(item["type"] == "message" ? "msg" : item["type"] == "function_call" ? "fc" : "fco", '_');
    store_->put(id_, std::move(kept));
  }

  // The response object; o: how it ended (usage), null while it runs. Of the request's settings
  // it echoes those the route keeps (sampling, the limit, the tools, instructions, store and
  // previous_response_id).
  json response(const char* status, json output, const Outcome* o) const {
    json r = {{"id", id_}, {"object", "response"}, {"created_at", created_}, {"status", status}, {"model", model_},
              {"output", std::move(output)}, {"error", nullptr}, {"incomplete_details", nullptr},
              {"max_output_tokens", max_output_tokens_ < 0 ? json(nullptr) : json(max_output_tokens_)},
              {"parallel_tool_calls", parallel_tool_calls_}, {"temperature", temperature_}, {"top_p", top_p_},
              {"tools", tools_}, {"metadata", json::object()}, {"store", store_ != nullptr},
              {"instructions", instructions_.empty() ? json(nullptr) : json(instructions_)},
              {"previous_response_id", previous_.empty() ? json(nullptr) : json(previous_)}, {"usage", nullptr}};
    if (o) {
      r["usage"] = {{"input_tokens", o->prompt_tokens}, {"input_tokens_details", {{"cached_tokens", o->cached_tokens}}},
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

  std::string model_, id_, message_id_, reasoning_id_ = new_id("rs", '_');
  int64_t created_;
  float temperature_, top_p_;
  int64_t max_output_tokens_;
  bool parallel_tool_calls_;
  std::string instructions_, previous_;
  nlohmann::ordered_json conversation_, input_items_;  // the request's, for keep()
  ResponseStore* store_;      // nullptr: "store": false
  json tools_ = json::array();
  bool open_ = false;  // the message item has begun
  std::string text_;   // its text so far
  bool thinking_ = false, reasoning_done_ = false;  // the reasoning item has begun, has ended
  std::string reasoning_;                            // its text so far
  int64_t sequence_ = 0;
};

// GET .../input_items' page: limit (1-100, default 20), order (desc, OpenAI's default, or asc) and
// after (the id of the item the page starts after), as OpenAI's list endpoints read them.
json input_items_page(const nlohmann::ordered_json& items, const httplib::Request& req) {
  int64_t limit = 20;
  if (req.has_param("limit")) {
    const std::string v = req.get_param_value("limit");
    char* end = nullptr;
    limit = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end || limit < 1 || limit > 100)
      throw RequestError(400, "limit", "limit must be a whole number in [1, 100], got '" + v + "'");
  }
  const std::string order = req.has_param("order") ? req.get_param_value("order") : "desc";
  if (order != "asc" && order != "desc") throw RequestError(400, "order", "order must be 'asc' or 'desc', got '" + order + "'");
  std::vector<const nlohmann::ordered_json*> all;
  for (const auto& item : items) all.push_back(&item);
  if (order == "desc") std::reverse(all.begin(), all.end());
  size_t first = 0;
  if (req.has_param("after")) {
    const std::string after = req.get_param_value("after");
    const auto it = std::find_if(all.begin(), all.end(), [&](auto* i) { return (*i)["id"] == after; });
    if (it == all.end()) throw RequestError(400, "after", "after: no input item '" + after + "' in this response");
    first = it - all.begin() + 1;
  }
  json data = json::array();
  for (size_t i = first; i < all.size() && (int64_t)data.size() < limit; ++i) data.push_back(json::parse(all[i]->dump()));
  const bool more = first + data.size() < all.size();
  return {{"object", "list"}, {"data", data}, {"first_id", data.empty() ? json(nullptr) : data.front()["id"]},
          {"last_id", data.empty() ? json(nullptr) : data.back()["id"]}, {"has_more", more}};
}

}  // namespace

void add_responses_routes(httplib::Server& http, Context& ctx) {
  http.Post("/v1/responses", [&ctx](const httplib::Request& req, httplib::Response& res) {
    try {
      std::shared_ptr<const StoredResponse> previous;  // held while the request is read
      const auto body = parse_body(req.body);
      ResponsesRequest r = parse_openai_responses(body, ctx.params.ctx, [&](const std::string& id) {
        previous = ctx.responses.get(id);
        return previous ? &previous->conversation : nullptr;
      });
      apply_defaults(ctx.store.defaults(r.chat.model), body, ctx.params.ctx, r.chat);
      generate_response(ctx, r.chat, std::make_shared<ResponsesFormat>(r, ctx.responses), res);
    } catch (const std::exception& e) {
      answer_exception(res, e, true);
    }
  });
  auto not_kept = [](httplib::Response& res, const std::string& id) {
    openai_error(res, 404, "no response '" + id + "' is kept here", "response_id", "not_found");
  };
  http.Get(R"(/v1/responses/([^/]+))", [&ctx, not_kept](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    if (const auto r = ctx.responses.get(id)) return set_json(res, r->response);
    not_kept(res, id);
  });
  http.Get(R"(/v1/responses/([^/]+)/input_items)", [&ctx, not_kept](const httplib::Request& req, httplib::Response& res) {
    try {
      const std::string id = req.matches[1];
      if (const auto r = ctx.responses.get(id)) return set_json(res, input_items_page(r->input_items, req));
      not_kept(res, id);
    } catch (const std::exception& e) {
      answer_exception(res, e, true);
    }
  });
  http.Delete(R"(/v1/responses/([^/]+))", [&ctx, not_kept](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    if (ctx.responses.erase(id)) return set_json(res, {{"id", id}, {"object", "response"}, {"deleted", true}});
    not_kept(res, id);
  });
}

}  // namespace lowbit::server
