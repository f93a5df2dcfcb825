// The architecture table: which HuggingFace model families lowbit runs, how their config.json
// maps onto one ModelConfig, and which tensors (HF names and shapes) each one holds. Each
// architecture is one row of the table in arch_table.h; everything else here is derived from it.
//
// Supported: Llama (LlamaForCausalLM: Llama 2/3, TinyLlama, SmolLM), Mistral
// (MistralForCausalLM), Qwen2 (Qwen2ForCausalLM: biases on q/k/v), Qwen3 (Qwen3ForCausalLM: an
// RMSNorm over each head of q and k before RoPE). These four are the same pre-norm decoder
// (RMSNorm, rotate-half RoPE, GQA attention, SwiGLU MLP) with the same module names; they differ
// in the q/k/v bias, the per-head q/k norms and the attention window: the Llama family. Gemma 2
// and 3 (Gemma2ForCausalLM, Gemma3ForCausalLM: the text model) are a family of their own: norms
// after each sublayer as well as before, RMSNorm weights stored as offsets from 1, a GELU-gated
// MLP, embeddings scaled by sqrt(hidden_size), windowed attention on every other layer (Gemma 2,
// which also soft-caps attention scores and logits) or on five of six with a RoPE base of their
// own (Gemma 3, which norms q and k per head). Phi-3 (Phi3ForCausalLM: Phi-3 and 3.5 mini and
// medium, Phi-4, Phi-4-mini) is the Llama family's layer with q/k/v and gate/up each fused into
// one stored matrix, and in Phi-4-mini RoPE over the first part of each head only; its long
// context versions scale RoPE by LongRoPE's per-frequency factors. SmolLM3 (SmolLM3ForCausalLM)
// is Llama's layer without RoPE on every fourth layer; Granite (GraniteForCausalLM: Granite 3.x
// dense) is Llama's layer with multipliers on the embeddings, residual branches, scores and logits.
// Qwen3-MoE (Qwen3MoeForCausalLM) is Qwen3's layer with a mixture of experts for its MLP, Mixtral
// (MixtralForCausalLM) Mistral's, Granite MoE (GraniteMoeForCausalLM: Granite 3's 1B and 3B
// mixtures) Granite's.
//
// All functions are pure and thread-safe.
#pragma once

#include <stdint.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace lowbit {

struct RopeScaling {
  std::string type;  // "" none, "llama3", "linear", "factors", "longrope"
  float factor = 1, low_freq_factor = 1, high_freq_factor = 4;
  int original_max_position = 8192;
  // type "factors": frequency i of the rotated dims' half turns freq_factors[i] times slower. A
  // GGUF stores Llama 3.1-style scaling this way (tensor rope_freqs.weight) instead of its
  // parameters. Type "longrope" (Phi-3's LongRoPE): the same with the short factors, or with
  // long_factors where the context in use exceeds original_max_position (for_context below);
  // RoPE's cos and sin are multiplied by attention_factor.
  std::vector<float> freq_factors, long_factors;
  float attention_factor = 1;
};

struct ModelConfig {
  // canonical: "llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "smollm3", "granite", "qwen3moe",
  // "mixtral", "granitemoe"
  std::string arch;
  std::string hf_architecture;  // e.g. "LlamaForCausalLM"
  int64_t dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, ffn_dim = 0,
          vocab_size = 0, max_ctx = 0;
  float norm_eps = 1e-5f, rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  bool tie_embeddings = false;  // lm_head reuses model.embed_tokens.weight
  bool qkv_bias = false;        // q_proj/k_proj/v_proj carry a bias
  bool qk_norm = false;         // q and k pass an RMSNorm per head (weights of head_dim) before RoPE
  int64_t sliding_window = 0;   // attention sees the last sliding_window positions; 0 = all
  // Which layers the window applies to; empty: every layer (Mistral). Gemma 3: five of six.
  std::vector<bool> sliding_layers;
  // RoPE base of the windowed layers, which take no rope_scaling; 0: rope_theta and its scaling
  // for every layer. Gemma 3: 10000 (rope_local_base_freq) against 1e6.
  float rope_local_theta = 0;
  // Attention scores are q . k times query_scale; 0: 1 / sqrt(head_dim). Gemma's
  // query_pre_attn_scalar s gives 1 / sqrt(s).
  float query_scale = 0;
  // Gemma 2's soft-capping: attention scores and output logits x become cap * tanh(x / cap); 0: none.
  float attn_softcap = 0, final_softcap = 0;
  // RoPE rotates the first rotary_dim values of each head and passes the rest through; 0: all of
  // head_dim. Phi-4-mini: 96 of 128 (partial_rotary_factor 0.75).
  int64_t rotary_dim = 0;
  // Layers whose q and k skip RoPE (SmolLM3: every 4th); empty: none.
  std::vector<bool> nope_layers;
  // Granite's multipliers: the embeddings times embed_scale, each sublayer's output times
  // residual_scale before the residual add, the logits divided by logit_divisor (1: none).
  float embed_scale = 1, residual_scale = 1, logit_divisor = 1;
  // Mixture of experts (Qwen3-MoE): the MLP of a layer moe_layers marks (empty: every layer) is
  // n_experts SwiGLU experts of moe_ffn_dim, of which a router (n_experts x dim) picks the
  // n_experts_used of highest softmax per token; their outputs are summed weighted by those
  // probabilities, renormalized over the chosen ones with moe_norm_topk. 0 experts: dense.
  int64_t n_experts = 0, n_experts_used = 0, moe_ffn_dim = 0;
  bool moe_norm_topk = false;
  std::vector<bool> moe_layers;
  int32_t bos_id = -1;          // -1: none
  std::vector<int32_t> eos_ids;
};

