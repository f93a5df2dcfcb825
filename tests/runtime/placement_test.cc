// Layer placement across backends (runtime/placement.h), the memory planner and the
// out-of-memory fallback, on the CPU: the "device" is a second CPU backend, with a memory budget
// where the test needs one (BackendParams::test_memory_budget), so that its allocations fail as a
// full GPU's would. Both backends run the same kernels, so a split model's logits must equal the
// single-backend model's bit for bit; the activations crossing between them are fp32 copies.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu_backend.h"
#include "kernels/error.h"
#include "runtime/batch.h"
#include "runtime/model.h"
#include "tests/runtime/converted_models.h"

namespace lowbit {
namespace {

constexpr int kThreads = 2;

// The greedy continuation of a prompt and every step's logits, through one Session.
struct Greedy {
  std::vector<int32_t> tokens;
  std::vector<float> logits;  // (steps, vocab)
};

Greedy greedy(const Model& m, int steps) {
  Session s(m);
  const int64_t vocab = m.config().vocab_size;
  std::vector<int32_t> ids = m.tokenizer().encode("Once upon a time, there was a", true);
  std::vector<float> l(vocab);
  Greedy r;
  s.eval(ids.data(), (int64_t)ids.size(), l.data());
  for (int i = 0; i < steps; ++i) {
    r.logits.insert(r.logits.end(), l.begin(), l.end());
    int32_t best = 0;
    for (int64_t t = 1; t < vocab; ++t)
      if (l[t] > l[best]) best = (int32_t)t;
    r.tokens.push_back(best);
    s.eval(&best, 1, l.data());
  }
  return r;
}

void expect_identical(const Greedy& a, const Greedy& b, const std::string& where) {
  EXPECT_EQ(a.tokens, b.tokens) << where;
  ASSERT_EQ(a.logits.size(), b.logits.size()) << where;
  EXPECT_EQ(0, std::memcmp(a.logits.data(), b.logits.data(), a.logits.size() * sizeof(float))) << where;
}

// LoadParams whose device is a CPU backend (with `budget` bytes, -1: none); *made points at the
// latest one made.
LoadParams split_params(int64_t gpu_layers, int64_t budget, Backend** made = nullptr, int64_t ctx = 64) {
  LoadParams lp;
  lp.threads = kThreads;
  lp.ctx = ctx;
  lp.gpu_layers = gpu_layers;
  lp.device = [budget, made] {
    BackendParams bp;
    bp.threads = kThreads;
    bp.test_memory_budget = budget;
    auto b = std::make_unique<CpuBackend>(bp);
    if (made) *made = b.get();
    return std::unique_ptr<Backend>(std::move(b));
  };
  return lp;
}

const std::string& model_dir() { return test::converted("stories260K", 4); }

Greedy cpu_reference(int steps) {
  LoadParams lp;
  lp.threads = kThreads;
  lp.ctx = 64;
  return greedy(*Model::load(model_dir(), lp), steps);
}

TEST(Placement, SplitGivesTheSingleBackendLogits) {
  const Greedy want = cpu_reference(12);
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(2), int64_t(4), int64_t(5), kGpuLayersAll}) {
    // Without a budget the device uses the weights in place; with one it copies them, as a GPU.
    for (int64_t budget : {int64_t(-1), int64_t(1) << 30}) {
      auto m = Model::load(model_dir(), split_params(n, budget));
      const int64_t layers = n == kGpuLayersAll ? 5 : n;
      EXPECT_EQ(m->device_layers(), layers);
      expect_identical(greedy(*m, 12), want, "gpu_layers " + gpu_layers_name(n) + " budget " + std::to_string(budget) +
                                                 " (" + m->placement() + ")");
    }
  }
}

