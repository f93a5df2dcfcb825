// Model: a loaded manifest with tokenize / detokenize / logits / generate, and the model's chat
// template for chat().
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "convert/load.h"
#include "kernels/error.h"
#include "kernels/isa.h"
#include "python/src/bindings.h"
#include "runtime/batch.h"
#include "runtime/chat/chat_template.h"
#include "runtime/chat/thinking.h"
#include "runtime/chat/tool_calls.h"
#include "runtime/generate.h"
#include "runtime/json_mode.h"
#include "runtime/json_schema.h"
#include "runtime/model.h"

namespace lowbit::python {
namespace {

class PyModel {
 public:
  PyModel(const std::string& path, int threads, int64_t ctx, const std::string& isa, const std::string& gpu_layers)
      : path_(path) {
    if (threads < 0) throw Error(ErrorCode::invalid_argument, "threads must be >= 0");
    if (ctx < 0) throw Error(ErrorCode::invalid_argument, "ctx must be >= 0");
    LoadParams lp;
    lp.threads = threads;
    lp.ctx = ctx;
    lp.isa = parse_isa(isa);
    lp.gpu_layers = parse_gpu_layers(gpu_layers, "gpu_layers");
    py::gil_scoped_release nogil;
    model_ = load_model(path, lp);
    if (model_->has_tokenizer()) json_ = std::make_unique<LazyJsonTokens>(model_->tokenizer());
  }

  const std::string& path() const { return path_; }
  const Model& model() const { return *model_; }

  // JSON mode's token texts, built by the first generation that asks for JSON.
  std::shared_ptr<const JsonTokens> json_tokens() const {
    if (!json_) throw Error(ErrorCode::invalid_argument, "JSON mode needs the model's tokenizer, and it has none");
    return json_->get();
  }
  // json: JSON mode; schema (JSON text): the value follows it (runtime/json_schema.h).
  void set_format(GenerateParams& p, bool json, const std::optional<std::string>& schema) const {
    if (!json && !schema) return;
    p.json = json_tokens();
    if (!schema) return;
    p.schema = JsonSchema::compile_text(*schema, "format");
  }

  std::vector<int32_t> tokenize(const std::string& text, bool add_bos) const {
    py::gil_scoped_release nogil;
    return model_->tokenizer().encode(text, add_bos);
  }

  std::string detokenize(const std::vector<int32_t>& ids) const {
    py::gil_scoped_release nogil;
    return model_->tokenizer().decode(ids);
  }

  // A fresh session per call: the logits of every position of ids, (n, vocab).
  py::array_t<float> logits(const std::vector<int32_t>& ids) const {
    if (ids.empty()) throw Error(ErrorCode::invalid_argument, "logits: no token ids");
    const int64_t n = (int64_t)ids.size(), vocab = model_->config().vocab_size;
    py::array_t<float> out({n, vocab});
    float* dst = out.mutable_data();
    py::gil_scoped_release nogil;
    Session session(*model_);
    session.eval(ids.data(), n, dst, /*all_logits=*/true);
    return out;
  }

  // The chat template over messages (JSON text of a list of {"role", "content", ...} objects,
  // key order kept), with the assistant's turn opened when add_generation_prompt.
  std::string render_chat(const std::string& messages_json, bool add_generation_prompt) const {
    return chat_template()->render(parse_messages<nlohmann::ordered_json>(messages_json), add_generation_prompt);
  }

  // The conversation cut to the context, with room for a reply of max_tokens, as `lowbit serve`
  // and the chat cut it (fit_conversation): its ids and how many of the oldest non-system
  // messages were left out. tools_json: the tools the template shows ("" for none); reply_start:
  // a forced tool call's opening, which the prompt ends with.
  // vars_json: more template variables ("" for none, e.g. {"enable_thinking": false}). Also
  // returns whether the prompt opened a thinking block (runtime/chat/thinking.h).
  std::tuple<std::vector<int32_t>, size_t, bool> chat_tokens_fit(const std::string& messages_json, int64_t max_tokens,
                                                                 const std::string& tools_json,
                                                                 const std::string& reply_start,
                                                                 const std::string& vars_json) const {
    const auto messages = parse_messages<nlohmann::ordered_json>(messages_json);
    const auto tools = parse_tools(tools_json);
    const auto vars = parse_vars(vars_json);
    const std::unique_ptr<ChatTemplate> tmpl = chat_template();
    py::gil_scoped_release nogil;
    FittedConversation f = fit_conversation(model_->tokenizer(), *tmpl, messages,
                                            conversation_budget(model_->ctx(), max_tokens), true, tools, reply_start,
                                            vars);
    return {std::move(f.ids), f.dropped, prompt_opens_thinking(f.text)};
  }

