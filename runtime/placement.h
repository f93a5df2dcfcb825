// Where a model's layers run: the first N layers on a device backend, the rest on the CPU
// (LoadParams::gpu_layers), and the memory planner that picks N from the device's free memory.
// docs/GPU.md has the design; the arithmetic is plan_device_layers' below.
//
// A placement is a list of stages, each a run of consecutive layers on one backend. The token
// embedding runs on the first stage's backend and the final norm and output head on the last
// one's, so the activations cross a backend boundary only between stages (read to the host
// from one backend, written to the next: (rows, dim) floats per boundary per step).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "models/arch.h"

namespace lowbit {

class Manifest;

// LoadParams::gpu_layers' two special values; any n >= 0 is "the first n layers".
constexpr int64_t kGpuLayersAll = -1;   // every layer (and the head) on the device
constexpr int64_t kGpuLayersAuto = -2;  // as many as the planner finds room for

// "all", "auto" or a whole number >= 0 (the CLI's and Python's spelling); throws Error
// (invalid_argument) naming `what` otherwise.
int64_t parse_gpu_layers(const std::string& text, const std::string& what);
std::string gpu_layers_name(int64_t gpu_layers);  // the inverse

struct Stage {
  Backend* backend = nullptr;
  int64_t first = 0, layers = 0;  // layers [first, first + layers)
};

// The stages for `device_layers` (clamped to [0, n_layers]) on `device`, the rest on `cpu`;
// device may be null when device_layers is 0.
std::vector<Stage> split_stages(int64_t n_layers, int64_t device_layers, Backend* device, Backend* cpu);

// What a device stage holds, in bytes, as the planner counts it.
struct DeviceFootprint {
  std::vector<int64_t> layer_weights;  // per layer: its matrices, norms and biases
  int64_t layer_kv = 0;                // per layer: K and V of `sequences` caches of ctx positions, fp32
  int64_t embed = 0;                   // the token embedding table (with layer 0)
  int64_t head = 0;                    // final norm and output head (with the last layer)
  int64_t scratch = 0;                 // activations of one batch of rows (Workspace slots), fixed
};

// Bytes of c's layers and tables as stored in m, and the KV cache and scratch a device stage
// needs for `sequences` caches of ctx positions and batches of up to batch_rows rows.
DeviceFootprint device_footprint(const ModelConfig& c, const Manifest& m, int64_t ctx, int64_t sequences,
                                 int64_t batch_rows);

struct LayerPlan {
  int64_t layers = 0;      // the first `layers` layers go on the device
  std::string arithmetic;  // the sums that decided it, in MiB, for people
};

// The planner: the most leading layers whose footprint fits in free_bytes less a headroom of
// 1/20 (allocator rounding, fragmentation, the runtime's own workspaces), counting the
// embedding and scratch once any layer is on the device and the head only with all layers:
//   embed + scratch + sum_{l < N} (layer_weights[l] + layer_kv) [+ head if N = n_layers]
//     <= free_bytes - free_bytes / 20
// N = 0 when not even one layer fits (or free_bytes < 0: no device).
LayerPlan plan_device_layers(const DeviceFootprint& f, int64_t free_bytes);

}  // namespace lowbit
