// server/request.h: keep_alive durations as Go's time.ParseDuration reads them (the examples of
// its documentation: "300ms", "-1.5h", "2h45m"; Ollama's api.Duration adds plain numbers of
// seconds and negative = forever), bodies refused with the field named, and a Responses API
// body read as the chat completions body it amounts to.
#include <gtest/gtest.h>

#include "server/request.h"

namespace lowbit::server {
namespace {

using nlohmann::json;

double seconds(const json& v) {
  const KeepAlive k = parse_keep_alive(v, "keep_alive");
  EXPECT_FALSE(k.forever) << v.dump();
  return k.seconds;
}

TEST(KeepAlive, GoDurations) {
  EXPECT_DOUBLE_EQ(seconds("300ms"), 0.3);
  EXPECT_DOUBLE_EQ(seconds("2h45m"), 2 * 3600 + 45 * 60);
  EXPECT_DOUBLE_EQ(seconds("5m"), 300);
  EXPECT_DOUBLE_EQ(seconds("1.5h"), 5400);
  EXPECT_DOUBLE_EQ(seconds("1m30s"), 90);
  EXPECT_DOUBLE_EQ(seconds("250us"), 250e-6);
  EXPECT_DOUBLE_EQ(seconds("0"), 0);
  EXPECT_TRUE(parse_keep_alive("-1.5h", "keep_alive").forever);
  EXPECT_TRUE(parse_keep_alive("-1", "keep_alive").forever);
}

TEST(KeepAlive, NumbersAreSeconds) {
  EXPECT_DOUBLE_EQ(seconds(0), 0);
  EXPECT_DOUBLE_EQ(seconds(600), 600);
  EXPECT_DOUBLE_EQ(seconds(2.5), 2.5);
  EXPECT_TRUE(parse_keep_alive(-1, "keep_alive").forever);
}

TEST(KeepAlive, RefusalsNameTheField) {
  for (const json& bad : {json(""), json("5 m"), json("5x"), json("1e3"), json("m"), json("-"), json(true),
                          json::array()}) {
    try {
      parse_keep_alive(bad, "keep_alive");
      ADD_FAILURE() << bad.dump() << " was accepted";
    } catch (const RequestError& e) {
      EXPECT_EQ(e.status(), 400);
      EXPECT_EQ(e.field(), "keep_alive");
      EXPECT_NE(std::string(e.what()).find("keep_alive"), std::string::npos) << e.what();
    }
  }
}

// A refusal quotes the request's own text; its control characters come out as escapes, so the
// message stays one line (found by the fuzzer: a keep_alive of "2n\ns30m").
TEST(KeepAlive, RefusalQuotingControlCharactersIsOneLine) {
  try {
    parse_keep_alive("2n\ns30m\x01", "keep_alive");
    ADD_FAILURE() << "accepted";
  } catch (const RequestError& e) {
    EXPECT_EQ(std::string(e.what()), "keep_alive: '2n\\ns30m\\x01': unknown unit 'n' (ns, us, ms, s, m, h)");
  }
}

TEST(ParseJsonMode, FormatAndResponseFormat) {
  EXPECT_TRUE(parse_ollama_chat({{"model", "m"}, {"messages", json::array()}, {"format", "json"}}, 4096).json);
  EXPECT_FALSE(parse_ollama_generate({{"model", "m"}, {"prompt", "p"}, {"format", ""}}, 4096).json);
  const json msgs = json::array({{{"role", "user"}, {"content", "x"}}});
  EXPECT_TRUE(parse_openai_chat({{"model", "m"}, {"messages", msgs}, {"response_format", {{"type", "json_object"}}}}, 4096).json);
  EXPECT_FALSE(parse_openai_chat({{"model", "m"}, {"messages", msgs}, {"response_format", {{"type", "text"}}}}, 4096).json);
  // A schema: JSON mode held to it (runtime/json_schema.h); OpenAI's json_schema without one is
  // any object.
  const json schema = {{"type", "object"}, {"properties", {{"a", {{"type", "integer"}}}}}};
  const GenerationRequest o = parse_ollama_generate({{"model", "m"}, {"prompt", "p"}, {"format", schema}}, 4096);
  EXPECT_TRUE(o.json && o.schema);
  const GenerationRequest a = parse_openai_chat(
      {{"model", "m"}, {"messages", msgs},
       {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "n"}, {"schema", schema}}}}}}, 4096);
  EXPECT_TRUE(a.json && a.schema);
  const GenerationRequest any = parse_openai_chat(
      {{"model", "m"}, {"messages", msgs}, {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "n"}}}}}},
      4096);
  EXPECT_TRUE(any.json && !any.schema);
  const std::pair<json, std::string> refused[] = {
      {{{"model", "m"}, {"prompt", "p"}, {"format", {{"type", "string"}, {"pattern", "(?=a)"}}}}, "format"},
      {{{"model", "m"}, {"prompt", "p"}, {"format", "xml"}}, "format"},
  };
  for (const auto& [body, field] : refused) {
    try {
      parse_ollama_generate(body, 4096);
      ADD_FAILURE() << body.dump() << " was accepted";
    } catch (const RequestError& e) {
      EXPECT_EQ(e.field(), field) << e.what();
    }
  }
  const std::pair<json, std::string> refused_openai[] = {
      {{{"type", "json_schema"}}, "response_format.json_schema"},
      {{{"type", "json_schema"}, {"json_schema", {{"schema", {{"oneOf", json::array()}}}}}},
       "response_format.json_schema.schema"},
      {{{"type", "yaml"}}, "response_format.type"},
  };
  for (const auto& [format, field] : refused_openai) {
    try {
      parse_openai_chat({{"model", "m"}, {"messages", msgs}, {"response_format", format}}, 4096);
      ADD_FAILURE() << format.dump() << " was accepted";
    } catch (const RequestError& e) {
      EXPECT_EQ(e.field(), field) << e.what();
    }
  }
}

