// Reads the special-token settings of a model folder (tokenizer_config.json, config.json,
// generation_config.json) and resolves them to ids.
#include <algorithm>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "runtime/mapped_file.h"
#include "runtime/tokenizer/tokenizer_internal.h"

namespace lowbit::tok {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json parse_json(const std::string& text, const std::string& file) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw Error(file + ": not valid JSON (" + e.what() + ")");
  }
}

// A token written as "text", as {"content": "text", ...} (transformers' AddedToken), or null.
std::optional<std::string> token_name(const json& v, const std::string& where) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  throw Error(where + ": expected a token string or {\"content\": ...}");
}

std::optional<bool> optional_bool(const json& j, const char* key, const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  if (!j[key].is_boolean()) throw Error(file + ": \"" + key + "\" must be true or false");
  return j[key].get<bool>();
}

// bos_token_id / eos_token_id: an int, a list of ints, or null.
void append_ids(const json& j, const char* key, const std::string& file, std::vector<int32_t>& out) {
  if (!j.contains(key) || j[key].is_null()) return;
  const json& v = j[key];
  auto one = [&](const json& x) {
    if (!x.is_number_integer()) throw Error(file + ": \"" + key + "\" must be an integer or a list of integers");
    out.push_back(x.get<int32_t>());
  };
  if (v.is_array()) {
    for (const json& x : v) one(x);
  } else {
    one(v);
  }
}

void read_tokenizer_config_json(const std::string& text, const std::string& file, TokenizerConfig& cfg) {
  json j = parse_json(text, file);
  if (!j.is_object()) throw Error(file + ": expected a JSON object");
  cfg.add_bos = optional_bool(j, "add_bos_token", file);
  cfg.add_eos = optional_bool(j, "add_eos_token", file);
  cfg.add_prefix_space = optional_bool(j, "add_prefix_space", file);
  if (j.contains("bos_token")) {
    cfg.bos_token = token_name(j["bos_token"], file + " bos_token");
    cfg.bos_token_null = !cfg.bos_token.has_value();
  }
  if (j.contains("eos_token")) {
    const json& e = j["eos_token"];
    if (e.is_array()) {
      for (const json& x : e)
        if (auto n = token_name(x, file + " eos_token")) cfg.eos_tokens.push_back(*n);
    } else if (auto n = token_name(e, file + " eos_token")) {
      cfg.eos_tokens.push_back(*n);
    }
  }
  if (j.contains("unk_token")) cfg.unk_token = token_name(j["unk_token"], file + " unk_token");
  if (j.contains("pad_token")) cfg.pad_token = token_name(j["pad_token"], file + " pad_token");
  if (j.contains("additional_special_tokens") && j["additional_special_tokens"].is_array()) {
    for (const json& x : j["additional_special_tokens"])
      if (auto n = token_name(x, file + " additional_special_tokens")) cfg.additional_special.push_back(*n);
  }
  if (j.contains("added_tokens_decoder")) {
    const json& d = j["added_tokens_decoder"];
    if (!d.is_object()) throw Error(file + ": \"added_tokens_decoder\" must be an object");
    for (const auto& [key, v] : d.items()) {
      ConfigAddedToken t;
      try {
        size_t used = 0;
        t.id = std::stoi(key, &used);
        if (used != key.size() || t.id < 0) throw std::invalid_argument(key);
      } catch (const std::exception&) {
        throw Error(file + ": added_tokens_decoder key '" + key + "' is not a token id");
      }
      if (!v.is_object() || !v.contains("content") || !v["content"].is_string())
        throw Error(file + ": added_tokens_decoder[" + key + "] needs a \"content\" string");
      t.content = v["content"].get<std::string>();
      auto flag = [&](const char* name, bool fallback) {
        return v.contains(name) && v[name].is_boolean() ? v[name].get<bool>() : fallback;
      };
      t.special = flag("special", false);
      t.lstrip = flag("lstrip", false);
      t.rstrip = flag("rstrip", false);
      t.single_word = flag("single_word", false);
      t.normalized = flag("normalized", !t.special);
      cfg.added_tokens.push_back(std::move(t));
    }
    std::sort(cfg.added_tokens.begin(), cfg.added_tokens.end(),
              [](const ConfigAddedToken& a, const ConfigAddedToken& b) { return a.id < b.id; });
  }
  // A string, or a list of {"name", "template"} of which transformers applies "default" when no
  // name is asked for (and refuses to guess among several without one: then none here).
  if (j.contains("chat_template") && !j["chat_template"].is_null()) {
    const json& t = j["chat_template"];
    if (t.is_string()) {
      cfg.chat_template = t.get<std::string>();
    } else if (t.is_array()) {
      for (const json& e : t) {
        if (!e.is_object() || !e.contains("name") || !e.contains("template") || !e["name"].is_string() ||
            !e["template"].is_string())
          throw Error(file + ": \"chat_template\" entries must be {\"name\": ..., \"template\": ...}");
        if (e["name"] == "default") cfg.chat_template = e["template"].get<std::string>();
      }
    } else {
      throw Error(file + ": \"chat_template\" must be a string or a list of named templates");
    }
  }
  if (j.contains("tokenizer_class") && j["tokenizer_class"].is_string())
    cfg.tokenizer_class = j["tokenizer_class"].get<std::string>();
}