TEST(Placement, BatchedSequencesOnASplitModel) {
  // Two sequences at different positions in one forward pass: each sequence's cache has a part
  // per stage. The row-independent path gives every row the result it gets alone.
  LoadParams lp;
  lp.threads = kThreads;
  lp.ctx = 64;
  auto cpu = Model::load(model_dir(), lp);
  auto split = Model::load(model_dir(), split_params(3, -1));
  const int64_t vocab = cpu->config().vocab_size;
  auto run = [&](const Model& m) {
    auto a = m.new_kv_cache(32), b = m.new_kv_cache(32);
    const std::vector<int32_t> pa = {1, 403, 407, 261, 378}, pb = {1, 300, 301};
    std::vector<float> logits(2 * vocab);
    Workspace ws(m.backend());
    const ForwardOptions opt{true, nullptr};
    const SeqChunk first[] = {{a.get(), pa.data(), 5, 0, LogitRows::last}, {b.get(), pb.data(), 3, 0, LogitRows::last}};
    m.forward(first, ws, logits.data(), opt);
    std::vector<float> out = logits;
    const int32_t ta = 50, tb = 60;
    const SeqChunk second[] = {{a.get(), &ta, 1, 5, LogitRows::last}, {b.get(), &tb, 1, 3, LogitRows::last}};
    m.forward(second, ws, logits.data(), opt);
    out.insert(out.end(), logits.begin(), logits.end());
    return out;
  };
  const std::vector<float> want = run(*cpu), got = run(*split);
  ASSERT_EQ(want.size(), got.size());
  EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)));
}

TEST(Placement, DeviceLayersWithoutADeviceFailOrFallToNone) {
  LoadParams lp;
  lp.threads = kThreads;
  lp.ctx = 64;
  lp.gpu_layers = 2;
  lp.device = [] { return std::unique_ptr<Backend>(); };  // no device here
  try {
    Model::load(model_dir(), lp);
    FAIL() << "gpu_layers 2 without a device loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("gpu_layers 2"), std::string::npos) << e.what();
  }
  lp.gpu_layers = kGpuLayersAuto;
  auto m = Model::load(model_dir(), lp);
  EXPECT_EQ(m->device_layers(), 0);
  EXPECT_NE(m->plan().find("no device"), std::string::npos) << m->plan();
}

TEST(Placement, ParsesGpuLayers) {
  EXPECT_EQ(parse_gpu_layers("all", "--gpu-layers"), kGpuLayersAll);
  EXPECT_EQ(parse_gpu_layers("auto", "--gpu-layers"), kGpuLayersAuto);
  EXPECT_EQ(parse_gpu_layers("0", "--gpu-layers"), 0);
  EXPECT_EQ(parse_gpu_layers("17", "--gpu-layers"), 17);
  for (const char* bad : {"", "-1", "1.5", "x", "12345678901"})
    EXPECT_THROW(parse_gpu_layers(bad, "--gpu-layers"), Error) << bad;
}

// ---- the planner --------------------------------------------------------------------------------

// stories260K's sizes, summed here from the manifest by tensor name and from the config by hand.
struct HandSums {
  std::vector<int64_t> layer;  // weights per layer
  int64_t embed = 0, head = 0, kv = 0, scratch = 0;
};

HandSums hand_sums(const Manifest& mf, int64_t ctx, int64_t sequences, int64_t rows) {
  const ModelConfig& c = mf.config();
  HandSums h;
  h.layer.assign(5, 0);
  for (const TensorEntry& t : mf.header().tensors) {
    bool in_layer = false;
    for (int l = 0; l < 5; ++l)
      if (t.name.rfind("model.layers." + std::to_string(l) + ".", 0) == 0) h.layer[l] += t.bytes, in_layer = true;
    if (in_layer) continue;
    if (t.name == "model.embed_tokens.weight") h.embed += t.bytes;
    h.head += t.bytes;  // model.norm.weight, and the (tied) table again for the head
  }
  // dim 64, 8 heads of 8 (q_dim 64), 4 KV heads (kv_dim 32), ffn 172, vocab 512: fp32 K and V per
  // layer and position; per row: x, xb, tmp (64 each), q, att (64 each), k, v (32 each), gate, up
  // (172 each) = 3*64 + 2*64 + 2*32 + 2*172 = 728 floats; RoPE's table 4 floats; the head's
  // rows 64 + 512 floats.
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.ffn_dim, 172);
  h.kv = 2 * sequences * ctx * 32 * 4;
  h.scratch = rows * 728 * 4 + 4 * 4;
  h.head += rows * (64 + 512) * 4;
  return h;
}

// The smallest free figure whose usable part (free - free / 20) is at least `need`.
int64_t free_for(int64_t need) {
  int64_t f = need;
  while (f - f / 20 < need) ++f;
  return f;
}

