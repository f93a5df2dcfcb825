// The tensors of each architecture (models/arch.h): roles, their HF and GGUF names and shapes,
// where a checkpoint stores them, and the checks of a checkpoint's tensors against them.
#include "models/arch.h"

#include <optional>

#include "kernels/error.h"
#include "models/arch_table.h"

namespace lowbit {

using namespace arch_table;

namespace {

// HF module names, the same in every architecture of the table. '#' stands for the layer index.
struct RoleRow {
  Role role;
  const char* name;
  const char* pattern;       // HF
  const char* gguf_pattern;  // GGUF, as llama.cpp names the same tensor
};

constexpr RoleRow kRoles[] = {
    {Role::embed, "embed", "model.embed_tokens.weight", "token_embd.weight"},
    {Role::attn_norm, "attn_norm", "model.layers.#.input_layernorm.weight", "blk.#.attn_norm.weight"},
    {Role::wq, "wq", "model.layers.#.self_attn.q_proj.weight", "blk.#.attn_q.weight"},
    {Role::wk, "wk", "model.layers.#.self_attn.k_proj.weight", "blk.#.attn_k.weight"},
    {Role::wv, "wv", "model.layers.#.self_attn.v_proj.weight", "blk.#.attn_v.weight"},
    {Role::wo, "wo", "model.layers.#.self_attn.o_proj.weight", "blk.#.attn_output.weight"},
    {Role::bq, "bq", "model.layers.#.self_attn.q_proj.bias", "blk.#.attn_q.bias"},
    {Role::bk, "bk", "model.layers.#.self_attn.k_proj.bias", "blk.#.attn_k.bias"},
    {Role::bv, "bv", "model.layers.#.self_attn.v_proj.bias", "blk.#.attn_v.bias"},
    {Role::q_norm, "q_norm", "model.layers.#.self_attn.q_norm.weight", "blk.#.attn_q_norm.weight"},
    {Role::k_norm, "k_norm", "model.layers.#.self_attn.k_norm.weight", "blk.#.attn_k_norm.weight"},
    // Gemma's norm of the attention's output (its Llama-named "post_attention_layernorm"; Llama's
    // module of that name is the norm before the MLP, ffn_norm here).
    {Role::post_attn_norm, "post_attn_norm", "model.layers.#.post_attention_layernorm.weight",
     "blk.#.post_attention_norm.weight"},
    {Role::ffn_norm, "ffn_norm", "model.layers.#.post_attention_layernorm.weight", "blk.#.ffn_norm.weight"},
    {Role::w_gate, "w_gate", "model.layers.#.mlp.gate_proj.weight", "blk.#.ffn_gate.weight"},
    {Role::w_up, "w_up", "model.layers.#.mlp.up_proj.weight", "blk.#.ffn_up.weight"},
    {Role::w_down, "w_down", "model.layers.#.mlp.down_proj.weight", "blk.#.ffn_down.weight"},
    // '@' stands for the expert; a GGUF holds every expert of a layer in one tensor (stored_slice).
    {Role::router, "router", "model.layers.#.mlp.gate.weight", "blk.#.ffn_gate_inp.weight"},
    {Role::e_gate, "e_gate", "model.layers.#.mlp.experts.@.gate_proj.weight", "blk.#.ffn_gate_exps.weight"},
    {Role::e_up, "e_up", "model.layers.#.mlp.experts.@.up_proj.weight", "blk.#.ffn_up_exps.weight"},
    {Role::e_down, "e_down", "model.layers.#.mlp.experts.@.down_proj.weight", "blk.#.ffn_down_exps.weight"},
    {Role::post_ffn_norm, "post_ffn_norm", "model.layers.#.post_feedforward_layernorm.weight",
     "blk.#.post_ffw_norm.weight"},
    {Role::final_norm, "final_norm", "model.norm.weight", "output_norm.weight"},
    {Role::lm_head, "lm_head", "lm_head.weight", "output.weight"},
};

const RoleRow& role_row(Role r) {
  for (const RoleRow& row : kRoles)
    if (row.role == r) return row;
  throw Error("unknown tensor role " + std::to_string((int)r));
}

bool is_bias(Role r) { return r == Role::bq || r == Role::bk || r == Role::bv; }

bool per_layer(Role r) { return r != Role::embed && r != Role::final_norm && r != Role::lm_head; }

// Whether c has role r in layer (any layer for -1, or a global role).
bool present(const ModelConfig& c, Role r, int layer = -1) {
  const bool moe_role = r == Role::router || is_expert(r);
  if (moe_role || r == Role::w_gate || r == Role::w_up || r == Role::w_down) {
    if (c.n_experts == 0) return !moe_role;
    if (layer < 0) return true;  // some layer has it
    return moe_role == is_moe_layer(c, layer);
  }
  if (is_bias(r)) return c.qkv_bias;
  if (r == Role::q_norm || r == Role::k_norm) return c.qk_norm;
  if (r == Role::post_attn_norm || r == Role::post_ffn_norm) return family_of(c) == Family::gemma;
  if (r == Role::lm_head) return !c.tie_embeddings;
  return true;
}

std::vector<int64_t> role_shape(const ModelConfig& c, Role r) {
  const int64_t q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  switch (r) {
    case Role::embed: return {c.vocab_size, c.dim};
    case Role::attn_norm: return {c.dim};
    case Role::wq: return {q, c.dim};
    case Role::wk: return {kv, c.dim};
    case Role::wv: return {kv, c.dim};
    case Role::wo: return {c.dim, q};
    case Role::bq: return {q};
    case Role::bk: return {kv};
    case Role::bv: return {kv};
    case Role::q_norm: return {c.head_dim};
    case Role::k_norm: return {c.head_dim};
    case Role::post_attn_norm: return {c.dim};
    case Role::post_ffn_norm: return {c.dim};
    case Role::ffn_norm: return {c.dim};
    case Role::w_gate: return {c.ffn_dim, c.dim};
    case Role::w_up: return {c.ffn_dim, c.dim};
    case Role::w_down: return {c.dim, c.ffn_dim};
    case Role::router: return {c.n_experts, c.dim};
    case Role::e_gate: return {c.moe_ffn_dim, c.dim};
    case Role::e_up: return {c.moe_ffn_dim, c.dim};
    case Role::e_down: return {c.dim, c.moe_ffn_dim};
    case Role::final_norm: return {c.dim};
    case Role::lm_head: return {c.vocab_size, c.dim};
  }
  return {};
}

// A name pattern with its '#' (layer) and '@' (expert) filled in.
std::string fill(std::string s, int layer, int expert = -1) {
  const size_t hash = s.find('#');
  if (hash != std::string::npos) s.replace(hash, 1, std::to_string(layer));
  const size_t at = s.find('@');
  if (at != std::string::npos) s.replace(at, 1, std::to_string(expert));
  return s;
}

Variant variant_of(const ModelConfig& c) {
  const ArchRow* row = find_canonical(c.arch);
  return row ? row->variant : Variant::plain;
}

std::string name_of(const ModelConfig& c, Role r, int layer, bool gguf = false, int expert = -1) {
  const char* s = gguf ? role_row(r).gguf_pattern : role_row(r).pattern;
  const Variant v = variant_of(c);
  // Gemma's norm before the MLP is its own module (GGUF names it as Llama's).
  if (!gguf && r == Role::ffn_norm && family_of(c) == Family::gemma) s = "model.layers.#.pre_feedforward_layernorm.weight";
  // Granite's mixture is block_sparse_moe with a router module (its experts: stored_slice).
  if (!gguf && v == Variant::granite_moe && r == Role::router) s = "model.layers.#.block_sparse_moe.router.layer.weight";
  // Mixtral's checkpoints name the mixture block_sparse_moe and the expert projections w1-w3.
  if (!gguf && v == Variant::mixtral && (r == Role::router || is_expert(r)))
    s = r == Role::router   ? "model.layers.#.block_sparse_moe.gate.weight"
        : r == Role::e_gate ? "model.layers.#.block_sparse_moe.experts.@.w1.weight"
        : r == Role::e_up   ? "model.layers.#.block_sparse_moe.experts.@.w3.weight"
                            : "model.layers.#.block_sparse_moe.experts.@.w2.weight";
  return fill(s, layer, expert);
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// "'a', 'b', 'c' (+5 more)": keeps a message about a badly wrong checkpoint on one short line.
std::string name_list(const std::vector<std::string>& names) {
  constexpr size_t kShown = 6;
  std::string s;
  for (size_t i = 0; i < names.size() && i < kShown; ++i) s += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > kShown) s += " (+" + std::to_string(names.size() - kShown) + " more)";
  return s;
}

}  // namespace

std::string_view role_name(Role r) { return role_row(r).name; }

Family family_of(const ModelConfig& c) {
  const ArchRow* row = find_canonical(c.arch);
  return row ? row->family : Family::llama;
}

float norm_weight_offset(const ModelConfig& c) { return family_of(c) == Family::gemma ? 1.0f : 0.0f; }

bool is_expert(Role r) { return r == Role::e_gate || r == Role::e_up || r == Role::e_down; }

bool is_norm(Role r) {
  return r == Role::attn_norm || r == Role::q_norm || r == Role::k_norm || r == Role::post_attn_norm ||
         r == Role::ffn_norm || r == Role::post_ffn_norm || r == Role::final_norm;
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& c) {
  std::vector<TensorSpec> out;
  auto add = [&](Role r, int layer) {
    if (!present(c, r, layer)) return;
    const std::vector<int64_t> shape = role_shape(c, r);
    if (!is_expert(r)) {
      out.push_back({name_of(c, r, layer), r, layer, shape, shape.size() == 1});
      return;
    }
    for (int e = 0; e < (int)c.n_experts; ++e) out.push_back({name_of(c, r, layer, false, e), r, layer, shape, false, e});
  };
  add(Role::embed, -1);
  for (int l = 0; l < (int)c.n_layers; ++l)
    for (const RoleRow& row : kRoles)
      if (per_layer(row.role)) add(row.role, l);
  add(Role::final_norm, -1);
  add(Role::lm_head, -1);
  return out;
}

namespace {

void check_role(const ModelConfig& c, Role role, int layer, int expert) {
  const std::string_view rn = role_name(role);
  if (per_layer(role) ? (layer < 0 || layer >= c.n_layers) : layer != -1)
    throw Error("tensor role " + std::string(rn) + ": layer " + std::to_string(layer) + " invalid (model has " +
                std::to_string(c.n_layers) + " layers; global roles take -1)");
  if (is_expert(role) ? (expert < 0 || expert >= c.n_experts) : expert != -1)
    throw Error("tensor role " + std::string(rn) + ": expert " + std::to_string(expert) + " invalid (model has " +
                std::to_string(c.n_experts) + " experts; other roles take -1)");
  if (!present(c, role, layer))
    throw Error("tensor role " + std::string(rn) + ": " + c.arch + " model has no such tensor" +
                (role == Role::lm_head                             ? " (embeddings are tied: use embed)"
                 : role == Role::q_norm || role == Role::k_norm ? " (no per-head q/k norm)"
                 : is_norm(role)                                ? " (no norms after the sublayers: Gemma's)"
                 : is_bias(role)                                ? " (no q/k/v bias)"
                 : c.n_experts == 0                             ? " (a dense model: no experts)"
                                                                : " (this layer's MLP is " +
                                                                      std::string(is_moe_layer(c, layer) ? "a mixture of experts)" : "dense)")));
}

}  // namespace

std::optional<StoredSlice> stored_slice(const ModelConfig& c, Role r, int layer, bool gguf, int expert) {
  if (gguf && is_expert(r)) {  // every expert in one tensor: (experts, rows, cols)
    const std::vector<int64_t> shape = role_shape(c, r);
    return StoredSlice{name_of(c, r, layer, true), {c.n_experts, shape[0], shape[1]}, expert * shape[0]};
  }
  const Variant v = variant_of(c);
  if (v == Variant::granite_moe && is_expert(r)) {
    // Granite's experts, fused per layer: input_linear (experts, gate and up rows, dim), gate
    // first, and output_linear (experts, dim, ffn).
    const int64_t f = c.moe_ffn_dim, d = c.dim;
    if (r == Role::e_down)
      return StoredSlice{fill("model.layers.#.block_sparse_moe.output_linear.weight", layer), {c.n_experts, d, f},
                         expert * d};
    return StoredSlice{fill("model.layers.#.block_sparse_moe.input_linear.weight", layer), {c.n_experts, 2 * f, d},
                       expert * 2 * f + (r == Role::e_up ? f : 0)};
  }
  if (v != Variant::phi3) return std::nullopt;
  const int64_t q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  const char* qkv = gguf ? "blk.#.attn_qkv.weight" : "model.layers.#.self_attn.qkv_proj.weight";
  const char* gate_up = gguf ? "blk.#.ffn_up.weight" : "model.layers.#.mlp.gate_up_proj.weight";
  auto slice = [&](const char* pattern, int64_t rows, int64_t first) {
    return StoredSlice{fill(pattern, layer), {rows, c.dim}, first};
  };
  switch (r) {
    case Role::wq: return slice(qkv, q + 2 * kv, 0);
    case Role::wk: return slice(qkv, q + 2 * kv, q);
    case Role::wv: return slice(qkv, q + 2 * kv, q + kv);
    case Role::w_gate: return slice(gate_up, 2 * c.ffn_dim, 0);
    case Role::w_up: return slice(gate_up, 2 * c.ffn_dim, c.ffn_dim);
    default: return std::nullopt;
  }
}

std::string tensor_name(const ModelConfig& c, Role role, int layer, int expert) {
  check_role(c, role, layer, expert);
  return name_of(c, role, layer, false, expert);
}

std::string gguf_tensor_name(const ModelConfig& c, Role role, int layer, int expert) {
  check_role(c, role, layer, expert);
  return name_of(c, role, layer, true, expert);
}

bool is_ignorable_tensor(const ModelConfig& c, std::string_view name) {
  constexpr std::string_view inv_freq = ".self_attn.rotary_emb.inv_freq";
  if (name.size() > inv_freq.size() && name.substr(name.size() - inv_freq.size()) == inv_freq &&
      name.substr(0, 13) == "model.layers.")
    return true;
  return c.tie_embeddings && name == role_row(Role::lm_head).pattern;
}

void check_tensors(const ModelConfig& c, const std::map<std::string, std::vector<int64_t>>& found,
                   std::string_view label, bool fused) {
  std::vector<std::string> missing, unexpected, shapes;
  std::map<std::string, std::vector<int64_t>, std::less<>> expected;
  for (const TensorSpec& t : expected_tensors(c)) {
    const std::optional<StoredSlice> s = fused ? stored_slice(c, t.role, t.layer, false, t.expert) : std::nullopt;
    expected[s ? s->name : t.name] = s ? s->shape : t.shape;
  }
  for (const auto& [name, shape] : expected) {
    const auto it = found.find(name);
    if (it == found.end()) missing.push_back(name);
    else if (it->second != shape)
      shapes.push_back("tensor '" + name + "': shape " + shape_str(it->second) + " but config.json implies " +
                       shape_str(shape));
  }
  for (const auto& [name, shape] : found) {
    if (expected.count(name)) continue;
    if (!is_ignorable_tensor(c, name)) {
      unexpected.push_back(name);
    } else if (name == role_row(Role::lm_head).pattern) {
      // A tied checkpoint that still ships lm_head: fine if it is shaped like the embedding.
      const auto emb = role_shape(c, Role::lm_head);
      if (shape != emb)
        shapes.push_back("tensor '" + name + "': shape " + shape_str(shape) + " but config.json implies " +
                         shape_str(emb));
    }
  }
  if (missing.empty() && unexpected.empty() && shapes.empty()) return;
  std::string msg = std::string(label) + ": tensors do not match config.json (" + c.hf_architecture + ")";
  if (!missing.empty()) msg += "; missing " + name_list(missing);
  if (!unexpected.empty()) msg += "; unexpected " + name_list(unexpected);
  for (size_t i = 0; i < shapes.size() && i < 6; ++i) msg += "; " + shapes[i];
  if (shapes.size() > 6) msg += "; (+" + std::to_string(shapes.size() - 6) + " more shape mismatches)";
  throw Error(msg);
}

}  // namespace lowbit
