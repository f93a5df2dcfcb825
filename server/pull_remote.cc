#include "server/pull_remote.h"

#include <algorithm>
#include <exception>
#include <tuple>
#include <utility>

#include <httplib.h>

#include "kernels/error.h"

namespace lowbit::server {
namespace {

// "scheme://host[:port]" and the rest of an absolute URL.
std::pair<std::string, std::string> split_url(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t path = scheme == std::string::npos ? std::string::npos : url.find('/', scheme + 3);
  if (path == std::string::npos) return {url, "/"};
  return {url.substr(0, path), url.substr(path)};
}

}  // namespace

Remote::Remote(std::string origin, std::string token, std::string source)
    : origin_(std::move(origin)), token_(std::move(token)), source_(std::move(source)) {
  if (!httplib::Client(origin_).is_valid())
    throw Error(ErrorCode::invalid_argument, "'" + origin_ + "' is not an http(s) URL");
}

std::string Remote::get(const std::string& path, const std::string& what,
                        const std::multimap<std::string, std::string>& headers) {
  std::string body;
  fetch(path, what, headers, [&](const char* data, size_t n) {
    body.append(data, n);
    return true;
  });
  return body;
}

void Remote::stream(const std::string& path, const std::string& what,
                    const std::function<bool(const char*, size_t)>& sink, uint64_t from,
                    const std::function<void(bool)>& on_start) {
  fetch(path, what, {}, sink, from, on_start);
}

// Redirects by hand: the bytes of a large file come from another origin (a CDN's signed URL),
// which gets neither the token nor the origin's headers.
void Remote::fetch(const std::string& path, const std::string& what,
                   const std::multimap<std::string, std::string>& headers,
                   const std::function<bool(const char*, size_t)>& sink, uint64_t from,
                   const std::function<void(bool)>& on_start) {
  std::string origin = origin_, at = path;
  for (int hop = 0; hop < 8; ++hop) {
    httplib::Client client(origin);
    client.set_connection_timeout(30, 0);
    client.set_read_timeout(120, 0);
    const bool home = origin == origin_;
    if (home && !token_.empty()) client.set_bearer_token_auth(token_);
    int status = 0;
    std::string location;
    httplib::Headers sent = home ? httplib::Headers(headers.begin(), headers.end()) : httplib::Headers{};
    if (from > 0) sent.emplace("Range", "bytes=" + std::to_string(from) + "-");
    auto r = client.Get(
        at, sent,
        [&](const httplib::Response& head) {
          status = head.status;
          location = head.get_header_value("Location");
          if (on_start && (status == 200 || (from > 0 && status == 206))) on_start(status == 206);
          return true;
        },
        [&](const char* data, size_t n) { return (status != 200 && status != 206) || sink(data, n); });
    if (status >= 300 && status < 400 && !location.empty()) {
      if (location.find("://") == std::string::npos) location = origin + location;  // relative
      std::tie(origin, at) = split_url(location);
      continue;
    }
    if (!r) throw Error(ErrorCode::io, origin + at + ": " + httplib::to_string(r.error()));
    if (r->status == 404 || r->status == 401)  // the Hub answers 401 for a repository it will not show
      throw Error(ErrorCode::not_found, what + ": not on " + source_ + " (HTTP " + std::to_string(r->status) +
                                            (token_.empty() && r->status == 401 ? "; a private or gated one needs a token" : "") +
                                            ")");
    if (r->status != 200 && !(from > 0 && r->status == 206))
      throw Error(ErrorCode::io, origin + at + ": HTTP " + std::to_string(r->status));
    return;
  }
  throw Error(ErrorCode::io, origin_ + path + ": too many redirects");
}

std::string fetch_blob(Remote& remote, const std::string& path, const std::string& what, const std::string& sha256,
                       uint64_t size, const std::string& label, const BlobStore& blobs, const PullSay& say,
                       const std::atomic<bool>* cancel) {
  const std::string digest = "sha256:" + sha256;
  auto cancelled = [&] { return cancel && cancel->load(); };
  if (!blobs.has(digest)) {
    // Resumable: what an interrupted pull got is kept, and only the rest is asked for.
    BlobStore::Writer w(blobs, digest, true);
    if (w.size() >= size && size > 0) w.restart();  // as long as the whole yet never committed: start over
    const uint64_t from = w.size();
    if (from > 0) say("resuming " + label + " at byte " + std::to_string(from), digest, size, from);
    uint64_t last = 0;
    std::exception_ptr failed;  // nothing is thrown through the HTTP client
    auto write = [&](const char* data, size_t n) {
      try {
        if (failed) return false;
        w.write(data, n);
        if (w.size() - last >= (8u << 20) || w.size() == size) {
          last = w.size();
          say("pulling " + label, digest, size, w.size());
        }
      } catch (...) {
        failed = std::current_exception();
        return false;
      }
      return !cancelled();
    };
    auto start = [&](bool partial) {  // the whole file again (a server that ignores ranges): from 0
      try {
        if (!partial && w.size() > 0) w.restart();
      } catch (...) {
        failed = std::current_exception();
      }
    };
    try {
      remote.stream(path, what, write, from, start);
    } catch (const Error&) {
      if (!failed && !cancelled()) throw;
    }
    if (failed) std::rethrow_exception(failed);
    if (cancelled()) throw Error(ErrorCode::cancelled, "pulling " + what + ": interrupted");
    w.commit();  // refuses bytes that are not the named ones
  }
  say("pulling " + label, digest, size, size);
  return digest;
}

namespace {

// "NAME (sha256:..., sha256:...)": what a pulled model is recorded as made from.
std::string pulled_from(const std::string& name, std::vector<std::string> digests) {
  std::sort(digests.begin(), digests.end());
  std::string out = name + " (";
  for (size_t i = 0; i < digests.size(); ++i) out += (i ? ", " : "") + digests[i];
  return out + ")";
}

}  // namespace

bool already_pulled(const ModelStore& store, const std::string& name, const std::string& stored,
                    const std::vector<std::string>& digests) {
  try {
    const auto m = store.find(stored);
    return m && m->details.parent_model == pulled_from(name, digests);
  } catch (const Error&) {
    return false;
  }
}

StoredModel store_pulled(ModelStore& store, const BlobStore& blobs, const std::string& name, const std::string& stored,
                         const std::map<std::string, std::string>& files, const std::vector<std::string>& identity,
                         CreateOptions co, const PullSay& say) {
  co.parent = pulled_from(name, identity);
  say("creating " + stored, "", 0, 0);
  StoredModel m;
  {
    const BlobStore::Staged staged(blobs, files);
    m = store.create(stored, staged.source(), co);
  }
  for (const auto& [file, digest] : files) blobs.remove(digest);
  return m;
}

StoredModel pull_model(ModelStore& store, const BlobStore& blobs, const std::string& name, const PullOptions& opt,
                       const std::function<void(const PullProgress&)>& progress) {
  const PullSay say = [&](const std::string& status, const std::string& digest, uint64_t total, uint64_t done) {
    if (progress) progress({status, digest, total, done});
  };
  StoredModel m = is_hub_name(name) ? pull_from_hub(store, blobs, name, opt, say)
                                    : pull_from_registry(store, blobs, name, opt, say);
  say("success", "", 0, 0);
  return m;
}

}  // namespace lowbit::server
