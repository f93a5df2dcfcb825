// Calibration on conversations (lowbit convert --calib-chat): a chat model quantized on prose
// keeps its prose and loses its chat (docs/ACCURACY.md section 4), so this feeds it what a chat
// feeds it: its own template around a question, then its own answer.
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "convert/calib.h"
#include "kernels/error.h"
#include "runtime/mapped_file.h"
#include "runtime/chat/chat_template.h"
#include "runtime/generate.h"
#include "runtime/manifest.h"

namespace lowbit {

std::vector<std::vector<int32_t>> chat_windows(const Model& model, const std::string& questions_file,
                                               int64_t answer_tokens, int64_t ctx, uint64_t* checksum,
                                               const std::function<void(int64_t, int64_t)>& progress) {
  const std::string all = read_file(questions_file, "the calibration questions (--calib-chat)");
  *checksum = checksum_bytes(all.data(), all.size());
  const Tokenizer& tok = model.tokenizer();
  const std::unique_ptr<ChatTemplate> tmpl = chat_template_of(tok);
  if (!tmpl)
    throw Error(ErrorCode::not_found, "--calib-chat " + questions_file +
                                          ": the model has no chat template (tokenizer_config.json chat_template or "
                                          "GGUF tokenizer.chat_template); calibrate on a text with --calib instead");

  // The questions with their line numbers, blank lines skipped.
  std::vector<std::pair<int64_t, std::string>> questions;
  size_t start = 0;
  for (int64_t line = 1; start < all.size(); ++line) {
    size_t end = all.find('\n', start);
    if (end == std::string::npos) end = all.size();
    std::string q = all.substr(start, end - start);
    start = end + 1;
    if (!q.empty() && q.back() == '\r') q.pop_back();
    if (q.find_first_not_of(" \t") != std::string::npos) questions.emplace_back(line, std::move(q));
  }
  if (questions.empty()) throw Error(ErrorCode::invalid_argument, questions_file + ": holds no question (--calib-chat)");

  GenerateParams gp;  // greedy: the answer the model gives most surely
  Session s(model);
  std::vector<std::vector<int32_t>> windows;
  for (const auto& [line, q] : questions) {
    const std::string where = questions_file + " line " + std::to_string(line);
    std::string prompt;
    try {
      prompt = tmpl->render(nlohmann::json::array({{{"role", "user"}, {"content", q}}}), /*add_generation_prompt=*/true);
    } catch (const Error& e) {
      throw Error(e.code(), where + ": the chat template refused the question: " + e.what());
    }
    // As lowbit chat and lowbit serve encode a rendered conversation, so the calibration sees the
    // prompts the model will be served.
    std::vector<int32_t> w = encode_conversation(tok, prompt);
    if ((int64_t)w.size() >= ctx)
      throw Error(ErrorCode::invalid_argument, where + ": the question's prompt is " + std::to_string(w.size()) +
                                                   " tokens, no room to answer in a window of " + std::to_string(ctx) +
                                                   " (--calib-ctx)");
    gp.max_tokens = std::min<int64_t>(answer_tokens, ctx - (int64_t)w.size());
    s.reset();
    const GenerateResult r = generate(s, w, gp);
    w.insert(w.end(), r.ids.begin(), r.ids.end());
    // The end token closes the turn in every later prompt of the conversation, so it is fed too.
    if (r.end_id >= 0 && (int64_t)w.size() < ctx) w.push_back(r.end_id);
    windows.push_back(std::move(w));
    if (progress) progress((int64_t)windows.size(), (int64_t)questions.size());
  }
  return windows;
}

}  // namespace lowbit
