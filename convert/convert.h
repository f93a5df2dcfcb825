// A model (HF directory or GGUF file, convert/source.h) -> a manifest: the recipe (which tensor gets
// which type), the writer of a manifest directory, and the same import held in memory.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kernels/qtype.h"
#include "runtime/manifest.h"
#include "runtime/mapped_file.h"

namespace lowbit {

struct CalibStats;
struct InputMoments;
struct Allocation;

struct ConvertProgress {
  int64_t tensor = 0, tensors = 0;       // index of the tensor just finished, and the count
  std::string name;
  int64_t bytes_done = 0, bytes_total = 0;  // of the input
  std::string source_type;  // as the source names it: "Q4_K", "BF16"
  std::string type;         // the lowbit type written
  bool exact = false;       // copied exactly (no requantization)
  double rel_error = -1;    // requantized: ||w' - w|| / ||w|| against the source's values; else -1
};

struct ConvertOptions {
  int bits = 4;                 // 1, 2, 4, 8 (quantized), 16 (f16) or 32 (f32)
  // Keep each tensor in the source's own type where lowbit has it, else in the lowbit type of no
  // fewer bits (GGUF Q6_K -> q8_g32_sym); `bits` is then unused. An HF source has no types of
  // its own: its tensors follow `bits` all the same.
  bool source_types = false;
  uint32_t group = 32;          // 32, 64, 128, 256, or 0 for per row
  int scheme = -1;              // -1: default (sym at 8 bits, asym below), else Scheme value
  Quantizer quantizer = Quantizer::search;
  // NAME_GLOB=TYPE overrides, applied in order (the last match wins), e.g.
  // {"model.layers.*.mlp.down_proj.weight", "q8"}.
  std::vector<std::pair<std::string, std::string>> keep;
  // Calibration statistics (convert/calib.h, `--calib`): `search` then minimizes each tensor's
  // error weighted by its inputs' mean squared activation; recorded in the recipe. Not owned.
  const CalibStats* calib = nullptr;
  // GPTQ (`--gptq`, convert/calib.h): a quantized matrix whose input has a second moment here is
  // quantized by quantize_gptq (kernels/quantize.h) with damping gptq_damp; recorded in the
  // recipe. Needs `calib` (the per-group search weighs by its importance). Not owned.
  const InputMoments* moments = nullptr;
  double gptq_damp = 0.01;
  // Per-tensor types by exact name (convert/allocate.h, `--target-bpw`): they replace the recipe's
  // type; --keep still wins. `allocation`, when set, is recorded in the recipe. Not owned.
  std::map<std::string, QType> tensor_types;
  const Allocation* allocation = nullptr;
  int threads = 0;              // 0: all cores
  bool force = false;           // replace an existing OUT_DIR
  bool allow_nonfinite = false; // store NaN/Inf weights as 0 instead of failing
  const std::atomic<bool>* cancel = nullptr;  // set (e.g. by SIGINT) to stop between tensors
  std::function<void(const ConvertProgress&)> progress;
};

struct ConvertSummary {
  int64_t tensors = 0;
  int64_t input_bytes = 0;      // of the tensors read
  int64_t output_bytes = 0;     // weights.bin
  int64_t weights = 0;          // parameters
  int64_t nonfinite_replaced = 0;
  double seconds = 0;
  double bits_per_weight() const { return weights ? 8.0 * output_bytes / weights : 0; }
  double input_mb_per_s() const { return seconds > 0 ? input_bytes / 1e6 / seconds : 0; }
};

// The type a tensor gets under the options: f32 for those that stay so (models/arch.h stays_f32:
// norms, biases, routers); embeddings and lm_head q8 (per 32, symmetric) when the linears are 8
// bits or fewer, else the linears' float type; every other matrix the requested bits; then the
// --keep overrides.
QType recipe_type(const ConvertOptions& opt, const std::string& name, bool f32, bool is_embedding_or_head);

// Throws Error naming --gptq-damp unless 0 < damp < 1000 (the CLI checks before calibrating).
void check_gptq_damp(double damp);

// Writes OUT_DIR atomically: into a temporary sibling directory renamed at the end. Throws Error
// (naming the file, tensor or field) and leaves nothing behind on failure or cancellation.
// `source` is an HF directory or a GGUF file (open_source).
ConvertSummary convert_model(const std::string& source, const std::string& out_dir,
                             const ConvertOptions& opt);

// The same conversion held in memory: the manifest's header, its weights in an anonymous mapping
// laid out as weights.bin would be, and the tokenizer files. Nothing is written to disk.
struct ImportedModel {
  ManifestHeader header;
  MappedFile weights;
  std::map<std::string, std::string> tokenizer_files;
  ConvertSummary summary;
};
ImportedModel import_model(const std::string& source, const ConvertOptions& opt);

}  // namespace lowbit
