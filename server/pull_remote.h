// What both sources of server/pull.h share: an HTTP(S) client on one origin that follows
// redirects by hand (another origin gets no Authorization header), and the fetch of one file into
// the store's blobs against the SHA-256 its source names. Private to server/*pull*.cc.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "server/pull.h"
#include "store/blobs.h"

namespace lowbit::server {

// What a pull tells its caller: a status, and for a file coming in its digest and byte counts.
using PullSay = std::function<void(const std::string& status, const std::string& digest, uint64_t total, uint64_t done)>;

class Remote {
 public:
  // origin: "http(s)://host[:port]"; token: a Bearer token for it ("" for none). `source` names
  // it in errors ("huggingface.co", "registry.ollama.ai").
  Remote(std::string origin, std::string token, std::string source);
  const std::string& origin() const { return origin_; }
  // A small document whole; `headers` are sent to the origin (e.g. Accept).
  std::string get(const std::string& path, const std::string& what, const std::multimap<std::string, std::string>& headers = {});
  // A file streamed to sink (false from it stops the transfer). from > 0 asks for its bytes from
  // there on (a Range, sent along redirects); on_start(partial) is told, before the first byte,
  // whether the answer is that part (206) or the whole file (200: a server that ignores ranges).
  void stream(const std::string& path, const std::string& what, const std::function<bool(const char*, size_t)>& sink,
              uint64_t from = 0, const std::function<void(bool)>& on_start = nullptr);

 private:
  void fetch(const std::string& path, const std::string& what, const std::multimap<std::string, std::string>& headers,
             const std::function<bool(const char*, size_t)>& sink, uint64_t from = 0,
             const std::function<void(bool)>& on_start = nullptr);
  std::string origin_, token_, source_;
};

// The file at `path` into `blobs` as "sha256:" + sha256 (its size `size`, for progress), unless
// it is there already; `label` names it in progress lines ("pulling " + label). Returns the digest.
std::string fetch_blob(Remote& remote, const std::string& path, const std::string& what, const std::string& sha256,
                       uint64_t size, const std::string& label, const BlobStore& blobs, const PullSay& say,
                       const std::atomic<bool>* cancel);

// The end of a pull: `name` stored as `stored` from `files` (name -> blob digest), recorded as
// pulled as `name` from what `identity` names (digests: the files', or a manifest's); the fetched
// blobs are removed afterwards (the stored model is a converted copy, and keeping them would hold
// every model twice on disk).
StoredModel store_pulled(ModelStore& store, const BlobStore& blobs, const std::string& name, const std::string& stored,
                         const std::map<std::string, std::string>& files, const std::vector<std::string>& identity,
                         CreateOptions co, const PullSay& say);
// Whether the store holds `stored` pulled as `name` from what `identity` names (nothing to fetch).
bool already_pulled(const ModelStore& store, const std::string& name, const std::string& stored,
                    const std::vector<std::string>& digests);

// The two sources (hf_pull.cc, ollama_pull.cc).
StoredModel pull_from_hub(ModelStore& store, const BlobStore& blobs, const std::string& name, const PullOptions& opt,
                          const PullSay& say);
StoredModel pull_from_registry(ModelStore& store, const BlobStore& blobs, const std::string& name,
                               const PullOptions& opt, const PullSay& say);

}  // namespace lowbit::server
