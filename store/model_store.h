// The model store: named models on disk, shared by the CLI (`lowbit create/list/show/rm/cp`,
// `lowbit run NAME`) and the server (`lowbit serve`: /api/tags, /api/show, /api/create, ...).
//
// Names follow Ollama's shape, `name[:tag]` with the tag `latest` when none is given; each stored
// model is a lowbit manifest directory (convert/'s output) under the store's root. Writes go to a
// temporary directory renamed into place, so a reader (another process included) never sees a
// half-written model, and a failed create leaves nothing behind.
//
// Thread safety: a ModelStore holds only its root path; every call reads the disk afresh, so
// instances in several threads or processes see each other's changes.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lowbit {

// A stored model's defaults, as Ollama's Modelfile SYSTEM and PARAMETER lines set them: what a
// request (or `lowbit run`) gets where it says nothing itself. Kept as defaults.json in the model's
// directory. The parameters are Ollama's option names (temperature, top_k, stop, num_ctx, ...),
// checked by whoever takes them from a user (the server's options parser).
struct ModelDefaults {
  std::string system;  // "" when none
  nlohmann::ordered_json parameters = nlohmann::ordered_json::object();
  bool empty() const { return system.empty() && parameters.empty(); }
};

// What Ollama's /api/tags and /api/show call "details", from the stored manifest.
struct ModelDetails {
  std::string format = "lowbit";     // the on-disk format
  std::string family;                // architecture: "llama", "qwen2", ...
  std::string parameter_size;        // "135M", "1.1B"
  std::string quantization_level;    // the weights' dominant type: "Q4_G32_ASYM", "Q8_G32_SYM", "F32"
  std::string parent_model;          // what it was created from (path or name), "" if unknown
};

struct StoredModel {
  std::string name;         // normalized: "smollm2:latest"
  std::string dir;          // its manifest directory (what load_model() opens)
  int64_t size = 0;         // bytes on disk
  std::string modified_at;  // RFC 3339, UTC
  std::string digest;       // hex sha256 of its manifest.json, the identity of its contents
  ModelDetails details;
  ModelDefaults defaults;
};

struct CreateOptions {
  // "" keeps the source's types (a GGUF's own, 4 bits for an HF directory); otherwise a lowbit
  // bit width ("8", "4", "2", "1") or an Ollama/llama.cpp quantization name ("q8_0", "q4_0",
  // "q4_1", "q4_K_M", "q4_K_S", ...) mapped to the nearest lowbit type at no fewer bits.
  std::string quantize;
  // A chat template (Jinja, as a Hugging Face tokenizer_config.json carries it) replacing the
  // source's: kept as chat_template.jinja beside the model's tokenizer, which readers prefer, as
  // transformers does. Refused when it does not parse (or is an Ollama Go template).
  std::optional<std::string> chat_template;
  // Defaults (Ollama's SYSTEM and PARAMETER): a system message replacing the source's, and
  // parameters merged over the source's (a stored model's own), each name replacing its value.
  std::optional<std::string> system;
  nlohmann::ordered_json parameters = nlohmann::ordered_json::object();
  // What the model is recorded as made from (details.parent_model); "": `from` itself (a path made
  // absolute, or a stored model's name). A pull records the name it pulled and the files' digests.
  std::string parent;
  int threads = 0;  // 0: all cores
  // Set (by SIGINT, a client gone) to stop between tensors: create() then throws
  // Error(cancelled) and leaves nothing behind.
  const std::atomic<bool>* cancel = nullptr;
};

class ModelStore {
 public:
  // root is created on the first write, not here.
  explicit ModelStore(std::string root);
  // $LOWBIT_MODELS if set, else $HOME/.lowbit/models.
  static std::string default_root();
  // "x" -> "x:latest". Throws Error(invalid_argument) naming the name when it is empty, too long,
  // or holds characters outside [A-Za-z0-9._-/:] (no "..", no leading '/', at most one ':').
  static std::string normalize(const std::string& name);

  const std::string& root() const { return root_; }
  std::vector<StoredModel> list() const;  // sorted by name
  std::optional<StoredModel> find(const std::string& name) const;

  // Imports `from` (a GGUF file, an HF directory or a manifest directory) as `name`, replacing a
  // model of that name; with opt.chat_template, under that template (its sha256 goes into the
  // manifest's recipe, so the model's digest differs from the same weights under another). progress: lines for a person ("converting 12/30 tensors"), may be null.
  // Throws Error: invalid_argument for a bad name or quantization, not_found / bad_format for
  // the source (the message names it).
  StoredModel create(const std::string& name, const std::string& from, const CreateOptions& opt = {},
                     const std::function<void(const std::string&)>& progress = nullptr);
  // Throws Error(not_found) when `from` is not stored; replaces `to`.
  StoredModel copy(const std::string& from, const std::string& to);
  // Throws Error(not_found) when not stored.
  void remove(const std::string& name);

  // What to load for a user's MODEL argument: an existing path (manifest dir, GGUF, HF dir) as
  // it is, else the stored model of that name. Throws Error(not_found) saying it is neither.
  std::string resolve(const std::string& name_or_path) const;

  // A manifest directory anywhere described as a stored model is (its name: the path), for
  // `lowbit show PATH`. Throws Error(not_found) when dir holds no manifest.json.
  static StoredModel describe(const std::string& dir);
  // The defaults of the stored model `name`; none when it has none, is not stored or `name` is no
  // model name (a path). Reads only its defaults.json.
  ModelDefaults defaults(const std::string& name) const;
  // The defaults in a model directory (none when it has no defaults.json); Error(bad_format)
  // naming the file when it is not what create() writes.
  static ModelDefaults read_defaults(const std::string& dir);

 private:
  std::string root_;
};

}  // namespace lowbit
