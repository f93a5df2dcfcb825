// The architecture table itself, shared by the config readers (arch_config.cc) and the tensor
// names (arch.cc): one row per supported architecture. Internal to models/.
#pragma once

#include <stdint.h>

#include <string_view>

#include "models/arch.h"

namespace lowbit::arch_table {

// How an architecture's config.json states its attention window.
enum class Window {
  none,            // full attention (Llama)
  sliding_window,  // "sliding_window": int, or null for none (Mistral)
  qwen2,           // "use_sliding_window": true windows the layers from "max_window_layers" on
  gemma,           // "sliding_window" on the layers "layer_types" (or "sliding_window_pattern") names
};

// What one architecture adds to its family's layer.
enum class Variant {
  plain,
  phi3,     // q/k/v and gate/up stored fused (stored_slice), partial_rotary_factor
  smollm3,  // no RoPE on some layers (no_rope_layers)
  granite,  // Granite's multipliers of the embeddings, residual branches, scores and logits
  qwen_moe, // Qwen3-MoE's experts (num_experts, decoder_sparse_step, mlp_only_layers)
  mixtral,  // Mixtral's experts (num_local_experts of intermediate_size, renormalized) on every layer
  granite_moe,  // Granite's multipliers and Mixtral's experts, stored fused (input_linear, output_linear)
};

// One row per supported architecture; the only place these facts are written down.
struct ArchRow {
  const char* arch;             // canonical name, stored in manifests
  const char* hf_architecture;  // config.json "architectures"
  bool qkv_bias;                // q/k/v projections always carry a bias
  bool qk_norm;                 // q and k are RMS-normalized per head before RoPE
  bool has_attention_bias;      // reads Llama's "attention_bias"/"mlp_bias" switches (must be false)
  Window window;
  int64_t default_window;       // when config.json has no "sliding_window" (the HF class default)
  int64_t default_head_dim;     // when config.json has no "head_dim" (the HF class default); 0: dim / heads
  // GGUF: the general.architecture that llama.cpp's converter writes for it (nullptr: none of its
  // own; Mistral is written as "llama"), and whether that converter permutes the rows of
  // attn_q/attn_k away from HF's rotate-half order (convert_hf_to_gguf.py LlamaModel.permute).
  const char* gguf_arch;
  bool gguf_qk_permuted;
  Family family;
  // Fields of one architecture's own, read beyond the family's.
  Variant variant = Variant::plain;
  float default_theta = 10000.0f;  // rope_theta when config.json gives none (the HF class default)
};

inline constexpr ArchRow kArchs[] = {
    {"llama", "LlamaForCausalLM", false, false, true, Window::none, 0, 0, "llama", true, Family::llama},
    {"mistral", "MistralForCausalLM", false, false, false, Window::sliding_window, 4096, 0, nullptr, false, Family::llama},
    {"qwen2", "Qwen2ForCausalLM", true, false, false, Window::qwen2, 0, 0, "qwen2", false, Family::llama},
    // Qwen3's window switches are Qwen2's; its "attention_bias" adds biases to q/k/v and o.
    {"qwen3", "Qwen3ForCausalLM", false, true, true, Window::qwen2, 0, 128, "qwen3", false, Family::llama},
    // Gemma 2 and Gemma 3's text model (their configs' defaults); llama.cpp's converter permutes neither.
    {"gemma2", "Gemma2ForCausalLM", false, false, true, Window::gemma, 4096, 256, "gemma2", false, Family::gemma},
    {"gemma3", "Gemma3ForCausalLM", false, true, true, Window::gemma, 4096, 256, "gemma3", false, Family::gemma},
    // Phi3Config has no window unless "sliding_window" (Phi-3-mini: 2047); its q/k/v never carry a bias.
    {"phi3", "Phi3ForCausalLM", false, false, false, Window::sliding_window, 0, 0, "phi3", false, Family::llama,
     Variant::phi3},
    // SmolLM3 and Granite: Llama's layer (and Llama's bias switches), converted as Llama by llama.cpp.
    {"smollm3", "SmolLM3ForCausalLM", false, false, true, Window::none, 0, 0, "smollm3", true, Family::llama,
     Variant::smollm3, 2e6f},
    {"granite", "GraniteForCausalLM", false, false, true, Window::none, 0, 0, "granite", true, Family::llama,
     Variant::granite},
    // Qwen3's layer and switches (Qwen3MoeConfig's defaults), its MLP a mixture of experts.
    {"qwen3moe", "Qwen3MoeForCausalLM", false, true, true, Window::qwen2, 0, 128, "qwen3moe", false, Family::llama,
     Variant::qwen_moe},
    // Mistral's layer with experts; llama.cpp writes it as "llama" with expert_count (gguf_config).
    {"mixtral", "MixtralForCausalLM", false, false, false, Window::sliding_window, 0, 0, nullptr, true, Family::llama,
     Variant::mixtral},
    // Granite 3's mixtures (granite3-moe): converted as Granite by llama.cpp.
    {"granitemoe", "GraniteMoeForCausalLM", false, false, true, Window::none, 0, 0, "granitemoe", true, Family::llama,
     Variant::granite_moe},
};

inline const ArchRow* find_arch(std::string_view hf_name) {
  for (const ArchRow& a : kArchs)
    if (hf_name == a.hf_architecture) return &a;
  return nullptr;
}

inline const ArchRow* find_canonical(std::string_view arch) {
  for (const ArchRow& a : kArchs)
    if (arch == a.arch) return &a;
  return nullptr;
}

}  // namespace lowbit::arch_table