  // The conversation's tokens as every chat front end feeds them (encode_conversation), and
  // whether the prompt opened a thinking block.
  std::pair<std::vector<int32_t>, bool> chat_tokens(const std::string& messages_json, bool add_special,
                                                    const std::string& tools_json, const std::string& reply_start,
                                                    const std::string& vars_json) const {
    const std::string text = chat_template()->render(parse_messages<nlohmann::ordered_json>(messages_json), true,
                                                     parse_tools(tools_json), parse_vars(vars_json)) +
                             reply_start;
    py::gil_scoped_release nogil;
    return {encode_conversation(model_->tokenizer(), text, add_special), prompt_opens_thinking(text)};
  }

  // Whether the chat template is a thinking model's (runtime/chat/thinking.h).
  bool thinks() const { return template_thinks(*chat_template()); }

  // Tool calling (runtime/chat/tool_calls.h). choice: "auto", "none", "required" or a function's
  // name. {"active": the reply is read for calls, "forced", "reply_start", "reply_end", "schema":
  // the forced reply's JSON schema text or None}.
  py::dict tool_plan(const std::string& tools_json, const std::string& choice) const {
    const ToolCallSyntax::Plan p = tool_syntax().plan(parse_tools(tools_json), choice);
    py::dict plan;
    plan["active"] = p.active;
    plan["forced"] = p.forced;
    plan["reply_start"] = p.forced_reply.reply_start;
    plan["reply_end"] = p.forced_reply.reply_end;
    plan["schema"] = p.forced ? py::object(py::str(p.forced_reply.schema.dump())) : py::object(py::none());
    return plan;
  }

  // A reply read back: (content, [(name, arguments as JSON text)]).
  py::tuple tool_read(const std::string& text, const std::string& tools_json, const std::string& reply_start,
                      const std::string& reply_end, bool forced) const {
    ToolCallSyntax::Plan p;
    p.forced = forced;
    p.forced_reply = {reply_start, reply_end, {}};
    const ToolReply r = tool_syntax().read(p, text, parse_tools(tools_json));
    py::list calls;
    for (const ToolCall& c : r.calls) calls.append(py::make_tuple(c.name, c.arguments.dump()));
    return py::make_tuple(r.content, calls);
  }

  // How many bytes of a reply streamed so far may be shown: the rest may begin a call.
  size_t tool_hold_from(const std::string& text) const { return tool_syntax().hold_from(text); }

  // callback(piece) is called for each piece of text; returning True stops the generation.
  py::dict generate(const std::string& prompt, const GenerateParams& params, const py::object& callback) const {
    check_settings(params);
    std::vector<int32_t> ids;
    {
      py::gil_scoped_release nogil;
      ids = model_->tokenizer().encode(prompt, params.add_bos);
    }
    return generate_tokens(std::move(ids), params, callback);
  }

