// Per-tensor bit allocation (lowbit convert --target-bpw X): each matrix gets its own type from a
// candidate set (1/2/4/8 bits, group sizes, sym/asym, f16) so that the whole weights.bin stays
// within X bits per weight while the predicted output error is smallest.
//
// The prediction: for tensor i at type t, E_i(t) = sum_rows sum_j imp_j (w_rj - q_rj)^2, the
// expected squared error of the tensor's output per token (imp_j: the calibration's mean squared
// input of column j, convert/calib.h; a tensor no matmul reads, an untied embedding, counts its
// mean row error), estimated on evenly spaced sampled rows with the quantizer the conversion
// uses. How much output error costs differs by the tensor's place in the network, so it is
// measured: for each role (q, k, v, o, gate, up, down, embedding/head) every tensor of that role
// is quantized at a probe type (the candidate nearest the target) while the rest stay fp32, and
// the KL divergence of the model's next-token distribution against fp32 on calibration windows,
// divided by the role's summed E at the probe type, is that role's gain g. Predicted KL of an
// assignment: sum_i g_role(i) E_i(t_i). A greedy knapsack then starts every tensor at its
// cheapest type and repeatedly takes the upgrade (along each tensor's lower convex hull of bytes
// vs predicted KL) with the largest predicted-KL drop per byte that still fits the budget.
// Finally that plan and the two largest uniform plans that fit are each measured on the probe
// windows and the lowest measured KL is kept (allocate.cc, step 4, says why).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "convert/convert.h"
#include "kernels/qtype.h"

namespace lowbit {

struct CalibStats;

struct AllocationOptions {
  double target_bpw = 0;           // bits per weight of the whole weights.bin (all tensors, padding)
  std::vector<QType> candidates;   // empty: default_candidates()
  int64_t sample_rows = 256;       // rows per tensor for the error estimate
  int64_t probe_tokens = 512;      // calibration tokens the role gains are measured on
  std::function<void(const std::string& stage, double fraction)> progress;
};

struct Allocation {
  double target_bpw = 0, bits_per_weight = 0;
  int64_t bytes = 0, budget_bytes = 0, weights = 0;
  double predicted_kl = 0;
  std::string probe_type;
  std::map<std::string, double> role_gain;     // KL (nats) per unit of E, by role name
  std::map<std::string, double> role_probe_kl;  // measured KL with the role at the probe type
  std::string plan;                             // the plan chosen: "greedy" or "uniform TYPE[, ...]"
  std::map<std::string, double> plan_kl;        // measured KL on the probe windows, by plan
  std::vector<std::pair<std::string, QType>> types;  // each allocated tensor, in file order
  nlohmann::json to_json() const;                    // what the manifest's recipe records
};

// q1_g32_asym, q2_g{128,64,32}_asym, q4_g{128,64}_asym, q4_g32_sym, q4_g32_asym, q8_g{64,32}_sym, f16.
std::vector<QType> default_candidates();

// `base` gives the quantizer, threads and --keep (kept tensors keep their type and count in the
// budget). Throws Error naming --target-bpw when even the cheapest candidates exceed the budget.
Allocation allocate_bits(const std::string& source, const ConvertOptions& base, const CalibStats& calib,
                         const AllocationOptions& opt);

}  // namespace lowbit
