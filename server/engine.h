// One loaded model's engine: a Scheduler (runtime/batch.h) and the one thread that calls its
// step(), with a per-request event queue between that thread and the HTTP threads.
//
// An HTTP thread submits a tokenized prompt and gets a RequestStream; it then waits on the stream
// for events (text pieces, the finish with its statistics) and writes them to its client. When
// the client goes away or the request times out, it cancels the stream: the Scheduler ends the
// sequence at its next step and frees its KV cache and slot.
//
// The queue in front of the slots is bounded: submit() refuses (RequestError 503) when
// --parallel sequences run and max_waiting more wait, so a flood of clients is told to come back
// (Retry-After) instead of piling up.
//
// Thread safety: submit(), cancel() and the gauges may be called from any thread; a RequestStream
// is read by the one thread that submitted it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/batch.h"
#include "runtime/model.h"
#include "server/metrics.h"

namespace lowbit::server {

struct EngineEvent {
  std::string text;                       // new text (may be empty)
  int64_t tokens = 0;                     // tokens this event stands for (0 or 1)
  int32_t token = -1;                     // its id, when tokens == 1
  float logprob = 0;                      // its log-probability, when the request asked for them
  FinishReason finish = FinishReason::none;
  SequenceStats stats;                    // on the last event: the sequence's counts and times
  std::string error;                      // the engine failed: the sequence is over, with this message
};

class RequestStream {
 public:
  // Moves the events that arrived into `out` (appending), waiting up to `timeout` for the first.
  // Returns false once the last event has been taken.
  bool next(std::vector<EngineEvent>& out, std::chrono::milliseconds timeout);
  SequenceId id() const { return id_; }

 private:
  friend class Engine;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<EngineEvent> events_;
  bool ended_ = false;   // the last event is in events_ or taken
  bool taken_ = false;   // the last event was taken
  SequenceId id_ = 0;
  int64_t capacity_ = 0;        // KV positions its cache holds once admitted
  double last_token_time_ = 0;  // for the inter-token latency
};

struct EngineParams {
  int parallel = 4;          // sequences decoded together (Scheduler::max_sequences)
  int max_waiting = 16;      // queued beyond those; more get 503
  int64_t step_tokens = 256; // rows per forward step (decode rows + prompt chunks)
  // Finished sequences' KV caches kept for the next turn (Scheduler's prompt cache); -1: as many as
  // `parallel` for a model on the CPU, none for one with layers on a GPU (the registry decides).
  int keep_caches = 0;
};

class Engine {
 public:
  Engine(std::shared_ptr<const Model> model, const EngineParams& params, Metrics& metrics);
  ~Engine();  // cancels every sequence and joins the thread
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Throws RequestError(503) when the queue is full, Error for what Scheduler::submit refuses.
  std::shared_ptr<RequestStream> submit(std::vector<int32_t> prompt, const SequenceParams& params);
  void cancel(const RequestStream& s);
  // Ends every sequence (the server is stopping): each stream's last event carries `why`.
  void cancel_all(const std::string& why);

  const Model& model() const { return *model_; }
  size_t running() const { return scheduler_.running(); }
  size_t waiting() const { return scheduler_.waiting(); }
  // KV bytes of the admitted sequences' caches, and the budget: `parallel` caches of a full
  // context each, the most the engine can hold.
  int64_t kv_bytes() const { return kv_positions_.load() * kv_bytes_per_position_; }
  // KV bytes the prompt cache keeps (finished sequences' caches, dropped oldest first).
  int64_t kept_bytes() const { return kept_positions_.load() * kv_bytes_per_position_; }
  int64_t kv_budget_bytes() const { return (int64_t)params_.parallel * model_->ctx() * kv_bytes_per_position_; }

 private:
  void loop();
  void dispatch(const std::vector<SequenceEvent>& events);

  std::shared_ptr<const Model> model_;
  EngineParams params_;
  Metrics& metrics_;
  Scheduler scheduler_;
  int64_t kv_bytes_per_position_ = 0;
  std::atomic<int64_t> kv_positions_{0};
  std::atomic<int64_t> kept_positions_{0};

  std::mutex mutex_;  // guards streams_ and stop_; taken before the scheduler's own
  std::condition_variable cv_;
  std::map<SequenceId, std::shared_ptr<RequestStream>> streams_;  // live, in submission order
  bool stop_ = false;
  std::string cancel_all_reason_;  // set by cancel_all: the error of the cancelled sequences
  std::thread thread_;
};

}  // namespace lowbit::server
