// Batched decoding on the real trained models: every sequence of a batch gets exactly what it
// gets alone. The reference is generate() on a Session of its own (the path the golden outputs
// test), never the scheduler itself; each sequence is checked token for token and byte for
// byte, with mixed prompt lengths, mixed sampling settings (seeded), prompts read in chunks
// between other sequences' decode steps, sequences joining and leaving mid-run, on every ISA.
//
// Why equality and not a bound: the forward pass runs row-independent (int8 activations are
// quantized per row and 32-block, identically at any M, and every kernel sums a row the same way
// at any M: tests/kernels MatmulIsa.RowResultsIndependentOfM), and attention reads only the
// sequence's own cache, so the logits are bit for bit those of the sequence alone, and so are
// greedy and seeded choices. Forward.BatchRowsEqualEachSequenceAlone checks the logits
// themselves. Prompts stay under 128 tokens: there AVX2 would read a prompt alone with fp32
// activations at 8 bits (runtime/batch.h), the one case the equality does not cover.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "runtime/batch.h"
#include "runtime/generate.h"
#include "tests/runtime/converted_models.h"

namespace lowbit {
namespace {

using test::converted;
using test::kSourceDir;
using test::make_hf_model;
using test::TempDir;

struct Outcome {
  std::vector<int32_t> ids;
  std::string text, reason;
};

Outcome alone(const Model& m, const std::string& prompt, const GenerateParams& gp) {
  Session s(m);
  const GenerateResult r = generate(s, prompt, gp);
  return {r.ids, r.text, r.stop_reason};
}

SequenceParams seq_params(const GenerateParams& gp) {
  SequenceParams p;
  p.max_tokens = gp.max_tokens;
  p.sampler = gp.sampler;
  p.stop = gp.stop;
  p.stop_on_bos = gp.stop_on_bos;
  return p;
}

// Steps until nothing is left (at least `min_steps`), calling before(step) first each time so a
// test can submit or cancel mid-run; gathers every sequence's events.
std::map<SequenceId, Outcome> drive(Scheduler& s, const std::function<void(int)>& before = {}, int min_steps = 0) {
  std::map<SequenceId, Outcome> got;
  for (int step = 0; step < 100000; ++step) {
    if (before) before(step);
    if (!s.has_work() && step >= min_steps) break;
    for (const SequenceEvent& e : s.step()) {
      Outcome& o = got[e.id];
      EXPECT_TRUE(o.reason.empty()) << "sequence " << e.id << ": an event after its last";
      if (e.token >= 0) o.ids.push_back(e.token);
      o.text += e.text;
      if (e.finish != FinishReason::none) o.reason = finish_reason_name(e.finish);
    }
  }
  return got;
}

struct Case {
  std::string prompt;
  GenerateParams gp;
};

GenerateParams gen(int64_t max_tokens, SamplerParams sp = {}, std::vector<std::string> stop = {}) {
  GenerateParams gp;
  gp.max_tokens = max_tokens;
  gp.sampler = sp;
  gp.stop = std::move(stop);
  return gp;
}

// Prompts of 1 to ~60 tokens, greedy and seeded sampling, a penalty, a stop string, budgets that
// end the sequences at different steps.
std::vector<Case> cases() {
  return {
      {"", gen(60)},
      {"Once upon a time", gen(50, {.temperature = 0.8f, .top_k = 40, .seed = 7})},
      {"Lily and Tom went to the park. They saw a big dog and", gen(40, {.repetition_penalty = 1.3f})},
      {"The little girl", gen(70, {.temperature = 1.0f, .top_p = 0.9f, .min_p = 0.05f, .seed = 3})},
      {"One day, a cat", gen(80, {}, {"."})},
      {"Tim had a red ball. He liked to play with it every day. One day, he lost the ball in the "
       "park. He looked and looked, but he could not find it. He was very sad. Then",
       gen(30, {.temperature = 0.5f, .seed = 11})},
  };
}

TEST(Batch, EachSequenceGetsWhatItGetsAlone) {
  for (int bits : {32, 8, 4})
    for (Isa isa : available_isas()) {
      LoadParams lp;
      lp.isa = isa;
      lp.threads = 2;
      auto model = Model::load(converted("stories260K", bits), lp);
      const std::vector<Case> cs = cases();
      // 3 at a time (the others queue and join as sequences leave), 8 rows a step (prompts are
      // read a few tokens per step beside the decoding rows).
      Scheduler sched(*model, {.max_sequences = 3, .max_step_tokens = 8});
      std::vector<SequenceId> ids;
      for (const Case& c : cs) {
        const std::vector<int32_t> prompt = model->tokenizer().encode(c.prompt, true);
        ASSERT_LT(prompt.size(), 128u);
        ids.push_back(sched.submit(prompt, seq_params(c.gp)));
      }
      const auto got = drive(sched);
      for (size_t i = 0; i < cs.size(); ++i) {
        const Outcome want = alone(*model, cs[i].prompt, cs[i].gp);
        const Outcome& g = got.at(ids[i]);
        const std::string where = "bits " + std::to_string(bits) + " " + isa_name(isa) + " sequence " + std::to_string(i);
        EXPECT_EQ(g.ids, want.ids) << where;
        EXPECT_EQ(g.text, want.text) << where;
        EXPECT_EQ(g.reason, want.reason) << where;
      }
      EXPECT_EQ(sched.running(), 0u);
    }
}

TEST(Batch, SequencesJoinAndLeaveMidRun) {
  auto model = Model::load(converted("stories260K", 4));
  const std::vector<Case> cs = cases();
  Scheduler sched(*model, {.max_sequences = 4, .max_step_tokens = 16});
  std::vector<std::pair<size_t, SequenceId>> subs;  // (case, sequence)
  SequenceId cancelled_running = 0, cancelled_waiting = 0;
  auto submit = [&](size_t i) {
    subs.emplace_back(i, sched.submit(model->tokenizer().encode(cs[i].prompt, true), seq_params(cs[i].gp)));
    return subs.back().second;
  };
  const auto got = drive(
      sched,
      [&](int step) {
        if (step == 0) submit(0), submit(1);
        if (step == 5) submit(2), submit(3);
        if (step == 9) {
          submit(4);
          cancelled_running = subs[1].second;  // generating since step 0
          EXPECT_TRUE(sched.cancel(cancelled_running));
        }
        if (step == 12) {
          submit(5);
          for (int k = 0; k < 3; ++k) submit(k);  // more than fit: the last waits
          cancelled_waiting = subs.back().second;
          EXPECT_GT(sched.waiting(), 0u);
          EXPECT_TRUE(sched.cancel(cancelled_waiting));
        }
      },
      13);
  for (const auto& [i, id] : subs) {
    const Outcome& g = got.at(id);
    if (id == cancelled_waiting) {
      EXPECT_EQ(g.reason, "cancelled");
      EXPECT_TRUE(g.ids.empty());
      continue;
    }
    const Outcome want = alone(*model, cs[i].prompt, cs[i].gp);
    if (id == cancelled_running) {
      // Cut short after one token per step 0 to 8 (its whole prompt was read in step 0, whose
      // logits gave the first), each the sequence's own.
      EXPECT_EQ(g.reason, "cancelled");
      ASSERT_EQ(g.ids.size(), 9u);
      EXPECT_TRUE(std::equal(g.ids.begin(), g.ids.end(), want.ids.begin()));
      continue;
    }
    EXPECT_EQ(g.ids, want.ids) << "case " << i;
    EXPECT_EQ(g.text, want.text) << "case " << i;
    EXPECT_EQ(g.reason, want.reason) << "case " << i;
  }
  EXPECT_FALSE(sched.cancel(cancelled_running)) << "already finished";
  EXPECT_FALSE(sched.cancel(12345)) << "never submitted";
}

// The prompt cache (SchedulerParams::keep_caches): a sequence whose prompt begins with what a
// finished one held continues from that one's keys and values, reading only the rest, and gets
// exactly what it gets alone: a chat's next turn (longer than the cache: copied into a larger
// one), a turn that rewinds into the last one (room enough: continued in place), and an unrelated
// prompt (sharing only BOS). The reference is generate() on a fresh Session.
TEST(Batch, PromptCacheContinuesWhatAFinishedSequenceRead) {
  for (Isa isa : available_isas()) {
    LoadParams lp;
    lp.isa = isa;
    lp.threads = 2;
    auto model = Model::load(converted("stories260K", 4), lp);
    Scheduler sched(*model, {.max_sequences = 2, .max_step_tokens = 8, .keep_caches = 2});
    auto run = [&](const std::vector<int32_t>& prompt, int64_t max_tokens, int64_t& cached) {
      const SequenceId id = sched.submit(prompt, seq_params(gen(max_tokens)));
      std::vector<int32_t> ids;
      while (sched.has_work())
        for (const SequenceEvent& e : sched.step()) {
          if (e.id != id) continue;
          if (e.token >= 0) ids.push_back(e.token);
          if (e.finish != FinishReason::none) cached = sched.stats(id)->cached_tokens;
        }
      Session alone(*model);
      EXPECT_EQ(ids, generate(alone, prompt, gen(max_tokens)).ids) << isa_name(isa);
      return ids;
    };
    const std::vector<int32_t> p1 = model->tokenizer().encode("Once upon a time", true);
    int64_t cached = -1;
    const std::vector<int32_t> r1 = run(p1, 20, cached);
    ASSERT_EQ(r1.size(), 20u);
    EXPECT_EQ(cached, 0);
    // The next turn: the first turn's prompt and reply, then more. The cache held the prompt and
    // all but the last reply token (never fed back).
    std::vector<int32_t> p2 = p1;
    p2.insert(p2.end(), r1.begin(), r1.end());
    const std::vector<int32_t> more = model->tokenizer().encode(" Then the dog", false);
    p2.insert(p2.end(), more.begin(), more.end());
    run(p2, 20, cached);
    EXPECT_EQ(cached, (int64_t)(p1.size() + r1.size() - 1)) << isa_name(isa);
    // Back into the middle of the first turn, with a short budget: the first turn's cache has
    // room, and is continued where it is.
    const std::vector<int32_t> p3(p2.begin(), p2.begin() + (std::ptrdiff_t)p1.size() + 10);
    run(p3, 5, cached);
    EXPECT_EQ(cached, (int64_t)p3.size() - 1) << isa_name(isa);
    // Nothing in common but BOS.
    run(model->tokenizer().encode("The little girl", true), 10, cached);
    EXPECT_EQ(cached, 1) << isa_name(isa);
  }
}

// A context too short for the budget ends the sequence where generate() ends it.
TEST(Batch, ContextEndsASequenceAsAlone) {
  LoadParams lp;
  lp.ctx = 24;
  auto model = Model::load(converted("stories260K", 32), lp);
  Scheduler sched(*model, {.max_sequences = 2, .max_step_tokens = 4});
  const GenerateParams gp = gen(100);
  const SequenceId a = sched.submit(model->tokenizer().encode("Once upon a time", true), seq_params(gp));
  const SequenceId b = sched.submit(model->tokenizer().encode("", true), seq_params(gen(0)));
  const auto got = drive(sched);
  const Outcome want = alone(*model, "Once upon a time", gp);
  EXPECT_EQ(want.reason, "context");
  EXPECT_EQ(got.at(a).ids, want.ids);
  EXPECT_EQ(got.at(a).reason, "context");
  EXPECT_EQ(got.at(b).reason, "length");  // max_tokens 0: done without a token
  EXPECT_TRUE(got.at(b).ids.empty());
}

TEST(Batch, SubmitRejectsBadRequests) {
  LoadParams lp;
  lp.ctx = 16;
  lp.load_tokenizer = false;
  auto model = Model::load(converted("stories260K", 32), lp);
  Scheduler sched(*model);
  auto code = [&](std::vector<int32_t> prompt, SequenceParams p) {
    try {
      sched.submit(std::move(prompt), p);
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::unspecified;
  };
  EXPECT_EQ(code({}, {}), ErrorCode::invalid_argument);
  EXPECT_EQ(code({1, 100000}, {}), ErrorCode::invalid_argument);
  EXPECT_EQ(code(std::vector<int32_t>(17, 1), {}), ErrorCode::context_full);
  EXPECT_EQ(code({1}, {.stop = {"x"}}), ErrorCode::invalid_argument) << "stop strings without a tokenizer";
  EXPECT_EQ(code({1}, {.sampler = {.top_p = 0.0f}}), ErrorCode::invalid_argument);
  EXPECT_FALSE(sched.has_work());
  EXPECT_THROW(Scheduler(*model, {.max_sequences = 8, .max_step_tokens = 8}), Error);
  // Without a tokenizer the tokens still come (ends from the config's ids), the text is empty.
  const SequenceId id = sched.submit({1}, {.max_tokens = 5});
  const auto got = drive(sched);
  EXPECT_EQ(got.at(id).ids.size(), 5u);
  EXPECT_TRUE(got.at(id).text.empty());
}

// The logits of a batch's rows are bit for bit those of each sequence run alone, prompt chunks
// and decode rows alike (the scheduler's tokens follow from this).
void expect_batch_rows_equal_alone(const Model& model, const std::vector<std::vector<int32_t>>& prompts,
                                   const std::string& label) {
  const int64_t vocab = model.config().vocab_size;
  const ForwardOptions opt{true, nullptr};
  Workspace ws(model.backend());
  // Alone: each prompt, then one more token.
  std::vector<std::vector<float>> want;
  for (const auto& p : prompts) {
    auto cache = model.new_kv_cache(64);
    std::vector<float> out((p.size() + 1) * vocab);
    const SeqChunk prompt{cache.get(), p.data(), (int64_t)p.size(), 0, LogitRows::all};
    model.forward({&prompt, 1}, ws, out.data(), opt);
    const int32_t next = 42;
    const SeqChunk one{cache.get(), &next, 1, (int64_t)p.size(), LogitRows::last};
    model.forward({&one, 1}, ws, out.data() + p.size() * vocab, opt);
    want.push_back(out);
  }
  // Together: the prompts as one batch, then their decode rows as another.
  std::vector<std::unique_ptr<SeqCache>> caches;
  std::vector<SeqChunk> chunks;
  size_t rows = 0;
  for (const auto& p : prompts) {
    caches.push_back(model.new_kv_cache(64));
    chunks.push_back({caches.back().get(), p.data(), (int64_t)p.size(), 0, LogitRows::all});
    rows += p.size();
  }
  std::vector<float> batch(rows * vocab), step(prompts.size() * vocab);
  model.forward(chunks, ws, batch.data(), opt);
  const int32_t next = 42;
  chunks.clear();
  for (size_t i = 0; i < prompts.size(); ++i)
    chunks.push_back({caches[i].get(), &next, 1, (int64_t)prompts[i].size(), LogitRows::last});
  model.forward(chunks, ws, step.data(), opt);
  size_t row = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const size_t n = prompts[i].size();
    const std::string where = label + " sequence " + std::to_string(i);
    EXPECT_EQ(0, std::memcmp(batch.data() + row * vocab, want[i].data(), n * vocab * sizeof(float))) << where;
    EXPECT_EQ(0, std::memcmp(step.data() + i * vocab, want[i].data() + n * vocab, vocab * sizeof(float))) << where;
    row += n;
  }
}

TEST(Forward, BatchRowsEqualEachSequenceAlone) {
  for (int bits : {32, 8, 4, 2})
    for (Isa isa : available_isas()) {
      LoadParams lp;
      lp.isa = isa;
      lp.threads = 2;
      auto model = Model::load(converted("stories260K", bits), lp);
      const std::vector<std::vector<int32_t>> prompts = {
          model->tokenizer().encode("Once upon a time, there was a dog.", true),
          model->tokenizer().encode("", true),
          model->tokenizer().encode("The sun was hot and the", true)};
      expect_batch_rows_equal_alone(*model, prompts, "bits " + std::to_string(bits) + " " + isa_name(isa));
    }
}

// The same for the other layers and their options: the Gemma family's (runtime/gemma.h), where a
// window of 8 on some layers, Gemma 3's own RoPE base on them and soft-capped scores (Gemma 2's,
// set on both here at a cap of 1, so it bends them) make each row's result depend on its position
// in its own sequence only; Phi-4-mini's partial RoPE with LongRoPE's factors, SmolLM3's layer
// without RoPE, and Qwen3-MoE's experts, which each row chooses for itself.
TEST(Forward, FamiliesBatchRowsEqualEachSequenceAlone) {
  LOWBIT_REQUIRE_VENV();
  const std::pair<const char*, const char*> configs[] = {
      {"gemma-3-1b-it", R"({"sliding_window": 8})"},
      {"gemma-2-2b-it", R"({"sliding_window": 8, "attn_logit_softcapping": 1.0})"},
      {"phi-4-mini-instruct",
       R"({"max_position_embeddings": 64, "original_max_position_embeddings": 16, "bos_token_id": 1,
           "eos_token_id": 2, "pad_token_id": 2, "rope_scaling": {"type": "longrope",
           "long_factor": [1, 1.4, 2, 2.8, 4, 5.6, 8, 11, 16, 22, 32, 40],
           "short_factor": [1, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.35, 1.4, 1.45, 1.5, 1.6]}})"},
      {"smollm3-3b", "{}"},
      {"qwen3-30b-a3b", R"({"num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32})"},
  };
  for (const auto& [config_name, edit] : configs) {
    TempDir dir;
    ASSERT_EQ(0, make_hf_model(dir / "hf", "--config '" + kSourceDir + "/tests/data/configs/" + config_name +
                                            "' --layers 6 --dim 64 --ffn 96 --heads 4 --kv-heads 1 --head-dim 32 "
                                            "--vocab 320 --no-tokenizer --seed 2 --config-edit '" + edit + "'"));
    std::vector<std::vector<int32_t>> prompts(3);
    for (size_t i = 0; i < prompts.size(); ++i)
      for (int t = 0; t < 17 - 7 * (int)i; ++t) prompts[i].push_back((int32_t)((t * 37 + i * 11) % 320));
    for (int bits : {32, 4}) {
      ConvertOptions opt;
      opt.bits = bits;
      convert_model(dir / "hf", dir / ("m" + std::to_string(bits)), opt);
      for (Isa isa : available_isas()) {
        LoadParams lp;
        lp.isa = isa;
        lp.threads = 2;
        lp.load_tokenizer = false;  // ids only
        auto model = Model::load(dir / ("m" + std::to_string(bits)), lp);
        expect_batch_rows_equal_alone(*model, prompts,
                                      std::string(config_name) + " bits " + std::to_string(bits) + " " + isa_name(isa));
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
