// What one masked step of JSON mode / structured outputs costs (runtime/json_mode.h): the free
// draw did not fit, so every token of a real vocabulary is tried against the recognizer. Set it
// against a decode step of the model (bench/README.md): the mask is paid only on such steps.
// Tokenizers: TinyLlama's (32,000 SentencePiece pieces) and Qwen2.5's (151,665 byte-level BPE
// tokens) from ../shared/models/configs; states: inside a string (every first byte may come, the
// worst case), after a value, at an object key with and without a schema.
//
//   ./build/bench/json_constraint_bench --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/json_mode.h"
#include "runtime/json_schema.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer/tokenizer.h"

namespace lowbit {
namespace {

const std::string kConfigs = LOWBIT_SOURCE_DIR "/../shared/models/configs/";

const char* kSchema = R"({"type": "object", "properties": {
  "name": {"type": "string"}, "age": {"type": "integer"},
  "languages": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
  "pet": {"anyOf": [{"enum": ["cat", "dog", "fish"]}, {"type": "null"}]}},
  "required": ["name", "age"]})";

struct Vocab {
  std::unique_ptr<Tokenizer> tok;
  std::shared_ptr<const JsonTokens> texts;
};

const Vocab& vocab(const std::string& name) {
  static std::vector<std::pair<std::string, Vocab>> cache;
  for (const auto& [n, v] : cache)
    if (n == name) return v;
  Vocab v;
  v.tok = load_tokenizer(kConfigs + name);
  v.texts = std::make_shared<const JsonTokens>(*v.tok);
  cache.emplace_back(name, std::move(v));
  return cache.back().second;
}

// One masked draw in the state after prefix (fed token by token as the model would have).
void masked_step(benchmark::State& state, const char* model, const char* prefix, bool schema) {
  const Vocab& v = vocab(model);
  const auto compiled = schema ? JsonSchema::compile(nlohmann::json::parse(kSchema), "bench") : nullptr;
  JsonConstraint base(v.texts, compiled);
  for (int32_t id : v.tok->encode(prefix, false)) base.accept(id);
  const int64_t n = v.tok->vocab_size();
  // The free draw is a token the state refuses (a letter-only word never fits after a value,
  // and a control byte never fits in a string), so every step is the masked one.
  std::vector<float> logits(n, 0.0f);
  int32_t refused = -1;
  for (int32_t id = 0; id < n && refused < 0; ++id)
    if (!base.allows(id)) refused = id;
  logits[refused] = 10.0f;
  Sampler sampler(SamplerParams{});
  std::vector<float> work(n);
  const std::vector<int32_t> recent;
  for (auto _ : state) {
    JsonConstraint c = base;
    work = logits;
    benchmark::DoNotOptimize(c.sample(sampler, work.data(), n, recent));
  }
  state.counters["vocab"] = (double)n;
}

void BM_JsonMode_InString(benchmark::State& s, const char* model) { masked_step(s, model, "{\"name\": \"Li", false); }
void BM_JsonMode_AfterValue(benchmark::State& s, const char* model) { masked_step(s, model, "{\"a\": 1", false); }
void BM_Schema_Key(benchmark::State& s, const char* model) { masked_step(s, model, "{\"name\": \"Li\", \"", true); }
void BM_Schema_InString(benchmark::State& s, const char* model) { masked_step(s, model, "{\"name\": \"Li", true); }

BENCHMARK_CAPTURE(BM_JsonMode_InString, tinyllama, "tinyllama-1.1b-chat-v1.0")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_JsonMode_AfterValue, tinyllama, "tinyllama-1.1b-chat-v1.0")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Schema_Key, tinyllama, "tinyllama-1.1b-chat-v1.0")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Schema_InString, tinyllama, "tinyllama-1.1b-chat-v1.0")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_JsonMode_InString, qwen2_5, "qwen2.5-0.5b")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_JsonMode_AfterValue, qwen2_5, "qwen2.5-0.5b")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Schema_Key, qwen2_5, "qwen2.5-0.5b")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Schema_InString, qwen2_5, "qwen2.5-0.5b")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace lowbit

BENCHMARK_MAIN();