// How many values of each head RoPE rotates.
inline int64_t rotary_dims(const ModelConfig& c) { return c.rotary_dim > 0 ? c.rotary_dim : c.head_dim; }
// Whether layer l's MLP is a mixture of experts.
inline bool is_moe_layer(const ModelConfig& c, int64_t l) {
  return c.n_experts > 0 && (c.moe_layers.empty() || c.moe_layers[(size_t)l]);
}

// The configuration a forward pass over contexts of up to ctx positions runs with: LongRoPE's long
// factors in place of the short ones where ctx exceeds original_max_position, as llama.cpp decides
// once for its context (transformers switches per call on the longest position it sees, which
// changes the rotation of keys already cached); c itself otherwise.
ModelConfig for_context(const ModelConfig& c, int64_t ctx);

// Reads a HF config.json. Every field used is validated (type, range, consistency such as
// n_heads % n_kv_heads == 0) and an error names file_label and the field. head_dim comes from
// "head_dim" when present, else the architecture's default or dim / n_heads. Unknown
// "architectures" -> Error naming it and the supported ones. Features outside what the runtime
// implements (biases other than Qwen2's q/k/v, activations other than the family's, YaRN/dynamic
// RoPE, Gemma 2's soft-capping, quantized checkpoints) are rejected by name rather than silently
// ignored.
ModelConfig parse_hf_config(const nlohmann::json& j, const std::string& file_label);

// Our own JSON form of a ModelConfig, stored in the manifest. config_from_json validates as
// strictly as parse_hf_config, and config_from_json(config_to_json(c)) == c.
nlohmann::json config_to_json(const ModelConfig& c);
ModelConfig config_from_json(const nlohmann::json& j, const std::string& label);

bool operator==(const RopeScaling& a, const RopeScaling& b);
bool operator==(const ModelConfig& a, const ModelConfig& b);

// A GGUF general.architecture mapped onto the table: the HF architecture it is read as, and
// whether llama.cpp's converter permuted the rows of its attn_q/attn_k (which the importer undoes
// so the rotate-half RoPE applies). Throws Error naming the supported names for any other.
struct GgufArch {
  std::string hf_architecture;
  bool qk_permuted;
};
GgufArch gguf_architecture(std::string_view gguf_arch);

// The HF architecture names the table supports, in table order.
std::vector<std::string> supported_architectures();

enum class Role {
  embed, attn_norm, wq, wk, wv, wo, bq, bk, bv, q_norm, k_norm, post_attn_norm, ffn_norm, w_gate, w_up, w_down,
  router, e_gate, e_up, e_down,  // a mixture-of-experts layer's router and each expert's SwiGLU
  post_ffn_norm, final_norm, lm_head
};
bool is_expert(Role r);  // e_gate, e_up, e_down: one matrix per expert
// The forward pass a model's architecture takes (runtime/forward.h).
enum class Family { llama, gemma };
Family family_of(const ModelConfig& c);
// What an RMSNorm weight of c's HF checkpoint needs added to be the factor it multiplies by:
// Gemma stores 1 + w as w (its norms start at 0); 0 for the rest. GGUF files store the factor.
float norm_weight_offset(const ModelConfig& c);
bool is_norm(Role r);  // an RMSNorm weight
std::string_view role_name(Role r);  // "embed", "attn_norm", ... as spelt in the enum

