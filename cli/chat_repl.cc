#include "cli/chat_repl.h"

#include <signal.h>
#include <stdio.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "runtime/chat/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"

namespace lowbit::cli {
namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_chat_sigint(int) { g_interrupted.store(true); }

const char* kHelp =
    "Commands:\n"
    "  /bye              end the chat (as does Ctrl-D)\n"
    "  /clear            forget the conversation (the system message stays)\n"
    "  /set system TEXT  start over with TEXT as the system message\n"
    "  /?, /help         this help\n"
    "Ctrl-C stops a reply; the chat goes on.\n";

// Ctrl-C interrupts a reply (the generation's callback reads the flag) and an unfinished line
// at the prompt (getline returns EINTR: installed without SA_RESTART for that reason), never the
// process; the previous handler comes back when the chat ends.
class SigintGuard {
 public:
  SigintGuard() {
    struct sigaction sa {};
    sa.sa_handler = on_chat_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, &old_);
  }
  ~SigintGuard() { sigaction(SIGINT, &old_, nullptr); }

 private:
  struct sigaction old_ {};
};

// One line from stdin without its newline; nullopt at end of input. Ctrl-C while typing gives
// back "" with `interrupted` set.
bool read_line(std::string& out, bool& interrupted) {
  char* buf = nullptr;
  size_t cap = 0;
  errno = 0;
  const ssize_t n = getline(&buf, &cap, stdin);
  interrupted = false;
  if (n < 0) {
    const bool eintr = errno == EINTR;
    std::free(buf);
    clearerr(stdin);
    if (eintr) {
      interrupted = true;
      out.clear();
      return true;
    }
    return false;
  }
  out.assign(buf, (size_t)n);
  std::free(buf);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return true;
}

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

int run_chat(const Model& model, const ChatOptions& opt) {
  const Tokenizer& tok = model.tokenizer();
  const std::unique_ptr<ChatTemplate> tmpl = chat_template_of(tok);
  if (!tmpl)
    throw Error(ErrorCode::not_found, opt.model_label +
                                          " has no chat template (tokenizer_config.json chat_template or GGUF "
                                          "tokenizer.chat_template); give a prompt (-p) to continue text instead");
  std::fprintf(stderr, "chatting with %s: /? for help, /bye or Ctrl-D to end, Ctrl-C stops a reply\n",
               opt.model_label.c_str());

  nlohmann::json messages = nlohmann::json::array();
  std::string system = opt.system;
  Session session(model);
  // The tokens the session's KV cache holds, position by position: a new turn re-runs only
  // what differs from them (normally just the new message).
  std::vector<int32_t> cached;
  SigintGuard guard;

  for (;;) {
    std::fputs(">>> ", stdout);
    std::fflush(stdout);
    std::string line;
    bool interrupted_line = false;
    if (!read_line(line, interrupted_line)) {
      std::fputs("\n", stdout);
      return 0;
    }
    if (interrupted_line) {
      g_interrupted.store(false);
      std::fputs("\nUse Ctrl-D or /bye to end the chat.\n", stdout);
      continue;
    }
    if (line.empty()) continue;
    if (line[0] == '/') {
      if (line == "/bye") return 0;
      if (line == "/clear") {
        messages = nlohmann::json::array();
        std::fputs("Cleared the conversation.\n", stdout);
        continue;
      }
      if (line == "/?" || line == "/help") {
        std::fputs(kHelp, stdout);
        continue;
      }
      if (line.rfind("/set system ", 0) == 0) {
        system = line.substr(12);
        messages = nlohmann::json::array();
        std::fputs("Set the system message; the conversation starts over.\n", stdout);
        continue;
      }
      std::printf("Unknown command '%s'. Type /? for help.\n", line.c_str());
      continue;
    }

    messages.push_back({{"role", "user"}, {"content", line}});
    nlohmann::json conversation = nlohmann::json::array();
    if (!system.empty()) conversation.push_back({{"role", "system"}, {"content", system}});
    for (const auto& m : messages) conversation.push_back(m);
    std::vector<int32_t> ids;
    try {
      const std::string prompt = tmpl->render(conversation, /*add_generation_prompt=*/true);
      // Encoded as `lowbit run -p` encodes a prompt. A template that writes bos_token itself
      // would get a second BOS from the tokenizer's own: one is dropped, as llama.cpp does.
      ids = tok.encode(prompt, opt.gen.add_bos);
      if (ids.size() >= 2 && tok.bos_id() >= 0 && ids[0] == tok.bos_id() && ids[1] == tok.bos_id())
        ids.erase(ids.begin());
    } catch (const Error& e) {
      messages.erase(messages.size() - 1);
      std::printf("error: %s\n", e.what());
      continue;
    }
    if ((int64_t)ids.size() >= model.ctx()) {
      messages.erase(messages.size() - 1);
      std::printf("error: the conversation is %zu tokens and the context holds %lld; /clear starts a new one\n",
                  ids.size(), (long long)model.ctx());
      continue;
    }
    // Reuse the cached prefix, keeping at least one token to run for the next token's logits.
    const size_t keep = std::min(common_prefix(cached, ids), ids.size() - 1);
    session.truncate((int64_t)keep);
    GenerateParams gp = opt.gen;
    if (!opt.max_tokens_given) gp.max_tokens = model.ctx() - (int64_t)ids.size();
    g_interrupted.store(false);
    GenerateResult r = generate(session, std::vector<int32_t>(ids.begin() + (long)keep, ids.end()), gp,
                                [&](const std::string& piece, int32_t) {
                                  std::fwrite(piece.data(), 1, piece.size(), stdout);
                                  std::fflush(stdout);
                                  return !g_interrupted.load();
                                });
    const bool stopped = r.stop_reason == "callback";
    g_interrupted.store(false);
    std::fputs(stopped ? "\n[stopped]\n\n" : "\n\n", stdout);
    if (r.stop_reason == "context")
      std::fputs("(the context is full: /clear starts a new conversation)\n", stdout);
    // What was shown is what the model said, an interrupted reply included.
    messages.push_back({{"role", "assistant"}, {"content", r.text}});
    cached = ids;
    cached.insert(cached.end(), r.ids.begin(), r.ids.end());
    cached.resize(std::min<size_t>(cached.size(), (size_t)session.position()));
  }
}

}  // namespace lowbit::cli