TEST(Planner, ChoosesWhatTheArithmeticAllows) {
  const Manifest mf = Manifest::open(model_dir());
  const int64_t ctx = 256, seqs = 3, rows = 512;
  const HandSums h = hand_sums(mf, ctx, seqs, rows);
  const DeviceFootprint f = device_footprint(mf.config(), mf, ctx, seqs, rows);
  ASSERT_EQ(f.layer_weights, h.layer);
  EXPECT_EQ(f.embed, h.embed);
  EXPECT_EQ(f.head, h.head);
  EXPECT_EQ(f.layer_kv, h.kv);
  EXPECT_EQ(f.scratch, h.scratch);

  // Exactly room for k layers: k; one byte less: k - 1. All five need the head too.
  int64_t need = h.embed + h.scratch;
  for (int k = 1; k <= 5; ++k) {
    need += h.layer[k - 1] + h.kv;
    const int64_t total = k == 5 ? need + h.head : need;
    EXPECT_EQ(plan_device_layers(f, free_for(total)).layers, k) << k;
    EXPECT_EQ(plan_device_layers(f, free_for(total) - 1).layers, k - 1) << k;
  }
  EXPECT_EQ(plan_device_layers(f, free_for(need + h.head) * 4).layers, 5);
  EXPECT_EQ(plan_device_layers(f, 0).layers, 0);
  EXPECT_EQ(plan_device_layers(f, -1).layers, 0);
  const LayerPlan p = plan_device_layers(f, free_for(need));
  EXPECT_EQ(p.layers, 4);  // all five layers' room, not the head's
  EXPECT_NE(p.arithmetic.find("N = 4"), std::string::npos) << p.arithmetic;
}

TEST(Planner, AutoPlacementLoadsWhatFits) {
  // A device with room for exactly two layers at the model's ctx (64), one sequence, 512 rows.
  const Manifest mf = Manifest::open(model_dir());
  const HandSums h = hand_sums(mf, 64, 1, 512);
  const int64_t budget = free_for(h.embed + h.scratch + h.layer[0] + h.layer[1] + 2 * h.kv);
  auto m = Model::load(model_dir(), split_params(kGpuLayersAuto, budget));
  EXPECT_EQ(m->device_layers(), 2) << m->plan();
  expect_identical(greedy(*m, 8), cpu_reference(8), "auto: " + m->placement());
}

// ---- the out-of-memory fallback ------------------------------------------------------------------

TEST(Fallback, LoadingMoreLayersThanFitMovesTheRestToTheCpu) {
  // Asked for all layers on a device with room for the weights of two (measured on a device
  // without limit): an upload fails part-way, the loader starts afresh with what the planner
  // allows in that room (fewer layers, here none: its scratch for a 512-row batch alone is more),
  // says so once, and the model gives the CPU's logits.
  Backend* dev = nullptr;
  auto used_by = [&](int64_t n) {
    auto probe = Model::load(model_dir(), split_params(n, int64_t(1) << 30, &dev));
    return (int64_t(1) << 30) - dev->free_bytes();
  };
  const int64_t two = used_by(2), all = used_by(kGpuLayersAll);
  ASSERT_LT(two, all);
  std::vector<std::string> warnings;
  LoadParams lp = split_params(kGpuLayersAll, two);
  lp.warn = [&](const std::string& w) { warnings.push_back(w); };
  auto m = Model::load(model_dir(), lp);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("out of memory"), std::string::npos) << warnings[0];
  EXPECT_LT(m->device_layers(), 5) << m->plan();
  expect_identical(greedy(*m, 8), cpu_reference(8), "after the load fallback: " + m->placement());
  EXPECT_EQ(warnings.size(), 1u);
}