struct TensorSpec {
  std::string name;            // the HF name, e.g. "model.layers.3.self_attn.q_proj.weight"
  Role role;
  int layer;                   // -1 for global tensors
  std::vector<int64_t> shape;  // HF (PyTorch) order: nn.Linear weights are [out, in]
  bool is_norm_or_bias;        // 1-D and small: kept in fp32, never quantized
  int expert = -1;             // which expert (is_expert roles), else -1
};

// Whether a tensor stays f32 in every conversion: norms and biases, and a mixture's router (as
// llama.cpp's quantize leaves ffn_gate_inp: few weights, and they decide which experts run).
inline bool stays_f32(const TensorSpec& s) { return s.is_norm_or_bias || s.role == Role::router; }

// Every tensor the model needs, global ones first (embed), then layer by layer, then
// final_norm and lm_head; lm_head only when embeddings are not tied, biases only with qkv_bias,
// q_norm/k_norm only with qk_norm.
std::vector<TensorSpec> expected_tensors(const ModelConfig& c);

// The HF name of one tensor, used by the runtime to find weights. layer is -1 for global roles
// and in [0, n_layers) for per-layer ones. Throws Error when the role has no tensor in this
// model: a bias without qkv_bias, a q/k norm without qk_norm, or lm_head with tied embeddings
// (use embed instead).
std::string tensor_name(const ModelConfig& c, Role role, int layer = -1, int expert = -1);

// The same tensor's name in a GGUF file ("blk.3.attn_q.weight"), from the same table.
std::string gguf_tensor_name(const ModelConfig& c, Role role, int layer = -1, int expert = -1);
// The GGUF tensor that carries RopeScaling::freq_factors (F32, head_dim/2 values): part of the
// model's configuration, not a weight of the forward pass.
inline constexpr const char* kGgufRopeFreqs = "rope_freqs.weight";
// The GGUF tensors of LongRoPE's long and short factors (F32, rotated dims / 2 values each), as
// llama.cpp's converter writes a Phi-3 with rope_scaling.
inline constexpr const char* kGgufLongRopeFactors[2] = {"rope_factors_long.weight", "rope_factors_short.weight"};

// True for tensors a checkpoint may carry that the model does not need and that are not a sign
// of a wrong architecture: RoPE's inv_freq buffers (older transformers saved them; we recompute
// them from rope_theta), and lm_head.weight when embeddings are tied (transformers ties it to
// the embedding on load, so its stored values are never used; neither are they here).
bool is_ignorable_tensor(const ModelConfig& c, std::string_view name);

// Phi-3 checkpoints (HF and GGUF alike) store q, k and v as one matrix (rows q, then k, then v)
// and gate and up as one (gate's rows first), and GGUF files every expert of a layer in one 3-D
// tensor per projection (expert e's rows e * rows ..); manifests and the runtime keep each
// projection a matrix of its own (rows are quantized independently, so splitting changes no
// value). Where role r of layer (and expert) is stored inside such a tensor: its name (HF, or
// GGUF with gguf), its HF shape and the first of r's rows in it (rows counted over every
// dimension but the last). nullopt where r is stored as itself.
struct StoredSlice {
  std::string name;
  std::vector<int64_t> shape;
  int64_t first_row;
};
std::optional<StoredSlice> stored_slice(const ModelConfig& c, Role r, int layer, bool gguf = false, int expert = -1);

// Compares the tensors found in a checkpoint (name -> shape) with expected_tensors(c) and throws
// one Error listing everything wrong: missing tensors, unexpected ones (neither expected nor
// ignorable; the converter would leave them unused), and shape mismatches
// ("tensor 'x': shape [a, b] but config.json implies [c, d]"). An ignorable lm_head.weight must
// still have the embedding's shape. label prefixes the message (e.g. the model directory).
// With fused, the checkpoint's layout is expected: each stored_slice's tensor in place of the
// roles it holds (an HF directory); without, every role its own tensor (a manifest).
void check_tensors(const ModelConfig& c, const std::map<std::string, std::vector<int64_t>>& found,
                   std::string_view label = "checkpoint", bool fused = false);

}  // namespace lowbit
