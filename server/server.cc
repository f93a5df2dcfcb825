#include "server/server.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "kernels/error.h"
#include "server/context.h"

namespace lowbit::server {
namespace {

using Clock = std::chrono::steady_clock;

// The routes this server answers, so request counts by route stay a short list (an unknown path
// counts as "other").
const std::set<std::string> kRoutes = {"/", "/health", "/metrics", "/api/version", "/api/tags", "/api/show",
                                       "/api/ps", "/api/generate", "/api/chat", "/api/embed", "/api/embeddings",
                                       "/api/create", "/api/copy", "/api/delete", "/api/pull", "/api/push",
                                       "/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings"};

bool is_openai_path(const std::string& path) { return path.rfind("/v1/", 0) == 0; }

// Start time of the request this thread is answering (httplib answers a request on one thread,
// pre-routing to logger).
thread_local Clock::time_point t_request_start;

// Equal strings in time independent of where they differ.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() != b.size();
  for (size_t i = 0; i < a.size(); ++i) diff |= (unsigned char)(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

// The connections answering a request now, by peer address and port as httplib reads them: from
// pre-routing to the logger, which httplib calls once a response's last byte is written.
class BusyConnections {
 public:
  void begin(const httplib::Request& req) {
    std::lock_guard<std::mutex> lock(mu_);
    peers_.insert({req.remote_addr, req.remote_port});
  }
  void end(const httplib::Request& req) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = peers_.find({req.remote_addr, req.remote_port});
    if (it != peers_.end()) peers_.erase(it);  // a request refused before routing never began
  }
  bool contains(const std::string& addr, int port) const {
    std::lock_guard<std::mutex> lock(mu_);
    return peers_.count({addr, port}) > 0;
  }

 private:
  mutable std::mutex mu_;
  std::multiset<std::pair<std::string, int>> peers_;
};

// An internet socket's address and port, local or peer; port -1 when fd is not one (or not
// connected, for the peer).
std::pair<std::string, int> socket_address(int fd, bool peer) {
  sockaddr_storage a{};
  socklen_t n = sizeof a;
  auto* sa = reinterpret_cast<sockaddr*>(&a);
  if ((peer ? getpeername(fd, sa, &n) : getsockname(fd, sa, &n)) != 0) return {"", -1};
  if (a.ss_family != AF_INET && a.ss_family != AF_INET6) return {"", -1};
  char host[NI_MAXHOST] = "";
  getnameinfo(sa, n, host, sizeof host, nullptr, 0, NI_NUMERICHOST);
  const int port = a.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port)
                                          : ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
  return {host, port};
}

// httplib (0.11) lets an idle keep-alive connection hold its worker thread until the keep-alive
// timeout, and its stop() joins every worker: a client that keeps a connection open would hold
// the server's exit for seconds. Shutting the read side of each idle connection ends that wait at
// once (a busy one, writing a response, would see the peer gone; once its response is out,
// httplib closes it, as the server has stopped listening). The connections are found among the
// process's descriptors (Linux's /proc/self/fd; elsewhere the wait stays): connected sockets on
// the server's port.
void end_idle_connections(int port, const BusyConnections& busy) {
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/self/fd", ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const int fd = std::atoi(it->path().filename().c_str());
    if (socket_address(fd, false).second != port) continue;
    const auto [addr, peer_port] = socket_address(fd, true);
    if (peer_port >= 0 && !busy.contains(addr, peer_port)) ::shutdown(fd, SHUT_RD);
  }
}

// A stored model's name first (the CLI lets an existing path win, but a server's working
// directory is no place a client knows: "bench" must not open ./bench), else a path.
ResolvedModel resolve_in(const ModelStore& store, const std::string& name) {
  std::optional<StoredModel> stored;
  try {
    stored = store.find(name);
  } catch (const Error&) {
    // Not a valid store name: a path, then.
  }
  ResolvedModel r;
  if (stored) {
    // Known by its manifest's digest, so stored copies share one load.
    r.path = stored->dir;
    r.name = stored->name;
    r.stored = true;
    r.key = stored->digest.empty() ? stored->dir : "sha256:" + stored->digest;
    return r;
  }
  r.path = store.resolve(name);
  r.key = std::filesystem::weakly_canonical(r.path).string();
  return r;
}

}  // namespace

