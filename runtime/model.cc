#include "runtime/model.h"

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <string>

#include "backend/cpu_backend.h"
#include "kernels/error.h"
#include "runtime/chat/chat_template.h"

namespace lowbit {

namespace {

// MemAvailable from /proc/meminfo in bytes; -1 when unknown (non-Linux).
int64_t available_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kb;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return -1;
}

int64_t mib_up(int64_t bytes) { return (bytes >> 20) + ((bytes & ((1 << 20) - 1)) != 0); }
std::string mib(int64_t bytes) { return std::to_string(mib_up(bytes)) + " MiB"; }

// a * b * ..., saturating at INT64_MAX: a context of 2^40 positions must be refused, not wrap
// round to a small figure that passes the memory check.
int64_t product(std::initializer_list<int64_t> factors) {
  long double p = 1;
  for (int64_t f : factors) p *= (long double)f;
  return p >= (long double)INT64_MAX ? INT64_MAX : (int64_t)p;
}

int64_t sum(std::initializer_list<int64_t> terms) {
  int64_t s = 0;
  for (int64_t t : terms) s = t > INT64_MAX - s ? INT64_MAX : s + t;
  return s;
}

}  // namespace

MemoryEstimate Model::estimate(const ModelConfig& c, int64_t weights_bytes, int64_t ctx, int64_t batch) {
  MemoryEstimate e;
  e.weights = weights_bytes;
  e.kv_cache = product({2, c.n_layers, ctx, c.n_kv_heads, c.head_dim, (int64_t)sizeof(float)});
  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  e.scratch = sum({batch * (3 * c.dim + q_dim + 2 * kv_dim + 2 * c.ffn_dim + c.vocab_size) * (int64_t)sizeof(float),
                   product({batch, ctx, (int64_t)sizeof(float)})});
  return e;
}

std::unique_ptr<Model> Model::load(const std::string& dir, const LoadParams& params) {
  return load(Manifest::open(dir), params);
}

std::unique_ptr<Model> Model::load(Manifest manifest, const LoadParams& params) {
  std::unique_ptr<Model> m(new Model());
  m->manifest_ = std::move(manifest);
  m->params_ = params;
  const std::string& dir = m->manifest_.dir();
  const ModelConfig& c = m->manifest_.config();
  m->ctx_ = params.ctx > 0 ? params.ctx : c.max_ctx;
  if (m->ctx_ <= 0) throw Error(ErrorCode::invalid_argument, dir + ": context length must be positive");

  // A prompt batch is at most 512 tokens at a time (see Session::eval).
  const MemoryEstimate need = estimate(c, (int64_t)m->manifest_.weights_bytes(), m->ctx_, 512);
  const int64_t avail = available_memory();
  if (avail >= 0 && sum({need.weights, need.kv_cache, need.scratch}) > avail) {
    // The total printed is the sum of the parts printed, each rounded up to whole MiB.
    const int64_t parts[] = {mib_up(need.weights), mib_up(need.kv_cache), mib_up(need.scratch)};
    throw Error(ErrorCode::out_of_memory,
                dir + ": needs about " + std::to_string(parts[0] + parts[1] + parts[2]) + " MiB (weights " +
                    std::to_string(parts[0]) + " MiB + KV cache for " + std::to_string(m->ctx_) + " positions " +
                    std::to_string(parts[1]) + " MiB + scratch for a 512-token prompt batch " +
                    std::to_string(parts[2]) + " MiB) but only " + mib(avail) +
                    " is available; use a shorter context or fewer bits");
  }

  // The ISA is resolved here, once (an unsupported one fails now, not inside the first matmul).
  m->cpu_ = make_backend({params.threads, params.isa, params.int8_acts});
  int64_t n = params.gpu_layers == kGpuLayersAll ? c.n_layers : params.gpu_layers;
  if (n < 0 && n != kGpuLayersAuto)
    throw Error(ErrorCode::invalid_argument, "gpu_layers " + std::to_string(n) + ": not a layer count, all or auto");
  n = std::min<int64_t>(n, c.n_layers);
  if (n != 0) {
    std::string why;
    m->device_ = params.device ? params.device() : make_device_backend({params.threads, params.isa, params.int8_acts}, &why);
    if (!m->device_ && n != kGpuLayersAuto)
      throw Error(ErrorCode::invalid_argument, "gpu_layers " + gpu_layers_name(params.gpu_layers) + ": no device backend: " + why);
    if (!m->device_) {
      m->plan_ = "gpu_layers auto: no device (" + why + "): 0 layers on a device";
      n = 0;
    } else if (n == kGpuLayersAuto) {
      const DeviceFootprint f = device_footprint(c, m->manifest_, m->ctx_, std::max<int64_t>(1, params.plan_sequences), 512);
      const LayerPlan plan = plan_device_layers(f, m->device_->free_bytes());
      m->plan_ = "gpu_layers auto: " + plan.arithmetic;
      n = plan.layers;
    } else {
      m->plan_ = "gpu_layers " + gpu_layers_name(params.gpu_layers) + ": " + std::to_string(n) + " layers on the device";
    }
  }
  m->place(n);
  if (params.load_tokenizer) {
    m->tokenizer_ = m->manifest_.in_memory() ? load_tokenizer_files(m->manifest_.tokenizer_data(), dir)
                                             : load_tokenizer(dir);
    // A chat reply ends at its turn's end token even where the model's files name only the
    // text's (a Gemma GGUF with <eos> as its end): as generation, not as a chat front end, so
    // the server, the CLI and the APIs stop alike. A template that does not parse is reported
    // where a chat needs it.
    try {
      if (const std::unique_ptr<ChatTemplate> t = chat_template_of(*m->tokenizer_))
        if (const auto id = end_of_turn_token(*t, *m->tokenizer_)) m->tokenizer_->add_eos_id(*id);
    } catch (const Error&) {
    }
  }
  return m;
}

