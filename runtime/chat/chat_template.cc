// ChatTemplate: the model's template over lowbit's Jinja subset, with the variables and message
// preprocessing of transformers' apply_chat_template (tokenization_utils_base.py and
// utils/chat_template_utils.py: _normalize_chat_messages, _alias_reasoning_fields,
// render_jinja_template).
#include "runtime/chat/chat_template.h"

#include <algorithm>
#include <map>
#include <optional>

#include "kernels/error.h"
#include "runtime/chat/jinja.h"
#include "runtime/tokenizer/tokenizer.h"

namespace lowbit {

struct ChatTemplate::Impl {
  std::string source, bos, eos;
  jinja::Template tmpl;
  Impl(const std::string& s, std::string b, std::string e) : source(s), bos(std::move(b)), eos(std::move(e)), tmpl(s) {}
};

ChatTemplate::ChatTemplate(const std::string& source, std::string bos_token, std::string eos_token)
    : impl_(std::make_unique<Impl>(source, std::move(bos_token), std::move(eos_token))) {}
ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

const std::string& ChatTemplate::source() const { return impl_->source; }

namespace {

// One message as the template sees it: null-valued keys dropped; reasoning aliased as
// {"thinking": r, **message, "reasoning_content": r}.
jinja::Value prepare_message(const jinja::Value& m, size_t index) {
  using jinja::Kind;
  if (m.kind != Kind::dict)
    throw Error(ErrorCode::invalid_argument, "messages[" + std::to_string(index) + "] must be an object");
  jinja::Dict d;
  for (const auto& [k, v] : m.map().items)
    if (!v.is_none()) d.items.emplace_back(k, v);
  const jinja::Value* reasoning = nullptr;
  for (const char* key : {"reasoning_content", "thinking", "reasoning"})
    if (!reasoning) reasoning = d.find(key);
  if (reasoning) {
    const jinja::Value r = *reasoning;
    jinja::Dict out;
    if (!d.find("thinking")) out.items.emplace_back("thinking", r);
    for (auto& kv : d.items) out.items.push_back(kv);
    out.set("reasoning_content", r);
    d = std::move(out);
  }
  return jinja::Value::of_dict(std::move(d));
}

template <class Json>
std::string render_impl(const std::string& bos, const std::string& eos, const jinja::Template& tmpl,
                        const Json& messages, bool add_generation_prompt, const Json& tools, const Json& extra) {
  if (!messages.is_array()) throw Error(ErrorCode::invalid_argument, "messages must be an array");
  if (!tools.is_null() && !tools.is_array()) throw Error(ErrorCode::invalid_argument, "tools must be an array");
  if (!extra.is_null() && !extra.is_object())
    throw Error(ErrorCode::invalid_argument, "template variables must be an object");
  std::map<std::string, jinja::Value> vars;
  try {
    for (auto it = extra.begin(); extra.is_object() && it != extra.end(); ++it) {
      static constexpr const char* kOwn[] = {"messages", "tools", "documents", "add_generation_prompt", "bos_token",
                                             "eos_token"};
      for (const char* own : kOwn)
        if (it.key() == own)
          throw Error(ErrorCode::invalid_argument, "template variable '" + it.key() + "' is set by the chat itself");
      vars[it.key()] = jinja::from_json(it.value(), jinja::kMaxValueDepth);
    }
    const jinja::Value raw = jinja::from_json(messages, jinja::kMaxValueDepth);
    jinja::List list;
    for (size_t k = 0; k < raw.items().size(); ++k) list.push_back(prepare_message(raw.items()[k], k));
    vars["messages"] = jinja::Value::of_list(std::move(list));
    vars["tools"] = tools.is_null() ? jinja::Value::none() : jinja::from_json(tools, jinja::kMaxValueDepth);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::invalid_argument, std::string("chat messages: ") + e.what());
  }
  vars["documents"] = jinja::Value::none();
  vars["add_generation_prompt"] = jinja::Value::boolean(add_generation_prompt);
  // transformers passes only the special tokens the tokenizer has: no BOS leaves it undefined.
  if (!bos.empty()) vars["bos_token"] = jinja::Value::string(bos);
  if (!eos.empty()) vars["eos_token"] = jinja::Value::string(eos);
  return tmpl.render(vars);
}

}  // namespace

std::string ChatTemplate::render(const nlohmann::json& messages, bool add_generation_prompt,
                                 const nlohmann::json& tools, const nlohmann::json& vars) const {
  return render_impl(impl_->bos, impl_->eos, impl_->tmpl, messages, add_generation_prompt, tools, vars);
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                 const nlohmann::ordered_json& tools, const nlohmann::ordered_json& vars) const {
  return render_impl(impl_->bos, impl_->eos, impl_->tmpl, messages, add_generation_prompt, tools, vars);
}