TEST(Fallback, NoRoomForTheKvCacheMovesTheModelToTheCpu) {
  // Weights and the first session fit; the second session's KV cache does not. The model moves
  // to the CPU, the first session's cache with it (at its next step), and both go on giving the
  // CPU's logits.
  Backend* dev = nullptr;
  int64_t used = 0;
  {
    auto probe = Model::load(model_dir(), split_params(kGpuLayersAll, int64_t(1) << 30, &dev));
    Session s(*probe);
    const std::vector<int32_t> ids = probe->tokenizer().encode("Once upon a time, there was a", true);
    std::vector<float> l(probe->config().vocab_size);
    s.eval(ids.data(), (int64_t)ids.size(), l.data());
    used = (int64_t(1) << 30) - dev->free_bytes();
  }
  // Room for all that, and less than one more cache of 64 positions (5 layers x 2 x 64 x 32 floats).
  const int64_t budget = used + 5 * 2 * 64 * 32 * 4 / 2;
  std::vector<std::string> warnings;
  LoadParams lp = split_params(kGpuLayersAll, budget, &dev);
  lp.warn = [&](const std::string& w) { warnings.push_back(w); };
  auto m = Model::load(model_dir(), lp);
  ASSERT_EQ(m->device_layers(), 5);
  EXPECT_TRUE(warnings.empty());

  const int64_t vocab = m->config().vocab_size;
  const std::vector<int32_t> ids = m->tokenizer().encode("Once upon a time, there was a", true);
  LoadParams cp;
  cp.threads = kThreads;
  cp.ctx = 64;
  auto cpu = Model::load(model_dir(), cp);
  Session ref(*cpu), s1(*m);
  std::vector<float> want(vocab), got(vocab);
  ref.eval(ids.data(), (int64_t)ids.size(), want.data());
  s1.eval(ids.data(), (int64_t)ids.size(), got.data());
  EXPECT_EQ(0, std::memcmp(want.data(), got.data(), vocab * sizeof(float)));

  Session s2(*m);  // its cache does not fit on the device
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("out of memory"), std::string::npos) << warnings[0];
  EXPECT_EQ(m->device_layers(), 0) << m->placement();

  // s1 continues (its cache moved from the device), s2 starts; both as on the CPU.
  for (int32_t t : {100, 200, 300}) {
    ref.eval(&t, 1, want.data());
    s1.eval(&t, 1, got.data());
    EXPECT_EQ(0, std::memcmp(want.data(), got.data(), vocab * sizeof(float))) << "token " << t;
  }
  Session ref2(*cpu);
  ref2.eval(ids.data(), (int64_t)ids.size(), want.data());
  s2.eval(ids.data(), (int64_t)ids.size(), got.data());
  EXPECT_EQ(0, std::memcmp(want.data(), got.data(), vocab * sizeof(float)));
  Session s3(*m);
  EXPECT_EQ(warnings.size(), 1u);  // once
}

TEST(Fallback, NoRoomForALargerBatchMovesTheModelToTheCpu) {
  // A decode-sized workspace fits, a longer prompt's does not: the step is run again on the CPU.
  Backend* dev = nullptr;
  int64_t used = 0;
  const std::vector<int32_t> one = {1};
  {
    auto probe = Model::load(model_dir(), split_params(kGpuLayersAll, int64_t(1) << 30, &dev));
    Session s(*probe);
    std::vector<float> l(probe->config().vocab_size);
    s.eval(one.data(), 1, l.data());
    used = (int64_t(1) << 30) - dev->free_bytes();
  }
  std::vector<std::string> warnings;
  LoadParams lp = split_params(kGpuLayersAll, used, &dev);
  lp.warn = [&](const std::string& w) { warnings.push_back(w); };
  auto m = Model::load(model_dir(), lp);
  LoadParams cp;
  cp.threads = kThreads;
  cp.ctx = 64;
  auto cpu = Model::load(model_dir(), cp);
  const int64_t vocab = m->config().vocab_size;
  Session s(*m), ref(*cpu);
  std::vector<float> want(vocab), got(vocab);
  s.eval(one.data(), 1, got.data());
  ref.eval(one.data(), 1, want.data());
  EXPECT_EQ(0, std::memcmp(want.data(), got.data(), vocab * sizeof(float)));
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(m->device_layers(), 5);
  const std::vector<int32_t> more = m->tokenizer().encode(" upon a time, there was a little", false);
  s.eval(more.data(), (int64_t)more.size(), got.data());
  ref.eval(more.data(), (int64_t)more.size(), want.data());
  EXPECT_EQ(0, std::memcmp(want.data(), got.data(), vocab * sizeof(float)));
  EXPECT_EQ(warnings.size(), 1u);
  EXPECT_EQ(m->device_layers(), 0);
}

}  // namespace
}  // namespace lowbit
