// ThinkingSplitter: a reply cut into reasoning and answer, whatever pieces it streams in.
#include "runtime/chat/thinking.h"

#include <gtest/gtest.h>

#include "runtime/chat/chat_template.h"

namespace lowbit {
namespace {

struct Split {
  std::string thinking, content;
};

// Every way of cutting text into three pieces gives what the whole text gives (split_thinking),
// and reasoning never arrives after answer text.
void expect_any_cut(const std::string& text, bool in_thinking, const Split& want) {
  const ThinkingSplitter::Parts whole = split_thinking(text, in_thinking);
  ASSERT_EQ(whole.thinking, want.thinking);
  ASSERT_EQ(whole.content, want.content);
  for (size_t i = 0; i <= text.size(); ++i)
    for (size_t j = i; j <= text.size(); ++j) {
      ThinkingSplitter s(in_thinking);
      Split got;
      for (const std::string& piece : {text.substr(0, i), text.substr(i, j - i), text.substr(j)}) {
        const ThinkingSplitter::Parts p = s.feed(piece);
        if (!p.thinking.empty()) ASSERT_TRUE(got.content.empty()) << i << " " << j;
        got.thinking += p.thinking;
        got.content += p.content;
      }
      const ThinkingSplitter::Parts p = s.finish();
      got.thinking += p.thinking;
      got.content += p.content;
      ASSERT_EQ(got.thinking, want.thinking) << "cut at " << i << ", " << j;
      ASSERT_EQ(got.content, want.content) << "cut at " << i << ", " << j;
    }
}

TEST(Thinking, QwenReplyCutInTwo) {
  expect_any_cut("<think>\nThe user greets me.\nI greet back.\n</think>\n\nHello!", false,
                 {"The user greets me.\nI greet back.", "Hello!"});
}

TEST(Thinking, ReplyWithoutReasoningIsAllAnswer) {
  expect_any_cut("Hello <think>not a block</think> there", false, {"", "Hello <think>not a block</think> there"});
  expect_any_cut("  <thinking>x", false, {"", "  <thinking>x"});
  expect_any_cut("\n\n", false, {"", "\n\n"});
}

TEST(Thinking, LeadingWhiteSpaceThenBlock) {
  expect_any_cut(" \n<think>a < b and </thin is not it</think>c", false, {"a < b and </thin is not it", "c"});
}

TEST(Thinking, EmptyBlockAsQwen3WithoutThinking) {
  expect_any_cut("<think>\n\n</think>\n\nParis.", false, {"", "Paris."});
}

TEST(Thinking, PromptOpenedTheBlock) {
  expect_any_cut("Two and two.\n</think>\n\nFour.", true, {"Two and two.", "Four."});
  // A second closing tag is the answer's own text.
  expect_any_cut("x</think>y</think>", true, {"x", "y</think>"});
}

TEST(Thinking, UnclosedBlockIsAllReasoning) {
  expect_any_cut("<think>\nstill going  \n", false, {"still going", ""});
  expect_any_cut("ran out of tok", true, {"ran out of tok", ""});
}

TEST(Thinking, PromptOpensThinking) {
  EXPECT_TRUE(prompt_opens_thinking("<|Assistant|><think>\n"));
  EXPECT_FALSE(prompt_opens_thinking("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  EXPECT_FALSE(prompt_opens_thinking("<|im_start|>assistant\n"));
  EXPECT_TRUE(prompt_opens_thinking("<think>a</think> b <think>"));
}

TEST(Thinking, TemplateThinks) {
  EXPECT_TRUE(template_thinks(ChatTemplate("{{ '<think>' + m + '</think>' }}", "", "")));
  EXPECT_FALSE(template_thinks(ChatTemplate("{% for m in messages %}{{ m.content }}{% endfor %}", "", "")));
}

}  // namespace
}  // namespace lowbit
