// Decoding allocates nothing per token: once a session (or a batch of sequences) has run a few
// tokens, a forward pass over one more token per sequence makes no heap allocation on any thread.
// This binary's operator new counts the allocations made while a window is open; it only counts,
// so the other tests of the binary are unaffected.
//
// What warms up: the workspace's buffers (sized by the largest batch), the calling thread's
// activation quantization buffers and attention scores (sized by the KV cache), all of which grow
// to their size in the first steps and are reused after. The matmul kernels' scratch on pool
// workers cannot rely on a warm-up (any worker may meet a kernel first in a later step), so it is
// on the stack at decode's sizes: the last test checks that on a thread's first call.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <thread>

#include "kernels/isa.h"
#include "kernels/matmul.h"
#include "kernels/quantize.h"
#include "kernels/thread_pool.h"
#include "runtime/model.h"
#include "tests/kernels/test_util.h"
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
// Over-aligned types (the kernels' 32-byte vectors of lanes) come through these.
void* operator new(size_t n, std::align_val_t al) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  const size_t a = static_cast<size_t>(al);
  if (void* p = std::aligned_alloc(a, (n + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }

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
      std::vector<float> logits(8 * vocab);
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

      // 4 and 8 sequences in one forward pass per step, as the scheduler runs them (on x86 the
      // lane kernel's one-panel paths: weight-row pairs at 4 with zmm, 8 rows in the lanes).
      for (int count : {4, 8}) {
        Workspace ws(model->backend());
        std::vector<std::unique_ptr<SeqCache>> caches;
        std::vector<SeqChunk> chunks;
        for (int i = 0; i < count; ++i) {
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
            << where << ": a batch of " << count << " decode rows";
      }
    }
}

// The warm-up above cannot rule out a pool worker meeting the batched kernels for the first
// time in a later step (which worker takes which task is not fixed), so their scratch must not be
// sized on first use: a thread that has never run them runs them inside the window. It has run
// the same shapes on the scalar kernels before (the activations' buffers are the caller's and
// grow on first use, the same on every ISA). 4 and 8 rows: the x86 lane kernel's one-panel paths;
// the 6-bit scale codes (_s6) are expanded to fp16 a slice of rows at a time (1 row too).
TEST(Decode, BatchedKernelsAllocateNothingOnAThreadsFirstCall) {
  const int64_t n = 64, k = 2048;
  const auto w = test::matmul_test_weights(n, k);
  for (Isa isa : available_isas())
    for (const char* type : {"q4_g32_asym", "q2_g64_asym", "q8_g32_sym", "q4_g32_asym_s6", "q2_g64_asym_s6"}) {
      const QType t = parse_type(type);
      test::AlignedBytes buf(q_layout(t, n, k).bytes);
      quantize(t, w.data(), n, k, buf.data());
      const QMatrix qm{t, n, k, buf.data()};
      for (int64_t m : {1, 4, 8}) {
        const auto x = test::random_matrix(m, k, 5);
        std::vector<float> y(m * n);
        long count = -1;
        std::thread fresh([&] {
          ThreadPool alone(1);  // the calling thread only: the new thread does the work
          matmul(qm, x.data(), m, y.data(), {Isa::scalar, &alone, true});
          count = allocations_in([&] { matmul(qm, x.data(), m, y.data(), {isa, &alone, true}); });
        });
        fresh.join();
        EXPECT_EQ(count, 0) << type << " m " << m << " " << isa_name(isa);
      }
    }
}

}  // namespace
}  // namespace lowbit