Context::Context(const ServerParams& p, Resolver resolver)
    : params(p),
      store(p.models_dir),
      blobs(p.models_dir),
      registry(
          [&] {
            RegistryParams rp;
            rp.load.threads = p.threads;
            rp.load.ctx = p.ctx;
            rp.engine.parallel = p.parallel;
            rp.engine.max_waiting = p.max_waiting;
            rp.engine.keep_caches = p.prompt_cache;  // -1: the registry chooses per model
            rp.default_keep_alive = p.keep_alive;
            return rp;
          }(),
          std::move(resolver), metrics),
      responses(p.max_stored_responses) {}

int status_of(const std::exception& e) {
  if (auto* r = dynamic_cast<const RequestError*>(&e)) return r->status();
  if (auto* l = dynamic_cast<const Error*>(&e)) {
    switch (l->code()) {
      case ErrorCode::invalid_argument:
      case ErrorCode::context_full: return 400;
      case ErrorCode::not_found: return 404;
      case ErrorCode::out_of_memory: return 503;
      default: return 500;
    }
  }
  return 500;
}

std::string field_of(const std::exception& e) {
  if (auto* r = dynamic_cast<const RequestError*>(&e)) return r->field();
  return "";
}

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

void set_json(httplib::Response& res, const nlohmann::json& j, int status) {
  res.status = status;
  res.set_content(dump(j), "application/json; charset=utf-8");
}

void ollama_error(httplib::Response& res, int status, const std::string& message) {
  set_json(res, {{"error", message}}, status);
}

void openai_error(httplib::Response& res, int status, const std::string& message, const std::string& param,
                  const std::string& code) {
  const char* type = status == 401 ? "authentication_error"
                     : status == 503 ? "server_overloaded"
                     : status >= 500 ? "server_error"
                                     : "invalid_request_error";
  nlohmann::json err = {{"message", message},
                        {"type", type},
                        {"param", param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param)},
                        {"code", code.empty() ? nlohmann::json(nullptr) : nlohmann::json(code)}};
  set_json(res, {{"error", err}}, status);
}

void answer_exception(httplib::Response& res, const std::exception& e, bool openai) {
  const int status = status_of(e);
  if (status == 503) res.set_header("Retry-After", "1");
  if (openai) {
    std::string code;
    if (status == 404) code = "model_not_found";
    openai_error(res, status, e.what(), field_of(e), code);
  } else {
    ollama_error(res, status, e.what());
  }
}

std::string rfc3339_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const long ns = (long)(std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count() % 1000000000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, ns);
  return buf;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string new_id(const char* prefix, char separator) {
  static std::atomic<uint64_t> counter{0};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%c%llx%06llx", prefix, separator, (unsigned long long)unix_now(),
                (unsigned long long)(counter++ & 0xffffff));
  return buf;
}

struct Server::Impl {
  explicit Impl(const ServerParams& p)
      : ctx(p, [this](const std::string& name) { return resolve_in(ctx.store, name); }) {}

  Context ctx;
  httplib::Server http;
  BusyConnections busy;
  std::thread listener;
  int port = 0;
};

Server::Server(const ServerParams& params) : impl_(std::make_unique<Impl>(params)) {}

Server::~Server() {
  stop();
  wait();
}

int Server::port() const { return impl_->port; }

