// The models the server holds in memory: loaded on first use, kept while requests use them and
// for keep_alive after the last one (Ollama's default 5 minutes; 0 unloads when the request is
// done; negative keeps it), at most one copy of a model's weights whatever names it is asked
// under (two names for the same directory, or two stored copies with the same manifest digest,
// share one load).
//
// Thread safety: every member may be called from any thread. Loads run one at a time, outside
// the lock that requests for loaded models take, so a load does not stall other models.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kernels/error.h"
#include "runtime/chat/chat_template.h"
#include "runtime/chat/tool_calls.h"
#include "runtime/json_mode.h"
#include "runtime/model.h"
#include "server/engine.h"
#include "server/metrics.h"
#include "server/request.h"

namespace lowbit::server {

// What a model name stands for.
struct ResolvedModel {
  std::string path;  // what load_model() opens
  std::string key;   // identity of its weights: equal keys share one load
  std::string name;  // as /api/ps and /metrics show it: the stored name normalized ("x:latest"), or the path
  bool stored = false;  // a stored model (else a path the client named: one that does not load is its mistake)
};
// name -> model; throws Error(not_found) for a name that is neither stored nor a path.
using Resolver = std::function<ResolvedModel(const std::string& name)>;

struct LoadedModel {
  std::string key, path;
  std::string name;       // the name it was first loaded under
  std::shared_ptr<Model> model;
  std::unique_ptr<ChatTemplate> chat_template;  // null: the model has none
  std::string template_error;                   // why chat_template is null when it did not parse
  std::optional<ToolCallSyntax> tool_syntax;    // how its template writes a tool call; none: no tools
  bool thinks = false;                          // a thinking model's template (runtime/chat/thinking.h)
  std::unique_ptr<Engine> engine;
  int64_t ctx = 0;        // the context requests get: --ctx capped at the model's trained one
  double load_seconds = 0;
  int64_t size_bytes = 0; // weights in memory
  // JSON mode's token texts: built by the first request that asks for JSON.
  std::unique_ptr<LazyJsonTokens> json;
  const std::shared_ptr<const JsonTokens>& json_tokens() const {
    if (!json) throw lowbit::Error(lowbit::ErrorCode::invalid_argument, "JSON mode needs the model's tokenizer, and it has none");
    return json->get();
  }
  // Guarded by the registry's mutex.
  int active = 0;
  bool forever = false;
  std::chrono::steady_clock::time_point expires;
  std::chrono::system_clock::time_point expires_wall;
};

class Registry;

// A model held for one request; releasing it starts its keep_alive.
class ModelLease {
 public:
  ModelLease(Registry* r, std::shared_ptr<LoadedModel> m, KeepAlive ka, double load_seconds)
      : registry_(r), model_(std::move(m)), keep_alive_(ka), load_seconds_(load_seconds) {}
  ~ModelLease();
  ModelLease(const ModelLease&) = delete;
  ModelLease& operator=(const ModelLease&) = delete;
  LoadedModel& operator*() const { return *model_; }
  LoadedModel* operator->() const { return model_.get(); }
  double load_seconds() const { return load_seconds_; }  // spent loading for this request (0: was loaded)

 private:
  Registry* registry_;
  std::shared_ptr<LoadedModel> model_;
  KeepAlive keep_alive_;
  double load_seconds_;
};

struct RegistryParams {
  LoadParams load;             // threads, ctx (0: the model's trained context)
  EngineParams engine;
  double default_keep_alive = 300;  // seconds
};

// One loaded model as /api/ps and /metrics show it.
struct LoadedInfo {
  std::string name, key, path;
  int64_t size_bytes = 0;
  bool forever = false;
  std::chrono::system_clock::time_point expires;
  int active = 0;
  ModelGauges gauges;
};

class Registry {
 public:
  Registry(const RegistryParams& params, Resolver resolver, Metrics& metrics);
  ~Registry();

  // Loads the model if it is not in memory. Throws Error (not_found for an unknown name, what
  // the loader throws for a model that does not load).
  std::unique_ptr<ModelLease> acquire(const std::string& name, const KeepAlive& ka);
  std::vector<LoadedInfo> loaded() const;
  // Unloads the models of this key once their requests are done (a deleted model).
  void evict(const std::string& key);
  // Ends every running generation, telling its client `why` (the server is stopping).
  void cancel_all(const std::string& why);
  const RegistryParams& params() const { return params_; }

 private:
  friend class ModelLease;
  void release(const std::shared_ptr<LoadedModel>& m, const KeepAlive& ka);
  void reap();

  RegistryParams params_;
  Resolver resolver_;
  Metrics& metrics_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::string, std::shared_ptr<LoadedModel>> models_;  // by key
  std::mutex load_mutex_;  // one load at a time
  bool stop_ = false;
  std::thread reaper_;
};

}  // namespace lowbit::server