std::unique_ptr<ChatTemplate> chat_template_of(const Tokenizer& tok) {
  if (tok.chat_template().empty()) return nullptr;
  // The strings transformers passes as bos_token / eos_token are tokenizer_config.json's, which
  // name the same tokens the tokenizer resolved to these ids (its eos_token comes first).
  const std::string bos = tok.bos_id() >= 0 ? tok.id_to_piece(tok.bos_id()) : "";
  const std::string eos = tok.eos_ids().empty() ? "" : tok.id_to_piece(tok.eos_ids().front());
  return std::make_unique<ChatTemplate>(tok.chat_template(), bos, eos);
}

std::optional<int32_t> end_of_turn_token(const ChatTemplate& tmpl, const Tokenizer& tok) {
  constexpr std::string_view kProbe = "lowbit end-of-turn probe";
  const nlohmann::json turn = nlohmann::json::array(
      {{{"role", "user"}, {"content", "q"}}, {{"role", "assistant"}, {"content", std::string(kProbe)}}});
  std::string text;
  std::vector<int32_t> ids;
  try {
    text = tmpl.render(turn, /*add_generation_prompt=*/false);
    const size_t at = text.rfind(kProbe);
    if (at == std::string::npos) return std::nullopt;
    text.erase(0, at + kProbe.size());
    ids = tok.encode(text, false);
    if (ids.empty() || !tok.decode({ids[0]}).empty()) return std::nullopt;  // text, not a control token
    const std::string piece = tok.id_to_piece(ids[0]);
    if (text.compare(0, piece.size(), piece) != 0) return std::nullopt;  // not as the template spells it
  } catch (const Error&) {
    return std::nullopt;
  }
  return ids[0];
}

std::vector<int32_t> encode_conversation(const Tokenizer& tok, const std::string& rendered, bool add_special) {
  std::vector<int32_t> ids = tok.encode(rendered, add_special);
  const int32_t bos = tok.bos_id();
  if (add_special && bos >= 0 && ids.size() >= 2 && ids[0] == bos && ids[1] == bos) ids.erase(ids.begin());
  return ids;
}

int64_t conversation_budget(int64_t ctx, int64_t max_tokens) {
  const int64_t reserve = max_tokens >= 0 ? std::min(max_tokens, ctx / 2) : ctx / 4;
  return ctx - std::max<int64_t>(1, reserve);
}

namespace {

template <class Json>
FittedConversation fit_impl(const Tokenizer& tok, const ChatTemplate& tmpl, const Json& messages, int64_t budget,
                            bool add_special, const Json& tools, const std::string& reply_start, const Json& vars) {
  if (!messages.is_array()) throw Error(ErrorCode::invalid_argument, "messages must be an array");
  auto is_system = [](const Json& m) { return m.is_object() && m.value("role", Json()) == "system"; };
  auto encode = [&](size_t start) {
    Json kept = Json::array();
    for (size_t i = 0; i < messages.size(); ++i)
      if (i >= start || is_system(messages[i])) kept.push_back(messages[i]);
    FittedConversation f;
    f.text = tmpl.render(kept, /*add_generation_prompt=*/true, tools, vars) + reply_start;
    f.ids = encode_conversation(tok, f.text, add_special);
    return f;
  };
  FittedConversation out = encode(0);
  if ((int64_t)out.ids.size() <= budget || messages.empty()) return out;

  // Where the kept part may start: a user message with something to drop before it, or the last
  // message.
  std::vector<size_t> starts;
  bool droppable = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    const bool user = messages[i].is_object() && messages[i].value("role", Json()) == "user";
    if ((user && droppable) || i + 1 == messages.size()) starts.push_back(i);
    droppable = droppable || !is_system(messages[i]);
  }

  // Dropping more never lengthens the prompt, so the fitting starts are a suffix of `starts`.
  size_t lo = 0, hi = starts.size() - 1;  // the answer is in [lo, hi]; hi is taken when nothing fits
  std::optional<FittedConversation> at_hi;  // encode(starts[hi]) once a fitting hi has been rendered
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    FittedConversation f;
    bool fits = false;
    try {
      f = encode(starts[mid]);
      fits = (int64_t)f.ids.size() <= budget;
    } catch (const Error&) {
    }
    if (fits) {
      hi = mid;
      at_hi = std::move(f);
    } else {
      lo = mid + 1;
    }
  }
  out = at_hi ? std::move(*at_hi) : encode(starts[hi]);
  out.dropped = 0;
  for (size_t i = 0; i < starts[hi]; ++i) out.dropped += is_system(messages[i]) ? 0 : 1;
  return out;
}

}  // namespace

FittedConversation fit_conversation(const Tokenizer& tok, const ChatTemplate& tmpl, const nlohmann::json& messages,
                                    int64_t budget, bool add_special, const nlohmann::json& vars) {
  return fit_impl(tok, tmpl, messages, budget, add_special, nlohmann::json(), "", vars);
}

FittedConversation fit_conversation(const Tokenizer& tok, const ChatTemplate& tmpl,
                                    const nlohmann::ordered_json& messages, int64_t budget, bool add_special,
                                    const nlohmann::ordered_json& tools, const std::string& reply_start,
                                    const nlohmann::ordered_json& vars) {
  return fit_impl(tok, tmpl, messages, budget, add_special, tools, reply_start, vars);
}

}  // namespace lowbit
