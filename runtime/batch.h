// Batched decoding: a Scheduler advances many independent sequences of one model together. Each
// step() is one forward pass over a batch that holds one row per decoding sequence (the token it
// sampled last step) and, with the rest of a per-step token budget, chunks of prompts still
// being read; every projection runs once over all the rows (M = rows), so the weights are read
// once per step for every sequence, and attention runs per sequence. Sequences join (submit)
// and leave (finish, cancel) between steps, and a long prompt is read a chunk per step, so it
// never stalls the sequences that are decoding (continuous batching with chunked prefill).
//
// Each sequence has its own sampler, seeded by its own parameters, and its own position. Its
// tokens are exactly those generate() (runtime/generate.h) produces for it alone: the forward
// pass runs with ForwardOptions::row_independent, so a row's arithmetic does not depend on what
// else shares the step (activations are quantized per row and 32-block, and every CPU kernel
// sums a row the same way at every M: tests/kernels MatmulIsa.RowResultsIndependentOfM). The one
// exception is a prompt that generate() reads in one matmul of >= 128 rows where an ISA switches
// to fp32 activations (AVX2, 8-bit weights with groups): there the scheduler keeps the int8
// path, and the two may round differently.
//
// KV memory. Every sequence has a KV cache of its own, allocated when it is admitted with room
// for exactly its prompt plus max_tokens (capped at the model's context) and freed when it
// finishes; not slots of one shared paged cache. Why: attention reads one sequence's positions
// at a time anyway, so a contiguous cache per sequence keeps the attention kernel as it is (a
// position is a row of one array), and sizing each cache to what its request can use saves the
// memory paging would save for requests that declare their length, which every request here
// does. What paging would add, sharing a common prompt prefix between running sequences and
// growing a cache a page at a time, is not built; a finished sequence's cache can be kept and
// continued instead (SchedulerParams::keep_caches), which is what a chat's next turn needs. The
// cost is one allocation per admitted sequence, at admission, never inside a step's forward pass.
//
// Thread safety: submit(), cancel(), running() and waiting() may be called from any thread at any
// time, also while another thread is inside step(). step() and the other members are called by
// one thread at a time (the loop that drives the scheduler, e.g. an HTTP server's engine thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/sampler.h"

namespace lowbit {

using SequenceId = uint64_t;

struct SequenceParams {
  int64_t max_tokens = 256;       // new tokens at most
  SamplerParams sampler;
  std::vector<std::string> stop;  // stop strings (not included in the text); need a tokenizer
  bool stop_on_bos = true;        // as GenerateParams::stop_on_bos
  bool stop_on_eos = true;        // false: end tokens are ordinary tokens (benchmarks: fixed lengths)
  // Report each generated token's log-probability under the model's own distribution (the
  // log-softmax of its logits, before the sampler's penalty, temperature and filters), as
  // OpenAI's logprobs do. Costs one pass over the vocabulary per token.
  bool logprobs = false;
  std::shared_ptr<const JsonTokens> json;  // set: JSON mode, as GenerateParams::json
  std::shared_ptr<const JsonSchema> schema;  // with json: as GenerateParams::schema
  // With json: the text is free until it writes this, then held to one value of schema, then
  // free again (JsonConstraint's trigger: a tool call the model opens itself). "": held throughout.
  std::string json_trigger;
};

enum class FinishReason { none, eos, length, stop, context, cancelled };
// "eos", "length", "stop", "context", "cancelled" (GenerateResult::stop_reason's words); "" for none.
const char* finish_reason_name(FinishReason r);

// What one step did for one sequence.
struct SequenceEvent {
  SequenceId id = 0;
  int32_t token = -1;   // the token this step produced; -1 when none (e.g. it ended on EOS)
  std::string text;     // text newly complete (with a tokenizer): UTF-8 whole, stop strings cut
  FinishReason finish = FinishReason::none;  // set on the sequence's last event
  float logprob = 0;    // of token, with SequenceParams::logprobs
};

struct SchedulerParams {
  int max_sequences = 16;       // sequences admitted at once; more wait in a queue
  // Rows per forward step: one per decoding sequence, the rest for prompt chunks. Must exceed
  // max_sequences, so that prompts always advance.
  int64_t max_step_tokens = 256;
  // Prompt cache: the KV caches of this many finished sequences are kept (the latest), and a
  // sequence whose prompt begins with the tokens one of them holds starts from a copy of it
  // (or from it, when it has room), reading only the rest of its prompt: the next turn of a chat
  // reads only what the last turn did not. 0: none kept.
  int keep_caches = 0;
};

// Per sequence, so far.
struct SequenceStats {
  int64_t prompt_tokens = 0, generated_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens whose keys and values came from the prompt cache
  double submitted = 0, first_token = 0, last_token = 0;  // seconds on a steady clock
};

class Scheduler {
 public:
  // Throws Error (invalid_argument) on params that cannot work.
  explicit Scheduler(const Model& model, const SchedulerParams& params = {});
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a sequence: prompt (token ids, at least one) is read, then up to max_tokens are
  // generated. Throws Error: invalid_argument for an empty prompt, an id outside the vocabulary,
  // bad sampler settings or stop strings without a tokenizer; context_full when the prompt
  // leaves no room to generate in the model's context.
  SequenceId submit(std::vector<int32_t> prompt, const SequenceParams& params = {});
  // Ends a waiting or running sequence; its last event (FinishReason::cancelled) comes from the
  // next step(). False when the id is unknown or already finished.
  bool cancel(SequenceId id);