  // The same from the prompt's tokens (chat: the rendered conversation's). chat: continue the
  // model's chat session, reading only what differs from what it holds (the last turn's prompt
  // and reply), as `lowbit run`'s chat and the server's prompt cache do; prompts are read with
  // int8 activations at every length (Session::set_row_independent), so the reply is the one a
  // fresh session reading the whole conversation gives. One chat at a time uses the kept
  // session; a call while another holds it reads its prompt whole.
  py::dict generate_tokens(std::vector<int32_t> ids, const GenerateParams& params, const py::object& callback,
                           bool chat = false) const {
    check_settings(params);
    if (ids.empty()) throw Error(ErrorCode::invalid_argument, "generate: no prompt tokens");
    if ((int64_t)ids.size() > model_->ctx())
      throw Error("the prompt is " + std::to_string(ids.size()) + " tokens but the model was loaded with ctx=" +
                  std::to_string(model_->ctx()) + "; load it with a larger ctx (lowbit.Model(path, ctx=N))");
    GenerateResult r;
    const size_t prompt_tokens = ids.size();
    size_t cached = 0;  // of them, those the chat session held already (not read again)
    {
      const bool has_callback = !callback.is_none();
      TokenCallback on_token = [&](const std::string& piece, int32_t) -> bool {
        py::gil_scoped_acquire gil;
        check_signals();  // Ctrl-C: KeyboardInterrupt leaves generate() through here
        if (!has_callback) return true;
        const py::object stop = callback(py::str(piece));
        return !(stop && !stop.is_none() && stop.cast<bool>());
      };
      py::gil_scoped_release nogil;
      std::unique_lock<std::mutex> held(chat_mutex_, std::defer_lock);
      if (chat && held.try_lock()) {
        if (!chat_session_) {
          chat_session_ = std::make_unique<Session>(*model_);
          chat_session_->set_row_independent(true);
        }
        // Keep at least one token to read, for the next token's logits.
        size_t keep = 0;
        while (keep < chat_ids_.size() && keep + 1 < ids.size() && chat_ids_[keep] == ids[keep]) ++keep;
        chat_session_->truncate((int64_t)std::min<size_t>(keep, (size_t)chat_session_->position()));
        keep = (size_t)chat_session_->position();
        const std::vector<int32_t> before(ids.begin(), ids.begin() + (long)keep);
        chat_ids_.clear();  // unknown until this generation ends
        r = lowbit::generate(*chat_session_, std::vector<int32_t>(ids.begin() + (long)keep, ids.end()), params,
                             on_token, before);
        chat_ids_ = ids;
        chat_ids_.insert(chat_ids_.end(), r.ids.begin(), r.ids.end());
        chat_ids_.resize(std::min<size_t>(chat_ids_.size(), (size_t)chat_session_->position()));
        cached = keep;
      } else {
        Session session(*model_);
        session.set_row_independent(chat);
        r = lowbit::generate(session, std::move(ids), params, on_token);
      }
    }
    py::dict d;
    d["text"] = r.text;
    d["stop_reason"] = r.stop_reason;
    d["prompt_tokens"] = prompt_tokens;
    d["generated_tokens"] = r.ids.size();
    d["ids"] = r.ids;
    d["prompt_tokens_per_s"] = r.prompt_tokens_per_s();
    d["gen_tokens_per_s"] = r.gen_tokens_per_s();
    d["prompt_seconds"] = r.prompt_seconds;
    d["gen_seconds"] = r.gen_seconds;
    d["seed"] = params.sampler.seed;
    d["cached_tokens"] = cached;
    return d;
  }

