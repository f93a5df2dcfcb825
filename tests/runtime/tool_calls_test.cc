// runtime/chat/tool_calls: the call syntax learned from real templates. What each template writes
// is read off its own source text (Qwen2.5's `'\n<tool_call>\n{"name": "' ... '}\n</tool_call>'`),
// so the expectations below come from the template, not from the code under test.
#include "runtime/chat/tool_calls.h"
#include "runtime/json_prefix.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include "convert/gguf.h"
#include "convert/gguf_tokenizer.h"
#include "kernels/error.h"
#include "runtime/chat/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"

namespace lowbit {
namespace {

using ojson = nlohmann::ordered_json;

const std::string kShared = LOWBIT_SOURCE_DIR "/../shared/models";

// The template a model's tokenizer files carry, as the server loads it; nullptr when absent.
std::unique_ptr<ChatTemplate> template_of(const std::string& config) {
  const std::string dir = kShared + "/configs/" + config;
  if (!std::filesystem::exists(dir)) return nullptr;
  return chat_template_of(*load_tokenizer(dir));
}

std::unique_ptr<ChatTemplate> smollm2_template() {
  const std::string gguf = kShared + "/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(gguf)) return nullptr;
  return chat_template_of(*load_tokenizer_files(gguf_tokenizer_files(GgufFile::open(gguf)), gguf));
}

const ojson kTools = ojson::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
  {"type": "function", "function": {"name": "add", "parameters": {"type": "object",
   "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}])");

std::optional<ToolCallSyntax> qwen() {
  const auto t = template_of("qwen2.5-0.5b");
  if (!t) return std::nullopt;
  return ToolCallSyntax::of(*t);
}

TEST(ToolCallSyntax, learns_qwen25s_tool_call_from_its_template) {
  const auto t = template_of("qwen2.5-0.5b");
  if (!t) GTEST_SKIP() << "../shared/models/configs/qwen2.5-0.5b not present";
  const std::string& src = t->source();
  // The template writes '\n<tool_call>\n{"name": "' name '", "arguments": ' args|tojson '}\n</tool_call>'.
  ASSERT_NE(src.find(R"('\n<tool_call>\n{"name": "')"), std::string::npos);
  ASSERT_NE(src.find(R"('}\n</tool_call>')"), std::string::npos);
  const auto s = qwen();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->prefix(), "<tool_call>\n");  // the message's leading "\n" is the generation prompt's
  EXPECT_EQ(s->suffix(), "\n</tool_call>");
  EXPECT_EQ(s->name_key(), "name");
  EXPECT_EQ(s->arguments_key(), "arguments");
  EXPECT_FALSE(s->arguments_as_string());
  EXPECT_EQ(s->forced_opening("add"), "<tool_call>\n{\"name\": \"add\", \"arguments\": ");
  EXPECT_EQ(s->forced_closing(), "}");
}

// A thinking model's template: our own of the Qwen3 format renders an empty <think> block before
// the assistant's call; the call's syntax is what follows it, where a reply's answer has its calls.
TEST(ToolCallSyntax, learns_past_a_thinking_block) {
  std::ifstream in(LOWBIT_SOURCE_DIR "/tests/data/chat_templates/qwen3.jinja");
  const std::string src((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const ChatTemplate t(src, "", "<|im_end|>");
  const ojson call = {{"role", "assistant"}, {"content", ""},
                      {"tool_calls", {{{"function", {{"name", "add"}, {"arguments", {{"a", 1}}}}}}}}};
  ASSERT_NE(t.render(ojson::array({{{"role", "user"}, {"content", "q"}}, call}), false, kTools)
                .find("<think>\n\n</think>\n\n<tool_call>\n"),
            std::string::npos);  // the block the template writes
  const auto s = ToolCallSyntax::of(t);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->prefix(), "<tool_call>\n");
  EXPECT_EQ(s->suffix(), "\n</tool_call>");
  const ToolReply r = s->parse("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2}}\n</tool_call>", kTools);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "add");
}

TEST(ToolCallSyntax, templates_without_tools_offer_none) {
  // SmolLM2's ChatML template never reads `tools`; nor does TinyLlama's.
  const auto smol = smollm2_template(), tiny = template_of("tinyllama-1.1b-chat-v1.0");
  if (!smol || !tiny) GTEST_SKIP() << "../shared/models not present";
  EXPECT_FALSE(ToolCallSyntax::of(*smol).has_value());
  EXPECT_FALSE(ToolCallSyntax::of(*tiny).has_value());
  // Reads tools but renders no call for an assistant's tool_calls.
  EXPECT_FALSE(ToolCallSyntax::of(ChatTemplate("{% if tools %}T{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}",
                                               "", ""))
                   .has_value());
  // Refuses assistant messages outright.
  EXPECT_FALSE(ToolCallSyntax::of(ChatTemplate("{{ tools | length }}{% for m in messages %}{% if m.role == 'assistant' %}"
                                               "{{ raise_exception('no') }}{% endif %}{% endfor %}",
                                               "", ""))
                   .has_value());
}

// A template in the style of Llama 3.1's: the call is a bare JSON object with "parameters",
// written with tojson and its keys in the order given.
const char* kBareJson =
    "{% if tools %}Tools: {{ tools | tojson }}\n{% endif %}"
    "{% for m in messages %}<{{ m.role }}>"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}"
    "{{ {'name': c.function.name, 'parameters': c.function.arguments} | tojson }}{% endfor %}"
    "{% else %}{{ m.content }}{% endif %}</{{ m.role }}>\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}";

TEST(ToolCallSyntax, learns_a_bare_json_call) {
  const auto s = ToolCallSyntax::of(ChatTemplate(kBareJson, "", ""));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->prefix(), "");
  EXPECT_EQ(s->suffix(), "");
  EXPECT_EQ(s->name_key(), "name");
  EXPECT_EQ(s->arguments_key(), "parameters");
  EXPECT_EQ(s->forced_opening("add"), "{\"name\": \"add\", \"parameters\": ");
  const ToolReply r = s->parse(" {\"name\": \"add\", \"parameters\": {\"a\": 1, \"b\": 2}}\n", kTools);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.content, "");
  EXPECT_EQ(r.calls[0].name, "add");
  EXPECT_EQ(r.calls[0].arguments.dump(), R"({"a":1,"b":2})");
  // Text around the object: an answer, not a call.
  EXPECT_TRUE(s->parse("Sure: {\"name\": \"add\", \"parameters\": {}}", kTools).calls.empty());
  EXPECT_TRUE(s->parse("{\"name\": \"add\", \"parameters\": {}} done", kTools).calls.empty());
  // Streaming: an answer that may still become a call is held from its start.
  EXPECT_EQ(s->hold_from("  {\"na"), 0u);
  EXPECT_EQ(s->hold_from("  "), 0u);
  EXPECT_EQ(s->hold_from("Hello {"), 7u);
}

TEST(ToolCallSyntax, arguments_written_as_a_string) {
  const char* src =
      "{% if tools %}T{% endif %}{% for m in messages %}{% if m.tool_calls %}"
      "{% for c in m.tool_calls %}[CALL]{{ {'function': c.function.name, 'args': c.function.arguments | tojson} | tojson }}"
      "{% endfor %}{% else %}{{ m.content }}{% endif %};{% endfor %}";
  const auto s = ToolCallSyntax::of(ChatTemplate(src, "", ""));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->prefix(), "[CALL]");
  EXPECT_EQ(s->name_key(), "function");
  EXPECT_EQ(s->arguments_key(), "args");
  EXPECT_TRUE(s->arguments_as_string());
  EXPECT_EQ(s->forced_opening("add"), "");  // no object to continue: forced calls use a schema
  const ToolReply r = s->parse("[CALL]{\"function\": \"add\", \"args\": \"{\\\"a\\\": 3}\"}", kTools);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].arguments.dump(), R"({"a":3})");
}

