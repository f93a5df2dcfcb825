// An Ollama registry (server/pull.h): the distribution API's manifest of a model, then its layers'
// blobs (GET /v2/NAMESPACE/MODEL/manifests/TAG, /v2/NAMESPACE/MODEL/blobs/DIGEST).
#include <limits>
#include <map>
#include <regex>

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "server/model_defaults.h"
#include "server/pull_remote.h"
#include "store/sha256.h"

namespace lowbit::server {
namespace {

using json = nlohmann::json;

constexpr const char* kRegistry = "registry.ollama.ai";

struct RegistryName {
  std::string host, ns, model, tag, stored;
};

RegistryName parse_name(const std::string& name) {
  RegistryName r;
  std::string path = name;
  const size_t slash = path.rfind('/'), colon = path.rfind(':');
  r.tag = colon != std::string::npos && (slash == std::string::npos || colon > slash) ? path.substr(colon + 1) : "latest";
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) path.resize(colon);
  std::vector<std::string> parts;
  for (size_t at = 0; at <= path.size();) {
    const size_t end = std::min(path.find('/', at), path.size());
    parts.push_back(path.substr(at, end - at));
    at = end + 1;
  }
  if (parts.size() == 1) r.host = kRegistry, r.ns = "library", r.model = parts[0];
  else if (parts.size() == 2) r.host = kRegistry, r.ns = parts[0], r.model = parts[1];
  else if (parts.size() == 3) r.host = parts[0], r.ns = parts[1], r.model = parts[2];
  else throw Error(ErrorCode::invalid_argument, "'" + name + "': not [HOST/][NAMESPACE/]MODEL[:TAG]");
  static const std::regex kPart(R"([A-Za-z0-9][A-Za-z0-9._-]*)"), kHost(R"([A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]+)?)");
  for (const std::string* p : {&r.ns, &r.model, &r.tag})
    if (!std::regex_match(*p, kPart) || p->find("..") != std::string::npos)
      throw Error(ErrorCode::invalid_argument, "'" + name + "': '" + *p + "' is not a name part ([A-Za-z0-9._-])");
  if (!std::regex_match(r.host, kHost)) throw Error(ErrorCode::invalid_argument, "'" + name + "': bad registry host");
  r.stored = ModelStore::normalize((r.ns == "library" ? "" : r.ns + "/") + r.model + ":" + r.tag);
  return r;
}

// A layer's media type without its parameters ("application/vnd.ollama.image.template; name=x").
std::string media_type(const json& layer) {
  const std::string t = layer.value("mediaType", "");
  return t.substr(0, t.find(';'));
}

}  // namespace

StoredModel pull_from_registry(ModelStore& store, const BlobStore& blobs, const std::string& name,
                               const PullOptions& opt, const PullSay& say) {
  const RegistryName r = parse_name(name);
  Remote reg(std::string(opt.insecure ? "http://" : "https://") + r.host, "", r.host);
  const std::string base = "/v2/" + r.ns + "/" + r.model;
  say("pulling manifest", "", 0, 0);
  const std::string text = reg.get(base + "/manifests/" + r.tag, name,
                                   {{"Accept", "application/vnd.docker.distribution.manifest.v2+json"}});
  json layers;
  try {
    layers = json::parse(text).at("layers");
  } catch (const json::exception& e) {
    throw Error(ErrorCode::io, r.host + ": the manifest of " + name + " is not a registry manifest: " + e.what());
  }
  if (!layers.is_array()) throw Error(ErrorCode::io, r.host + ": the manifest of " + name + " has no list of layers");
  // A small layer (system, params) whole, checked against its digest.
  auto small = [&](const json& layer) {
    const std::string digest = layer.value("digest", "");
    const std::string body = reg.get(base + "/blobs/" + digest, name + " " + media_type(layer));
    if ("sha256:" + sha256_hex(body) != digest)
      throw Error(ErrorCode::io, name + ": its " + media_type(layer) + " layer does not hash to " + digest);
    return body;
  };
  CreateOptions co;
  co.threads = opt.threads;
  co.cancel = opt.cancel;
  const json* model = nullptr;
  for (const json& layer : layers) {
    const std::string type = media_type(layer);
    if (type == "application/vnd.ollama.image.model") {
      model = &layer;
    } else if (type == "application/vnd.ollama.image.system") {
      co.system = small(layer);
    } else if (type == "application/vnd.ollama.image.params") {
      json params;
      try {
        params = json::parse(small(layer));
      } catch (const json::exception& e) {
        throw Error(ErrorCode::io, name + ": its params layer is not JSON: " + e.what());
      }
      // The options lowbit has; others (Ollama's own, e.g. mirostat) are left out.
      for (const auto& [k, v] : params.is_object() ? params.items() : json::object().items()) {
        const nlohmann::ordered_json one = {{k, v}};
        try {
          check_parameters(one, std::numeric_limits<int32_t>::max());
          co.parameters[k] = v;
        } catch (const RequestError&) {
        }
      }
    }  // the template (Go, not run here: the GGUF's own chat template serves), license: not kept
  }
  if (!model)
    throw Error(ErrorCode::not_found, name + ": has no GGUF model layer (lowbit pulls the GGUF models of a registry)");
  const std::string digest = model->value("digest", "");
  if (digest.rfind("sha256:", 0) != 0)
    throw Error(ErrorCode::io, name + ": its model layer's digest '" + digest + "' is not a sha256 one");
  // Up to date when stored from this very manifest (its digest stands for every layer).
  const std::string manifest = "sha256:" + sha256_hex(text);
  if (already_pulled(store, name, r.stored, {digest, manifest})) {
    say("up to date: " + r.stored, "", 0, 0);
    return *store.find(r.stored);
  }
  const std::string got = fetch_blob(reg, base + "/blobs/" + digest, name, digest.substr(7), model->value("size", (uint64_t)0),
                                     "model", blobs, say, opt.cancel);
  return store_pulled(store, blobs, name, r.stored, {{"model.gguf", got}}, {digest, manifest}, co, say);
}

}  // namespace lowbit::server
