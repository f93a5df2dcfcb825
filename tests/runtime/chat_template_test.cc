// runtime/chat: the Jinja subset and ChatTemplate. Expected strings are worked out by hand from
// jinja2's documented semantics (and transformers' settings: trim_blocks, lstrip_blocks); the
// byte-for-byte comparison with jinja2 itself over many conversations is
// tests/python/test_chat_template_reference.py.
#include "runtime/chat/chat_template.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>
#include <fstream>
#include <iterator>
#include <map>

#include "convert/gguf.h"
#include "convert/gguf_tokenizer.h"
#include "kernels/error.h"
#include "runtime/chat/jinja.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/error_of.h"

namespace lowbit {
namespace {

using nlohmann::json;
using test::code_of;
using test::error_of;
using ::testing::AnyOf;
using ::testing::HasSubstr;

const std::string kShared = LOWBIT_SOURCE_DIR "/../shared/models";

std::string render(const std::string& source, const json& messages = json::array(), bool gen = false,
                   const json& tools = nullptr) {
  return ChatTemplate(source, "<s>", "</s>").render(messages, gen, tools);
}

const json kChat = json::array({{{"role", "system"}, {"content", "Be brief."}},
                                {{"role", "user"}, {"content", "Hi"}},
                                {{"role", "assistant"}, {"content", "Hello."}}});

// ChatML as SmolLM2 and Qwen write it.
const char* kChatml =
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

TEST(ChatTemplate, chatml) {
  EXPECT_EQ(render(kChatml, kChat, true),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render(kChatml, kChat, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n");
  EXPECT_EQ(render(kChatml, json::array(), true), "<|im_start|>assistant\n");
}

TEST(ChatTemplate, bos_eos_and_tools_variables) {
  EXPECT_EQ(render("{{ bos_token }}|{{ eos_token }}|{{ tools is none }}"), "<s>|</s>|True");
  EXPECT_EQ(render("{{ tools[0].name }}", json::array(), false, json::array({{{"name", "f"}}})), "f");
  // No BOS (Qwen2): transformers leaves bos_token undefined.
  EXPECT_EQ(ChatTemplate("{{ bos_token is defined }}", "", "x").render(json::array(), false), "False");
}

TEST(ChatTemplate, messages_are_prepared_as_transformers_does) {
  // null-valued keys vanish; reasoning is offered as reasoning_content and thinking.
  const json msgs = json::array({{{"role", "assistant"}, {"content", nullptr}, {"reasoning", "r"}}});
  EXPECT_EQ(render("{{ messages[0].content is defined }} {{ messages[0].thinking }} "
                   "{{ messages[0].reasoning_content }}",
                   msgs),
            "False r r");
  nlohmann::ordered_json ordered = nlohmann::ordered_json::array({{{"z", 1}, {"a", 2}}});
  EXPECT_EQ(ChatTemplate("{{ messages[0] | tojson }}", "", "").render(ordered, false), "{\"z\": 1, \"a\": 2}");
}

TEST(ChatTemplate, renders_from_many_threads_at_once) {
  const ChatTemplate t(std::string(kChatml) + "{% set ns = namespace(n=0) %}{% for m in messages %}"
                                              "{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}",
                       "", "");
  const std::string want = t.render(kChat, true);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i)
        if (t.render(kChat, true) != want) ++mismatches;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_TRUE(want.ends_with("<|im_start|>assistant\n3"));
}

TEST(Jinja, whitespace_control_trim_and_lstrip_blocks) {
  // trim_blocks drops the newline after %}; lstrip_blocks the indentation before {%.
  EXPECT_EQ(render("a\n  {% if true %}\n  b\n  {% endif %}\nc"), "a\n  b\nc");
  // {%+ keeps the indentation, +%} the newline.
  EXPECT_EQ(render("a\n  {%+ if true +%}\nb{% endif %}"), "a\n  \nb");
  // - strips all whitespace on its side, newlines included.
  EXPECT_EQ(render("a \n {{- 'b' -}} \n c"), "abc");
  // Expression tags are neither trimmed nor lstripped.
  EXPECT_EQ(render("  {{ 'x' }}\n{{ 'y' }}"), "  x\ny");
  // Comments are trimmed like blocks; a single trailing newline of the source is dropped.
  EXPECT_EQ(render("  {# c #}\nz\n"), "z");
  EXPECT_EQ(render("{% raw %}{{ x }}{% endraw %}"), "{{ x }}");
  EXPECT_EQ(render("a\r\nb"), "a\nb");
}

TEST(Jinja, expressions) {
  EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }}"), "3 -4 2 3.5 1024 7");
  EXPECT_EQ(render("{{ 'ab' * 2 }} {{ 'a' ~ 1 ~ none }} {{ [1] + [2] }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 2.0 }}"),
            "abab a1None [1, 2] 0.30000000000000004 1e+16 2.0");
  EXPECT_EQ(render("{{ 'héllo'[1] }} {{ 'héllo'[::-1] }} {{ [1, 2, 3][1:] }} {{ [1, 2, 3][-1] }}"), "é olléh [2, 3] 3");
  EXPECT_EQ(render("{{ 1 < 2 < 3 }} {{ 'a' in 'cat' }} {{ 3 not in [1] }} {{ 0 or 'x' }} {{ 'y' if 0 else 'z' }}"),
            "True True True x z");
  EXPECT_EQ(render("{{ 'it\\'s' }} {{ [\"it's\", 'a\"b'] }} {{ {'k': none, 'b': true} }} {{ (1,) }}"),
            "it's [\"it's\", 'a\"b'] {'k': None, 'b': True} (1,)");
}

TEST(Jinja, statements) {
  EXPECT_EQ(render("{% for x in 'ab' %}{{ loop.index }}{{ x }}{{ loop.first }}{{ loop.last }}{{ loop.revindex }},"
                   "{% else %}empty{% endfor %}{% for x in [] %}{% else %}empty{% endfor %}"),
            "1aTrueFalse2,2bFalseTrue1,empty");
  // A set inside a loop does not leak out; a namespace attribute does.
  EXPECT_EQ(render("{% set x = 1 %}{% set ns = namespace(y=1) %}{% for i in range(3) %}{% set x = i %}"
                   "{% set ns.y = ns.y + i %}{% endfor %}{{ x }} {{ ns.y }}"),
            "1 4");
  EXPECT_EQ(render("{% for k, v in {'b': 1, 'a': 2}.items() %}{{ k }}{{ v }}{% endfor %}"), "b1a2");
  EXPECT_EQ(render("{% for i in range(9) if i is odd %}{% if i > 5 %}{% break %}{% endif %}{{ i }}{% endfor %}"), "135");
  EXPECT_EQ(render("{% macro m(a, b='B') %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}{{ m(2, b='c') }}"), "1B2c");
  EXPECT_EQ(render("{% if false %}a{% elif 0 %}b{% else %}c{% endif %}"), "c");
}

TEST(Jinja, filters_tests_and_methods) {
  EXPECT_EQ(render("{{ ' x ' | trim }}|{{ [1, 2] | length }}|{{ [3, 4] | first }}|{{ [3, 4] | last }}|"
                   "{{ [1, 2] | join('-') }}|{{ u | default('d') }}|{{ 'aXb' | upper }}|{{ 'a-b' | replace('-', '+') }}"),
            "x|2|3|4|1-2|d|AXB|a+b");
  EXPECT_EQ(render("{{ {'a': 'é', 'b': [1, 2.5]} | tojson }}"), "{\"a\": \"é\", \"b\": [1, 2.5]}");
  EXPECT_EQ(render("{{ {'a': [1]} | tojson(indent=2) }}"), "{\n  \"a\": [\n    1\n  ]\n}");
  EXPECT_EQ(render("{{ [{'r': 'u'}, {'r': 'a'}] | selectattr('r', 'equalto', 'a') | map(attribute='r') | list }}"),
            "['a']");
  EXPECT_EQ(render("{{ u is defined }} {{ none is none }} {{ 1 is number }} {{ 'a' is string }} {{ {} is mapping }} "
                   "{{ 4 is divisibleby 2 }}"),
            "False True True True True True");
  EXPECT_EQ(render("{{ ' ab '.strip() }}{{ 'a,b'.split(',') }}{{ 'ab'.startswith('a') }}{{ {'k': 1}.get('z', 0) }}"),
            "ab['a', 'b']True0");
}

TEST(Jinja, undefined_follows_jinja2_default_undefined) {
  EXPECT_EQ(render("[{{ u }}][{% for x in u %}x{% endfor %}][{{ u | length }}][{{ messages[5] }}][{{ {}.a }}]"),
            "[][][0][][]");
  EXPECT_THAT(error_of([] { render("{{ u.attr }}"); }), HasSubstr("'u' is undefined"));
  EXPECT_THAT(error_of([] { render("{{ u + 1 }}"); }), HasSubstr("'u' is undefined"));
}

TEST(Jinja, errors_name_line_and_column) {
  EXPECT_EQ(error_of([] { ChatTemplate("ok\n{{ 1 + }}", "", ""); }), "chat template line 2:8: unexpected '}}'");
  EXPECT_EQ(code_of([] { ChatTemplate("{% if x %}", "", ""); }), ErrorCode::bad_format);
  EXPECT_THAT(error_of([] { ChatTemplate("{% if x %}", "", ""); }), HasSubstr("expected 'endif'"));
  EXPECT_THAT(error_of([] { ChatTemplate("\n  {{ x | nope }}", "", ""); }), HasSubstr("line 2:10: no filter named 'nope'"));
  EXPECT_THAT(error_of([] { ChatTemplate("{% include 'x' %}", "", ""); }), HasSubstr("unsupported tag 'include'"));
  EXPECT_THAT(error_of([] { ChatTemplate("{{ 'abc }}", "", ""); }), HasSubstr("line 1:4: unterminated string"));
  // Render errors: invalid_argument, located.
  EXPECT_EQ(error_of([] { render("\n\n {{ 1 / 0 }}"); }), "chat template line 3:7: division by zero");
  EXPECT_EQ(code_of([] { render("{{ 1 / 0 }}"); }), ErrorCode::invalid_argument);
  // raise_exception: exactly the template's message.
  const char* alternate =
      "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
      "{% endfor %}";
  const json bad = json::array({{{"role", "assistant"}, {"content", "x"}}});
  EXPECT_EQ(error_of([&] { render(alternate, bad); }), "Conversation roles must alternate user/assistant/user/assistant/...");
  EXPECT_EQ(code_of([&] { render(alternate, bad); }), ErrorCode::invalid_argument);
  EXPECT_THAT(error_of([] { render("{{ x }}", json::object()); }), HasSubstr("messages must be an array"));
}

TEST(Jinja, limits_stop_hostile_templates) {
  // Parser recursion.
  EXPECT_EQ(code_of([] { ChatTemplate("{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}", "", ""); }),
            ErrorCode::bad_format);
  EXPECT_EQ(code_of([] { ChatTemplate("{{ " + std::string(50000, '-') + "1 }}", "", ""); }), ErrorCode::bad_format);
  std::string ifs;
  for (int k = 0; k < 5000; ++k) ifs += "{% if true %}";
  EXPECT_THAT(error_of([&] { ChatTemplate(ifs, "", ""); }), HasSubstr("nested too deeply"));
  std::string sum = "{{ 1";
  for (int k = 0; k < 100000; ++k) sum += "+1";
  EXPECT_THAT(error_of([&] { ChatTemplate(sum + " }}", "", ""); }), HasSubstr("nested too deeply"));
  // Evaluation: loops, ranges, string growth, recursion, nesting built at run time.
  EXPECT_THAT(error_of([] { render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"); }),
              HasSubstr("evaluation budget"));
  EXPECT_THAT(error_of([] { render("{{ range(100001) | length }}"); }), HasSubstr("Range too big"));
  EXPECT_THAT(error_of([] { render("{% set ns = namespace(s='xx') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"); }),
              AnyOf(HasSubstr("size limit"), HasSubstr("evaluation budget")));
  EXPECT_THAT(error_of([] { render("{{ 'x' * 1000000000000 }}"); }), HasSubstr("size limit"));
  EXPECT_THAT(error_of([] { render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"); }), HasSubstr("macros nested too deeply"));
  // Deep expressions inside recursive macros: the product of the two is bounded too.
  std::string inner = "f(n - 1)";
  for (int k = 0; k < 60; ++k) inner = "('' ~ " + inner + ")";
  EXPECT_THAT(error_of([&] { render("{% macro f(n) %}{% if n > 0 %}{{ " + inner + " }}{% endif %}{% endmacro %}{{ f(31) }}"); }),
              HasSubstr("recurses too deeply"));
  EXPECT_EQ(render("{% macro f(n) %}{% if n > 0 %}{{ " + inner + " }}{% endif %}{% endmacro %}{{ f(3) }}x"), "x");
  EXPECT_THAT(error_of([] { render("{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = [ns.l] %}{% endfor %}"); }),
              HasSubstr("nested too deeply"));
  EXPECT_THAT(error_of([] { render("{% set ns = namespace() %}{% set ns.me = ns %}"); }), HasSubstr("namespace"));
  EXPECT_THAT(error_of([] { render("{{ 9223372036854775807 + 1 }}"); }), HasSubstr("integer overflow"));
  // Input nesting.
  json deep = "x";
  for (int k = 0; k < 1000; ++k) deep = json::array({deep});
  EXPECT_EQ(code_of([&] { render("{{ 1 }}", json::array({{{"role", "user"}, {"content", deep}}})); }),
            ErrorCode::invalid_argument);
}

TEST(ChatTemplate, from_tokenizer_config_and_gguf) {
  // Qwen2.5: tokenizer_config.json's chat_template, no BOS, eos <|endoftext|>.
  const std::string qwen = kShared + "/configs/qwen2.5-0.5b";
  if (!std::filesystem::exists(qwen)) GTEST_SKIP() << qwen << " not present";
  auto tok = load_tokenizer(qwen);
  auto t = chat_template_of(*tok);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->render(json::array({{{"role", "user"}, {"content", "Hi"}}}), true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  // TinyLlama: chat_template.jinja beside tokenizer_config.json; its eos_token is </s>.
  auto tiny = load_tokenizer(kShared + "/configs/tinyllama-1.1b-chat-v1.0");
  auto tt = chat_template_of(*tiny);
  ASSERT_NE(tt, nullptr);
  EXPECT_EQ(tt->render(json::array({{{"role", "user"}, {"content", "Hi"}}}), true), "<|user|>\nHi</s>\n<|assistant|>\n");
  // SmolLM2's GGUF: tokenizer.chat_template through the importer; BOS/EOS as transformers names them.
  const std::string smol = kShared + "/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
  const GgufFile f = GgufFile::open(smol);
  auto stok = load_tokenizer_files(gguf_tokenizer_files(f), smol);
  EXPECT_EQ(stok->chat_template(), std::string(f.get_string("tokenizer.chat_template")));
  auto st = chat_template_of(*stok);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->render(json::array({{{"role", "user"}, {"content", "Hi"}}}), true),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // A tokenizer without a template.
  auto none = load_tokenizer(kShared + "/configs/gpt2");
  EXPECT_EQ(chat_template_of(*none), nullptr);
}

// The end-of-turn token a template writes, learned by rendering one answered question: the ids
// expected are the tokenizer's own for the spelled token (its vocabulary, not the code under test).
TEST(ChatTemplate, end_of_turn_token_is_the_template_s) {
  const std::string smol = kShared + "/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(smol)) GTEST_SKIP() << smol << " not present";
  auto tok = load_tokenizer_files(gguf_tokenizer_files(GgufFile::open(smol)), smol);
  auto id_of = [&](const std::string& special) {
    const std::vector<int32_t> ids = tok->encode(special, false);
    EXPECT_EQ(ids.size(), 1u) << special;
    return ids.at(0);
  };
  // SmolLM2's own ChatML: <|im_end|>, already its EOS.
  EXPECT_EQ(end_of_turn_token(*chat_template_of(*tok), *tok), id_of("<|im_end|>"));
  EXPECT_TRUE(tok->is_eos(id_of("<|im_end|>")));
  // A Gemma-shaped template ending turns with another control token of this vocabulary, which is
  // not among its end tokens: found, and a model's load adds it (runtime/model.cc).
  const ChatTemplate gemma_like(
      "{% for m in messages %}<start>{{ m.role }}\n{{ m.content }}<file_sep>\n{% endfor %}"
      "{% if add_generation_prompt %}<start>model\n{% endif %}",
      "", "");
  const int32_t sep = id_of("<file_sep>");
  EXPECT_EQ(end_of_turn_token(gemma_like, *tok), sep);
  EXPECT_FALSE(tok->is_eos(sep));
  tok->add_eos_id(sep);
  EXPECT_TRUE(tok->is_eos(sep));
  // Turns that end in text, or a template that refuses the probe: none.
  EXPECT_EQ(end_of_turn_token(ChatTemplate("{% for m in messages %}{{ m.content }}\n\n{% endfor %}", "", ""), *tok),
            std::nullopt);
  EXPECT_EQ(end_of_turn_token(ChatTemplate("{{ raise_exception('no') }}", "", ""), *tok), std::nullopt);
}

// encode_conversation's rule (llama.cpp's): the tokenizer's specials, one BOS, never two. The
// expected ids are built from the tokenizer's plain encode, so a tokenizer change moves both.
TEST(ChatTemplate, encode_conversation_adds_one_bos) {
  const std::string dir = kShared + "/configs/tinyllama-1.1b-chat-v1.0";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << dir << " not present";
  auto tok = load_tokenizer(dir);  // add_bos_token: true; its template writes no bos_token
  const int32_t bos = tok->bos_id();
  ASSERT_GE(bos, 0);
  const json msgs = json::array({{{"role", "user"}, {"content", "Hi"}}});
  const std::string plain = chat_template_of(*tok)->render(msgs, true);
  std::vector<int32_t> want = tok->encode(plain, false);
  EXPECT_EQ(encode_conversation(*tok, plain, false), want);
  want.insert(want.begin(), bos);
  EXPECT_EQ(encode_conversation(*tok, plain), want);
  // A template that writes bos_token itself (Llama 2's, Mistral's): still one BOS.
  const std::string with_bos =
      ChatTemplate("{{ bos_token }}" + tok->chat_template(), tok->id_to_piece(bos), "</s>").render(msgs, true);
  ASSERT_EQ(with_bos, tok->id_to_piece(bos) + plain);
  EXPECT_EQ(encode_conversation(*tok, with_bos), want);
  // Without specials the template's BOS stays: what it wrote is what is fed.
  EXPECT_EQ(encode_conversation(*tok, with_bos, false), want);
  // SmolLM2 adds no BOS: the rule gives transformers' apply_chat_template tokens.
  const std::string smol = kShared + "/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
  auto stok = load_tokenizer_files(gguf_tokenizer_files(GgufFile::open(smol)), smol);
  const std::string s = chat_template_of(*stok)->render(msgs, true);
  EXPECT_EQ(encode_conversation(*stok, s), stok->encode(s, false));
}

TEST(ChatTemplate, named_templates_and_chat_template_jinja) {
  const std::string dir = kShared + "/configs/tinyllama-1.1b-chat-v1.0";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << dir << " not present";
  std::ifstream f(dir + "/tokenizer.json", std::ios::binary);
  const std::string tokenizer_json((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::map<std::string, std::string> files{{"tokenizer.json", tokenizer_json}};
  // A list of named templates: transformers applies "default".
  files["tokenizer_config.json"] =
      R"({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})";
  EXPECT_EQ(load_tokenizer_files(files, "m")->chat_template(), "D");
  // chat_template.jinja beside it wins, as in transformers.
  files["chat_template.jinja"] = "J";
  EXPECT_EQ(load_tokenizer_files(files, "m")->chat_template(), "J");
  files.erase("chat_template.jinja");
  files["tokenizer_config.json"] = R"({"chat_template": 3})";
  EXPECT_THAT(error_of([&] { load_tokenizer_files(files, "m"); }), HasSubstr("m:tokenizer_config.json"));
}

// The room a reply keeps: max_tokens up to half the context, else a quarter, at least one.
TEST(ChatTemplate, conversation_budget_keeps_room_for_the_reply) {
  EXPECT_EQ(conversation_budget(8192, -1), 8192 - 2048);
  EXPECT_EQ(conversation_budget(256, 24), 232);
  EXPECT_EQ(conversation_budget(256, 1000), 128);
  EXPECT_EQ(conversation_budget(256, 0), 255);
  EXPECT_EQ(conversation_budget(2, -1), 1);
}

// fit_conversation keeps every system message and the latest turns that fit: checked against
// the definition (the kept part rendered and encoded on its own; one turn more does not fit).
TEST(ChatTemplate, fit_conversation_drops_the_oldest_turns) {
  const std::string qwen = kShared + "/configs/qwen2.5-0.5b";
  if (!std::filesystem::exists(qwen)) GTEST_SKIP() << qwen << " not present";
  auto tok = load_tokenizer(qwen);
  auto tmpl = chat_template_of(*tok);
  ASSERT_NE(tmpl, nullptr);
  json msgs = json::array({{{"role", "system"}, {"content", "You answer in one line."}}});
  for (int k = 0; k < 8; ++k) {
    msgs.push_back({{"role", "user"}, {"content", "Question " + std::to_string(k) + ": what is " + std::to_string(k * 7) + " plus " + std::to_string(k) + "?"}});
    msgs.push_back({{"role", "assistant"}, {"content", "It is " + std::to_string(k * 8) + ", as adding them shows."}});
    if (k == 3) msgs.push_back({{"role", "system"}, {"content", "Midway note."}});
  }
  msgs.push_back({{"role", "user"}, {"content", "And the last one?"}});
  // The conversation without its non-system messages before `start`.
  auto kept_from = [&](size_t start) {
    json kept = json::array();
    for (size_t i = 0; i < msgs.size(); ++i)
      if (i >= start || msgs[i]["role"] == "system") kept.push_back(msgs[i]);
    return encode_conversation(*tok, tmpl->render(kept, true));
  };
  auto start_of = [&](size_t dropped) {  // the index after the dropped-th non-system message
    size_t i = 0;
    for (size_t n = 0; n < dropped; ++i) n += msgs[i]["role"] == "system" ? 0 : 1;
    while (msgs[i]["role"] == "system") ++i;
    return i;
  };
  const std::vector<int32_t> whole = kept_from(0);
  FittedConversation f = fit_conversation(*tok, *tmpl, msgs, (int64_t)whole.size());
  EXPECT_EQ(f.dropped, 0u);
  EXPECT_EQ(f.ids, whole);
  const std::vector<int32_t> last = kept_from(msgs.size() - 1);
  for (int64_t budget = (int64_t)last.size(); budget < (int64_t)whole.size(); budget += 7) {
    SCOPED_TRACE("budget " + std::to_string(budget));
    f = fit_conversation(*tok, *tmpl, msgs, budget);
    ASSERT_GT(f.dropped, 0u);
    const size_t start = start_of(f.dropped);
    EXPECT_EQ(msgs[start]["role"], "user");
    EXPECT_EQ(f.ids, kept_from(start));
    EXPECT_LE((int64_t)f.ids.size(), budget);
    // The turn before (a user message and its answer, or that and the midway system note).
    size_t before = start - 1;
    while (msgs[before]["role"] != "user") --before;
    EXPECT_GT((int64_t)kept_from(before).size(), budget);
  }
  // Nothing fits: the system messages and the last message, for the caller to refuse.
  f = fit_conversation(*tok, *tmpl, msgs, 1);
  EXPECT_EQ(f.dropped, 16u);
  EXPECT_EQ(f.ids, last);
  const std::string text = tok->decode(f.ids);
  EXPECT_THAT(text, HasSubstr("You answer in one line."));
  EXPECT_THAT(text, HasSubstr("Midway note."));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("Question 7")));
  // A conversation of one message has nothing to drop.
  const json one = json::array({{{"role", "user"}, {"content", "Hi"}}});
  f = fit_conversation(*tok, *tmpl, one, 1);
  EXPECT_EQ(f.dropped, 0u);
  EXPECT_EQ(f.ids, encode_conversation(*tok, tmpl->render(one, true)));
  // The template's refusal of what must be kept is the caller's error.
  const ChatTemplate strict(std::string("{% if messages[-1]['content'] == 'BAD' %}{{ raise_exception('refused') }}{% endif %}") + kChatml,
                            "", "<|im_end|>");
  json bad = msgs;
  bad.back()["content"] = "BAD";
  EXPECT_THAT(error_of([&] { fit_conversation(*tok, strict, bad, 1); }), HasSubstr("refused"));
}

}  // namespace
}  // namespace lowbit
