// lowbit bench model: prompt and generation throughput of a whole model, with generation's
// weight bytes per second against the DRAM read bandwidth probed before each repetition.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/bench_model.h"
#include "cli/command.h"
#include "cli/model_arg.h"
#include "convert/load.h"
#include "kernels/error.h"
#include "kernels/membw.h"
#include "runtime/batch.h"
#include "runtime/model.h"

namespace lowbit::cli {

namespace {
const char* kFooter =
    "Prompt: P tokens in one batch (the M > 1 kernels). Generation: G tokens one at a time (M = 1)\n"
    "after the prompt. Token ids are fixed pseudo-random ids, so no tokenizer is needed. Reports\n"
    "the median of R repetitions (default 3); ratio_to_dram is the median over repetitions of the\n"
    "generation weight-bytes/s over a DRAM read probe pass taken just before that repetition.\n"
    "--parallel N: N sequences through the batch scheduler (runtime/batch.h): their N prompts in\n"
    "one step, then G greedy tokens each, N rows per step (end tokens ignored). Generation\n"
    "tokens/s is the aggregate over the decode steps, per_sequence the rate of each sequence\n"
    "(its tokens after the first over the time between its first and last).\n"
    "--gpu-layers: layers on the GPU (run's flag); the DRAM probe is still the host's, so judge\n"
    "gen_weight_gbps against the device's copy bandwidth (cuda_matmul_bench) instead.\n";

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// --parallel: one repetition of N sequences through a Scheduler. Returns the prompt step's and
// the decode steps' seconds, and each sequence's decode rate.
struct ParallelRun {
  double prompt_s = 0, gen_s = 0;
  std::vector<double> per_sequence;
};

ParallelRun run_parallel(const Model& model, int n, const std::vector<int32_t>& prompt, int64_t gen_len) {
  // Every prompt fits the first step, so each later step is N decode rows.
  Scheduler sched(model, {n, (int64_t)prompt.size() * n + n + 1});
  SequenceParams sp;
  sp.max_tokens = gen_len;
  sp.stop_on_bos = sp.stop_on_eos = false;
  std::vector<SequenceId> ids;
  for (int i = 0; i < n; ++i) ids.push_back(sched.submit(prompt, sp));
  ParallelRun r;
  double t0 = now();
  sched.step();
  r.prompt_s = now() - t0;
  t0 = now();
  std::vector<double> rates(n, 0.0);
  while (sched.has_work()) {
    for (const SequenceEvent& e : sched.step()) {
      if (e.finish == FinishReason::none) continue;
      const SequenceStats* st = sched.stats(e.id);
      if (st && st->generated_tokens > 1)
        rates[e.id - ids[0]] = (st->generated_tokens - 1) / (st->last_token - st->first_token);
    }
  }
  r.gen_s = now() - t0;
  r.per_sequence = rates;
  return r;
}

}  // namespace

int bench_model_main(int argc, char** argv) {
  std::string dir, models;
  int64_t prompt_len = 128, gen_len = 64;
  int reps = 3, parallel = 0;
  bool json_out = false;
  LoadParams lp;
  lp.load_tokenizer = false;
  std::string isa = "auto";
  Args args("lowbit bench model", "Prompt and generation throughput of a whole model.", kFooter);
  args.positional("MODEL", dir, "manifest directory, GGUF file, HF directory or stored model name").metavar("MODEL").required();
  args.integer("--prompt-len", prompt_len, "prompt tokens (default 128)", 1).metavar("P");
  args.integer("--gen-len", gen_len, "generated tokens (default 64)", 1).metavar("G");
  args.integer("--reps", reps, "repetitions (default 3)", 1, 1 << 20).metavar("R");
  args.integer("--parallel", parallel, "N sequences decoded together through the batch scheduler (0: off)", 0, 1 << 16)
      .metavar("N");
  add_threads(args, lp.threads);
  add_isa(args, isa);
  add_gpu_layers(args, lp.gpu_layers);
  add_models(args, models);
  args.flag("--json", json_out, "print one JSON object");
  if (!args.parse(argc, argv)) return 0;
  if (parallel && gen_len < 2) throw UsageError("--parallel needs --gen-len >= 2");
  lp.isa = parse_isa(isa);
  lp.ctx = prompt_len + gen_len;
  auto model = load_model(resolve_model(dir, models), lp);
  const ModelConfig& c = model->config();
  DramProbe probe(model->pool(), size_t(512) << 20);

  std::vector<int32_t> ids(prompt_len + gen_len);
  uint32_t state = 12345;
  for (auto& t : ids) t = (int32_t)((state = state * 1664525u + 1013904223u) >> 8) % (int32_t)c.vocab_size;
  std::vector<float> logits(prompt_len * c.vocab_size);
  // Generation reads every weight once per token; the embedding only one row.
  const auto& e = model->manifest().get(tensor_name(c, Role::embed));
  const int64_t read_bytes = (int64_t)model->manifest().weights_bytes() - (c.tie_embeddings ? 0 : e.bytes);
  std::vector<double> pp, tg, probes, ratios;
  if (parallel > 0) {
    // Aggregate rates: N prompts, then N * (G - 1) tokens in G - 1 decode steps (the first token
    // of each comes from its prompt's step), each step reading the weights once.
    const std::vector<int32_t> prompt(ids.begin(), ids.begin() + prompt_len);
    std::vector<std::vector<double>> per_seq(parallel);
    for (int r = 0; r < reps + 1; ++r) {
      const double bw = probe.pass();
      const ParallelRun run = run_parallel(*model, parallel, prompt, gen_len);
      if (r == 0) continue;  // warm-up
      pp.push_back(parallel * prompt_len / run.prompt_s);
      tg.push_back(parallel * (gen_len - 1) / run.gen_s);
      probes.push_back(bw);
      ratios.push_back((gen_len - 1) / run.gen_s * (double)read_bytes / 1e9 / bw);
      for (int i = 0; i < parallel; ++i) per_seq[i].push_back(run.per_sequence[i]);
    }
    std::vector<double> seq_rates;
    for (auto& v : per_seq) seq_rates.push_back(median(v));
    const double pp_med = median(pp), tg_med = median(tg), bw = median(probes), ratio = median(ratios);
    const double lo = *std::min_element(seq_rates.begin(), seq_rates.end());
    const double hi = *std::max_element(seq_rates.begin(), seq_rates.end());
    nlohmann::json j = {{"model", dir},
                        {"threads", model->pool().size()},
                        {"parallel", parallel},
                        {"prompt_len", prompt_len},
                        {"gen_len", gen_len},
                        {"prompt_tokens_per_s", pp_med},
                        {"gen_tokens_per_s", tg_med},
                        {"per_sequence_tokens_per_s", seq_rates},
                        {"weight_bytes_per_step", read_bytes},
                        {"dram_read_gbps", bw},
                        {"ratio_to_dram", ratio},
                        {"device_layers", model->device_layers()},
                        {"placement", model->placement()},
                        {"isa", isa_name(resolve_isa(lp.isa))}};
    if (json_out) {
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%d sequences: prompts %lld tokens each: %.1f tok/s | generation %lld tokens each: %.2f tok/s "
                  "aggregate, per sequence %.2f-%.2f tok/s, weights at %.2f x DRAM read (%.1f GB/s)\n",
                  parallel, (long long)prompt_len, pp_med, (long long)gen_len, tg_med, lo, hi, ratio, bw);
    }
    return 0;
  }
  Session s(*model);
  for (int r = 0; r < reps + 1; ++r) {  // the first repetition warms up (page-in of the mmap)
    s.reset();
    double t0 = now();
    s.eval(ids.data(), prompt_len, logits.data());
    const double t1 = now();
    // A probe pass right before each generation run: its ratio is judged against the machine's
    // bandwidth at that moment, as in bench matmul.
    const double bw = probe.pass();
    const double t2 = now();
    for (int64_t g = 0; g < gen_len; ++g) s.eval(&ids[prompt_len + g], 1, logits.data());
    const double t3 = now();
    if (r == 0) continue;
    pp.push_back(prompt_len / (t1 - t0));
    tg.push_back(gen_len / (t3 - t2));
    probes.push_back(bw);
    ratios.push_back(tg.back() * (double)read_bytes / 1e9 / bw);
  }
  const double pp_med = median(pp), tg_med = median(tg), bw = median(probes), ratio = median(ratios);
  const double weight_gbps = tg_med * (double)read_bytes / 1e9;
  nlohmann::json j = {{"model", dir},
                      {"threads", model->pool().size()},
                      {"prompt_len", prompt_len},
                      {"gen_len", gen_len},
                      {"prompt_tokens_per_s", pp_med},
                      {"gen_tokens_per_s", tg_med},
                      {"weight_bytes_per_token", read_bytes},
                      {"gen_weight_gbps", weight_gbps},
                      {"dram_read_gbps", bw},
                      {"ratio_to_dram", ratio},
                      {"device_layers", model->device_layers()},
                      {"placement", model->placement()},
                      {"isa", isa_name(resolve_isa(lp.isa))}};
  if (json_out) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("prompt %lld tokens: %.1f tok/s | generation %lld tokens: %.2f tok/s, %.2f GB/s of weights = %.2f x DRAM read (%.1f GB/s)\n",
                (long long)prompt_len, pp_med, (long long)gen_len, tg_med, weight_gbps, ratio, bw);
  }
  return 0;
}

}  // namespace lowbit::cli
