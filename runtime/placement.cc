#include "runtime/placement.h"

#include <algorithm>
#include <cstdio>

#include "kernels/error.h"
#include "runtime/manifest.h"

namespace lowbit {

int64_t parse_gpu_layers(const std::string& text, const std::string& what) {
  if (text == "all") return kGpuLayersAll;
  if (text == "auto") return kGpuLayersAuto;
  int64_t n = 0;
  bool ok = !text.empty() && text.size() <= 9;
  for (char ch : text) {
    if (ch < '0' || ch > '9') ok = false;
    n = n * 10 + (ch - '0');
  }
  if (!ok) throw Error(ErrorCode::invalid_argument, what + ": '" + text + "' is not a layer count, 'all' or 'auto'");
  return n;
}

std::string gpu_layers_name(int64_t gpu_layers) {
  if (gpu_layers == kGpuLayersAll) return "all";
  if (gpu_layers == kGpuLayersAuto) return "auto";
  return std::to_string(gpu_layers);
}

std::vector<Stage> split_stages(int64_t n_layers, int64_t device_layers, Backend* device, Backend* cpu) {
  const int64_t d = std::clamp<int64_t>(device_layers, 0, n_layers);
  std::vector<Stage> stages;
  if (d > 0) stages.push_back({device, 0, d});
  if (d < n_layers || n_layers == 0) stages.push_back({cpu, d, n_layers - d});
  return stages;
}

DeviceFootprint device_footprint(const ModelConfig& c, const Manifest& m, int64_t ctx, int64_t sequences,
                                 int64_t batch_rows) {
  DeviceFootprint f;
  f.layer_weights.assign((size_t)c.n_layers, 0);
  for (const TensorSpec& t : expected_tensors(c)) {
    const TensorEntry* e = m.find(t.name);
    const int64_t bytes = e ? e->bytes : 0;
    if (t.layer >= 0) {
      f.layer_weights[(size_t)t.layer] += bytes;
    } else if (t.role == Role::embed) {
      f.embed += bytes;
      if (c.tie_embeddings) f.head += bytes;  // the head stage holds its own copy when apart
    } else {
      f.head += bytes;  // final norm, lm_head
    }
  }
  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim, f32 = (int64_t)sizeof(float);
  f.layer_kv = 2 * sequences * ctx * kv_dim * f32;
  // The Workspace slots a layer uses: x, xb, tmp (dim), q, att (q_dim), k, v (kv_dim), gate, up
  // (ffn_dim); and RoPE's table.
  f.scratch = batch_rows * (3 * c.dim + 2 * q_dim + 2 * kv_dim + 2 * c.ffn_dim) * f32 + c.head_dim / 2 * f32;
  // With the head: the gathered rows and their logits.
  f.head += batch_rows * (c.dim + c.vocab_size) * f32;
  return f;
}

namespace {

std::string mib(int64_t bytes) {
  char s[32];
  std::snprintf(s, sizeof(s), "%.1f MiB", (double)bytes / (1 << 20));
  return s;
}

}  // namespace

LayerPlan plan_device_layers(const DeviceFootprint& f, int64_t free_bytes) {
  LayerPlan p;
  const int64_t n = (int64_t)f.layer_weights.size();
  if (free_bytes < 0) {
    p.arithmetic = "no device memory: 0 layers on the device";
    return p;
  }
  const int64_t usable = free_bytes - free_bytes / 20;
  int64_t total = f.embed + f.scratch;
  for (int64_t l = 0; l < n; ++l) {
    const int64_t next = total + f.layer_weights[(size_t)l] + f.layer_kv;
    if (next > usable) break;
    total = next;
    p.layers = l + 1;
  }
  if (p.layers == n && n > 0 && total + f.head > usable) --p.layers;  // the head needs the last layer's room
  int64_t per_layer = 0;
  for (int64_t w : f.layer_weights) per_layer = std::max(per_layer, w);
  p.arithmetic = "free " + mib(free_bytes) + " - headroom 1/20 = " + mib(usable) + " usable; embedding " +
                 mib(f.embed) + " + scratch " + mib(f.scratch) + " + per layer (weights up to " + mib(per_layer) +
                 " + KV cache " + mib(f.layer_kv) + ") x N + head " + mib(f.head) + " with all " +
                 std::to_string(n) + " layers -> N = " + std::to_string(p.layers);
  return p;
}

}  // namespace lowbit
