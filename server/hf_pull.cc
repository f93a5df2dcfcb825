#include "server/pull_remote.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <memory>
#include <regex>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "store/sha256.h"

namespace lowbit::server {
namespace {

using json = nlohmann::json;

std::string upper(std::string s) {
  for (char& c : s) c = (char)std::toupper((unsigned char)c);
  return s;
}

// How a Hub name may begin (all read as hf.co/).
constexpr const char* kHubPrefixes[] = {"hf.co/", "huggingface.co/", "https://huggingface.co/", "https://hf.co/"};

struct HubName {
  std::string repo;   // USER/REPO
  std::string quant;  // "" when none was named
  std::string stored; // the store's name for it: hf.co/USER/REPO:QUANT (tag "latest" when none)
};

HubName parse_name(const std::string& name) {
  std::string rest;
  for (const char* prefix : kHubPrefixes)
    if (name.rfind(prefix, 0) == 0) rest = name.substr(std::string(prefix).size());
  if (rest.empty())
    throw Error(ErrorCode::invalid_argument,
                "'" + name + "': only Hugging Face models can be pulled, as hf.co/USER/REPO[:QUANT] (lowbit reaches "
                             "no Ollama registry; `lowbit create` imports a GGUF or HF directory you have)");
  HubName h;
  const size_t colon = rest.find(':');
  h.repo = rest.substr(0, colon);
  if (colon != std::string::npos) h.quant = rest.substr(colon + 1);
  static const std::regex kRepo(R"([A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)");
  if (!std::regex_match(h.repo, kRepo) || h.repo.find("..") != std::string::npos)
    throw Error(ErrorCode::invalid_argument, "'" + name + "': the repository must be USER/REPO");
  if (h.quant == "latest") h.quant.clear();
  h.stored = ModelStore::normalize("hf.co/" + h.repo + ":" + (h.quant.empty() ? "latest" : h.quant));
  return h;
}

// A repository path in a URL: each byte outside RFC 3986's unreserved set and '/' percent-encoded.
std::string url_path(const std::string& path) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') out += (char)c;
    else out += {'%', kHex[c >> 4], kHex[c & 15]};
  }
  return out;
}

struct HubFile {
  std::string path, sha256;  // sha256: the LFS object's, "" for a small file kept in git
  uint64_t size = 0;
};

// The quantization a GGUF's file name carries: the last word of its base name, words split at
// '-', '.' and ' ' ("model-Q4_K_M.gguf", "model.Q8_0.gguf": Q4_K_M, Q8_0).
std::string quant_of(const std::string& path) {
  const std::string stem = path.substr(path.rfind('/') + 1, std::string::npos);
  const std::string base = stem.substr(0, stem.size() - 5);  // less ".gguf"
  const size_t cut = base.find_last_of("-. ");
  return upper(cut == std::string::npos ? base : base.substr(cut + 1));
}

bool is_weights_gguf(const std::string& path) {
  static const std::regex kSplit(R"(.*-\d{5}-of-\d{5}\.gguf)");
  return path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0 &&
         path.find("mmproj") == std::string::npos && !std::regex_match(path, kSplit);
}

// Which files of the repository make the model, and the quantization to create it at.
std::vector<HubFile> choose(const std::vector<HubFile>& all, const HubName& h, std::string& quantize) {
  std::vector<HubFile> ggufs;
  for (const HubFile& f : all)
    if (is_weights_gguf(f.path)) ggufs.push_back(f);
  if (!ggufs.empty()) {
    std::string want = upper(h.quant);
    if (want.empty()) want = ggufs.size() == 1 ? quant_of(ggufs[0].path) : "Q4_K_M";
    std::string have;
    for (const HubFile& f : ggufs) {
      if (quant_of(f.path) == want) return {f};
      have += (have.empty() ? "" : ", ") + quant_of(f.path);
    }
    throw Error(ErrorCode::not_found, "hf.co/" + h.repo + (h.quant.empty() ? " (no quantization named)" : ":" + h.quant) +
                                          ": no such GGUF; it has " + have + " (name one as hf.co/" + h.repo + ":QUANT)");
  }
  static const std::regex kHf(R"((config\.json|generation_config\.json|tokenizer\.json|tokenizer\.model|tokenizer_config\.json|special_tokens_map\.json|.*\.safetensors|model\.safetensors\.index\.json))");
  std::vector<HubFile> out;
  bool config = false, weights = false;
  for (const HubFile& f : all)
    if (f.path.find('/') == std::string::npos && std::regex_match(f.path, kHf)) {
      out.push_back(f);
      config = config || f.path == "config.json";
      weights = weights || (f.path.size() > 12 && f.path.compare(f.path.size() - 12, 12, ".safetensors") == 0);
    }
  if (!config || !weights)
    throw Error(ErrorCode::not_found, "hf.co/" + h.repo + ": holds neither a GGUF file nor an HF model (config.json "
                                                           "and *.safetensors)");
  quantize = h.quant;  // a bit width or an Ollama quantization name; "" gives the store's default
  return out;
}

}  // namespace

