// Decoding allocates nothing per token: once a session (or a batch of sequences) has run a few
// tokens, a forward pass over one more token per sequence makes no heap allocation on any thread.
// This binary's operator new counts the allocations made while a window is open; it only counts,
// so the other tests of the binary are unaffected.
//
// What warms up: the workspace's buffers (sized by the largest batch), the kernels' per-thread
// scratch (activation quantization, tile multipliers, attention scores sized by the KV cache),
// all of which grow to their size in the first steps and are reused after.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>

#include "runtime/model.h"
#include "tests/runtime/converted_models.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace lowbit {
namespace {

// Allocations made while fn runs.
template <class Fn>
long allocations_in(Fn&& fn) {
  g_allocations = 0;
  g_counting = true;
  fn();
  g_counting = false;
  return g_allocations.load();
}

TEST(Decode, NoHeapAllocationPerToken) {
  for (int bits : {32, 8, 4})
    for (Isa isa : available_isas()) {
      LoadParams lp;
      lp.isa = isa;
      lp.threads = 2;
      auto model = Model::load(test::converted("stories260K", bits), lp);
      const int64_t vocab = model->config().vocab_size;
      std::vector<float> logits(4 * vocab);
      const std::string where = "bits " + std::to_string(bits) + " " + isa_name(isa);

      // One session, token by token.
      Session s(*model);
      const std::vector<int32_t> prompt = model->tokenizer().encode("Once upon a time", true);
      s.eval(prompt.data(), (int64_t)prompt.size(), logits.data());
      int32_t id = 5;
      for (int t = 0; t < 3; ++t) s.eval(&id, 1, logits.data());
      EXPECT_EQ(allocations_in([&] {
                  for (int t = 0; t < 8; ++t) s.eval(&id, 1, logits.data());
                }),
                0)
          << where << ": Session::eval of one token";

      // Four sequences in one forward pass per step, as the scheduler runs them.
      Workspace ws(model->backend());
      std::vector<std::unique_ptr<SeqCache>> caches;
      std::vector<SeqChunk> chunks;
      for (int i = 0; i < 4; ++i) {
        caches.push_back(model->new_kv_cache(64));
        chunks.push_back({caches.back().get(), &id, 1, 0, LogitRows::last});
      }
      auto step = [&] {
        model->forward(chunks, ws, logits.data(), {true, nullptr});
        for (SeqChunk& c : chunks) ++c.pos;
      };
      for (int t = 0; t < 3; ++t) step();
      EXPECT_EQ(allocations_in([&] {
                  for (int t = 0; t < 8; ++t) step();
                }),
                0)
          << where << ": a batch of 4 decode rows";
    }
}

}  // namespace
}  // namespace lowbit
