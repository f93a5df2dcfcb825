// Calibration for quantization (lowbit convert --calib): run the model at fp32 over a text and
// keep, for every projection, the sum over tokens of each input channel's squared activation
// (the diagonal of X^T X, what llama.cpp's imatrix holds). quantize() (kernels/quantize.h) then
// weighs each column's rounding error by it, so the search spends its precision where the
// inputs are large: the expected squared error of W x instead of that of W.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/model.h"

namespace lowbit {

struct CalibStats {
  std::string text_file;          // as given
  uint64_t text_checksum = 0;     // xxh3 of the text's bytes (checksum_bytes)
  int64_t ctx = 0;                // tokens per window (BOS included)
  int64_t tokens = 0;             // tokens fed, BOS included
  std::vector<std::vector<int32_t>> windows;  // the token ids of each window fed
  struct Tensor {
    int64_t rows = 0;                  // activation rows seen (tokens)
    std::vector<double> sum_sq;        // (k) sum over rows of x_j^2
  };
  std::map<std::string, Tensor> tensors;  // by the projection's HF tensor name

  // Mean square per input channel (sum_sq / rows) as floats, the importance quantize() takes;
  // null when the tensor was not seen.
  const std::vector<float>* importance(const std::string& tensor) const;
  // What the manifest's recipe records: file, checksum, ctx, tokens (not the statistics).
  nlohmann::json recipe() const;
  // Everything, statistics and windows included (lowbit convert --calib-save), and back
  // (--calib-load; throws Error naming the field that is missing or malformed).
  nlohmann::json to_json() const;
  static CalibStats from_json(const nlohmann::json& j, const std::string& label);

  std::map<std::string, std::vector<float>> mean_sq;  // filled by finish()
  void finish();
};

// Each projection input's second moment H = sum over rows x x^T (k x k, fp32, row-major), over
// the calibration windows: what GPTQ (kernels/quantize.h, `lowbit convert --gptq`) needs where
// the diagonal above is enough for the per-group search. Projections of one input (q, k and v;
// gate and up; seen as equal inputs in one step) share one matrix, computed once.
struct InputMoments {
  int64_t rows = 0;  // activation rows per projection (the windows' tokens)
  std::map<std::string, std::shared_ptr<const std::vector<float>>> h;  // by the projection's HF tensor name
  // The tensor's H, or null when it was not seen.
  const std::vector<float>* of(const std::string& tensor) const;
};

// Runs `model` over text_file's tokens: the text is tokenized as one string, then fed in
// windows of ctx tokens, each BOS (when the tokenizer has one) followed by the next tokens of
// the stream, until max_tokens tokens have been fed or the text ends (a last short window is
// fed too). Every matmul input is observed; with `moments`, the same pass also fills it (what
// collect_input_moments would give on the windows fed). Throws Error naming the file when it
// cannot be read or holds no tokens, or on max_tokens / ctx < 2.
CalibStats collect_calibration(const Model& model, const std::string& text_file, int64_t max_tokens,
                               int64_t ctx, InputMoments* moments = nullptr);

// Runs `model` at fp32 over the windows (each fed from an empty cache, as collect_calibration
// fed them) and accumulates every projection's H. Throws Error on an empty window list.
InputMoments collect_input_moments(const Model& model, const std::vector<std::vector<int32_t>>& windows);

// `source` (an HF directory or GGUF file) imported at fp32 in memory and loaded: the model the
// calibration runs on.
std::unique_ptr<Model> load_f32_model(const std::string& source, int threads);

}  // namespace lowbit
