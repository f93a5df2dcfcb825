#include "server/generation.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <random>

#include "kernels/error.h"
#include "runtime/chat/thinking.h"
#include "server/tool_use.h"

namespace lowbit::server {
namespace {

using Clock = std::chrono::steady_clock;

double now_seconds() {
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

bool is_chat(Route r) { return r == Route::ollama_chat || r == Route::openai_chat || r == Route::openai_responses; }

// The field that holds what the model reads, as the route's client names it.
const char* input_field(Route r) {
  return r == Route::openai_responses ? "input" : is_chat(r) ? "messages" : "prompt";
}

// The template's variables beyond the conversation: the request's own (OpenAI's
// chat_template_kwargs) and, for a thinking model, enable_thinking when the request said.
nlohmann::ordered_json template_vars(const LoadedModel& m, const GenerationRequest& req) {
  nlohmann::ordered_json vars = req.template_vars;
  if (m.thinks && req.think) vars["enable_thinking"] = *req.think;
  return vars;
}

// The text the model reads: the chat template over the messages (chat routes, and Ollama's
// generate unless raw), else the prompt as it is. templated: whether the template made it (its
// text then carries the special tokens itself, so the tokenizer adds none).

std::string prompt_text(const LoadedModel& m, const GenerationRequest& req, const ToolUse& tools, bool& templated) {
  templated = false;
  if (req.route == Route::openai_completion) return req.prompt;
  if (req.route == Route::ollama_generate && (req.raw || !m.chat_template)) {
    // No template to place a system message in: it goes before the prompt.
    return req.system.empty() ? req.prompt : req.system + "\n\n" + req.prompt;
  }
  if (!m.chat_template) {
    std::string why = m.template_error.empty() ? "its tokenizer files carry none"
                                               : "its template does not parse: " + m.template_error;
    throw RequestError(400, "model",
                       "model: '" + req.model + "' has no chat template (" + why +
                           "); send a plain prompt to /api/generate or /v1/completions instead");
  }
  nlohmann::ordered_json messages = req.messages;
  if (req.route == Route::ollama_generate) {
    messages = nlohmann::ordered_json::array();
    if (!req.system.empty()) messages.push_back({{"role", "system"}, {"content", req.system}});
    messages.push_back({{"role", "user"}, {"content", req.prompt}});
  }
  templated = true;
  try {
    return m.chat_template->render(messages, true, tools.tools(), template_vars(m, req)) + tools.reply_start();
  } catch (const Error& e) {
    const char* field = input_field(req.route);
    throw RequestError(400, field, std::string(field) + ": the model's chat template refused them: " + e.what());
  }
}

struct Running {
  // A response dropped before its stream ended (the client left before the first byte) cancels
  // the sequence, which would otherwise run on for no one.
  ~Running() {
    if (stream && lease && !done) engine->cancel(*stream);
  }
  bool done = false;  // the stream ended, or was cancelled already
  std::unique_ptr<ModelLease> lease;
  std::shared_ptr<RequestStream> stream;
  Engine* engine = nullptr;
  double start = 0;        // now_seconds() when the request arrived
  double load_seconds = 0;
  const Tokenizer* logprobs_tokenizer = nullptr;  // set when logprobs were asked for: spells the tokens
  std::shared_ptr<const ToolUse> tools;            // the request's tools; the reply is read for calls when active
  // A thinking model's reply, cut into reasoning and answer; none when it is not one's or the
  // request said think: false.
  std::optional<ThinkingSplitter> thinking;
};

using TextSink = std::function<bool(const std::string& text, const std::vector<TokenLogprob>& logprobs)>;

// Pulls the stream's events until it ends, handing each piece of text to on_text (false: the
// client is gone, so the sequence is cancelled and the outcome says so). on_idle, when set, is
// called after a second without text (a request waiting for a slot), so a stream that can carry
// a keep-alive notices a client that left while it waited.
Outcome drive(const Context& ctx, Running& run, const TextSink& on_text, bool collect, bool& client_gone, const std::function<bool()>& on_idle = nullptr) {
  Outcome o;
  o.load_seconds = run.load_seconds;
  client_gone = false;
  bool timed_out = false;
  std::vector<EngineEvent> events;
  double last_text = now_seconds();
  for (bool more = true; more;) {
    events.clear();
    more = run.stream->next(events, std::chrono::milliseconds(100));
    if (on_idle && more && events.empty() && now_seconds() - last_text >= 1.0) {
      if (!on_idle()) {
        run.engine->cancel(*run.stream);
        client_gone = true;
        run.done = true;
        return o;
      }
      last_text = now_seconds();
    }
    for (EngineEvent& e : events) {
      if (run.logprobs_tokenizer && e.token >= 0)
        o.logprobs.push_back({run.logprobs_tokenizer->decode({e.token}), e.logprob});
      if (!e.text.empty()) {
        last_text = now_seconds();
        if (collect) o.text += e.text;
        const bool ok = !on_text || on_text(e.text, o.logprobs);
        if (!collect) o.logprobs.clear();  // sent with this piece
        if (!ok) {
          run.engine->cancel(*run.stream);
          client_gone = true;
          run.done = true;
          return o;
        }
      }
      if (!e.error.empty()) o.error = e.error;
      if (e.finish != FinishReason::none) {
        o.finish = e.finish;
        const SequenceStats& st = e.stats;
        o.prompt_tokens = st.prompt_tokens;
        o.cached_tokens = st.cached_tokens;
        o.generated_tokens = st.generated_tokens;
        if (st.generated_tokens > 0) {
          o.prompt_seconds = st.first_token - st.submitted;
          o.eval_seconds = st.last_token - st.first_token;
        } else if (st.submitted > 0) {
          o.prompt_seconds = now_seconds() - st.submitted;
        }
      }
    }
    if (more && !timed_out && now_seconds() - run.start > ctx.params.request_timeout) {
      run.engine->cancel(*run.stream);  // its last event comes at the engine's next step
      timed_out = true;
    }
  }
  if (timed_out && o.finish == FinishReason::cancelled)
    o.error = "the request timed out after " + std::to_string((int64_t)ctx.params.request_timeout) + " s";
  o.total_seconds = now_seconds() - run.start;
  run.done = true;
  return o;
}

// Writes a stream's pieces as they come, then its end (or error). False: the client is gone.
bool stream_to(const Context& ctx, Running& run, Format& format, httplib::DataSink& sink) {
  bool ok = true;
  auto write = [&](const std::string& s) {
    if (ok && !s.empty()) ok = sink.write(s.data(), s.size());
    return ok;
  };
  write(format.begin());
  bool gone = false;
  const std::string keep_alive = format.keep_alive();
  // With tools, text that may begin a call is held until the reply ends (with the log-
  // probabilities of its tokens), then sent as content or as calls.
  const ToolUse* tools = run.tools && run.tools->active() ? run.tools.get() : nullptr;
  std::string generated;
  size_t sent = 0;
  std::vector<TokenLogprob> held;
  auto answer = [&](const std::string& text, const std::vector<TokenLogprob>& lps) {
    if (!tools) return write(format.piece(text, lps));
    generated += text;
    held.insert(held.end(), lps.begin(), lps.end());
    const size_t n = tools->sendable(generated);
    if (n <= sent) return ok;
    write(format.piece(generated.substr(sent, n - sent), held));
    sent = n;
    held.clear();
    return ok;
  };
  // A thinking model's reasoning streams as it comes; its answer goes on as any reply's (the
  // log-probabilities of reasoning tokens go with the answer's first piece).
  std::vector<TokenLogprob> lps_held;
  auto route = [&](const ThinkingSplitter::Parts& p, const std::vector<TokenLogprob>& lps) {
    if (!p.thinking.empty()) write(format.thinking_piece(p.thinking));
    lps_held.insert(lps_held.end(), lps.begin(), lps.end());
    if (p.content.empty()) return ok;
    answer(p.content, lps_held);
    lps_held.clear();
    return ok;
  };
  auto send = [&](const std::string& text, const std::vector<TokenLogprob>& lps) {
    return run.thinking ? route(run.thinking->feed(text), lps) : answer(text, lps);
  };
  Outcome o = drive(ctx, run, send, false, gone,
                    keep_alive.empty() ? std::function<bool()>() : [&] { return write(keep_alive); });
  run.lease.reset();  // before the last bytes, so a client that reads them sees the model's keep_alive applied
  if (gone || !ok) return false;
  if (run.thinking && o.error.empty()) route(run.thinking->finish(), {});
  if (!lps_held.empty()) held.insert(held.end(), lps_held.begin(), lps_held.end());
  if (tools && o.error.empty()) {
    ToolReply reply = tools->read(generated);
    if (reply.content.size() > sent) {
      write(format.piece(reply.content.substr(sent), held));
      held.clear();
    }
    o.tool_calls = std::move(reply.calls);
    o.logprobs = std::move(held);
  } else if (!held.empty()) {
    o.logprobs.insert(o.logprobs.begin(), held.begin(), held.end());
  }
  write(o.error.empty() ? format.end(o) : format.error(o.error));
  if (ok) sink.done();
  return ok;
}

}  // namespace

const char* finish_word(FinishReason r) {
  return r == FinishReason::length || r == FinishReason::context ? "length" : "stop";
}

void generate_response(Context& ctx, const GenerationRequest& req, std::shared_ptr<Format> format,
                       httplib::Response& res) {
  auto run = std::make_shared<Running>();
  run->start = now_seconds();
  run->lease = ctx.registry.acquire(req.model, req.keep_alive);
  run->load_seconds = run->lease->load_seconds();
  LoadedModel& m = **run->lease;
  run->engine = m.engine.get();

  if (req.load_only()) {
    const bool unload = req.keep_alive.given && !req.keep_alive.forever && req.keep_alive.seconds <= 0;
    nlohmann::json j = format->loaded(unload);
    run->lease.reset();  // keep_alive 0 unloads it before the answer leaves
    set_json(res, j);
    return;
  }

  if (req.num_ctx > m.ctx)
    throw RequestError(400, "options.num_ctx",
                       "options.num_ctx: must be <= " + std::to_string(m.ctx) + ", the context of '" + req.model +
                           "' here, got " + std::to_string(req.num_ctx));
  const int64_t ctx_len = req.num_ctx > 0 ? req.num_ctx : m.ctx;
  if (req.think.value_or(false) && !m.thinks) {
    const char* field = req.route == Route::ollama_chat || req.route == Route::ollama_generate ? "think"
                         : req.route == Route::openai_responses                                ? "reasoning.effort"
                                                                                               : "reasoning_effort";
    throw RequestError(400, field, std::string(field) + ": '" + req.model + "' does not support thinking (its chat template " +
                                       (m.chat_template ? "writes no </think>)" : "is missing)"));
  }
  run->tools = std::make_shared<const ToolUse>(m, req);
  const ToolUse& tools = *run->tools;
  std::vector<int32_t> ids;
  std::string prompt;  // the rendered conversation, when a template made it
  size_t dropped = 0;
  if (is_chat(req.route) && m.chat_template && req.truncate) {
    // A conversation longer than the context loses its oldest turns, as Ollama's does, keeping
    // room for the reply.
    try {
      FittedConversation fit = fit_conversation(m.model->tokenizer(), *m.chat_template, req.messages,
                                                conversation_budget(ctx_len, req.max_tokens), true, tools.tools(),
                                                tools.reply_start(), template_vars(m, req));
      ids = std::move(fit.ids);
      prompt = std::move(fit.text);
      dropped = fit.dropped;
    } catch (const Error& e) {
      throw RequestError(400, input_field(req.route),
                         std::string(input_field(req.route)) + ": the model's chat template refused them: " + e.what());
    }
  } else {
    bool templated = false;
    const std::string text = prompt_text(m, req, tools, templated);
    // A plain prompt gets the tokenizer's specials as `lowbit run -p` gives them; a rendered
    // conversation the same, with BOS never doubled where the template wrote it.
    ids = templated ? encode_conversation(m.model->tokenizer(), text) : m.model->tokenizer().encode(text, true);
    if (templated) prompt = text;
  }
  if (m.thinks && !prompt.empty() && req.think != false) run->thinking.emplace(prompt_opens_thinking(prompt));
  const char* prompt_field = input_field(req.route);
  if (ids.empty())
    throw RequestError(400, prompt_field, std::string(prompt_field) + ": is empty (no tokens to continue from)");
  if ((int64_t)ids.size() >= ctx_len)
    throw RequestError(400, prompt_field,
                       std::string(prompt_field) + ": the prompt is " + std::to_string(ids.size()) +
                           " tokens" + (dropped ? " even with only the system messages and the last one" : "") +
                           ", which leaves no room in a context of " + std::to_string(ctx_len) + " tokens" +
                           (req.num_ctx > 0 ? " (options.num_ctx)" : " (the server's --ctx or the model's)"));
  if (dropped) {
    res.set_header("X-Lowbit-Dropped-Messages", std::to_string(dropped));
    std::fprintf(stderr, "lowbit serve: %s: dropped the %zu oldest messages to fit a context of %lld tokens\n",
                 req.model.c_str(), dropped, (long long)ctx_len);
  }

  SequenceParams sp;
  const int64_t room = ctx_len - (int64_t)ids.size();
  sp.max_tokens = req.max_tokens < 0 ? room : std::min(req.max_tokens, room);
  sp.sampler = req.sampler;
  if (!req.seed_given) sp.sampler.seed = ((uint64_t)std::random_device{}() << 32) ^ std::random_device{}();
  sp.stop = req.stop;
  sp.logprobs = req.logprobs;
  if (req.json) sp.json = m.json_tokens();
  sp.schema = req.schema;
  if (tools.schema()) {
    sp.json = m.json_tokens();
    sp.schema = tools.schema();
  } else if (tools.call_schema()) {
    sp.json = m.json_tokens();
    sp.schema = tools.call_schema();
    sp.json_trigger = tools.trigger();
  }
  if (req.logprobs) run->logprobs_tokenizer = &m.model->tokenizer();
  run->stream = m.engine->submit(std::move(ids), sp);

  if (!req.stream) {
    bool gone = false;
    Outcome o = drive(ctx, *run, nullptr, true, gone);
    run->lease.reset();
    if (!o.error.empty()) throw RequestError(o.finish == FinishReason::cancelled ? 503 : 500, "", o.error);
    if (run->thinking) {
      ThinkingSplitter::Parts p = run->thinking->feed(o.text);
      const ThinkingSplitter::Parts rest = run->thinking->finish();
      o.thinking = std::move(p.thinking) + rest.thinking;
      o.text = std::move(p.content) + rest.content;
    }
    ToolReply reply = run->tools->read(o.text);
    o.text = std::move(reply.content);
    o.tool_calls = std::move(reply.calls);
    set_json(res, format->whole(o));
    return;
  }
  // Runs on the worker thread after this handler returned, outside httplib's exception handler:
  // nothing may escape it (the Running's destructor cancels a sequence left running).
  res.set_chunked_content_provider(format->stream_content_type(), [&ctx, run, format](size_t, httplib::DataSink& sink) {
    try {
      return stream_to(ctx, *run, *format, sink);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "lowbit serve: stream failed: %s\n", e.what());
      return false;
    }
  });
}

}  // namespace lowbit::server
