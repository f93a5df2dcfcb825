#include "runtime/forward.h"

#include "kernels/error.h"
#include "runtime/gemma.h"
#include "runtime/llama.h"

namespace lowbit {

Tensor Workspace::get(Backend& backend, size_t slot, int64_t rows, int64_t cols) {
  auto it = buffers_.begin();
  while (it != buffers_.end() && it->first != &backend) ++it;
  if (it == buffers_.end()) it = buffers_.emplace(it, &backend, std::vector<BufferPtr>());
  std::vector<BufferPtr>& slots = it->second;
  if (slots.size() <= slot) slots.resize(slot + 1);
  BufferPtr& b = slots[slot];
  if (!b || b->size() < rows * cols) {
    b.reset();  // freed first, so a full device has its room back for the larger one
    b = backend.alloc(rows * cols);
  }
  return {b.get(), 0, rows, cols};
}

std::unique_ptr<ForwardPass> make_forward_pass(const ModelConfig& c, const Manifest& m, std::span<const Stage> stages) {
  switch (family_of(c)) {
    case Family::llama: return std::make_unique<LlamaForward>(c, m, stages);
    case Family::gemma: return std::make_unique<GemmaForward>(c, m, stages);
  }
  throw Error(ErrorCode::bad_format, "architecture '" + c.arch + "' has no forward pass");
}

std::unique_ptr<ForwardPass> make_forward_pass(const ModelConfig& c, const Manifest& m, Backend& b) {
  const Stage all{&b, 0, c.n_layers};
  return make_forward_pass(c, m, {&all, 1});
}

int64_t logit_rows(std::span<const SeqChunk> chunks) {
  int64_t rows = 0;
  for (const SeqChunk& s : chunks) rows += s.logits == LogitRows::all ? s.n : s.logits == LogitRows::last ? 1 : 0;
  return rows;
}

}  // namespace lowbit