  // Many prompts through one Scheduler (runtime/batch.h): every projection once per step for all
  // of them. Per sequence i: prompts[i], params[i]; add_bos as generate's. callback(i, piece)
  // is called with each new piece of sequence i's text; returning True stops everything.
  // Returns one dict per prompt, in order.
  py::list generate_batch(const std::vector<std::string>& prompts, const std::vector<GenerateParams>& params,
                          int max_sequences, int64_t max_step_tokens, const py::object& callback) const {
    if (params.size() != prompts.size()) throw Error(ErrorCode::invalid_argument, "generate_batch: one parameter set per prompt");
    struct Out {
      std::vector<int32_t> prompt, ids;
      std::string text, reason;
      double tokens_per_s = 0;
    };
    std::vector<Out> out(prompts.size());
    {
      py::gil_scoped_release nogil;
      Scheduler sched(*model_, {max_sequences, max_step_tokens});
      std::map<SequenceId, size_t> index;
      for (size_t i = 0; i < prompts.size(); ++i) {
        out[i].prompt = model_->tokenizer().encode(prompts[i], params[i].add_bos);
        SequenceParams sp;
        sp.max_tokens = params[i].max_tokens;
        sp.sampler = params[i].sampler;
        sp.stop = params[i].stop;
        sp.stop_on_bos = params[i].stop_on_bos;
        sp.json = params[i].json;
        sp.schema = params[i].schema;
        index[sched.submit(out[i].prompt, sp)] = i;
      }
      bool stop_all = false;
      while (sched.has_work()) {
        const std::vector<SequenceEvent>& events = sched.step();
        for (const SequenceEvent& e : events) {
          Out& o = out[index.at(e.id)];
          if (e.token >= 0) o.ids.push_back(e.token);
          o.text += e.text;
          if (e.finish != FinishReason::none) {
            o.reason = finish_reason_name(e.finish);
            const SequenceStats* st = sched.stats(e.id);
            if (st && st->generated_tokens > 1 && st->last_token > st->first_token)
              o.tokens_per_s = (double)(st->generated_tokens - 1) / (st->last_token - st->first_token);
          }
        }
        py::gil_scoped_acquire gil;
        check_signals();  // Ctrl-C: KeyboardInterrupt leaves generate_batch() through here
        if (callback.is_none()) continue;
        for (const SequenceEvent& e : events) {
          if (e.text.empty() || stop_all) continue;
          const py::object r = callback(index.at(e.id), py::str(e.text));
          stop_all = r && !r.is_none() && r.cast<bool>();
        }
        if (stop_all) {
          for (const auto& [id, i] : index)
            if (out[i].reason.empty()) sched.cancel(id);
          stop_all = false;  // the cancellations finish in the next step
        }
      }
    }
    py::list results;
    for (Out& o : out) {
      py::dict d;
      d["text"] = o.text;
      d["stop_reason"] = o.reason;
      d["prompt_tokens"] = o.prompt.size();
      d["generated_tokens"] = o.ids.size();
      d["ids"] = o.ids;
      d["gen_tokens_per_s"] = o.tokens_per_s;
      results.append(d);
    }
    return results;
  }

  py::dict config() const {
    const ModelConfig& c = model_->config();
    py::dict d;
    d["arch"] = c.arch;
    d["hf_architecture"] = c.hf_architecture;
    d["dim"] = c.dim;
    d["n_layers"] = c.n_layers;
    d["n_heads"] = c.n_heads;
    d["n_kv_heads"] = c.n_kv_heads;
    d["head_dim"] = c.head_dim;
    d["ffn_dim"] = c.ffn_dim;
    d["vocab_size"] = c.vocab_size;
    d["max_ctx"] = c.max_ctx;
    return d;
  }

 private:
  // Checked before any work, to name the settings as a Python caller passed them: the library's
  // own messages name the GenerateParams fields, which are the keyword arguments.
  template <class Json>
  static Json parse_messages(const std::string& messages_json) {
    try {
      return Json::parse(messages_json);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorCode::invalid_argument, std::string("messages: not JSON: ") + e.what());
    }
  }

  static nlohmann::ordered_json parse_tools(const std::string& tools_json) {
    if (tools_json.empty()) return nullptr;
    try {
      return nlohmann::ordered_json::parse(tools_json);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorCode::invalid_argument, std::string("tools: not JSON: ") + e.what());
    }
  }

  static nlohmann::ordered_json parse_vars(const std::string& vars_json) {
    if (vars_json.empty()) return nullptr;
    return nlohmann::ordered_json::parse(vars_json);  // made by the Python side, never a caller's text
  }

  // How the model's template writes a tool call, learned once.
  const ToolCallSyntax& tool_syntax() const {
    std::call_once(tool_once_, [this] { tool_syntax_ = ToolCallSyntax::of(*chat_template()); });
    if (!tool_syntax_)
      throw Error(ErrorCode::invalid_argument, path_ + " does not support tools: its chat template writes no tool calls");
    return *tool_syntax_;
  }

  std::unique_ptr<ChatTemplate> chat_template() const {
    std::unique_ptr<ChatTemplate> tmpl = chat_template_of(model_->tokenizer());
    if (!tmpl)
      throw Error(ErrorCode::not_found, path_ + " has no chat template (tokenizer_config.json chat_template or GGUF "
                                                "tokenizer.chat_template); generate() continues plain text");
    return tmpl;
  }

  static void check_settings(const GenerateParams& params) {
    if (const auto bad = invalid_setting(params)) throw Error(bad->field + " must be " + bad->requirement);
  }