bool is_hub_name(const std::string& name) {
  for (const char* prefix : kHubPrefixes)
    if (name.rfind(prefix, 0) == 0) return true;
  return false;
}

StoredModel pull_from_hub(ModelStore& store, const BlobStore& blobs, const std::string& name, const PullOptions& opt,
                          const PullSay& say) {
  const HubName h = parse_name(name);
  std::string endpoint = opt.endpoint;
  if (endpoint.empty()) endpoint = std::getenv("HF_ENDPOINT") ? std::getenv("HF_ENDPOINT") : "https://huggingface.co";
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  const std::string token = opt.token.empty() && std::getenv("HF_TOKEN") ? std::getenv("HF_TOKEN") : opt.token;
  Remote hub(endpoint, token, endpoint);
  say("pulling manifest", "", 0, 0);
  const std::string listing = hub.get("/api/models/" + h.repo + "/tree/main?recursive=true", "hf.co/" + h.repo);
  std::vector<HubFile> all;
  try {
    for (const json& e : json::parse(listing)) {
      if (e.value("type", "") != "file") continue;
      HubFile f;
      f.path = e.at("path").get<std::string>();
      f.size = e.value("size", (uint64_t)0);
      if (e.contains("lfs") && e["lfs"].is_object()) {
        f.sha256 = e["lfs"].value("oid", "");
        f.size = e["lfs"].value("size", f.size);
      }
      all.push_back(f);
    }
  } catch (const json::exception& e) {
    throw Error(ErrorCode::io, endpoint + ": the file listing of " + h.repo + " is not what the Hub writes: " + e.what());
  }
  CreateOptions co;
  co.threads = opt.threads;
  co.cancel = opt.cancel;
  const std::vector<HubFile> chosen = choose(all, h, co.quantize);
  // The small files kept in git first (named by their own hash once here), so that every digest
  // is known before a large file is fetched: a model pulled from the same files is up to date.
  std::map<std::string, std::string> files;  // name -> blob digest
  std::vector<std::string> digests;
  auto file_of = [](const HubFile& f) { return f.path.substr(f.path.rfind('/') + 1); };  // a GGUF may sit in a folder
  auto url_of = [&](const HubFile& f) { return "/" + h.repo + "/resolve/main/" + url_path(f.path); };
  for (const HubFile& f : chosen) {
    std::string digest = "sha256:" + f.sha256;  // an LFS object's is listed
    if (f.sha256.empty()) {
      const std::string body = hub.get(url_of(f), "hf.co/" + h.repo + "/" + f.path);
      digest = "sha256:" + sha256_hex(body);
      if (!blobs.has(digest)) {
        BlobStore::Writer w(blobs, digest);
        w.write(body.data(), body.size());
        w.commit();
      }
      files[file_of(f)] = digest;
    }
    digests.push_back(digest);
  }
  if (already_pulled(store, name, h.stored, digests)) {
    for (const auto& [file, digest] : files) blobs.remove(digest);
    say("up to date: " + h.stored, "", 0, 0);
    return *store.find(h.stored);
  }
  for (const HubFile& f : chosen)
    if (!f.sha256.empty())
      files[file_of(f)] = fetch_blob(hub, url_of(f), "hf.co/" + h.repo + "/" + f.path, f.sha256, f.size, f.path, blobs,
                                     say, opt.cancel);
  return store_pulled(store, blobs, name, h.stored, files, digests, co, say);
}

}  // namespace lowbit::server
