// `lowbit serve`: an HTTP server that speaks the Ollama API (NDJSON streaming) and the OpenAI API
// (SSE streaming) over the models of a model store, on cpp-httplib (Debian libcpp-httplib-dev).
//
// A front end: it parses requests (server/request.h), renders chat templates, hands token
// sequences to one engine per loaded model (server/engine.h) and streams the text back. The
// routes are listed in docs/SERVING.md.
//
// Thread safety: start() once; stop() from any thread (a signal-handling thread), after which
// wait() returns.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace lowbit::server {

struct ServerParams {
  std::string host = "127.0.0.1";
  int port = 11434;                 // 0: any free port (port() says which)
  std::string models_dir;           // the model store's root
  int parallel = 4;                 // sequences decoded together, per model
  int prompt_cache = -1;            // finished sequences' KV caches kept per model; -1: as many as parallel (none on a GPU)
  int max_waiting = 32;             // requests queued beyond those, per model; more get 503
  int64_t ctx = 4096;               // the largest context a request gets (capped at the model's)
  int threads = 0;                  // compute threads per model; 0: all cores
  std::string api_key;              // "": no authentication
  double keep_alive = 300;          // default keep_alive in seconds (negative: forever)
  double request_timeout = 600;     // a generation running longer is cancelled
  size_t max_body_bytes = 16u << 20;
  uint64_t max_blob_bytes = 256ull << 30;  // one upload to /api/blobs (a model file)
  size_t max_stored_responses = 1000;  // the Responses API's kept responses (the newest); 0: none
};

class Server {
 public:
  explicit Server(const ServerParams& params);
  ~Server();
  // Binds and starts serving on its own threads. Throws Error when the address cannot be bound.
  void start();
  int port() const;
  void stop();
  void wait();  // until stop()

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lowbit::server
