#include "server/engine.h"

#include <algorithm>

#include "kernels/error.h"
#include "server/request.h"

namespace lowbit::server {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

bool RequestStream::next(std::vector<EngineEvent>& out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait_for(lock, timeout, [&] { return !events_.empty(); });
  while (!events_.empty()) {
    out.push_back(std::move(events_.front()));
    events_.pop_front();
  }
  if (ended_) taken_ = true;
  return !taken_;
}

Engine::Engine(std::shared_ptr<const Model> model, const EngineParams& params, Metrics& metrics)
    : model_(std::move(model)),
      params_(params),
      metrics_(metrics),
      scheduler_(*model_, SchedulerParams{params.parallel, std::max<int64_t>(params.step_tokens, params.parallel + 1),
                                          params.keep_caches}) {
  // One position of one sequence: K and V over every layer (Model::estimate's formula).
  kv_bytes_per_position_ = Model::estimate(model_->config(), 0, 1, 0).kv_cache;
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    for (auto& [id, s] : streams_) {
      std::lock_guard<std::mutex> sl(s->mutex_);
      EngineEvent e;
      e.finish = FinishReason::cancelled;
      e.error = "the model was unloaded";
      s->events_.push_back(std::move(e));
      s->ended_ = true;
      s->cv_.notify_all();
    }
    streams_.clear();
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_ptr<RequestStream> Engine::submit(std::vector<int32_t> prompt, const SequenceParams& params) {
  auto s = std::make_shared<RequestStream>();
  const int64_t need = (int64_t)prompt.size() + std::max<int64_t>(params.max_tokens, 1) - 1;
  s->capacity_ = std::min(need, model_->ctx());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if ((int64_t)streams_.size() >= (int64_t)params_.parallel + params_.max_waiting) {
      metrics_.rejected_full();
      throw RequestError(503, "", "the server is busy: " + std::to_string(params_.parallel) + " requests running and " +
                                      std::to_string(params_.max_waiting) + " waiting; retry later");
    }
    s->id_ = scheduler_.submit(std::move(prompt), params);
    streams_.emplace(s->id_, s);
  }
  cv_.notify_all();
  return s;
}

void Engine::cancel(const RequestStream& s) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    scheduler_.cancel(s.id_);
  }
  cv_.notify_all();
}

void Engine::cancel_all(const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    cancel_all_reason_ = why;
    for (const auto& [id, s] : streams_) scheduler_.cancel(id);
  }
  cv_.notify_all();
}

void Engine::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || scheduler_.has_work(); });
      if (stop_) return;
    }
    try {
      dispatch(scheduler_.step());
    } catch (const std::exception& e) {
      // A step that throws (an allocation that failed, a bug) fails every sequence it held:
      // their clients get the message, and the scheduler drops them at its next step.
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& [id, s] : streams_) {
        scheduler_.cancel(id);
        std::lock_guard<std::mutex> sl(s->mutex_);
        EngineEvent ev;
        ev.finish = FinishReason::cancelled;
        ev.error = e.what();
        s->events_.push_back(std::move(ev));
        s->ended_ = true;
        s->cv_.notify_all();
      }
      streams_.clear();
      kv_positions_ = 0;
    }
  }
}

void Engine::dispatch(const std::vector<SequenceEvent>& events) {
  const double now = now_seconds();
  std::lock_guard<std::mutex> lock(mutex_);
  for (const SequenceEvent& se : events) {
    auto it = streams_.find(se.id);
    if (it == streams_.end()) continue;  // failed or gone already
    RequestStream& s = *it->second;
    EngineEvent ev;
    ev.text = se.text;
    ev.finish = se.finish;
    if (se.token >= 0) {
      ev.tokens = 1;
      ev.token = se.token;
      ev.logprob = se.logprob;
      metrics_.generated_tokens(1);
      if (s.last_token_time_ == 0) {
        if (const SequenceStats* st = scheduler_.stats(se.id)) metrics_.time_to_first_token(now - st->submitted);
      } else {
        metrics_.inter_token_latency(now - s.last_token_time_);
      }
      s.last_token_time_ = now;
    }
    if (se.finish != FinishReason::none) {
      if (const SequenceStats* st = scheduler_.stats(se.id)) {
        ev.stats = *st;
        metrics_.prompt_tokens(st->prompt_tokens);
        if (st->generated_tokens > 0) metrics_.request_latency(st->last_token - st->submitted);
      }
      if (se.finish == FinishReason::cancelled) {
        metrics_.cancelled();
        ev.error = cancel_all_reason_;  // "" for one request's own cancel (its client is gone)
      }
    }
    {
      std::lock_guard<std::mutex> sl(s.mutex_);
      s.events_.push_back(std::move(ev));
      if (se.finish != FinishReason::none) s.ended_ = true;
      s.cv_.notify_all();
    }
    if (se.finish != FinishReason::none) streams_.erase(it);
  }
  // Admission is first come, first served, so the running sequences are the oldest live ones.
  int64_t positions = 0;
  size_t n = scheduler_.running();
  for (auto it = streams_.begin(); it != streams_.end() && n > 0; ++it, --n) positions += it->second->capacity_;
  kv_positions_ = positions;
  kept_positions_ = scheduler_.kept_positions();
}

}  // namespace lowbit::server
