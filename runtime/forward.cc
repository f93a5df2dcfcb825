#include "runtime/forward.h"

#include "kernels/error.h"
#include "runtime/llama.h"

namespace lowbit {

Tensor Workspace::get(size_t slot, int64_t rows, int64_t cols) {
  if (buffers_.size() <= slot) buffers_.resize(slot + 1);
  BufferPtr& b = buffers_[slot];
  if (!b || b->size() < rows * cols) b = backend_.alloc(rows * cols);
  return {b.get(), 0, rows, cols};
}

std::unique_ptr<ForwardPass> make_forward_pass(const ModelConfig& c, const Manifest& m, Backend& b) {
  // models/arch.h's table holds only this family today; a new family is a new branch here.
  if (c.arch == "llama" || c.arch == "mistral" || c.arch == "qwen2") return std::make_unique<LlamaForward>(c, m, b);
  throw Error(ErrorCode::bad_format, "architecture '" + c.arch + "' has no forward pass");
}

int64_t logit_rows(std::span<const SeqChunk> chunks) {
  int64_t rows = 0;
  for (const SeqChunk& s : chunks) rows += s.logits == LogitRows::all ? s.n : s.logits == LogitRows::last ? 1 : 0;
  return rows;
}

}  // namespace lowbit