void Model::place(int64_t n) {
  const ModelConfig& c = config();
  while (true) {
    if (n == 0) device_.reset();
    stages_ = split_stages(c.n_layers, n, device_.get(), cpu_.get());
    try {
      forward_ = make_forward_pass(for_context(c, ctx_), manifest_, stages_);
      return;
    } catch (const Error& e) {
      if (e.code() != ErrorCode::out_of_memory || n == 0) throw;
      // What went up is freed with the backend; a fresh one tells how much room there is, and
      // the planner fits fewer layers in it (none when it cannot say).
      forward_.reset();
      device_.reset();
      device_ = params_.device ? params_.device() : make_device_backend({params_.threads, params_.isa, params_.int8_acts}, nullptr);
      const int64_t free = device_ ? device_->free_bytes() : -1;
      const DeviceFootprint f = device_footprint(c, manifest_, ctx_, std::max<int64_t>(1, params_.plan_sequences), 512);
      const LayerPlan plan = plan_device_layers(f, free);
      const int64_t fewer = std::min(n - 1, plan.layers);
      warn("the device ran out of memory loading " + std::to_string(n) + " layers (" + e.what() + "); " +
           (fewer > 0 ? std::to_string(fewer) + " layers on the device, the rest on the CPU" : "the model runs on the CPU"));
      plan_ += "; out of memory with " + std::to_string(n) + " layers, then " + plan.arithmetic;
      n = fewer;
    }
  }
}

void Model::warn(const std::string& message) const {
  if (warned_) return;  // one warning per model: the first fallback says what happened
  warned_ = true;
  if (params_.warn)
    params_.warn(message);
  else
    std::fprintf(stderr, "lowbit: warning: %s\n", message.c_str());
}

void Model::fall_back_to_cpu(const std::string& why) const {
  if (stages_.size() == 1 && stages_[0].backend == cpu_.get()) return;  // another thread did it
  const ModelConfig& c = config();
  std::vector<Stage> stages = split_stages(c.n_layers, 0, nullptr, cpu_.get());
  // The CPU uses the mapped weights in place: building its forward pass allocates only norms.
  forward_ = make_forward_pass(for_context(c, ctx_), manifest_, stages);
  stages_ = std::move(stages);
  ++placement_;
  warn("the device ran out of memory (" + why + "); the model runs on the CPU from now on");
  // device_ stays: caches made for the old placement are read from it when they move.
}

int64_t Model::device_layers() const {
  std::shared_lock lock(mutex_);
  return device_layers_locked();
}

int64_t Model::device_layers_locked() const {
  int64_t n = 0;
  for (const Stage& s : stages_)
    if (s.backend != cpu_.get()) n += s.layers;
  return n;
}

std::string Model::placement() const {
  std::shared_lock lock(mutex_);
  std::string out;
  for (const Stage& s : stages_) {
    if (s.layers == 0) continue;
    out += (out.empty() ? "layers " : ", ") + std::to_string(s.first) + "-" + std::to_string(s.first + s.layers - 1) +
           " on " + s.backend->name();
  }
  return out;
}

std::unique_ptr<SeqCache> Model::make_cache(int64_t capacity) const {
  const ModelConfig& c = config();
  auto cache = std::make_unique<SeqCache>();
  cache->capacity = capacity;
  cache->placement = placement_;
  for (const Stage& s : stages_) {
    cache->parts.push_back(s.backend->new_kv_cache(s.layers, capacity, c.n_kv_heads * c.head_dim));
    cache->backends.push_back(s.backend);
  }
  return cache;
}

void Model::migrate(SeqCache& cache) const {
  std::unique_ptr<SeqCache> fresh = make_cache(cache.capacity);
  copy_rows(cache, *fresh, cache.capacity);
  cache = std::move(*fresh);
}

void Model::copy_kv(const SeqCache& src, SeqCache& dst, int64_t n) const {
  if (n < 0 || n > src.capacity || n > dst.capacity)
    throw Error(ErrorCode::invalid_argument, "copy_kv: " + std::to_string(n) + " positions do not fit caches of " +
                                                 std::to_string(src.capacity) + " and " + std::to_string(dst.capacity));
  std::shared_lock lock(mutex_);
  copy_rows(src, dst, n);
}

