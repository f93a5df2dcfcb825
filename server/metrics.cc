#include "server/metrics.h"

#include <cstdio>

namespace lowbit::server {
namespace {

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// Label values escape backslash, quote and newline (the text format's rules).
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void header(std::string& out, const std::string& name, const char* type, const char* help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  counts_[i]++;
  sum_ += v;
  count_++;
}

void Histogram::write(std::string& out, const std::string& name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    out += name + "_bucket{le=\"" + num(bounds_[i]) + "\"} " + std::to_string(cum) + "\n";
  }
  cum += counts_.back();
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cum) + "\n";
  out += name + "_sum " + num(sum_) + "\n";
  out += name + "_count " + std::to_string(count_) + "\n";
}

// Buckets: time to first token spans a queue wait and a prompt (ms to minutes); the gap between
// tokens one decode step (ms to a second on a loaded CPU).
Metrics::Metrics()
    : ttft_({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      itl_({0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5}),
      e2e_({0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}) {}

void Metrics::request_done(const std::string& route, int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  requests_[{route, std::to_string(status)}]++;
}

std::string Metrics::render(const std::vector<ModelGauges>& models) const {
  std::string out;
  header(out, "lowbit_requests_waiting", "gauge", "Requests queued for a free sequence slot, per loaded model.");
  for (const auto& m : models)
    out += "lowbit_requests_waiting{model=\"" + label(m.model) + "\"} " + std::to_string(m.waiting) + "\n";
  header(out, "lowbit_requests_running", "gauge", "Requests holding a sequence slot (reading the prompt or decoding).");
  for (const auto& m : models)
    out += "lowbit_requests_running{model=\"" + label(m.model) + "\"} " + std::to_string(m.running) + "\n";
  header(out, "lowbit_kv_cache_usage_ratio", "gauge",
         "KV-cache bytes allocated by running sequences / the budget (--parallel full contexts), 0..1.");
  for (const auto& m : models)
    out += "lowbit_kv_cache_usage_ratio{model=\"" + label(m.model) + "\"} " +
           num(m.kv_budget_bytes > 0 ? (double)m.kv_bytes / (double)m.kv_budget_bytes : 0.0) + "\n";
  header(out, "lowbit_kv_cache_bytes", "gauge", "KV-cache bytes allocated by running sequences.");
  for (const auto& m : models)
    out += "lowbit_kv_cache_bytes{model=\"" + label(m.model) + "\"} " + std::to_string(m.kv_bytes) + "\n";
  header(out, "lowbit_prompt_cache_bytes", "gauge",
         "KV-cache bytes the prompt cache keeps from finished requests (--prompt-cache; freed oldest first).");
  for (const auto& m : models)
    out += "lowbit_prompt_cache_bytes{model=\"" + label(m.model) + "\"} " + std::to_string(m.prompt_cache_bytes) +
           "\n";
  header(out, "lowbit_models_loaded", "gauge", "Models in memory.");
  out += "lowbit_models_loaded " + std::to_string(models.size()) + "\n";

  header(out, "lowbit_prompt_tokens_total", "counter", "Prompt tokens read.");
  out += "lowbit_prompt_tokens_total " + std::to_string(prompt_tokens_.load()) + "\n";
  header(out, "lowbit_generation_tokens_total", "counter", "Tokens generated.");
  out += "lowbit_generation_tokens_total " + std::to_string(generated_tokens_.load()) + "\n";
  header(out, "lowbit_requests_rejected_total", "counter", "Requests refused with 503 because the queue was full.");
  out += "lowbit_requests_rejected_total " + std::to_string(rejected_full_.load()) + "\n";
  header(out, "lowbit_requests_cancelled_total", "counter", "Generations cancelled (client gone or timed out).");
  out += "lowbit_requests_cancelled_total " + std::to_string(cancelled_.load()) + "\n";
  header(out, "lowbit_http_requests_total", "counter", "HTTP requests answered, by route and status.");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [k, n] : requests_)
      out += "lowbit_http_requests_total{route=\"" + label(k.first) + "\",status=\"" + k.second + "\"} " +
             std::to_string(n) + "\n";
  }
  header(out, "lowbit_time_to_first_token_seconds", "histogram",
         "From submission (queue wait included) to the first generated token.");
  ttft_.write(out, "lowbit_time_to_first_token_seconds");
  header(out, "lowbit_inter_token_latency_seconds", "histogram", "Between consecutive tokens of one sequence.");
  itl_.write(out, "lowbit_inter_token_latency_seconds");
  header(out, "lowbit_request_duration_seconds", "histogram", "From submission to the last token of a generation.");
  e2e_.write(out, "lowbit_request_duration_seconds");
  return out;
}

}  // namespace lowbit::server
