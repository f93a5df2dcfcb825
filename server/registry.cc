#include "server/registry.h"

#include <cstdio>

#include "convert/load.h"
#include "kernels/error.h"
#include "runtime/chat/thinking.h"

namespace lowbit::server {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

ModelLease::~ModelLease() { registry_->release(model_, keep_alive_); }

Registry::Registry(const RegistryParams& params, Resolver resolver, Metrics& metrics)
    : params_(params), resolver_(std::move(resolver)), metrics_(metrics) {
  reaper_ = std::thread([this] { reap(); });
}

Registry::~Registry() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  reaper_.join();
  std::map<std::string, std::shared_ptr<LoadedModel>> gone;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    gone.swap(models_);
  }
}

std::unique_ptr<ModelLease> Registry::acquire(const std::string& name, const KeepAlive& ka) {
  const ResolvedModel r = resolver_(name);
  auto take = [&](const std::shared_ptr<LoadedModel>& m, double load_s) {
    m->active++;
    return std::make_unique<ModelLease>(this, m, ka, load_s);
  };
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = models_.find(r.key); it != models_.end()) return take(it->second, 0);
  }
  std::lock_guard<std::mutex> load_lock(load_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);  // loaded while this thread waited for the load lock?
    if (auto it = models_.find(r.key); it != models_.end()) return take(it->second, 0);
  }
  const auto t0 = Clock::now();
  auto m = std::make_shared<LoadedModel>();
  m->key = r.key;
  m->path = r.path;
  m->name = r.name.empty() ? name : r.name;
  try {
    m->model = std::shared_ptr<Model>(load_model(r.path, params_.load).release());
  } catch (const Error& e) {
    // A stored model that does not load is the server's problem (500); a path the client named
    // that is no model is the client's (400).
    if (r.stored || e.code() == ErrorCode::out_of_memory) throw;
    throw RequestError(400, "model", std::string("model: ") + e.what());
  }
  const int64_t trained = m->model->config().max_ctx;
  m->ctx = trained > 0 ? std::min(m->model->ctx(), trained) : m->model->ctx();
  m->size_bytes = (int64_t)m->model->manifest().weights_bytes();
  if (m->model->has_tokenizer()) {
    m->json = std::make_unique<LazyJsonTokens>(m->model->tokenizer());
    try {
      m->chat_template = chat_template_of(m->model->tokenizer());
      if (m->chat_template) m->tool_syntax = ToolCallSyntax::of(*m->chat_template);
      m->thinks = m->chat_template && template_thinks(*m->chat_template);
    } catch (const Error& e) {
      m->template_error = e.what();  // generate with raw prompts still works; chat says why not
    }
  }
  EngineParams ep = params_.engine;
  // Kept caches take device memory a running sequence may need, and a device out of memory moves
  // the whole model to the CPU: on a GPU placement the prompt cache is off unless asked for.
  if (ep.keep_caches < 0) ep.keep_caches = m->model->device_layers() > 0 ? 0 : ep.parallel;
  m->engine = std::make_unique<Engine>(m->model, ep, metrics_);
  m->load_seconds = seconds_since(t0);
  std::fprintf(stderr, "lowbit serve: loaded %s (%s) in %.2f s, context %lld\n", m->name.c_str(), r.path.c_str(),
               m->load_seconds, (long long)m->ctx);
  std::lock_guard<std::mutex> lock(mutex_);
  models_[r.key] = m;
  return take(m, m->load_seconds);
}

void Registry::release(const std::shared_ptr<LoadedModel>& m, const KeepAlive& ka) {
  std::shared_ptr<LoadedModel> unload;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    m->active--;
    const bool forever = ka.given ? ka.forever : params_.default_keep_alive < 0;
    const double secs = ka.given ? ka.seconds : params_.default_keep_alive;
    // The latest request sets the keep_alive, as in Ollama.
    m->forever = forever;
    const auto d = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(forever ? 0 : secs));
    m->expires = Clock::now() + d;
    m->expires_wall = std::chrono::system_clock::now() +
                      std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
    if (!forever && secs <= 0 && m->active == 0) {
      // Unloaded now, so /api/ps no longer lists it when the response is complete.
      auto it = models_.find(m->key);
      if (it != models_.end() && it->second == m) {
        unload = it->second;
        models_.erase(it);
      }
    }
  }
  if (unload) std::fprintf(stderr, "lowbit serve: unloaded %s (keep_alive 0)\n", unload->name.c_str());
  cv_.notify_all();
}

void Registry::evict(const std::string& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = models_.find(key);
  if (it == models_.end()) return;
  it->second->forever = false;
  it->second->expires = Clock::now();
  cv_.notify_all();
}

void Registry::cancel_all(const std::string& why) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [key, m] : models_) m->engine->cancel_all(why);
}

void Registry::reap() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(250));
    std::vector<std::shared_ptr<LoadedModel>> gone;
    const auto now = Clock::now();
    for (auto it = models_.begin(); it != models_.end();) {
      LoadedModel& m = *it->second;
      if (m.active == 0 && !m.forever && m.expires <= now) {
        gone.push_back(it->second);
        it = models_.erase(it);
      } else {
        ++it;
      }
    }
    if (gone.empty()) continue;
    lock.unlock();
    for (auto& m : gone) std::fprintf(stderr, "lowbit serve: unloaded %s (keep_alive expired)\n", m->name.c_str());
    gone.clear();  // engines join their threads here, outside the lock
    lock.lock();
  }
}

std::vector<LoadedInfo> Registry::loaded() const {
  std::vector<LoadedInfo> out;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [key, m] : models_) {
    LoadedInfo i;
    i.name = m->name;
    i.key = key;
    i.path = m->path;
    i.size_bytes = m->size_bytes;
    i.forever = m->forever;
    i.expires = m->expires_wall;
    i.active = m->active;
    i.gauges.model = m->name;
    i.gauges.waiting = (int64_t)m->engine->waiting();
    i.gauges.running = (int64_t)m->engine->running();
    i.gauges.kv_bytes = m->engine->kv_bytes();
    i.gauges.kv_budget_bytes = m->engine->kv_budget_bytes();
    i.gauges.prompt_cache_bytes = m->engine->kept_bytes();
    out.push_back(std::move(i));
  }
  return out;
}

}  // namespace lowbit::server