  std::string path_;
  std::shared_ptr<const Model> model_;
  std::unique_ptr<LazyJsonTokens> json_;
  mutable std::mutex chat_mutex_;                 // held by the chat that uses chat_session_
  mutable std::unique_ptr<Session> chat_session_;  // Model.chat's, continued turn to turn
  mutable std::vector<int32_t> chat_ids_;          // the tokens its cache holds, position by position
  mutable std::once_flag tool_once_;
  mutable std::optional<ToolCallSyntax> tool_syntax_;  // none: the template writes no tool calls
};

GenerateParams make_params(int64_t max_tokens, float temperature, int top_k, float top_p, float min_p,
                           float repetition_penalty, float presence_penalty, float frequency_penalty, uint64_t seed,
                           const std::vector<std::string>& stop, bool add_bos) {
  GenerateParams p;
  p.max_tokens = max_tokens;
  p.sampler.temperature = temperature;
  p.sampler.top_k = top_k;
  p.sampler.top_p = top_p;
  p.sampler.min_p = min_p;
  p.sampler.repetition_penalty = repetition_penalty;
  p.sampler.presence_penalty = presence_penalty;
  p.sampler.frequency_penalty = frequency_penalty;
  p.sampler.seed = seed;
  p.stop = stop;
  p.add_bos = add_bos;
  return p;
}

}  // namespace