  // Admits waiting sequences, runs one forward pass, samples and returns what happened: one
  // event per sequence that produced a token or finished, valid until the next step(). Runs no
  // forward pass (and returns only cancellations) when nothing is left to compute.
  const std::vector<SequenceEvent>& step();

  bool has_work() const;     // sequences waiting or running (or cancellations to report)
  size_t running() const;    // admitted and not finished (as of the last step)
  size_t waiting() const;    // submitted, not yet admitted
  // Of a sequence that has not finished yet, or finished in the last step.
  const SequenceStats* stats(SequenceId id) const;

  const Model& model() const { return model_; }
  // Positions the prompt cache's kept KV caches hold room for (their memory); called by the
  // thread that calls step().
  int64_t kept_positions() const;

 private:
  struct Seq;
  // A finished sequence's cache and the tokens whose keys and values it holds (positions 0..).
  struct Kept {
    std::unique_ptr<SeqCache> cache;
    std::vector<int32_t> tokens;
  };
  void finish(Seq& s, FinishReason why);
  void admit();
  void start_cache(Seq& s, int64_t capacity);  // from the best kept cache, or empty
  void keep_finished_caches();
  void forget_finished();  // their ids leave live_

  const Model& model_;
  SchedulerParams params_;
  Workspace ws_;

  mutable std::mutex mutex_;  // guards incoming_, cancels_, live_ and next_id_
  std::deque<std::unique_ptr<Seq>> incoming_;
  std::vector<SequenceId> cancels_;
  std::unordered_set<SequenceId> live_;  // submitted and not finished
  SequenceId next_id_ = 1;

  std::deque<std::unique_ptr<Seq>> waiting_;
  std::vector<std::unique_ptr<Seq>> running_;   // in admission order
  std::vector<std::unique_ptr<Seq>> finished_;  // in the last step
  std::atomic<size_t> running_count_{0}, waiting_count_{0};  // running_ and waiting_ sizes, for any thread
  std::vector<SequenceEvent> events_;
  std::vector<SeqChunk> chunks_;
  std::vector<Seq*> chunk_seqs_;  // the sequence of each chunk
  std::vector<float> logits_;     // (rows, vocab)
  std::vector<float> raw_row_;    // (vocab) a row's logits before sampling changes them, for logprobs
  std::deque<Kept> kept_;         // the prompt cache, oldest first
};

}  // namespace lowbit
