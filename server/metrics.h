// What /metrics reports, in Prometheus' text format (version 0.0.4): counters and latency
// histograms the engines and routes add to, and gauges read at scrape time from the loaded
// models (requests waiting and running, KV-cache utilization).
//
// Names follow Prometheus' conventions (lowbit_ prefix, _total for counters, _seconds for
// time). docs/SERVING.md maps them to what Kubernetes' Gateway API Inference Extension reads.
//
// Thread safety: every member may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace lowbit::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);  // upper bounds of the buckets, increasing
  void observe(double v);
  // Appends the _bucket, _sum and _count lines of metric `name`.
  void write(std::string& out, const std::string& name) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; one more for +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// The gauges of one loaded model at scrape time.
struct ModelGauges {
  std::string model;
  int64_t waiting = 0, running = 0;
  int64_t kv_bytes = 0, kv_budget_bytes = 0;  // allocated KV cache, and the budget it is a share of
  int64_t prompt_cache_bytes = 0;             // KV caches the prompt cache keeps (evictable)
};

class Metrics {
 public:
  Metrics();

  // A request answered (by route and status class), counted when its response is complete.
  void request_done(const std::string& route, int status);
  void prompt_tokens(int64_t n) { prompt_tokens_ += n; }
  void generated_tokens(int64_t n) { generated_tokens_ += n; }
  void rejected_full() { rejected_full_++; }
  void cancelled() { cancelled_++; }
  void time_to_first_token(double s) { ttft_.observe(s); }
  void inter_token_latency(double s) { itl_.observe(s); }
  void request_latency(double s) { e2e_.observe(s); }

  // The whole exposition, with the gauges of the models loaded now.
  std::string render(const std::vector<ModelGauges>& models) const;

 private:
  std::atomic<int64_t> prompt_tokens_{0}, generated_tokens_{0}, rejected_full_{0}, cancelled_{0};
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, uint64_t> requests_;  // (route, status) -> count
  Histogram ttft_, itl_, e2e_;
};

}  // namespace lowbit::server