TEST(ToolCallSyntax, reads_qwen_replies) {
  const auto s = qwen();
  if (!s) GTEST_SKIP() << "../shared/models/configs/qwen2.5-0.5b not present";
  // Two calls after some text, the way the template writes them (and without the newlines).
  const std::string two =
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
      "<tool_call>{\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":{\"nested\":\"}\"}}}</tool_call>";
  ToolReply r = s->parse(two, kTools);
  EXPECT_EQ(r.content, "Let me check.");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].name, "get_weather");
  EXPECT_EQ(r.calls[0].arguments.dump(), R"({"city":"Paris"})");
  EXPECT_EQ(r.calls[1].name, "add");
  EXPECT_EQ(r.calls[1].arguments.dump(), R"({"a":1,"b":{"nested":"}"}})");
  // A reply cut off inside its call, an unknown tool, arguments that are not an object, a call
  // that is not JSON: all content, as written.
  for (const std::string bad :
       {std::string("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1"),
        std::string("<tool_call>\n{\"name\": \"delete_all\", \"arguments\": {}}\n</tool_call>"),
        std::string("<tool_call>\n{\"name\": \"add\", \"arguments\": [1, 2]}\n</tool_call>"),
        std::string("ok <tool_call> add(1, 2) </tool_call>"), std::string("No call here.")}) {
    r = s->parse(bad, kTools);
    EXPECT_TRUE(r.calls.empty()) << bad;
    EXPECT_EQ(r.content, bad);
  }
  // No arguments at all: an empty object.
  r = s->parse("<tool_call>{\"name\": \"add\"}</tool_call>", kTools);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].arguments, ojson::object());
}

