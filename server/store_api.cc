// Ollama's model-management routes over the model store (store/model_store.h): GET /api/tags,
// POST /api/show, GET /api/ps, POST /api/create, POST /api/copy, DELETE /api/delete, and the
// uploads /api/create's `files` name (store/blobs.h): HEAD and POST /api/blobs/sha256:<hex>;
// POST /api/pull from the Hugging Face Hub or an Ollama registry (server/pull.h).
#include <chrono>
#include <ctime>
#include <map>
#include <memory>

#include "kernels/error.h"
#include "server/context.h"
#include "server/pull.h"
#include "server/model_defaults.h"
#include "store/modelfile.h"

namespace lowbit::server {
namespace {

using nlohmann::json;

json details_json(const ModelDetails& d) {
  return {{"parent_model", d.parent_model},
          {"format", d.format},
          {"family", d.family},
          {"families", json::array({d.family})},
          {"parameter_size", d.parameter_size},
          {"quantization_level", d.quantization_level}};
}

json model_entry(const StoredModel& m) {
  json j = {{"name", m.name}, {"model", m.name}, {"size", m.size}, {"digest", m.digest}, {"details", details_json(m.details)}};
  if (!m.modified_at.empty()) j["modified_at"] = m.modified_at;  // clients parse it as a date when present
  return j;
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// A handler whose errors are answered in Ollama's shape.
template <class F>
httplib::Server::Handler ollama(F f) {
  return [f](const httplib::Request& req, httplib::Response& res) {
    try {
      f(req, res);
    } catch (const std::exception& e) {
      answer_exception(res, e, false);
    }
  };
}

}  // namespace

void add_store_routes(httplib::Server& http, Context& ctx) {
  http.Get("/api/tags", ollama([&ctx](const httplib::Request&, httplib::Response& res) {
    json models = json::array();
    for (const StoredModel& m : ctx.store.list()) models.push_back(model_entry(m));
    set_json(res, {{"models", models}});
  }));

  http.Post("/api/show", ollama([&ctx](const httplib::Request& req, httplib::Response& res) {
    const std::string name = model_name_field(parse_body(req.body));
    const std::optional<StoredModel> m = ctx.store.find(name);
    if (!m) throw RequestError(404, "model", "model: '" + name + "' not found in " + ctx.store.root());
    // The template and model facts come from a loaded copy when there is one, else from a load
    // that keeps it for the default keep_alive (as a first request would).
    auto lease = ctx.registry.acquire(name, KeepAlive{});
    const LoadedModel& lm = **lease;
    const ModelConfig& c = lm.model->config();
    const std::string arch = m->details.family.empty() ? "llama" : m->details.family;
    json info = {{"general.architecture", arch},
                 {arch + ".block_count", c.n_layers},
                 {arch + ".embedding_length", c.dim},
                 {arch + ".attention.head_count", c.n_heads},
                 {arch + ".attention.head_count_kv", c.n_kv_heads},
                 {arch + ".feed_forward_length", c.ffn_dim},
                 {arch + ".context_length", c.max_ctx},
                 {arch + ".vocab_size", c.vocab_size}};
    if (c.n_experts > 0) {  // as a GGUF of a mixture of experts names them
      info[arch + ".expert_count"] = c.n_experts;
      info[arch + ".expert_used_count"] = c.n_experts_used;
      info[arch + ".expert_feed_forward_length"] = c.moe_ffn_dim;
    }
    json caps = json::array({"completion"});
    if (lm.tool_syntax) caps.push_back("tools");  // as Ollama lists a template that offers tools
    if (lm.thinks) caps.push_back("thinking");
    const std::string templ = lm.chat_template ? lm.chat_template->source() : "";
    json out = {{"modelfile", write_modelfile(m->dir, m->defaults, templ)},
                {"parameters", parameters_text(m->defaults.parameters)},
                {"system", m->defaults.system},
                {"template", templ},
                {"details", details_json(m->details)},
                {"model_info", info},
                {"capabilities", caps}};
    if (!m->modified_at.empty()) out["modified_at"] = m->modified_at;
    set_json(res, out);
  }));

  http.Get("/api/ps", ollama([&ctx](const httplib::Request&, httplib::Response& res) {
    json models = json::array();
    for (const LoadedInfo& i : ctx.registry.loaded()) {
      // The memory the model holds, as Ollama's size counts it: weights and KV caches (running
      // requests' and the prompt cache's).
      const int64_t size = i.size_bytes + i.gauges.kv_bytes + i.gauges.prompt_cache_bytes;
      json e = {{"name", i.name}, {"model", i.name}, {"size", size}, {"size_vram", 0}};
      ModelDetails d;
      std::string digest;
      try {
        if (auto m = ctx.store.find(i.name)) {
          d = m->details;
          digest = m->digest;
        }
      } catch (const Error&) {
        // Loaded by path, not by a store name.
      }
      e["digest"] = digest;
      e["details"] = details_json(d);
      // A model kept forever: far in the future, as Ollama shows it.
      e["expires_at"] = i.forever ? "2318-01-01T00:00:00Z" : rfc3339(i.expires);
      models.push_back(e);
    }
    set_json(res, {{"models", models}});
  }));

  http.Post("/api/create", ollama([&ctx](const httplib::Request& req, httplib::Response& res) {
    const auto body = parse_body(req.body);
    const std::string name = model_name_field(body);
    std::string from;
    CreateOptions opt;
    std::unique_ptr<BlobStore::Staged> staged;  // `files`: the uploads, linked under their names
    const bool has_files = body.contains("files") && !body["files"].is_null();
    if (has_files && body.contains("from") && !body["from"].is_null())
      throw RequestError(400, "files", "files: give either from or files, not both");
    if (has_files) {
      if (!body["files"].is_object()) throw RequestError(400, "files", "files: must be an object of file name -> digest");
      std::map<std::string, std::string> files;
      for (const auto& [file, digest] : body["files"].items()) {
        if (!digest.is_string()) throw RequestError(400, "files." + file, "files." + file + ": must be a digest string");
        files[file] = digest.get<std::string>();
      }
      try {
        staged = std::make_unique<BlobStore::Staged>(ctx.blobs, files);
      } catch (const Error& e) {
        if (e.code() != ErrorCode::invalid_argument) throw;
        const std::string what = e.what();
        throw RequestError(400, what.substr(0, what.find(':')), what);
      }
      from = staged->source();
      // Recorded as made from the uploads (the links it is read through are gone afterwards).
      for (const auto& [file, digest] : files) opt.parent += (opt.parent.empty() ? "" : ", ") + file + " (" + digest + ")";
    } else if (body.contains("from") && !body["from"].is_null()) {
      from = required_string(body, "from");
    } else if (body.contains("path") && !body["path"].is_null()) {
      from = required_string(body, "path");
    } else {
      throw RequestError(400, "from", "from: is required (a GGUF file, an HF directory, a manifest directory or a "
                                      "stored model), or files: uploaded blobs (POST /api/blobs/DIGEST)");
    }
    if (body.contains("quantize") && !body["quantize"].is_null()) {
      if (!body["quantize"].is_string()) throw RequestError(400, "quantize", "quantize: must be a string");
      opt.quantize = body["quantize"].get<std::string>();
    }
    if (body.contains("template") && !body["template"].is_null()) {
      if (!body["template"].is_string()) throw RequestError(400, "template", "template: must be a string");
      opt.chat_template = body["template"].get<std::string>();
    }
    // What a Modelfile may also say that lowbit has no place for: refused rather than dropped.
    for (const char* key : {"messages", "adapters"})
      if (body.contains(key) && !body[key].is_null() && !body[key].empty())
        throw RequestError(400, key, std::string(key) + ": " +
                                         (std::string(key) == "messages" ? "a preset conversation (MESSAGE) is not kept"
                                                                         : "LoRA adapters (ADAPTER) are not supported"));
    if (body.contains("system") && !body["system"].is_null()) {
      if (!body["system"].is_string()) throw RequestError(400, "system", "system: must be a string");
      opt.system = body["system"].get<std::string>();
    }
    if (body.contains("parameters") && !body["parameters"].is_null()) {
      check_parameters(body["parameters"], ctx.params.ctx);
      opt.parameters = body["parameters"];
    }
    opt.threads = ctx.params.threads;
    bool stream = true;
    if (body.contains("stream") && !body["stream"].is_null()) {
      if (!body["stream"].is_boolean()) throw RequestError(400, "stream", "stream: must be a boolean");
      stream = body["stream"].get<bool>();
    }
    // A stored model's name as `from` copies it (Ollama's FROM NAME); a path is imported.
    std::string source = from;
    try {
      if (!staged)
        if (auto m = ctx.store.find(from)) source = m->dir;
    } catch (const Error&) {
    }
    std::vector<std::string> lines;
    try {
      ctx.store.create(name, source, opt, [&](const std::string& line) { lines.push_back(line); });
    } catch (const Error& e) {
      // What the client gave is no model this reader knows (a malformed or too new file): a 400,
      // naming an upload by its file name rather than the link it was read through.
      const ErrorCode c = e.code();
      if (c != ErrorCode::unspecified && c != ErrorCode::bad_format && c != ErrorCode::version) throw;
      std::string what = e.what();
      if (staged)
        for (size_t at; (at = what.find(staged->dir() + "/")) != std::string::npos;)
          what.replace(at, staged->dir().size() + 1, "files.");
      throw RequestError(400, staged ? "files" : "from", what);
    }
    if (!stream) {
      set_json(res, {{"status", "success"}});
      return;
    }
    std::string out;
    for (const std::string& l : lines) out += dump(json{{"status", l}}) + "\n";
    out += dump(json{{"status", "success"}}) + "\n";
    res.set_content(out, "application/x-ndjson");
  }));

  // Blobs: HEAD (a GET answers it) says whether one is here; POST uploads one, streamed to disk as
  // it arrives and kept only when its bytes hash to the digest in the path (201; 400 otherwise).
  const char* kBlob = R"(/api/blobs/([^/]+))";
  http.Get(kBlob, ollama([&ctx](const httplib::Request& req, httplib::Response& res) {
    const std::string digest = req.matches[1];
    try {
      res.status = ctx.blobs.has(digest) ? 200 : 404;
    } catch (const Error& e) {
      throw RequestError(400, "digest", e.what());
    }
    if (res.status == 404) ollama_error(res, 404, "blob " + digest + " is not here");
  }));
  http.Post(kBlob, [&ctx](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read) {
    try {
      const std::string digest = req.matches[1];
      std::unique_ptr<BlobStore::Writer> w;
      try {
        w = std::make_unique<BlobStore::Writer>(ctx.blobs, digest);
      } catch (const Error& e) {
        if (e.code() == ErrorCode::invalid_argument) throw RequestError(400, "digest", e.what());
        throw;
      }
      std::string failed;
      read([&](const char* data, size_t n) {
        try {
          w->write(data, n);
          return true;
        } catch (const Error& e) {
          failed = e.what();
          return false;
        }
      });
      if (!failed.empty()) throw Error(ErrorCode::io, failed);
      try {
        w->commit();
      } catch (const Error& e) {
        if (e.code() == ErrorCode::invalid_argument) throw RequestError(400, "digest", e.what());
        throw;
      }
      res.status = 201;
    } catch (const std::exception& e) {
      answer_exception(res, e, false);
    }
  });

  // A model by Ollama's name for it (server/pull.h), its progress streamed as Ollama streams a
  // pull's: status lines, with digest, total and completed while a file comes.
  http.Post("/api/pull", ollama([&ctx](const httplib::Request& req, httplib::Response& res) {
    const auto body = parse_body(req.body);
    const std::string name = model_name_field(body);
    bool stream = true;
    if (body.contains("stream") && !body["stream"].is_null()) {
      if (!body["stream"].is_boolean()) throw RequestError(400, "stream", "stream: must be a boolean");
      stream = body["stream"].get<bool>();
    }
    PullOptions opt;
    opt.threads = ctx.params.threads;
    if (body.contains("insecure") && !body["insecure"].is_null()) {
      if (!body["insecure"].is_boolean()) throw RequestError(400, "insecure", "insecure: must be a boolean");
      opt.insecure = body["insecure"].get<bool>();
    }
    auto line = [](const PullProgress& p) {
      json j = {{"status", p.status}};
      if (!p.digest.empty()) j.update({{"digest", p.digest}, {"total", p.total}, {"completed", p.completed}});
      return dump(j) + "\n";
    };
    if (!stream) {
      pull_model(ctx.store, ctx.blobs, name, opt, nullptr);
      set_json(res, {{"status", "success"}});
      return;
    }
    // Runs on the worker thread after this handler returns: errors become a last {"error"} line.
    res.set_chunked_content_provider("application/x-ndjson", [&ctx, name, opt, line](size_t, httplib::DataSink& sink) {
      auto cancel = std::make_shared<std::atomic<bool>>(false);
      PullOptions o = opt;
      o.cancel = cancel.get();
      try {
        pull_model(ctx.store, ctx.blobs, name, o, [&](const PullProgress& p) {
          const std::string l = line(p);
          if (!sink.write(l.data(), l.size())) cancel->store(true);  // the client left: stop
        });
      } catch (const std::exception& e) {
        const std::string l = dump(json{{"error", e.what()}}) + "\n";
        sink.write(l.data(), l.size());
      }
      sink.done();
      return true;
    });
  }));
  http.Post("/api/push", [](const httplib::Request&, httplib::Response& res) {
    ollama_error(res, 501, "/api/push is not supported: lowbit reaches no registry to push to");
  });

  http.Post("/api/copy", ollama([&ctx](const httplib::Request& req, httplib::Response& res) {
    const auto body = parse_body(req.body);
    const std::string source = required_string(body, "source");
    const std::string destination = required_string(body, "destination");
    ctx.store.copy(source, destination);
    res.status = 200;
  }));

  http.Delete("/api/delete", ollama([&ctx](const httplib::Request& req, httplib::Response& res) {
    const std::string name = model_name_field(parse_body(req.body));
    const std::optional<StoredModel> m = ctx.store.find(name);
    if (!m) throw RequestError(404, "model", "model: '" + name + "' not found in " + ctx.store.root());
    ctx.store.remove(name);
    // Unloaded once no request uses it (another name with the same digest keeps it, if any).
    bool still_named = false;
    for (const StoredModel& s : ctx.store.list()) still_named |= s.digest == m->digest;
    if (!still_named) ctx.registry.evict("sha256:" + m->digest);
    res.status = 200;
  }));
}

}  // namespace lowbit::server