void Server::start() {
  Impl& im = *impl_;
  Context& ctx = im.ctx;
  httplib::Server& http = im.http;
  const ServerParams& p = ctx.params;

  // Each streaming response holds a worker thread for its whole generation, and idle keep-alive
  // connections hold one until they time out: enough threads that every running and queued
  // request has one, with room to answer /health, /metrics and the 503s of a full queue.
  const size_t threads = std::max<size_t>(32, 2 * (size_t)(p.parallel + p.max_waiting) + 16);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // The limit httplib enforces is the blob uploads'; every other body is held to max_body_bytes
  // before it is read (the pre-routing handler below).
  http.set_payload_max_length(std::max<uint64_t>(p.max_body_bytes, p.max_blob_bytes));
  http.set_read_timeout(30, 0);
  http.set_write_timeout(30, 0);
  http.set_keep_alive_timeout(5);

  http.set_pre_routing_handler([&ctx, &im](const httplib::Request& req, httplib::Response& res) {
    t_request_start = Clock::now();
    im.busy.begin(req);
    if (!ctx.params.api_key.empty() && req.path != "/health") {
      const std::string auth = req.get_header_value("Authorization");
      const std::string prefix = "Bearer ";
      if (auth.rfind(prefix, 0) != 0 || !same_secret(auth.substr(prefix.size()), ctx.params.api_key)) {
        res.set_header("WWW-Authenticate", "Bearer");
        const std::string msg = auth.empty()
                                    ? "Authorization: a Bearer API key is required (the server runs with --api-key)"
                                    : "Authorization: the API key is wrong";
        if (is_openai_path(req.path)) openai_error(res, 401, msg, "Authorization", "invalid_api_key");
        else ollama_error(res, 401, msg);
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    // Bodies other than a blob's are read into memory: held to max_body_bytes before they are
    // read, which needs their length up front (a JSON client sends it).
    const bool blob = req.method == "POST" && req.path.rfind("/api/blobs/", 0) == 0;
    if (!blob && req.has_header("Content-Length") &&
        std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10) > ctx.params.max_body_bytes)
      res.status = 413;
    else if (!blob && req.get_header_value("Transfer-Encoding").find("chunked") != std::string::npos)
      res.status = 411;
    else
      return httplib::Server::HandlerResponse::Unhandled;
    const std::string msg = res.status == 413 ? "body: larger than the server's limit of " +
                                                    std::to_string(ctx.params.max_body_bytes) + " bytes"
                                              : "body: a Content-Length is required (no chunked bodies here)";
    if (is_openai_path(req.path)) openai_error(res, res.status, msg, "body");
    else ollama_error(res, res.status, msg);
    res.set_header("Connection", "close");  // the unread body is not worth reading
    return httplib::Server::HandlerResponse::Handled;
  });
  // Statuses >= 400 that no handler wrote a body for: an unknown route (404), a body over the
  // limit (413), a bad request line (400).
  http.set_error_handler(httplib::Server::HandlerWithResponse([&ctx](const httplib::Request& req,
                                                                     httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string msg;
    std::string field;
    if (res.status == 404) msg = "no route " + req.method + " " + req.path;
    else if (res.status == 413) {  // only a blob gets this far (the pre-routing handler holds the rest)
      field = "body";
      msg = "body: larger than the server's limit of " + std::to_string(ctx.params.max_blob_bytes) + " bytes for a blob";
    } else msg = "request: refused with HTTP status " + std::to_string(res.status);
    if (is_openai_path(req.path)) openai_error(res, res.status, msg, field);
    else ollama_error(res, res.status, msg);
    return httplib::Server::HandlerResponse::Handled;
  }));

  http.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      answer_exception(res, e, is_openai_path(req.path));
    } catch (...) {
      ollama_error(res, 500, "internal error");
    }
  });

  http.set_logger([&ctx, &im](const httplib::Request& req, const httplib::Response& res) {
    im.busy.end(req);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t_request_start).count();
    std::fprintf(stderr, "lowbit serve: %s %s %s -> %d (%.1f ms)\n", req.remote_addr.c_str(), req.method.c_str(),
                 req.path.c_str(), res.status, ms);
    ctx.metrics.request_done(kRoutes.count(req.path) ? req.path : "other", res.status);
  });

  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("lowbit is running (Ollama and OpenAI APIs)", "text/plain");
  });
  http.Get("/health", [](const httplib::Request&, httplib::Response& res) { set_json(res, {{"status", "ok"}}); });
  http.Get("/api/version", [](const httplib::Request&, httplib::Response& res) {
    set_json(res, {{"version", LOWBIT_VERSION_STRING}});
  });
  http.Get("/metrics", [&ctx](const httplib::Request&, httplib::Response& res) {
    std::vector<ModelGauges> gauges;
    for (const LoadedInfo& i : ctx.registry.loaded()) gauges.push_back(i.gauges);
    res.set_content(ctx.metrics.render(gauges), "text/plain; version=0.0.4; charset=utf-8");
  });
  add_ollama_routes(http, ctx);
  add_openai_routes(http, ctx);
  add_responses_routes(http, ctx);
  add_store_routes(http, ctx);
  add_embed_routes(http, ctx);

  im.port = p.port == 0 ? http.bind_to_any_port(p.host) : (http.bind_to_port(p.host, p.port) ? p.port : -1);
  if (im.port < 0)
    throw Error(ErrorCode::io, "cannot listen on " + p.host + ":" + std::to_string(p.port) +
                                   " (in use, or not an address of this machine)");
  im.listener = std::thread([&http] { http.listen_after_bind(); });
}

void Server::stop() {
  // Generations first: each worker thread writing a stream then ends it with an error line and
  // returns, so stopping the HTTP server (which joins its workers) does not wait for them.
  impl_->ctx.registry.cancel_all("the server is shutting down");
  impl_->http.stop();  // no new connections past this
  if (impl_->port > 0) end_idle_connections(impl_->port, impl_->busy);
}

void Server::wait() {
  if (impl_->listener.joinable()) impl_->listener.join();
}

}  // namespace lowbit::server
