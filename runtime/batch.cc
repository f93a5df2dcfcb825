#include "runtime/batch.h"

#include <optional>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <unordered_set>

#include "kernels/error.h"

namespace lowbit {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::none: return "";
    case FinishReason::eos: return "eos";
    case FinishReason::length: return "length";
    case FinishReason::stop: return "stop";
    case FinishReason::context: return "context";
    case FinishReason::cancelled: return "cancelled";
  }
  return "";
}

struct Scheduler::Seq {
  Seq(SequenceId id, std::vector<int32_t> p, const SequenceParams& sp)
      : id(id), prompt(std::move(p)), params(sp), sampler(sp.sampler), history(prompt) {
    if (sp.json) json.emplace(sp.json, sp.schema, sp.json_trigger);
  }

  SequenceId id;
  std::vector<int32_t> prompt;
  SequenceParams params;
  Sampler sampler;
  std::optional<JsonConstraint> json;  // JSON mode
  std::unique_ptr<TextStream> text;  // null without a tokenizer
  std::unique_ptr<SeqCache> cache;    // from admission on
  std::vector<int32_t> history;      // prompt and generated tokens: the sampler's penalty window
  int64_t read = 0;                  // prompt tokens in the cache
  int64_t pos = 0;                   // positions in the cache
  int32_t pending = -1;              // sampled last step, fed back in the next
  FinishReason finish = FinishReason::none;
  SequenceStats stats;
};

Scheduler::Scheduler(const Model& model, const SchedulerParams& params)
    : model_(model), params_(params), ws_(model.backend()) {
  if (params.max_sequences < 1) throw Error(ErrorCode::invalid_argument, "scheduler: max_sequences must be >= 1");
  if (params.max_step_tokens <= params.max_sequences)
    throw Error(ErrorCode::invalid_argument, "scheduler: max_step_tokens (" + std::to_string(params.max_step_tokens) +
                                                 ") must exceed max_sequences (" +
                                                 std::to_string(params.max_sequences) + ") so prompts advance");
}

Scheduler::~Scheduler() = default;

SequenceId Scheduler::submit(std::vector<int32_t> prompt, const SequenceParams& params) {
  const ModelConfig& c = model_.config();
  if (prompt.empty()) throw Error(ErrorCode::invalid_argument, "submit: empty prompt");
  for (int32_t t : prompt)
    if (t < 0 || t >= c.vocab_size)
      throw Error(ErrorCode::invalid_argument, "submit: token id " + std::to_string(t) + " outside the vocabulary [0, " +
                                                   std::to_string(c.vocab_size) + ")");
  if (params.max_tokens < 0) throw Error(ErrorCode::invalid_argument, "submit: max_tokens must be >= 0");
  if ((int64_t)prompt.size() > model_.ctx())
    throw Error(ErrorCode::context_full, "submit: a prompt of " + std::to_string(prompt.size()) +
                                             " tokens does not fit a context of " + std::to_string(model_.ctx()));
  if (!params.stop.empty() && !model_.has_tokenizer())
    throw Error(ErrorCode::invalid_argument, "submit: stop strings need a model loaded with its tokenizer");
  auto s = std::make_unique<Seq>(0, std::move(prompt), params);  // the Sampler checks its settings
  if (model_.has_tokenizer()) s->text = std::make_unique<TextStream>(model_.tokenizer(), params.stop, s->prompt);
  s->stats.prompt_tokens = (int64_t)s->prompt.size();
  s->stats.submitted = now_seconds();
  std::lock_guard<std::mutex> lock(mutex_);
  s->id = next_id_++;
  const SequenceId id = s->id;
  incoming_.push_back(std::move(s));
  live_.insert(id);
  return id;
}

bool Scheduler::cancel(SequenceId id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!live_.count(id)) return false;
  if (std::find(cancels_.begin(), cancels_.end(), id) == cancels_.end()) cancels_.push_back(id);
  return true;
}

bool Scheduler::has_work() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return !incoming_.empty() || !cancels_.empty() || !waiting_.empty() || !running_.empty();
}

size_t Scheduler::running() const { return running_count_.load(); }

size_t Scheduler::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return incoming_.size() + waiting_count_.load();
}

const SequenceStats* Scheduler::stats(SequenceId id) const {
  for (const auto* list : {&running_, &finished_})
    for (const auto& s : *list)
      if (s->id == id) return &s->stats;
  for (const auto& s : waiting_)
    if (s->id == id) return &s->stats;
  return nullptr;
}

