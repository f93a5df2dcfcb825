// Embeddings: Ollama's POST /api/embed (and its older /api/embeddings) and OpenAI's
// POST /v1/embeddings.
//
// Pooling: the mean over the input's tokens of the model's last hidden states after its final
// norm (what the output head reads; ForwardOptions::hidden), L2-normalized, as Ollama returns
// unit vectors; with `dimensions`, its first that many, normalized (OpenAI's shortened vectors).
// These are generative models, not trained embedders: the vectors are what the model holds,
// useful for similarity, not tuned for it.
//
// An input runs as one forward pass on the HTTP thread with its own KV cache and workspace,
// beside the engine's batches (Model::forward is safe on several threads with separate caches).
#include <chrono>
#include <cmath>

#include "server/context.h"

namespace lowbit::server {
namespace {

using nlohmann::json;

struct Embedded {
  std::vector<std::vector<float>> vectors;
  int64_t tokens = 0;
  double load_seconds = 0, total_seconds = 0;
};

Embedded embed(Context& ctx, const EmbedRequest& req, const char* input_field) {
  const auto t0 = std::chrono::steady_clock::now();
  auto lease = ctx.registry.acquire(req.model, req.keep_alive);
  const LoadedModel& m = **lease;
  const Model& model = *m.model;
  const int64_t dim = model.config().dim;
  if (req.dimensions > dim)
    throw RequestError(400, "dimensions",
                       "dimensions: must be at most " + std::to_string(dim) + " (the model's hidden size), got " +
                           std::to_string(req.dimensions));
  const int64_t keep = req.dimensions ? req.dimensions : dim;
  Embedded out;
  out.load_seconds = lease->load_seconds();
  Workspace ws(model.backend());
  for (size_t i = 0; i < req.input.size(); ++i) {
    std::string field = input_field;  // appended: "[" + std::string trips GCC 12's -Wrestrict (bug 105651)
    if (req.input.size() > 1) field.append("[").append(std::to_string(i)).append("]");
    std::vector<int32_t> ids = model.tokenizer().encode(req.input[i], true);
    if (ids.empty()) throw RequestError(400, field, field + ": is empty (no tokens to embed)");
    if ((int64_t)ids.size() > m.ctx) {
      if (!req.truncate)
        throw RequestError(400, field, field + ": " + std::to_string(ids.size()) + " tokens, longer than the context of " +
                                           std::to_string(m.ctx) + " (truncate: true cuts it)");
      ids.resize(m.ctx);
    }
    const int64_t n = (int64_t)ids.size();
    auto cache = model.new_kv_cache(n);
    std::vector<float> hidden((size_t)(n * dim));  // (n, dim)
    ForwardOptions opt;
    opt.hidden = hidden.data();
    const SeqChunk chunk{cache.get(), ids.data(), n, 0, LogitRows::none};
    model.forward(std::span<const SeqChunk>(&chunk, 1), ws, nullptr, opt);
    std::vector<double> mean((size_t)keep, 0.0);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t d = 0; d < keep; ++d) mean[d] += hidden[t * dim + d];
    double norm = 0;
    for (double& v : mean) {
      v /= (double)n;
      norm += v * v;
    }
    norm = std::sqrt(norm);
    std::vector<float> vec((size_t)keep);
    for (int64_t d = 0; d < keep; ++d) vec[d] = (float)(norm > 0 ? mean[d] / norm : 0.0);
    out.vectors.push_back(std::move(vec));
    out.tokens += n;
  }
  out.total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

// OpenAI's base64 encoding: the little-endian float32 bytes, base64 (RFC 4648) encoded.
std::string base64_floats(const std::vector<float>& v) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* b = reinterpret_cast<const unsigned char*>(v.data());  // x86-64 and aarch64 are little-endian
  const size_t n = v.size() * sizeof(float);
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t w = (uint32_t)b[i] << 16 | (i + 1 < n ? (uint32_t)b[i + 1] << 8 : 0) | (i + 2 < n ? b[i + 2] : 0);
    out += kAlphabet[w >> 18 & 63];
    out += kAlphabet[w >> 12 & 63];
    out += i + 1 < n ? kAlphabet[w >> 6 & 63] : '=';
    out += i + 2 < n ? kAlphabet[w & 63] : '=';
  }
  return out;
}

}  // namespace

void add_embed_routes(httplib::Server& http, Context& ctx) {
  http.Post("/api/embed", [&ctx](const httplib::Request& req, httplib::Response& res) {
    try {
      const EmbedRequest r = parse_embed(parse_body(req.body));
      const Embedded e = embed(ctx, r, "input");
      set_json(res, {{"model", r.model},
                     {"embeddings", e.vectors},
                     {"total_duration", (int64_t)(e.total_seconds * 1e9)},
                     {"load_duration", (int64_t)(e.load_seconds * 1e9)},
                     {"prompt_eval_count", e.tokens}});
    } catch (const std::exception& e) {
      answer_exception(res, e, false);
    }
  });
  // The older route: {"model", "prompt"} -> {"embedding": [...]}.
  http.Post("/api/embeddings", [&ctx](const httplib::Request& req, httplib::Response& res) {
    try {
      const auto body = parse_body(req.body);
      EmbedRequest r;
      r.model = required_string(body, "model");
      r.input.push_back(required_string(body, "prompt"));
      if (body.contains("keep_alive") && !body["keep_alive"].is_null())
        r.keep_alive = parse_keep_alive(body["keep_alive"], "keep_alive");
      set_json(res, {{"embedding", embed(ctx, r, "prompt").vectors[0]}});
    } catch (const std::exception& e) {
      answer_exception(res, e, false);
    }
  });
  http.Post("/v1/embeddings", [&ctx](const httplib::Request& req, httplib::Response& res) {
    try {
      const auto body = parse_body(req.body);
      bool base64 = false;  // the openai client asks for base64 by default
      if (body.contains("encoding_format") && !body["encoding_format"].is_null()) {
        const json& f = body["encoding_format"];
        if (f != "float" && f != "base64")
          throw RequestError(400, "encoding_format", "encoding_format: must be \"float\" or \"base64\"");
        base64 = f == "base64";
      }
      const EmbedRequest r = parse_embed(body);
      const Embedded e = embed(ctx, r, "input");
      json data = json::array();
      for (size_t i = 0; i < e.vectors.size(); ++i) {
        json v = base64 ? json(base64_floats(e.vectors[i])) : json(e.vectors[i]);
        data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", v}});
      }
      set_json(res, {{"object", "list"},
                     {"data", data},
                     {"model", r.model},
                     {"usage", {{"prompt_tokens", e.tokens}, {"total_tokens", e.tokens}}}});
    } catch (const std::exception& e) {
      answer_exception(res, e, true);
    }
  });
}

}  // namespace lowbit::server
