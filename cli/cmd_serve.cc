// lowbit serve: the Ollama- and OpenAI-compatible HTTP server (server/server.h).
#include <csignal>
#include <cstdio>
#include <pthread.h>
#include <string>

#include "cli/args.h"
#include "cli/command.h"
#include "kernels/error.h"
#include "server/request.h"
#include "server/server.h"
#include "store/model_store.h"

namespace lowbit::cli {
namespace {

const char* kFooter =
    "Serves the models of the store (--models, default $LOWBIT_MODELS or ~/.lowbit/models) by name,\n"
    "and any model path a request names, over the Ollama API (/api/generate, /api/chat, /api/tags,\n"
    "...) and the OpenAI API (/v1/chat/completions, /v1/completions, /v1/models), with /health and\n"
    "/metrics (Prometheus). A model is loaded on its first request and unloaded after keep_alive.\n"
    "Prints the address it listens on (with --port 0, the free port it picked). SIGINT or SIGTERM\n"
    "stops it. See docs/SERVING.md.\n";

int serve_main(int argc, char** argv) {
  server::ServerParams p;
  p.models_dir = ModelStore::default_root();
  int64_t port = p.port;
  std::string keep_alive = "5m";
  int64_t timeout = (int64_t)p.request_timeout;
  Args args("lowbit serve", "Serves models over HTTP with the Ollama and OpenAI APIs.", kFooter);
  args.text("--host", p.host, "address to listen on (default 127.0.0.1: this machine only)").metavar("HOST");
  args.integer("--port", port, "TCP port (default 11434, Ollama's; 0: any free port)", 0, 65535).metavar("PORT");
  args.text("--models", p.models_dir, "the model store's directory").metavar("DIR");
  args.integer("--parallel", p.parallel, "sequences decoded together per model (default 4)", 1, 256).metavar("N");
  args.integer("--prompt-cache", p.prompt_cache,
               "finished requests' KV caches kept per model, so the next turn of a chat reads only its new tokens "
               "(default: as many as --parallel, none for a model with layers on a GPU; 0: none)",
               0, 4096)
      .metavar("N");
  args.integer("--queue", p.max_waiting, "requests that may wait for a slot per model; more get 503 (default 32)", 0,
               100000)
      .metavar("N");
  add_ctx(args, p.ctx, "the longest context a request gets, prompt included (default 4096; capped at the model's)");
  add_threads(args, p.threads);
  args.text("--api-key", p.api_key, "require 'Authorization: Bearer KEY' on every route but /health").metavar("KEY");
  args.text("--keep-alive", keep_alive, "how long an idle model stays loaded (default 5m; 0 unloads, -1 keeps)")
      .metavar("DUR");
  args.integer("--timeout", timeout, "cancel a generation running longer than this many seconds (default 600)", 1)
      .metavar("S");
  int64_t kept = (int64_t)p.max_stored_responses;
  args.integer("--max-stored-responses", kept,
               "Responses API responses kept for previous_response_id, the newest (default 1000; 0: none)", 0,
               1000000)
      .metavar("N");
  if (!args.parse(argc, argv)) return 0;
  p.max_stored_responses = (size_t)kept;
  p.port = (int)port;
  p.request_timeout = (double)timeout;
  try {
    const server::KeepAlive ka = server::parse_keep_alive(nlohmann::json(keep_alive), "--keep-alive");
    p.keep_alive = ka.forever ? -1 : ka.seconds;
  } catch (const server::RequestError& e) {
    throw UsageError(e.what());
  }

  // SIGINT and SIGTERM are taken by this thread alone (sigwait), blocked in every thread the
  // server starts, so a signal stops the server cleanly instead of killing a worker mid-write.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error return, not a signal

  server::Server srv(p);
  srv.start();
  std::printf("lowbit serve: listening on http://%s:%d (models in %s)\n", p.host.c_str(), srv.port(),
              p.models_dir.c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr, "lowbit serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  srv.stop();
  srv.wait();
  return 0;
}

Registrar reg("serve", "serve models over HTTP: the Ollama and OpenAI APIs, /metrics", serve_main);

}  // namespace
}  // namespace lowbit::cli
