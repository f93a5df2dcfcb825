// The accuracy harness: a quantized model measured against its FP32 self on real text.
//
// Windows. The whole text file is tokenized as one string (no BOS; newlines, blank lines between
// stories included, are ordinary text), then cut into consecutive windows of `ctx` tokens: BOS
// followed by the next ctx - 1 tokens of the stream (the stream is not overlapped and no token is
// dropped between windows; a last window shorter than ctx is left out). In each window the
// targets at positions ctx/2 .. ctx-1 are scored, each from the logits of the position before
// it, so every scored token has at least ctx/2 tokens of context, as in llama-perplexity. Both
// models see identical windows. A model without a BOS token gets plain ctx-token windows.
//
// Per scored token: NLL under each model, KL(P_ref || P_quant) over the whole vocabulary, and
// whether both models' top tokens agree. Confidence intervals are 95% normal intervals from the
// standard error over tokens (tokens are treated as independent, which makes them optimistic
// within one story); perplexity takes exp of the interval of the mean NLL, and the deltas use the
// paired per-token differences NLL_quant - NLL_ref.
//
// Thread safety: these functions run sessions of the models they are given; call one at a time
// per model.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/qtype.h"
#include "runtime/model.h"

namespace lowbit {

struct EvalWindows {
  std::string label;            // the text's name (a path), for messages and reference files
  int64_t ctx = 0;
  int64_t first = 0;            // first scored position in a window (ctx / 2)
  int64_t text_tokens = 0;      // tokens of the whole text
  std::vector<int32_t> tokens;  // (windows, ctx)
  std::vector<int32_t> scored;  // (windows) targets scored in each: ctx - first, fewer in the last
                                // one when max_tokens cuts it
  int64_t total_scored = 0;
  uint64_t fingerprint = 0;     // hash of ctx, first, tokens and scored counts
  int64_t windows() const { return (int64_t)scored.size(); }
  const int32_t* window(int64_t w) const { return tokens.data() + w * ctx; }
};

// max_tokens: stop after this many scored tokens (0: the whole text). Throws Error when the text
// does not fill one window.
EvalWindows make_windows(const Tokenizer& tok, std::string_view text, const std::string& label,
                         int64_t ctx, int64_t max_tokens);

// A value with its 95% confidence interval.
struct Estimate {
  double value = 0, lo = 0, hi = 0;
};

// Per scored token, in window order.
struct TokenStats {
  std::vector<double> nll_quant, nll_ref, kl;
  std::vector<uint8_t> top1_same;
  size_t size() const { return kl.size(); }
};

// out[i] = logits[i] - logsumexp(logits), computed in double.
void log_softmax(const float* logits, int64_t n, float* out);
// Appends one token's statistics: ref/quant are log-probabilities over the vocabulary (n).
void add_token(const float* ref_logp, const float* quant_logp, int64_t n, int32_t target,
               TokenStats& stats);

struct EvalResult {
  int64_t tokens = 0, windows = 0, ctx = 0;
  Estimate nll_quant, nll_ref;          // nats per token
  Estimate ppl_quant, ppl_ref;          // exp(mean NLL)
  Estimate delta_ppl, delta_ppl_pct;    // ppl_quant - ppl_ref, and as % of ppl_ref
  Estimate kl_mean, kl_p99;             // nats; p99's interval from order statistics
  double kl_max = 0;
  Estimate top1_pct;                    // % of tokens where both models' top token is the same
  double seconds = 0;
};

EvalResult summarize(const TokenStats& s);
nlohmann::json to_json(const EvalResult& r);

struct EvalOptions {
  std::string save_ref;    // write the reference log-probs to this file (needs a ref model)
  std::string ref_logits;  // read the reference log-probs from this file instead of running it
  std::function<void(int64_t tokens_done, int64_t tokens_total)> progress;
};

// How the harness loads both models: every matmul takes int8 activations
// (MatmulOptions::int8_acts), also where an ISA would run prompt-sized batches in fp32, so the
// figures are those of the decode arithmetic that generates every new token, and the same on
// every ISA.
LoadParams eval_load_params(int threads, int64_t ctx);

// Runs both models over the windows. ref may be null when opt.ref_logits is given; when both
// are given, the file must have been made from that model. Throws Error on a reference file made
// for another model, text, tokenizer or context (naming the field), or on differing vocabularies.
EvalResult evaluate(const Model& quant, const Model* ref, const EvalWindows& windows,
                    const EvalOptions& opt = {}, TokenStats* stats_out = nullptr);

// Identifies a manifest's weights: a hash of every tensor's name, type and checksum.
uint64_t model_fingerprint(const Manifest& m);

// ---- reference log-prob files ------------------------------------------------------------------
// Layout: 8-byte magic "LBREFLP\0", u32 format version, u32 n = byte length of a JSON header
// (model dir and fingerprint, text label and windows fingerprint, ctx, windows, scored, vocab,
// dtype "f32"), the header, then for every scored token in window order `vocab` float32
// log-probabilities. Size: 16 + n + 4 * scored * vocab bytes (stories260K, 50k tokens of
// vocab 512: ~100 MB).

// ---- gates ---------------------------------------------------------------------------------------
struct Gates {
  std::optional<double> max_kld;            // mean KL, nats
  std::optional<double> max_ppl_delta_pct;  // %
  std::optional<double> min_top1_pct;       // %
};
// One message per failed gate, e.g. "kld 0.12 > max 0.001"; empty when all pass.
std::vector<std::string> check_gates(const EvalResult& r, const Gates& g);

// ---- per-tensor errors ---------------------------------------------------------------------------
struct TensorError {
  std::string name, type, ref_type;
  int64_t rows = 0, cols = 0;
  double weight_rel_err = 0;  // ||W_q - W||_F / ||W||_F, W_q dequantized
  int64_t act_rows = 0;       // activation rows sampled (0: the tensor was not seen)
  double output_rel_err = 0;  // ||W_q X - W X|| / ||W X|| on the sampled rows X (fp32 matmul)
  double kernel_rel_err = 0;  // same with the runtime's kernel for W_q (int8 activations)
};

struct TensorErrorOptions {
  int64_t max_rows = 256;  // activation rows kept per tensor (a uniform sample)
  std::function<void(int64_t done, int64_t total)> progress;
};

// Every quantized 2-D tensor of quant against the same tensor of ref. Activations are the inputs
// of each matmul while ref runs the first windows (until every tensor has seen 4 * max_rows rows
// or the windows run out), sampled uniformly with a fixed seed.
std::vector<TensorError> tensor_errors(const Model& quant, const Model& ref, const EvalWindows& windows,
                                       const TensorErrorOptions& opt = {});
nlohmann::json to_json(const TensorError& e);

// ---- sweep -----------------------------------------------------------------------------------------
struct SweepOptions {
  std::vector<int> bits = {8, 4, 2, 1};
  std::vector<uint32_t> groups = {0, 32, 64, 128};  // 0: per row
  std::vector<Quantizer> quantizers = {Quantizer::rtn, Quantizer::search};
  int64_t ctx = 256;
  int64_t max_tokens = 0;
  int threads = 0;
  std::string work_dir;  // conversions go here; "" makes (and removes) a temporary directory
  // stage: "fp32" or the row's name; fraction of the whole sweep done.
  std::function<void(const std::string& stage, double fraction, const std::string& detail)> progress;
};

struct SweepRow {
  std::string name;       // "q4_g32_asym search", "f32"
  std::string type;       // the linears' type
  int bits = 32;
  uint32_t group = 0;
  std::string quantizer;  // "rtn", "search", "" for the reference
  double bits_per_weight = 32;  // weights.bin bytes * 8 / weights (scales, norms, padding included)
  int64_t size_bytes = 0;       // weights.bin
  EvalResult result;
};

struct SweepResult {
  std::string hf_dir, text;
  int64_t ctx = 0;
  std::vector<SweepRow> rows;  // rows[0]: the fp32 reference against itself
};

SweepResult run_sweep(const std::string& hf_dir, const std::string& text_path, const SweepOptions& opt);
nlohmann::json to_json(const SweepResult& s);

}  // namespace lowbit