void register_model(py::module_& m) {
  py::class_<ThinkingSplitter>(m, "ThinkingSplitter",
                               "A reply cut into a thinking model's reasoning and answer as it streams "
                               "(runtime/chat/thinking.h)")
      .def(py::init<bool>(), py::arg("in_thinking") = false)
      .def("feed", [](ThinkingSplitter& s, const std::string& piece) {
        ThinkingSplitter::Parts p = s.feed(piece);
        return py::make_tuple(p.thinking, p.content);
      }, py::arg("piece"))
      .def("finish", [](ThinkingSplitter& s) {
        ThinkingSplitter::Parts p = s.finish();
        return py::make_tuple(p.thinking, p.content);
      });
  py::class_<PyModel>(m, "Model", "A model loaded from a manifest directory (lowbit convert).")
      .def(py::init<const std::string&, int, int64_t, const std::string&, const std::string&>(), py::arg("path"),
           py::arg("threads") = 0, py::arg("ctx") = 0, py::arg("isa") = "auto", py::arg("gpu_layers") = "0")
      .def_property_readonly("device_layers", [](const PyModel& p) { return p.model().device_layers(); })
      .def_property_readonly("placement", [](const PyModel& p) { return p.model().placement(); })
      .def_property_readonly("path", &PyModel::path)
      .def_property_readonly("vocab_size", [](const PyModel& p) { return p.model().config().vocab_size; })
      .def_property_readonly("ctx", [](const PyModel& p) { return p.model().ctx(); })
      .def_property_readonly("bos_id", [](const PyModel& p) { return p.model().tokenizer().bos_id(); })
      .def_property_readonly("eos_ids", [](const PyModel& p) { return p.model().tokenizer().eos_ids(); })
      .def_property_readonly("config", &PyModel::config)
      .def("tokenize", &PyModel::tokenize, py::arg("text"), py::arg("add_bos") = true)
      .def("detokenize", &PyModel::detokenize, py::arg("ids"))
      .def("logits", &PyModel::logits, py::arg("ids"))
      .def(
          "generate",
          [](const PyModel& self, const std::string& prompt, int64_t max_tokens, float temperature, int top_k,
             float top_p, float min_p, float repetition_penalty, float presence_penalty, float frequency_penalty,
             uint64_t seed,
             const std::optional<std::vector<std::string>>& stop, bool add_bos, bool json,
             const std::optional<std::string>& schema, const py::object& callback) {
            GenerateParams p = make_params(max_tokens, temperature, top_k, top_p, min_p, repetition_penalty,
                                           presence_penalty, frequency_penalty, seed,
                                           stop.value_or(std::vector<std::string>{}), add_bos);
            self.set_format(p, json, schema);
            return self.generate(prompt, p, callback);
          },
          py::arg("prompt"), py::arg("max_tokens") = 256, py::arg("temperature") = 0.0f, py::arg("top_k") = 0,
          py::arg("top_p") = 1.0f, py::arg("min_p") = 0.0f, py::arg("repetition_penalty") = 1.0f,
          py::arg("presence_penalty") = 0.0f, py::arg("frequency_penalty") = 0.0f, py::arg("seed") = 0, py::arg("stop") = py::none(), py::arg("add_bos") = true, py::arg("json") = false,
          py::arg("schema") = py::none(), py::arg("callback") = py::none())
      .def("render_chat", &PyModel::render_chat, py::arg("messages_json"), py::arg("add_generation_prompt") = true)
      .def("chat_tokens", &PyModel::chat_tokens, py::arg("messages_json"), py::arg("add_special") = true,
           py::arg("tools_json") = "", py::arg("reply_start") = "", py::arg("vars_json") = "")
      .def("chat_tokens_fit", &PyModel::chat_tokens_fit, py::arg("messages_json"), py::arg("max_tokens"),
           py::arg("tools_json") = "", py::arg("reply_start") = "", py::arg("vars_json") = "")
      .def_property_readonly("thinks", &PyModel::thinks)
      .def("tool_plan", &PyModel::tool_plan, py::arg("tools_json"), py::arg("choice"))
      .def("tool_read", &PyModel::tool_read, py::arg("text"), py::arg("tools_json"), py::arg("reply_start"),
           py::arg("reply_end"), py::arg("forced"))
      .def("tool_hold_from", &PyModel::tool_hold_from, py::arg("text"))
      .def(
          "generate_tokens",
          [](const PyModel& self, const std::vector<int32_t>& ids, int64_t max_tokens, float temperature, int top_k,
             float top_p, float min_p, float repetition_penalty, float presence_penalty, float frequency_penalty,
             uint64_t seed,
             const std::optional<std::vector<std::string>>& stop, bool json, const std::optional<std::string>& schema,
             const py::object& callback, bool chat) {
            GenerateParams p = make_params(max_tokens, temperature, top_k, top_p, min_p, repetition_penalty,
                                           presence_penalty, frequency_penalty, seed,
                                           stop.value_or(std::vector<std::string>{}), false);
            self.set_format(p, json, schema);
            return self.generate_tokens(ids, p, callback, chat);
          },
          py::arg("ids"), py::arg("max_tokens") = 256, py::arg("temperature") = 0.0f, py::arg("top_k") = 0,
          py::arg("top_p") = 1.0f, py::arg("min_p") = 0.0f, py::arg("repetition_penalty") = 1.0f,
          py::arg("presence_penalty") = 0.0f, py::arg("frequency_penalty") = 0.0f, py::arg("seed") = 0, py::arg("stop") = py::none(), py::arg("json") = false,
          py::arg("schema") = py::none(), py::arg("callback") = py::none(), py::arg("chat") = false)
      .def(
          "generate_batch",
          [](const PyModel& self, const std::vector<std::string>& prompts, const std::vector<py::dict>& settings,
             int max_sequences, int64_t max_step_tokens, const py::object& callback) {
            // Each settings dict holds generate()'s keyword arguments for its prompt.
            std::vector<GenerateParams> params;
            for (const py::dict& d : settings) {
              auto get = [&](const char* key, auto fallback) {
                return d.contains(key) ? d[key].cast<decltype(fallback)>() : fallback;
              };
              const py::object stop = d.contains("stop") ? py::object(d["stop"]) : py::none();
              params.push_back(make_params(get("max_tokens", int64_t(256)), get("temperature", 0.0f), get("top_k", 0),
                                           get("top_p", 1.0f), get("min_p", 0.0f), get("repetition_penalty", 1.0f),
                                           get("presence_penalty", 0.0f), get("frequency_penalty", 0.0f),
                                           get("seed", uint64_t(0)),
                                           stop.is_none() ? std::vector<std::string>{} : stop.cast<std::vector<std::string>>(),
                                           get("add_bos", true)));
              const py::object schema = d.contains("schema") ? py::object(d["schema"]) : py::none();
              self.set_format(params.back(), get("json", false),
                              schema.is_none() ? std::nullopt : std::optional<std::string>(schema.cast<std::string>()));
            }
            return self.generate_batch(prompts, params, max_sequences, max_step_tokens, callback);
          },
          py::arg("prompts"), py::arg("settings"), py::arg("max_sequences") = 16, py::arg("max_step_tokens") = 256,
          py::arg("callback") = py::none());
}

}  // namespace lowbit::python