void Model::copy_rows(const SeqCache& src, SeqCache& dst, int64_t n) const {
  const int64_t kv_dim = config().n_kv_heads * config().head_dim;
  std::vector<float> rows((size_t)(n * kv_dim));
  // Layer by layer, through the host: (n, kv_dim) of K, then of V, each layer's rows at
  // layer * capacity in its part.
  auto locate = [](const SeqCache& sc, int64_t layer, size_t& part) {
    int64_t first = 0;
    for (part = 0; layer >= first + sc.parts[part]->layers; ++part) first += sc.parts[part]->layers;
    return layer - first;
  };
  for (int64_t l = 0; l < config().n_layers && n > 0; ++l) {
    size_t from = 0, to = 0;
    const int64_t lf = locate(src, l, from), lt = locate(dst, l, to);
    const KvCache &a = *src.parts[from], &b = *dst.parts[to];
    for (auto member : {&KvCache::k, &KvCache::v}) {
      src.backends[from]->read({(a.*member).get(), lf * src.capacity * kv_dim, n, kv_dim}, rows.data());
      dst.backends[to]->write({(b.*member).get(), lt * dst.capacity * kv_dim, n, kv_dim}, rows.data());
    }
  }
}

void Model::forward(std::span<const SeqChunk> chunks, Workspace& ws, float* logits, const ForwardOptions& opt) const {
  for (int attempt = 0;; ++attempt) {
    std::string why;
    {
      std::shared_lock lock(mutex_);
      try {
        for (const SeqChunk& ch : chunks)
          if (ch.cache && ch.cache->placement != placement_) migrate(*ch.cache);
        forward_->run(chunks, ws, logits, opt);
        return;
      } catch (const Error& e) {
        if (e.code() != ErrorCode::out_of_memory || device_layers_locked() == 0 || attempt > 0) throw;
        why = e.what();
      }
    }
    std::unique_lock lock(mutex_);
    fall_back_to_cpu(why);
  }
}

const Tokenizer& Model::tokenizer() const {
  if (!tokenizer_) throw Error(ErrorCode::invalid_argument, manifest_.dir() + ": model was loaded without a tokenizer");
  return *tokenizer_;
}

namespace {

const CpuBackend& cpu(const Backend& b) {
  const auto* c = dynamic_cast<const CpuBackend*>(&b);
  if (!c) throw Error(ErrorCode::invalid_argument, "the model does not run on the CPU backend");
  return *c;
}

}  // namespace

ThreadPool& Model::pool() const { return cpu(*cpu_).pool(); }

MatmulOptions Model::matmul_options() const { return cpu(*cpu_).matmul_options(); }

std::unique_ptr<SeqCache> Model::new_kv_cache(int64_t capacity) const {
  if (capacity <= 0 || capacity > ctx_)
    throw Error(ErrorCode::invalid_argument, "KV cache of " + std::to_string(capacity) + " positions outside [1, " +
                                                 std::to_string(ctx_) + "]");
  std::string why;
  {
    std::shared_lock lock(mutex_);
    try {
      return make_cache(capacity);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::out_of_memory || device_layers_locked() == 0) throw;
      why = e.what();
    }
  }
  {
    std::unique_lock lock(mutex_);
    fall_back_to_cpu(why);
  }
  std::shared_lock lock(mutex_);
  return make_cache(capacity);
}

Session::Session(const Model& model) : model_(model), cache_(model.new_kv_cache(model.ctx())), ws_(model.backend()) {}

void Session::truncate(int64_t pos) {
  if (pos < 0 || pos > pos_) throw Error(ErrorCode::invalid_argument, "truncate: position " + std::to_string(pos) + " outside [0, " + std::to_string(pos_) + "]");
  pos_ = pos;
}

void Session::eval(const int32_t* tokens, int64_t n, float* logits, bool all_logits) {
  if (n <= 0) throw Error(ErrorCode::invalid_argument, "eval: no tokens");
  const ModelConfig& c = model_.config();
  if (pos_ + n > model_.ctx())
    throw Error(ErrorCode::context_full, "context full: " + std::to_string(pos_) + " + " + std::to_string(n) +
                " tokens exceed the context of " + std::to_string(model_.ctx()) +
                " positions (load the model with a longer context)");
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
      throw Error(ErrorCode::invalid_argument, "token id " + std::to_string(tokens[i]) + " outside the vocabulary [0, " +
                  std::to_string(c.vocab_size) + ")");
  // Prompts go in batches of up to 512 tokens: the GEMM kernels are as fast by then, and the
  // scratch stays bounded for long prompts.
  constexpr int64_t kMaxBatch = 512;
  const ForwardOptions opt{row_independent_, observer_ ? &observer_ : nullptr};
  for (int64_t done = 0; done < n;) {
    const int64_t b = std::min(kMaxBatch, n - done);
    const bool last = done + b == n;
    const LogitRows rows = !logits ? LogitRows::none : all_logits ? LogitRows::all : last ? LogitRows::last : LogitRows::none;
    SeqChunk chunk{cache_.get(), tokens + done, b, pos_, rows};
    model_.forward({&chunk, 1}, ws_, all_logits ? logits + done * c.vocab_size : logits, opt);
    pos_ += b;
    done += b;
  }
}

}  // namespace lowbit
