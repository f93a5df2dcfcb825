// Calibration for quantization (lowbit convert --calib, --calib-chat): run the model at fp32 over
// a text, or over its own answers to questions, and keep, for every projection, the sum over tokens of each input channel's squared activation
// (the diagonal of X^T X, what llama.cpp's imatrix holds). quantize() (kernels/quantize.h) then
// weighs each column's rounding error by it, so the search spends its precision where the
// inputs are large: the expected squared error of W x instead of that of W.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/model.h"

namespace lowbit {

// What the calibration runs the model over: a text (--calib), the model's own chat answers to a
// list of questions (--calib-chat), or both (the text's windows first).
struct CalibSources {
  std::string text_file;        // "" for none
  int64_t text_tokens = 8192;   // at most this many of the text's tokens (BOS included)
  std::string questions_file;   // "" for none; one question per line, blank lines skipped
  int64_t answer_tokens = 200;  // at most this many generated tokens per answer
  int64_t ctx = 512;            // tokens per window (a text's windows; a conversation's cap)
  std::function<void(int64_t, int64_t)> progress;  // chat_windows' progress, when set
};

struct CalibStats {
  std::string text_file;          // as given ("" when only questions were run)
  uint64_t text_checksum = 0;     // xxh3 of the text's bytes (checksum_bytes)
  std::string questions_file;     // --calib-chat as given, else ""
  uint64_t questions_checksum = 0;
  int64_t answer_tokens = 0;      // the cap on each answer
  int64_t conversations = 0;      // windows that came from the questions (the last ones)
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
  // What the manifest's recipe records: the sources' files and checksums, ctx, tokens (not the
  // statistics).
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

// The windows of a text: tokenized as one string, then cut into windows of ctx tokens, each BOS
// (when the tokenizer has one) followed by the next tokens of the stream, until max_tokens
// tokens or the text's end (a last short window too). Throws Error naming the file when it
// cannot be read or holds no tokens; *checksum gets the xxh3 of its bytes.
std::vector<std::vector<int32_t>> text_windows(const Tokenizer& tok, const std::string& text_file,
                                               int64_t max_tokens, int64_t ctx, uint64_t* checksum);

// The conversations a chat feeds the model (convert/calib_chat.cc): for each question, the
// model's chat template renders it as the user's message with the generation prompt, the model
// answers greedily (at most answer_tokens, within ctx), and the window is the prompt's tokens,
// the answer's and the end token that closed it. Throws Error naming the file (and the line)
// when it cannot be read, holds no question, a question does not fit in ctx, or the model has
// no chat template; *checksum gets the xxh3 of the file's bytes. progress(answered, questions),
// when set, is called after each answer.
std::vector<std::vector<int32_t>> chat_windows(const Model& model, const std::string& questions_file,
                                               int64_t answer_tokens, int64_t ctx, uint64_t* checksum,
                                               const std::function<void(int64_t, int64_t)>& progress = nullptr);

// Runs `model` over the sources' windows (text_windows, then chat_windows), each from an empty
// cache, observing every matmul input; with `moments`, the same pass also fills it (what
// collect_input_moments would give on the windows fed). Throws Error when no source is given,
// on text_tokens, answer_tokens or ctx out of range, and as the two functions above.
CalibStats collect_calibration(const Model& model, const CalibSources& sources, InputMoments* moments = nullptr);

// Runs `model` at fp32 over the windows (each fed from an empty cache, as collect_calibration
// fed them) and accumulates every projection's H. Throws Error on an empty window list.
InputMoments collect_input_moments(const Model& model, const std::vector<std::vector<int32_t>>& windows);

// `source` (an HF directory or GGUF file) imported at fp32 in memory and loaded: the model the
// calibration runs on.
std::unique_ptr<Model> load_f32_model(const std::string& source, int threads);

}  // namespace lowbit