TEST(ParseBody, RefusesWhatIsNotAJsonObject) {
  for (const std::string body : {"", "{", "[1]", "\"x\"", "{\"a\": 1e999999}", "{\"a\": \"\xff\"}"}) {
    try {
      parse_body(body);
      ADD_FAILURE() << body << " was accepted";
    } catch (const RequestError& e) {
      EXPECT_EQ(e.status(), 400);
      EXPECT_EQ(e.field(), "body");
    }
  }
  EXPECT_EQ(parse_body("{\"model\": \"m\"}")["model"], "m");
}

TEST(ParseOllama, OptionsOutOfRangeNameTheirField) {
  const json base = {{"model", "m"}, {"prompt", "p"}};
  const std::pair<json, std::string> cases[] = {
      {{{"num_predict", -3}}, "options.num_predict"}, {{{"num_ctx", 0}}, "options.num_ctx"},
      {{{"num_ctx", 4097}}, "options.num_ctx"},       {{{"top_p", 0}}, "options.top_p"},
      {{{"repeat_penalty", 0}}, "options.repeat_penalty"}, {{{"stop", {1}}}, "options.stop[0]"},
  };
  for (const auto& [options, field] : cases) {
    json body = base;
    body["options"] = options;
    try {
      parse_ollama_generate(body, 4096);
      ADD_FAILURE() << body.dump() << " was accepted";
    } catch (const RequestError& e) {
      EXPECT_EQ(e.field(), field) << e.what();
    }
  }
  json ok = base;
  ok["options"] = {{"num_predict", -1}, {"num_ctx", 4096}, {"seed", 5}, {"temperature", 0}};
  const GenerationRequest r = parse_ollama_generate(ok, 4096);
  EXPECT_EQ(r.max_tokens, -1);
  EXPECT_EQ(r.num_ctx, 4096);
  EXPECT_TRUE(r.seed_given);
  EXPECT_EQ(r.sampler.seed, 5u);
}

