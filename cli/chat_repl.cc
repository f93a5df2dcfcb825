#include "cli/chat_repl.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cli/chat_settings.h"
#include "cli/reply_printer.h"
#include "kernels/error.h"
#include "runtime/chat/thinking.h"
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
    "  /set parameter NAME VALUE\n"
    "                    temperature, top_k, top_p, min_p, seed, num_predict (-1: no limit),\n"
    "                    repeat_penalty, repeat_last_n, or stop STR...\n"
    "  /set verbose, /set quiet\n"
    "                    show the prompt and generation rates after each reply, or not\n"
    "  /set think, /set nothink\n"
    "                    a thinking model reasons before it answers, or answers at once\n"
    "  /show parameters  the settings in use\n"
    "  /?, /help         this help\n"
    "A message that starts with \"\"\" goes on over several lines until one that ends with \"\"\".\n"
    "Ctrl-C stops a reply; the chat goes on.\n";

constexpr std::string_view kFence = "\"\"\"";  // opens and closes a message of several lines, as in Ollama

// Ctrl-C interrupts a reply (the generation's callback reads the flag) and an unfinished line
// at the prompt (read_line polls the flag), never the process; the previous handler comes back when the chat ends.
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

// One line from stdin without its newline; false at end of input. Ctrl-C while typing gives
// back "" with `interrupted` set. Reads the descriptor itself, polling, rather than through
// stdio: a SIGINT that lands between printing the prompt and entering read() would otherwise be
// missed until the next line (no EINTR for a read not yet begun).
bool read_line(std::string& out, bool& interrupted) {
  static std::string pending;  // read past the last line returned
  interrupted = false;
  for (;;) {
    const size_t nl = pending.find('\n');
    if (nl != std::string::npos) {
      out = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (!out.empty() && out.back() == '\r') out.pop_back();
      return true;
    }
    if (g_interrupted.exchange(false)) {
      pending.clear();  // the terminal dropped the unfinished line too
      out.clear();
      interrupted = true;
      return true;
    }
    pollfd p{STDIN_FILENO, POLLIN, 0};
    const int ready = ::poll(&p, 1, 100);
    if (ready < 0 && errno != EINTR) return false;
    if (ready <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // end of input: a last line without its newline still counts
      if (pending.empty()) return false;
      out.swap(pending);
      pending.clear();
      return true;
    }
    pending.append(buf, (size_t)n);
  }
}

// A message of several lines: line began with the fence; the lines up to one that ends with it,
// joined by newlines, without the fences. False when the input ends or Ctrl-C comes first (the
// unfinished message is dropped).
bool read_fenced(std::string line, std::string& message, bool& interrupted) {
  message = line.substr(kFence.size());
  while (!message.ends_with(kFence)) {
    std::fputs("... ", stdout);
    std::fflush(stdout);
    if (!read_line(line, interrupted) || interrupted) return false;
    message += "\n" + line;
  }
  message.resize(message.size() - kFence.size());
  return true;
}

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

namespace {

nlohmann::json with_system(const std::string& system, const nlohmann::json& messages) {
  nlohmann::json conversation = nlohmann::json::array();
  if (!system.empty()) conversation.push_back({{"role", "system"}, {"content", system}});
  for (const auto& m : messages) conversation.push_back(m);
  return conversation;
}

}  // namespace

nlohmann::json thinking_vars(bool template_thinks, std::optional<bool> think) {
  if (!template_thinks || !think) return nullptr;
  return {{"enable_thinking", *think}};
}