TEST(ToolCallSyntax, forced_calls) {
  const auto s = qwen();
  if (!s) GTEST_SKIP() << "../shared/models/configs/qwen2.5-0.5b not present";
  // One function: its opening, its parameters as the schema, "}" to close.
  ToolCallSyntax::Forced f = s->force(kTools, {1});
  EXPECT_EQ(f.reply_start, "<tool_call>\n{\"name\": \"add\", \"arguments\": ");
  EXPECT_EQ(f.reply_end, "}");
  EXPECT_EQ(f.schema, nlohmann::json(kTools[1]["function"]["parameters"]));
  ToolReply r = s->read_forced(f, "{\"a\": 1, \"b\": 2}", kTools);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.content, "");
  EXPECT_EQ(r.calls[0].name, "add");
  EXPECT_EQ(r.calls[0].arguments.dump(), R"({"a":1,"b":2})");
  // Cut short by the token limit: what was generated, as content.
  r = s->read_forced(f, "{\"a\": 1, \"b", kTools);
  EXPECT_TRUE(r.calls.empty());
  EXPECT_EQ(r.content, "{\"a\": 1, \"b");
  // Several: the prefix, then a call object of either, each name a const.
  f = s->force(kTools, {0, 1});
  EXPECT_EQ(f.reply_start, "<tool_call>\n");
  EXPECT_EQ(f.reply_end, "\n</tool_call>");
  ASSERT_EQ(f.schema["anyOf"].size(), 2u);
  EXPECT_EQ(f.schema["anyOf"][0]["properties"]["name"]["const"], "get_weather");
  EXPECT_EQ(f.schema["anyOf"][1]["properties"]["arguments"], nlohmann::json(kTools[1]["function"]["parameters"]));
  r = s->read_forced(f, "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}", kTools);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].arguments.dump(), R"({"city":"Oslo"})");
  // More than the recognizer follows at once, or none: refused.
  ojson many = ojson::array();
  std::vector<size_t> all;
  for (int i = 0; i <= JsonPrefix::kMaxPaths; ++i) {
    many.push_back({{"type", "function"}, {"function", {{"name", "f" + std::to_string(i)}}}});
    all.push_back(i);
  }
  EXPECT_THROW(s->force(many, all), Error);
  all.pop_back();
  EXPECT_EQ(s->force(many, all).schema["anyOf"].size(), (size_t)JsonPrefix::kMaxPaths);
  EXPECT_THROW(s->force(many, {}), Error);
  // Which tools a forced call may be to: all, or the one named.
  EXPECT_EQ(ToolCallSyntax::candidates(kTools, ""), (std::vector<size_t>{0, 1}));
  EXPECT_EQ(ToolCallSyntax::candidates(kTools, "add"), (std::vector<size_t>{1}));
  EXPECT_TRUE(ToolCallSyntax::candidates(kTools, "mul").empty());
  // A tool without parameters: any object.
  EXPECT_EQ(s->force(many, {2}).schema, (nlohmann::json{{"type", "object"}}));
}

TEST(ToolCallSyntax, holds_back_what_may_start_a_call) {
  const auto s = qwen();
  if (!s) GTEST_SKIP() << "../shared/models/configs/qwen2.5-0.5b not present";
  EXPECT_EQ(s->hold_from("Hello"), 5u);
  EXPECT_EQ(s->hold_from("Hello <tool_"), 5u);  // the space too: the content ends before it
  EXPECT_EQ(s->hold_from("Hello <tool_call>\n{\"na"), 5u);
  EXPECT_EQ(s->hold_from("a <"), 1u);  // "<" may begin "<tool_call>"
  EXPECT_EQ(s->hold_from("a < b"), 5u);
  EXPECT_EQ(s->hold_from("a <b"), 4u);
  EXPECT_EQ(s->hold_from("<tool_call>"), 0u);
  EXPECT_EQ(s->hold_from(""), 0u);
  // What is held is what parse() leaves out of the content when a call follows.
  const std::string text = "Checking... \n<tool_call>\n{\"name\": \"add\", \"arguments\": {}}\n</tool_call>";
  EXPECT_EQ(s->parse(text, kTools).content, text.substr(0, s->hold_from(text)));
}

}  // namespace
}  // namespace lowbit