// /v1/responses is a chat request in another shape: its items, instructions, flat tools and
// named tool_choice give what parse_openai_chat gives for the same conversation written as chat
// completions (the form OpenAI's docs show for each).
TEST(ParseResponses, ItemsAreTheChatMessagesTheyStandFor) {
  const nlohmann::ordered_json params = {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}};
  const auto responses = parse_openai_responses(
      {{"model", "m"},
       {"instructions", "Be brief."},
       {"input",
        {{{"role", "developer"}, {"content", "Talk like a pirate."}},
         {{"type", "message"}, {"role", "user"}, {"content", {{{"type", "input_text"}, {"text", "Weather in "}},
                                                               {{"type", "input_text"}, {"text", "Paris?"}}}}},
         {{"type", "function_call"}, {"call_id", "c1"}, {"name", "get_weather"}, {"arguments", "{\"city\":\"Paris\"}"}},
         {{"type", "function_call"}, {"call_id", "c2"}, {"name", "get_weather"}, {"arguments", "{\"city\":\"Lyon\"}"}},
         {{"type", "function_call_output"}, {"call_id", "c1"}, {"output", "Sunny"}},
         {{"type", "function_call_output"}, {"call_id", "c2"}, {"output", {{{"type", "input_text"}, {"text", "Rain"}}}}}}},
       {"tools", {{{"type", "function"}, {"name", "get_weather"}, {"description", "d"}, {"parameters", params}}}},
       {"tool_choice", {{"type", "function"}, {"name", "get_weather"}}},
       {"max_output_tokens", 50},
       {"temperature", 0.5}},
      4096, nullptr)
                             .chat;
  const auto chat = parse_openai_chat(
      {{"model", "m"},
       {"messages",
        {{{"role", "system"}, {"content", "Be brief."}},
         {{"role", "system"}, {"content", "Talk like a pirate."}},
         {{"role", "user"}, {"content", "Weather in Paris?"}},
         {{"role", "assistant"},
          {"content", ""},
          {"tool_calls",
           {{{"id", "c1"}, {"type", "function"}, {"function", {{"name", "get_weather"}, {"arguments", "{\"city\":\"Paris\"}"}}}},
            {{"id", "c2"}, {"type", "function"}, {"function", {{"name", "get_weather"}, {"arguments", "{\"city\":\"Lyon\"}"}}}}}}},
         {{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "Sunny"}},
         {{"role", "tool"}, {"tool_call_id", "c2"}, {"content", "Rain"}}}},
       {"tools", {{{"type", "function"}, {"function", {{"name", "get_weather"}, {"description", "d"}, {"parameters", params}}}}}},
       {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}},
       {"max_tokens", 50},
       {"temperature", 0.5}},
      4096);
  EXPECT_EQ(responses.messages, chat.messages);
  EXPECT_EQ(responses.tools, chat.tools);
  EXPECT_EQ(responses.tool_choice, chat.tool_choice);
  EXPECT_EQ(responses.tool_name, "get_weather");
  EXPECT_EQ(responses.max_tokens, chat.max_tokens);
  EXPECT_EQ(responses.sampler.temperature, chat.sampler.temperature);
  EXPECT_EQ(responses.route, Route::openai_responses);
  EXPECT_FALSE(responses.stream);     // OpenAI's default
  EXPECT_FALSE(responses.truncate);   // truncation "disabled", OpenAI's default
  // text.format is response_format's json_schema.
  const auto structured = parse_openai_responses(
      {{"model", "m"}, {"input", "x"}, {"truncation", "auto"},
       {"text", {{"format", {{"type", "json_schema"}, {"name", "n"}, {"schema", {{"type", "integer"}}}}}}}},
      4096, nullptr)
                              .chat;
  EXPECT_TRUE(structured.json && structured.schema && structured.truncate);
}

// previous_response_id continues a kept conversation: its turns come after this request's
// instructions (OpenAI carries the previous ones' over no more) and before its input, and the
// conversation to keep next is those turns and the input without the instructions.
TEST(ParseResponses, PreviousResponseContinuesItsConversation) {
  const nlohmann::ordered_json kept = {{{"role", "user"}, {"content", "My name is Ada."}},
                                       {{"role", "assistant"}, {"content", "Hello Ada."}}};
  std::string asked;
  auto previous = [&](const std::string& id) -> const nlohmann::ordered_json* {
    asked = id;
    return id == "resp_1" ? &kept : nullptr;
  };
  const auto r = parse_openai_responses(
      {{"model", "m"}, {"instructions", "Be brief."}, {"previous_response_id", "resp_1"}, {"input", "My name?"},
       {"store", false}},
      4096, previous);
  EXPECT_EQ(asked, "resp_1");
  const nlohmann::ordered_json turns = {kept[0], kept[1], {{"role", "user"}, {"content", "My name?"}}};
  EXPECT_EQ(r.conversation, turns);
  nlohmann::ordered_json messages = turns;
  messages.insert(messages.begin(), nlohmann::ordered_json::object({{"role", "system"}, {"content", "Be brief."}}));
  EXPECT_EQ(r.chat.messages, messages);
  EXPECT_EQ(r.previous_response_id, "resp_1");
  EXPECT_FALSE(r.store);
  const nlohmann::ordered_json items = {{{"type", "message"}, {"role", "user"}, {"content", {{{"type", "input_text"}, {"text", "My name?"}}}}}};
  EXPECT_EQ(r.input_items, items);
  // One not kept is a 400 naming the field; so is `conversation`, which this server has no API for.
  for (const auto& [body, name] : std::vector<std::pair<nlohmann::ordered_json, std::string>>{
           {{{"model", "m"}, {"previous_response_id", "resp_2"}, {"input", "x"}}, "previous_response_id"},
           {{{"model", "m"}, {"previous_response_id", 5}, {"input", "x"}}, "previous_response_id"},
           {{{"model", "m"}, {"conversation", "conv_1"}, {"input", "x"}}, "conversation"}}) {
    try {
      parse_openai_responses(body, 4096, previous);
      ADD_FAILURE() << body.dump();
    } catch (const RequestError& e) {
      EXPECT_EQ(e.status(), 400);
      EXPECT_EQ(e.field(), name);
    }
  }
}

}  // namespace
}  // namespace lowbit::server
