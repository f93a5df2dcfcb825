// JSON mode (runtime/json_mode.h). The recognizer against Python's json module on the texts of
// tests/data/json_mode_cases.json (tests/tools/make_json_mode_cases.py: random objects, near
// misses and one-byte mutations); token texts against SentencePiece's own convention; and
// generations of the real SmolLM2 that nlohmann's parser (not ours) reads back as one object,
// the same alone and in a batch.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "convert/load.h"
#include "runtime/batch.h"
#include "runtime/chat/chat_template.h"
#include "runtime/generate.h"
#include "runtime/json_mode.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/convert/hf_test_util.h"

namespace lowbit {
namespace {

const std::string kSmol = test::kModels + "/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

TEST(JsonPrefix, AgreesWithPythonsJsonOnEveryCase) {
  const auto cases = nlohmann::json::parse(test::read_file(test::kSourceDir + "/tests/data/json_mode_cases.json"));
  ASSERT_GT(cases.size(), 1000u);
  int objects = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text");
    const bool object = c.at("object");
    JsonPrefix p;
    size_t fed = 0;
    while (fed < text.size() && p.feed((unsigned char)text[fed])) {
      ++fed;
      // Complete exactly at the closing brace: never earlier in an object text.
      if (object && fed < text.size()) ASSERT_FALSE(p.complete()) << "complete after " << fed << " bytes of " << text;
    }
    const bool accepted = fed == text.size() && p.complete();
    EXPECT_EQ(accepted, object) << (object ? "rejected byte " + std::to_string(fed) + " of an object: " : "accepted: ")
                                << text;
    objects += object;
  }
  EXPECT_GT(objects, 500);
}

TEST(JsonPrefix, BoundsWhitespaceAndDepth) {
  JsonPrefix p;
  EXPECT_TRUE(p.feed("{\"a\":"));
  EXPECT_TRUE(p.feed(std::string(JsonPrefix::kMaxWhitespace, ' ')));
  EXPECT_FALSE(p.feed(' '));
  JsonPrefix q;
  EXPECT_TRUE(q.feed("{\"a\":" + std::string(JsonPrefix::kMaxDepth - 1, '[')));
  EXPECT_FALSE(q.feed('['));
}

// SentencePiece writes a space as "▁" inside pieces; a token's text after other text has it.
TEST(JsonTokens, SentencePiecePiecesReadWithTheirSpace) {
  const auto tok = load_tokenizer(test::kModels + "/stories260K");
  const JsonTokens texts(*tok);
  int checked = 0;
  for (int32_t id = 0; id < tok->vocab_size(); ++id) {
    std::string piece = tok->id_to_piece(id);
    if (piece.size() > 2 && piece[0] == '<' && piece.back() == '>') continue;  // <s>, <0x0A>, ...
    for (size_t at; (at = piece.find("\u2581")) != std::string::npos;) piece.replace(at, 3, " ");
    EXPECT_EQ(texts.text(id), piece) << "id " << id;
    ++checked;
  }
  EXPECT_GT(checked, 200);
  EXPECT_EQ(texts.text(tok->bos_id()), "");  // special: never allowed
}

// With a trigger the text is free until the trigger, held to one value after it, free again
// once the value closes (tool_choice "auto": a call the model opens).
TEST(JsonMode, ATriggerHoldsOnlyWhatFollowsIt) {
  const auto tok = load_tokenizer(test::kModels + "/stories260K");
  const auto texts = std::make_shared<const JsonTokens>(*tok);
  const auto schema = JsonSchema::compile(
      nlohmann::json::parse(R"({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})"), "s");
  auto id_of = [&](const std::string& text) {
    for (int32_t id = 0; id < tok->vocab_size(); ++id)
      if (texts->text(id) == text) return id;
    ADD_FAILURE() << "no token reads " << text;
    return int32_t{-1};
  };
  const int32_t brace = id_of("{"), letter = id_of("x"), end = tok->eos_ids().at(0);
  JsonConstraint c(texts, schema, "<call>");
  auto feed = [&](const std::string& text) {  // a token per character, so the checks fall between them
    for (char ch : text) {
      const int32_t id = id_of(std::string(1, ch));
      ASSERT_TRUE(c.allows(id)) << "refused " << ch << " of " << text;
      c.accept(id);
    }
  };
  EXPECT_TRUE(c.allows(letter) && c.allows(brace) && c.allows(end));  // free before the trigger
  feed("Sure, <ca");
  EXPECT_TRUE(c.allows(letter) && c.allows(end));  // half a trigger holds nothing yet
  feed("ll>");
  EXPECT_FALSE(c.allows(letter));  // held: only the value's first byte may come
  EXPECT_FALSE(c.allows(end));
  EXPECT_TRUE(c.allows(brace));
  feed("{\"a\": 12");
  EXPECT_FALSE(c.allows(end));
  feed("} and then");
  EXPECT_TRUE(c.allows(letter) && c.allows(end));  // closed: free again
  feed(" <call>{\"a\": 3}");                        // a second value, held the same way
  EXPECT_TRUE(c.allows(end));
}

struct Ask {
  std::string prompt;
  SamplerParams sampler;
};

std::vector<Ask> asks() {
  SamplerParams greedy, warm;
  warm.temperature = 0.7f;
  warm.seed = 5;
  return {{"List three colors and their hex codes as JSON.", greedy},
          {"Describe a cat as a JSON object with name, age and color.", greedy},
          {"Describe a cat as a JSON object with name, age and color.", warm}};
}

std::vector<int32_t> chat_ids(const Model& m, const std::string& question) {
  const auto tmpl = chat_template_of(m.tokenizer());
  return encode_conversation(m.tokenizer(), tmpl->render(nlohmann::json::array({{{"role", "user"}, {"content", question}}}), true));
}

TEST(JsonMode, SmolLM2AnswersWithOneObjectAloneAndInABatch) {
  LoadParams lp;
  lp.ctx = 512;
  lp.threads = 2;
  const auto model = load_model(kSmol, lp);
  const auto texts = std::make_shared<const JsonTokens>(model->tokenizer());
  std::vector<GenerateResult> alone;
  for (const Ask& r : asks()) {
    GenerateParams gp;
    gp.max_tokens = 200;
    gp.sampler = r.sampler;
    gp.json = texts;
    Session s(*model);
    alone.push_back(generate(s, chat_ids(*model, r.prompt), gp));
    const GenerateResult& g = alone.back();
    // Greedy answers close their object (measured on avx2 and scalar); a sampled one may wander
    // until its budget, and then must still be a prefix of one.
    if (r.sampler.temperature == 0) ASSERT_EQ(g.stop_reason, "eos") << g.text;
    if (g.stop_reason != "eos") {
      EXPECT_TRUE(JsonPrefix().feed(g.text)) << g.text;
      continue;
    }
    const auto parsed = nlohmann::json::parse(g.text);  // throws on anything but JSON
    EXPECT_TRUE(parsed.is_object()) << g.text;
    EXPECT_FALSE(parsed.empty()) << g.text;
  }
  // Without JSON mode the first answer is not one object (the reason for the mode).
  {
    GenerateParams gp;
    gp.max_tokens = 200;
    Session s(*model);
    const std::string free_text = generate(s, chat_ids(*model, asks()[0].prompt), gp).text;
    EXPECT_FALSE(nlohmann::json::accept(free_text)) << free_text;
  }
  // In a batch, beside a sequence without it: the same tokens as alone.
  Scheduler sched(*model, {.max_sequences = 4, .max_step_tokens = 32});
  std::map<SequenceId, size_t> index;
  for (size_t i = 0; i < asks().size(); ++i) {
    SequenceParams sp;
    sp.max_tokens = 200;
    sp.sampler = asks()[i].sampler;
    sp.json = texts;
    index[sched.submit(chat_ids(*model, asks()[i].prompt), sp)] = i;
  }
  sched.submit(chat_ids(*model, "Say hello."), SequenceParams{});
  std::map<size_t, std::vector<int32_t>> got;
  while (sched.has_work())
    for (const SequenceEvent& e : sched.step())
      if (index.count(e.id) && e.token >= 0) got[index[e.id]].push_back(e.token);
  for (size_t i = 0; i < alone.size(); ++i) EXPECT_EQ(got[i], alone[i].ids) << "run " << i;
}

}  // namespace
}  // namespace lowbit