void Scheduler::finish(Seq& s, FinishReason why) {
  s.finish = why;
  SequenceEvent* e = !events_.empty() && events_.back().id == s.id ? &events_.back() : nullptr;
  if (!e) {
    events_.push_back({s.id, -1, {}, why});
    e = &events_.back();
  }
  e->finish = why;
  // The rest of the text, as generate() shows it: all of it, unless a stop string already cut
  // it or the caller cancelled (then only what was shown).
  if (s.text && why != FinishReason::stop && why != FinishReason::cancelled) {
    s.text->finish();
    e->text += s.text->take();
  }
}

void Scheduler::forget_finished() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& s : finished_) live_.erase(s->id);
  running_count_ = running_.size();
  waiting_count_ = waiting_.size();
}

void Scheduler::admit() {
  while ((int)running_.size() < params_.max_sequences && !waiting_.empty()) {
    Seq& s = *waiting_.front();
    if (s.params.max_tokens == 0) {
      finish(s, FinishReason::length);
    } else {
      // Room for the prompt and every token that is fed back (all but the last).
      const int64_t need = (int64_t)s.prompt.size() + s.params.max_tokens - 1;
      start_cache(s, std::min(need, model_.ctx()));
    }
    (s.finish == FinishReason::none ? running_ : finished_).push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

void Scheduler::start_cache(Seq& s, int64_t capacity) {
  // The kept cache sharing the longest prefix with the prompt, short of its last token (whose
  // logits the sequence needs). Each position's keys and values depend only on the tokens up to
  // it, computed row by row alike in any batch (ForwardOptions::row_independent), so the sequence
  // goes on exactly as if it had read them itself.
  const int64_t most = (int64_t)s.prompt.size() - 1;
  size_t best = kept_.size();
  int64_t shared = 0;
  for (size_t i = 0; i < kept_.size(); ++i) {
    const std::vector<int32_t>& t = kept_[i].tokens;
    const int64_t n = std::mismatch(t.begin(), t.begin() + std::min<int64_t>((int64_t)t.size(), most), s.prompt.begin())
                          .first - t.begin();
    if (n > shared) best = i, shared = n;
  }
  if (best == kept_.size()) {
    s.cache = model_.new_kv_cache(capacity);
    return;
  }
  if (kept_[best].cache->capacity >= capacity) {  // room enough: continue it in place
    s.cache = std::move(kept_[best].cache);
    kept_.erase(kept_.begin() + (std::ptrdiff_t)best);
  } else {
    s.cache = model_.new_kv_cache(capacity);
    model_.copy_kv(*kept_[best].cache, *s.cache, shared);
  }
  s.read = s.pos = shared;
  s.stats.cached_tokens = shared;
}

int64_t Scheduler::kept_positions() const {
  int64_t n = 0;
  for (const Kept& k : kept_) n += k.cache->capacity;
  return n;
}

void Scheduler::keep_finished_caches() {
  if (params_.keep_caches <= 0) return;
  for (const auto& s : finished_) {
    if (!s->cache || s->pos == 0) continue;
    Kept k{std::move(s->cache), std::vector<int32_t>(s->history.begin(), s->history.begin() + s->pos)};
    // A cache far larger than what it holds (a request that left max_tokens to the context) is
    // kept as a copy of what it holds, so the cache costs memory for its tokens only.
    if (k.cache->capacity >= 2 * s->pos) {
      std::unique_ptr<SeqCache> small = model_.new_kv_cache(s->pos);
      model_.copy_kv(*k.cache, *small, s->pos);
      k.cache = std::move(small);
    }
    kept_.push_back(std::move(k));
    if ((int)kept_.size() > params_.keep_caches) kept_.pop_front();
  }
}

const std::vector<SequenceEvent>& Scheduler::step() {
  events_.clear();
  finished_.clear();
  std::vector<SequenceId> cancels;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& s : incoming_) waiting_.push_back(std::move(s));
    incoming_.clear();
    waiting_count_ = waiting_.size();
    cancels.swap(cancels_);
  }
  for (SequenceId id : cancels) {
    auto hit = [&](const std::unique_ptr<Seq>& s) { return s->id == id; };
    if (auto it = std::find_if(waiting_.begin(), waiting_.end(), hit); it != waiting_.end()) {
      finish(**it, FinishReason::cancelled);
      finished_.push_back(std::move(*it));
      waiting_.erase(it);
    } else if (auto r = std::find_if(running_.begin(), running_.end(), hit); r != running_.end()) {
      finish(**r, FinishReason::cancelled);
      finished_.push_back(std::move(*r));
      running_.erase(r);
    }
  }
  admit();
  if (running_.empty()) {
    keep_finished_caches();
    forget_finished();
    return events_;
  }

  // The batch: decoding sequences first, one row each, then prompt chunks in admission order
  // with what is left of the budget.
  chunks_.clear();
  chunk_seqs_.clear();
  int64_t budget = params_.max_step_tokens;
  for (const auto& s : running_)
    if (s->pending >= 0) {
      chunks_.push_back({s->cache.get(), &s->pending, 1, s->pos, LogitRows::last});
      chunk_seqs_.push_back(s.get());
      --budget;
    }
  for (const auto& s : running_) {
    const int64_t left = (int64_t)s->prompt.size() - s->read;
    if (left == 0 || budget == 0) continue;
    const int64_t n = std::min(left, budget);
    chunks_.push_back({s->cache.get(), s->prompt.data() + s->read, n, s->pos, n == left ? LogitRows::last : LogitRows::none});
    chunk_seqs_.push_back(s.get());
    budget -= n;
  }

  const int64_t vocab = model_.config().vocab_size;
  const int64_t rows = logit_rows(chunks_);
  if ((int64_t)logits_.size() < rows * vocab) logits_.resize(rows * vocab);
  model_.forward(chunks_, ws_, logits_.data(), ForwardOptions{true, nullptr});

  const Tokenizer* tok = model_.has_tokenizer() ? &model_.tokenizer() : nullptr;
  const ModelConfig& c = model_.config();
  auto is_end = [&](const Seq& s, int32_t id) {
    const int32_t bos = tok ? tok->bos_id() : c.bos_id;
    if (s.params.stop_on_bos && id == bos && bos >= 0) return true;
    if (!s.params.stop_on_eos) return false;
    if (tok) return tok->is_eos(id);
    return std::find(c.eos_ids.begin(), c.eos_ids.end(), id) != c.eos_ids.end();
  };
  const double t = now_seconds();
  float* row = logits_.data();
  for (size_t i = 0; i < chunks_.size(); ++i) {
    Seq& s = *chunk_seqs_[i];
    const SeqChunk& ch = chunks_[i];
    s.pos += ch.n;
    if (ch.tokens == &s.pending) s.pending = -1;
    else s.read += ch.n;
    if (ch.logits == LogitRows::none) continue;
    // As generate(): sample; an end token ends the sequence unshown; otherwise the token counts,
    // then a stop string, the token budget or the context may end it.
    if (s.params.logprobs) raw_row_.assign(row, row + vocab);  // the sampler's penalty edits row
    const int32_t id = s.json ? s.json->sample(s.sampler, row, vocab, s.history) : s.sampler.sample(row, vocab, s.history);
    if (s.json) s.json->accept(id);
    row += vocab;
    if (is_end(s, id)) {
      finish(s, FinishReason::eos);
      continue;
    }
    s.history.push_back(id);
    SequenceStats& st = s.stats;
    if (st.generated_tokens++ == 0) st.first_token = t;
    st.last_token = t;
    events_.push_back({s.id, id, {}, FinishReason::none});
    if (s.params.logprobs) {
      // log softmax at id; the sum in double, so its error stays far below a float logit's.
      const float mx = *std::max_element(raw_row_.begin(), raw_row_.end());
      double sum = 0;
      for (float l : raw_row_) sum += std::exp((double)l - mx);
      events_.back().logprob = (float)((double)raw_row_[id] - mx - std::log(sum));
    }
    if (s.text) {
      const bool stopped = s.text->push(id);
      events_.back().text = s.text->take();
      if (stopped) {
        finish(s, FinishReason::stop);
        continue;
      }
    }
    if (st.generated_tokens >= s.params.max_tokens) finish(s, FinishReason::length);
    else if (s.pos >= model_.ctx()) finish(s, FinishReason::context);
    else s.pending = id;
  }
  for (auto& s : running_)
    if (s->finish != FinishReason::none) finished_.push_back(std::move(s));
  std::erase_if(running_, [](const std::unique_ptr<Seq>& s) { return !s; });
  keep_finished_caches();
  forget_finished();
  return events_;
}

}  // namespace lowbit