std::vector<int32_t> conversation_ids(const Tokenizer& tok, const ChatTemplate& tmpl, const std::string& system,
                                      const nlohmann::json& messages, bool add_bos, const nlohmann::json& vars,
                                      std::string* rendered) {
  const std::string text = tmpl.render(with_system(system, messages), /*add_generation_prompt=*/true, nullptr, vars);
  if (rendered) *rendered = text;
  return encode_conversation(tok, text, add_bos);
}

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
  const bool thinks = template_thinks(*tmpl);
  std::optional<bool> think = opt.think;
  ChatSettings settings{opt.gen, opt.max_tokens_given, opt.verbose};
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
      std::fputs("\nUse Ctrl-D or /bye to end the chat.\n", stdout);
      continue;
    }
    if (line.empty()) continue;
    if (line.starts_with(kFence)) {
      std::string message;
      if (!read_fenced(line, message, interrupted_line)) {
        if (!interrupted_line) {  // end of input inside the message
          std::fputs("\n", stdout);
          return 0;
        }
        std::fputs("\nThe message was dropped.\n", stdout);
        continue;
      }
      line = message;
      if (line.empty()) continue;
    } else if (line[0] == '/') {
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
      if (line.starts_with("/set parameter")) {
        std::printf("%s\n", set_parameter(settings, line.substr(14)).c_str());
        continue;
      }
      if (line == "/set verbose" || line == "/set quiet") {
        settings.verbose = line == "/set verbose";
        std::printf("Set '%s' mode.\n", settings.verbose ? "verbose" : "quiet");
        continue;
      }
      if (line == "/set think" || line == "/set nothink") {
        if (!thinks) {
          std::printf("error: %s does not support thinking (its chat template writes no </think>)\n",
                      opt.model_label.c_str());
          continue;
        }
        think = line == "/set think";
        std::printf("Set '%s' mode.\n", *think ? "think" : "nothink");
        continue;
      }
      if (line == "/show parameters") {
        std::fputs(show_parameters(settings).c_str(), stdout);
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
    // A chat that outgrows the context forgets its oldest turns, keeping room for the reply.
    const int64_t budget = conversation_budget(model.ctx(), settings.max_tokens_given ? settings.gen.max_tokens : -1);
    FittedConversation fit;
    try {
      fit = fit_conversation(tok, *tmpl, with_system(system, messages), budget, settings.gen.add_bos,
                             thinking_vars(thinks, think));
    } catch (const Error& e) {
      messages.erase(messages.size() - 1);
      std::printf("error: %s\n", e.what());
      continue;
    }
    std::vector<int32_t>& ids = fit.ids;
    if ((int64_t)ids.size() >= model.ctx()) {
      messages.erase(messages.size() - 1);
      std::printf("error: the message is %zu tokens with the system message, and the context holds %lld\n", ids.size(),
                  (long long)model.ctx());
      continue;
    }
    if (fit.dropped > 0) {
      messages.erase(messages.begin(), messages.begin() + (long)fit.dropped);
      std::printf("(the conversation outgrew the context of %lld tokens: its %zu oldest messages are forgotten)\n",
                  (long long)model.ctx(), fit.dropped);
    }
    // Reuse the cached prefix, keeping at least one token to run for the next token's logits.
    const size_t keep = std::min(common_prefix(cached, ids), ids.size() - 1);
    session.truncate((int64_t)keep);
    GenerateParams gp = settings.gen;
    if (!settings.max_tokens_given) gp.max_tokens = model.ctx() - (int64_t)ids.size();
    g_interrupted.store(false);
    ReplyPrinter printer(stdout, thinks && think != false, prompt_opens_thinking(fit.text), opt.hide_thinking);
    GenerateResult r = generate(
        session, std::vector<int32_t>(ids.begin() + (long)keep, ids.end()), gp,
        [&](const std::string& piece, int32_t) {
          printer.piece(piece);
          return !g_interrupted.load();
        },
        std::vector<int32_t>(ids.begin(), ids.begin() + (long)keep));
    printer.finish();
    const bool stopped = r.stop_reason == "callback";
    g_interrupted.store(false);
    std::fputs(stopped ? "\n[stopped]\n\n" : "\n\n", stdout);
    if (settings.verbose) {
      std::fflush(stdout);
      std::fprintf(stderr, "prompt: %zu tokens, %.1f tokens/s | generation: %zu tokens, %.1f tokens/s (%s)\n",
                   r.prompt_ids.size(), r.prompt_tokens_per_s(), r.ids.size(), r.gen_tokens_per_s(),
                   r.stop_reason.c_str());
    }
    if (r.stop_reason == "context")
      std::fputs("(the context is full: the next message forgets the oldest turns; /clear starts over)\n", stdout);
    // What was shown is what the model said, an interrupted reply included.
    messages.push_back({{"role", "assistant"}, {"content", printer.content()}});
    if (!printer.thinking().empty()) messages.back()["thinking"] = printer.thinking();  // for a template that shows it
    cached = ids;
    cached.insert(cached.end(), r.ids.begin(), r.ids.end());
    cached.resize(std::min<size_t>(cached.size(), (size_t)session.position()));
  }
}

}  // namespace lowbit::cli