// A file's text and the name that messages give it (its path, or "x.gguf:config.json").
struct NamedText {
  std::string text, name;
};

// The three files (each may be absent) -> settings.
TokenizerConfig parse_config_files(const std::optional<NamedText>& tokenizer_config,
                                   const std::optional<NamedText>& config,
                                   const std::optional<NamedText>& generation_config,
                                   const std::optional<NamedText>& chat_template) {
  TokenizerConfig cfg;
  if (tokenizer_config) read_tokenizer_config_json(tokenizer_config->text, tokenizer_config->name, cfg);
  // transformers saves the template as chat_template.jinja beside the config, and prefers it.
  if (chat_template) cfg.chat_template = chat_template->text;
  // generation_config.json is what transformers' generate() reads, so its eos list comes first.
  json config_json, generation_json;
  if (config) config_json = parse_json(config->text, config->name);
  if (generation_config) generation_json = parse_json(generation_config->text, generation_config->name);
  if (config_json.is_object()) {
    append_ids(config_json, "bos_token_id", config->name, cfg.bos_ids_from_model);
    if (config_json.contains("model_type") && config_json["model_type"].is_string())
      cfg.model_type = config_json["model_type"].get<std::string>();
  }
  if (generation_json.is_object()) {
    append_ids(generation_json, "bos_token_id", generation_config->name, cfg.bos_ids_from_model);
    append_ids(generation_json, "eos_token_id", generation_config->name, cfg.eos_ids_from_model);
  }
  if (config_json.is_object()) append_ids(config_json, "eos_token_id", config->name, cfg.eos_ids_from_model);
  return cfg;
}

}  // namespace

TokenizerConfig read_tokenizer_config(const std::vector<std::string>& dirs) {
  auto find = [&](const char* name) -> std::optional<NamedText> {
    for (const std::string& d : dirs) {
      fs::path p = fs::path(d) / name;
      if (fs::is_regular_file(p)) return NamedText{read_file(p.string(), "the tokenizer file"), p.string()};
    }
    return std::nullopt;
  };
  return parse_config_files(find("tokenizer_config.json"), find("config.json"), find("generation_config.json"),
                            find("chat_template.jinja"));
}

TokenizerConfig parse_tokenizer_config(const std::map<std::string, std::string>& files, const std::string& label) {
  auto find = [&](const char* name) -> std::optional<NamedText> {
    auto it = files.find(name);
    if (it == files.end()) return std::nullopt;
    return NamedText{it->second, label + ":" + name};
  };
  return parse_config_files(find("tokenizer_config.json"), find("config.json"), find("generation_config.json"),
                            find("chat_template.jinja"));
}

SpecialIds resolve_special_ids(const TokenizerConfig& cfg,
                               const std::function<int32_t(std::string_view)>& token_to_id,
                               int32_t vocab_size, int32_t fallback_bos, int32_t fallback_eos) {
  auto check = [&](int32_t id, const std::string& what) {
    if (id < 0 || id >= vocab_size)
      throw Error(what + " = " + std::to_string(id) + " is outside the tokenizer's vocabulary (size " +
                  std::to_string(vocab_size) + ")");
    return id;
  };
  SpecialIds out;
  if (cfg.bos_token) {
    int32_t id = token_to_id(*cfg.bos_token);
    if (id < 0) throw Error("tokenizer_config.json bos_token '" + *cfg.bos_token + "' is not in the vocabulary");
    out.bos = id;
  } else if (!cfg.bos_token_null) {
    if (!cfg.bos_ids_from_model.empty()) {
      out.bos = check(cfg.bos_ids_from_model.front(), "config.json bos_token_id");
    } else {
      out.bos = fallback_bos;
    }
  }
  auto add_eos = [&](int32_t id) {
    if (std::find(out.eos.begin(), out.eos.end(), id) == out.eos.end()) out.eos.push_back(id);
  };
  for (const std::string& name : cfg.eos_tokens) {
    int32_t id = token_to_id(name);
    if (id < 0) throw Error("tokenizer_config.json eos_token '" + name + "' is not in the vocabulary");
    add_eos(id);
  }
  for (int32_t id : cfg.eos_ids_from_model) add_eos(check(id, "config/generation_config eos_token_id"));
  if (out.eos.empty() && fallback_eos >= 0) add_eos(fallback_eos);
  return out;
}

}  // namespace lowbit::tok
