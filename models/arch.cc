#include "models/arch.h"

#include <math.h>

#include <cmath>

#include <algorithm>
#include <optional>

#include "kernels/error.h"

namespace lowbit {

using nlohmann::json;

namespace {

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

constexpr ArchRow kArchs[] = {
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
};

const ArchRow* find_arch(std::string_view hf_name) {
  for (const ArchRow& a : kArchs)
    if (hf_name == a.hf_architecture) return &a;
  return nullptr;
}

const ArchRow* find_canonical(std::string_view arch) {
  for (const ArchRow& a : kArchs)
    if (arch == a.arch) return &a;
  return nullptr;
}

std::string supported_list() {
  std::string s;
  for (const ArchRow& a : kArchs) s += (s.empty() ? "" : ", ") + std::string(a.hf_architecture);
  return s;
}

// Sizes past these are corrupt configs, not models; the caps also keep every shape product
// used below far from int64 overflow.
constexpr int64_t kMaxSize = int64_t(1) << 24;     // dim, heads, layers, ffn, vocab
constexpr int64_t kMaxContext = int64_t(1) << 31;  // max_position_embeddings, sliding window

// Typed access to the fields of one JSON object, each error naming label and field.
class Fields {
 public:
  Fields(const json& j, std::string label, std::string prefix = "")
      : j_(j), label_(std::move(label)), prefix_(std::move(prefix)) {}

  [[noreturn]] void fail(const char* field, const std::string& what) const {
    throw Error(label_ + ": field '" + prefix_ + field + "' " + what);
  }
  // Absent and null are both "not given", as transformers reads them.
  const json* get(const char* field) const {
    const auto it = j_.find(field);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  const json& need(const char* field) const {
    const json* v = get(field);
    if (!v) fail(field, "missing");
    return *v;
  }
  int64_t integer(const char* field, const json& v, int64_t lo, int64_t hi) const {
    if (!v.is_number_integer()) fail(field, "is not an integer");
    if (v.is_number_unsigned() && v.get<uint64_t>() > (uint64_t)hi) out_of_range(field, v.dump(), lo, hi);
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi) out_of_range(field, std::to_string(x), lo, hi);
    return x;
  }
  int64_t integer(const char* field, int64_t lo, int64_t hi) const {
    return integer(field, need(field), lo, hi);
  }
  std::optional<int64_t> opt_integer(const char* field, int64_t lo, int64_t hi) const {
    const json* v = get(field);
    return v ? std::optional<int64_t>(integer(field, *v, lo, hi)) : std::nullopt;
  }
  // A positive, finite number (JSON integer or float).
  float positive(const char* field) const {
    const json& v = need(field);
    if (!v.is_number()) fail(field, "is not a number");
    const double x = v.get<double>();
    if (!(x > 0) || !isfinite((float)x)) fail(field, "= " + v.dump() + " is not a positive finite number");
    return (float)x;
  }
  float opt_positive(const char* field, float dflt) const { return get(field) ? positive(field) : dflt; }
  bool boolean(const char* field) const {
    const json& v = need(field);
    if (!v.is_boolean()) fail(field, "is not true/false");
    return v.get<bool>();
  }
  bool opt_boolean(const char* field, bool dflt) const { return get(field) ? boolean(field) : dflt; }
  const std::string& string(const char* field) const {
    const json& v = need(field);
    if (!v.is_string()) fail(field, "is not a string");
    return v.get_ref<const std::string&>();
  }
  const std::string& label() const { return label_; }

 private:
  [[noreturn]] void out_of_range(const char* field, const std::string& value, int64_t lo, int64_t hi) const {
    fail(field, "= " + value + " out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }

  const json& j_;
  std::string label_, prefix_;
};

// Checks that only the parsers cannot (relations between fields), shared by both readers.
void validate(const ModelConfig& c, const std::string& label) {
  auto fail = [&](const std::string& what) { throw Error(label + ": " + what); };
  if (c.n_heads % c.n_kv_heads != 0)
    fail("num_attention_heads (" + std::to_string(c.n_heads) + ") is not a multiple of num_key_value_heads (" +
         std::to_string(c.n_kv_heads) + ")");
  if (c.head_dim % 2 != 0) fail("head_dim " + std::to_string(c.head_dim) + " is odd; RoPE rotates pairs");
  if (c.bos_id >= c.vocab_size)
    fail("bos_token_id " + std::to_string(c.bos_id) + " is not below vocab_size " + std::to_string(c.vocab_size));
  for (int32_t e : c.eos_ids)
    if (e >= c.vocab_size)
      fail("eos_token_id " + std::to_string(e) + " is not below vocab_size " + std::to_string(c.vocab_size));
  const std::string& t = c.rope_scaling.type;
  if (t == "llama3" && !(c.rope_scaling.high_freq_factor > c.rope_scaling.low_freq_factor))
    fail("rope_scaling: high_freq_factor must exceed low_freq_factor");
  if (c.rotary_dim < 0 || c.rotary_dim > c.head_dim || c.rotary_dim % 2 != 0)
    fail("rotary_dim " + std::to_string(c.rotary_dim) + " is not an even count of at most head_dim " +
         std::to_string(c.head_dim) + " values (partial_rotary_factor)");
  const int64_t half = rotary_dims(c) / 2;
  const RopeScaling& rs = c.rope_scaling;
  const bool per_freq = t == "factors" || t == "longrope";
  auto count = [&](const std::vector<float>& v, const char* name) {
    if ((int64_t)v.size() != half)
      fail("rope_scaling: " + std::to_string(v.size()) + " " + name + " values for " + std::to_string(2 * half) +
           " rotated values per head (want half as many)");
  };
  if (per_freq) count(rs.freq_factors, t == "longrope" ? "short_factor" : "freq_factors");
  if (t == "longrope") count(rs.long_factors, "long_factor");
  if (!per_freq && !rs.freq_factors.empty()) fail("rope_scaling: freq_factors given with type '" + t + "'");
  if (t != "longrope" && !rs.long_factors.empty()) fail("rope_scaling: long_factor given with type '" + t + "'");
  if (!(std::isfinite(c.rope_scaling.attention_factor) && c.rope_scaling.attention_factor > 0) ||
      (t != "longrope" && c.rope_scaling.attention_factor != 1))
    fail("rope_scaling: attention_factor " + std::to_string(c.rope_scaling.attention_factor) +
         " (want finite and > 0, with type longrope only)");
  if (c.n_experts > 0 && (c.n_experts_used < 1 || c.n_experts_used > c.n_experts || c.moe_ffn_dim < 1))
    fail("experts: " + std::to_string(c.n_experts_used) + " of " + std::to_string(c.n_experts) + " per token, of " +
         std::to_string(c.moe_ffn_dim) + " each (want 1 to all of them, each at least 1 wide)");
  if (!c.moe_layers.empty() && (int64_t)c.moe_layers.size() != c.n_layers)
    fail("moe_layers: " + std::to_string(c.moe_layers.size()) + " entries for " + std::to_string(c.n_layers) + " layers");
  if (!c.nope_layers.empty() && (int64_t)c.nope_layers.size() != c.n_layers)
    fail("nope_layers: " + std::to_string(c.nope_layers.size()) + " entries for " + std::to_string(c.n_layers) +
         " layers");
  if (!c.sliding_layers.empty() && (int64_t)c.sliding_layers.size() != c.n_layers)
    fail("sliding_layers: " + std::to_string(c.sliding_layers.size()) + " entries for " + std::to_string(c.n_layers) +
         " layers");
  for (const auto* list : {&rs.freq_factors, &rs.long_factors})
    for (float v : *list)
      if (!(std::isfinite(v) && v > 0)) fail("rope_scaling: a factor of " + std::to_string(v) + " (want finite, > 0)");
}

int32_t token_id(const Fields& f, const char* field, const json& v) {
  return (int32_t)f.integer(field, v, 0, kMaxSize - 1);
}

// "rope_scaling" (transformers 4) or "rope_parameters" (transformers 5, which also moves
// rope_theta inside). "default" and absent both mean plain RoPE.
void parse_rope(const Fields& top, const json& j, ModelConfig& c, float default_theta = 10000.0f) {
  const json* params = top.get("rope_parameters");
  if (params && !params->is_object()) top.fail("rope_parameters", "is not an object");
  if (top.get("rope_theta")) c.rope_theta = top.positive("rope_theta");
  else if (params && Fields(*params, top.label(), "rope_parameters.").get("rope_theta"))
    c.rope_theta = Fields(*params, top.label(), "rope_parameters.").positive("rope_theta");
  else c.rope_theta = default_theta;  // the HF class's default (Llama, Mistral, Qwen2: 10000)

  const char* key = "rope_scaling";
  const json* s = top.get("rope_scaling");
  if (!s && params) {
    key = "rope_parameters";
    s = params;
  }
  if (!s) return;
  if (!s->is_object()) top.fail(key, "is not an object");
  const Fields f(*s, top.label(), std::string(key) + ".");
  std::string type = f.get("rope_type") ? f.string("rope_type") : f.get("type") ? f.string("type") : "default";
  if (type == "default") return;
  RopeScaling& r = c.rope_scaling;
  if (type == "linear") {
    r.type = type;
    r.factor = f.positive("factor");
  } else if (type == "llama3") {
    r.type = type;
    r.factor = f.positive("factor");
    r.low_freq_factor = f.positive("low_freq_factor");
    r.high_freq_factor = f.positive("high_freq_factor");
    r.original_max_position = (int)f.integer("original_max_position_embeddings", 1, kMaxContext - 1);
  } else if (type == "longrope" || type == "su") {
    // LongRoPE ("su" its older name), by transformers 5's rules: the pretraining length from the
    // config's top level first (Phi-3 keeps it there), the factor max_position_embeddings over it
    // unless given, the attention factor sqrt(1 + ln(factor) / ln(length)) unless given.
    r.type = "longrope";
    auto factors = [&](const char* key) {
      const json& v = f.need(key);
      if (!v.is_array()) f.fail(key, "is not a list");
      std::vector<float> out;
      for (const json& x : v) {
        if (!x.is_number()) f.fail(key, "holds " + x.dump() + ", not a number");
        out.push_back(x.get<float>());
      }
      return out;
    };
    r.freq_factors = factors("short_factor");
    r.long_factors = factors("long_factor");
    const char* orig_key = "original_max_position_embeddings";
    const int64_t orig = top.get(orig_key) ? top.integer(orig_key, 1, kMaxContext - 1)
                         : f.get(orig_key) ? f.integer(orig_key, 1, kMaxContext - 1)
                                           : c.max_ctx;
    r.original_max_position = (int)orig;
    const double factor = f.get("factor") ? f.positive("factor") : (double)c.max_ctx / (double)orig;
    r.attention_factor = f.get("attention_factor") ? f.positive("attention_factor")
                         : factor <= 1                ? 1.0f
                                                      : (float)std::sqrt(1 + std::log(factor) / std::log((double)orig));
  } else {
    f.fail(f.get("rope_type") ? "rope_type" : "type",
           "= '" + type + "' not supported (default, linear, llama3, longrope are)");
  }
}

// Phi-4-mini's partial rotary: "partial_rotary_factor" at the top (transformers 4) or in
// rope_parameters (5); the rotated count is int(head_dim * factor), as transformers takes it.
void parse_partial_rotary(const Fields& top, const ArchRow& row, ModelConfig& c) {
  const char* key = "partial_rotary_factor";
  float factor = 1;
  if (top.get(key)) {
    factor = top.positive(key);
  } else if (const json* params = top.get("rope_parameters"); params && params->is_object()) {
    const Fields f(*params, top.label(), "rope_parameters.");
    if (f.get(key)) factor = f.positive(key);
  }
  if (factor == 1) return;
  if (row.variant != Variant::phi3) top.fail(key, "= " + std::to_string(factor) + " not supported for " + row.hf_architecture);
  if (factor > 1) top.fail(key, "= " + std::to_string(factor) + " is above 1");
  const int64_t rot = (int64_t)((double)c.head_dim * factor);
  c.rotary_dim = rot == c.head_dim ? 0 : rot;
  if (rot <= 0 || rot % 2 != 0)
    top.fail(key, "= " + std::to_string(factor) + " rotates " + std::to_string(rot) + " of " +
                      std::to_string(c.head_dim) + " values per head (want an even count above 0)");
}

// SmolLM3's layers without RoPE: "no_rope_layers" (1: RoPE, 0: none; at least one entry per
// layer) or every no_rope_layer_interval-th layer (default 4), as SmolLM3Config derives it. Its
// window (on the layers without RoPE) is refused: no released checkpoint turns it on.
void parse_smollm3(const Fields& f, ModelConfig& c) {
  if (f.opt_boolean("use_sliding_window", false)) f.fail("use_sliding_window", "= true not supported for SmolLM3");
  c.nope_layers.assign((size_t)c.n_layers, false);
  if (const json* list = f.get("no_rope_layers")) {
    if (!list->is_array() || (int64_t)list->size() < c.n_layers)
      f.fail("no_rope_layers", "is not a list of at least num_hidden_layers (" + std::to_string(c.n_layers) + ") 0s and 1s");
    for (int64_t i = 0; i < c.n_layers; ++i) {
      const json& v = (*list)[(size_t)i];
      if (v != 0 && v != 1) f.fail("no_rope_layers", "[" + std::to_string(i) + "] = " + v.dump() + " (0 or 1)");
      c.nope_layers[(size_t)i] = v == 0;
    }
  } else {
    const int64_t every = f.opt_integer("no_rope_layer_interval", 1, kMaxSize).value_or(4);
    for (int64_t i = 0; i < c.n_layers; ++i) c.nope_layers[(size_t)i] = (i + 1) % every == 0;
  }
}

// Granite's multipliers (GraniteConfig's defaults 1): the embeddings times embedding_multiplier,
// each sublayer's output times residual_multiplier before it joins the residual stream, scores
// times attention_multiplier (in place of 1 / sqrt(head_dim)), logits divided by logits_scaling.
void parse_granite(const Fields& f, ModelConfig& c) {
  c.embed_scale = f.opt_positive("embedding_multiplier", 1.0f);
  c.residual_scale = f.opt_positive("residual_multiplier", 1.0f);
  c.query_scale = f.opt_positive("attention_multiplier", 1.0f);
  c.logit_divisor = f.opt_positive("logits_scaling", 1.0f);
}

// Qwen3-MoE's experts (Qwen3MoeConfig: 128 experts of 768, 8 per token, not renormalized, by
// default): a layer's MLP is a mixture unless it is in mlp_only_layers or decoder_sparse_step
// skips it ((layer + 1) % step != 0), as Qwen3MoeDecoderLayer decides.
void parse_qwen_moe(const Fields& f, ModelConfig& c) {
  c.n_experts = f.opt_integer("num_experts", 1, kMaxSize).value_or(128);
  c.n_experts_used = f.opt_integer("num_experts_per_tok", 1, c.n_experts).value_or(std::min<int64_t>(8, c.n_experts));
  c.moe_ffn_dim = f.opt_integer("moe_intermediate_size", 1, kMaxSize).value_or(768);
  c.moe_norm_topk = f.opt_boolean("norm_topk_prob", false);
  const int64_t step = f.opt_integer("decoder_sparse_step", 1, kMaxSize).value_or(1);
  std::vector<bool> dense((size_t)c.n_layers, false);
  if (const json* only = f.get("mlp_only_layers")) {
    if (!only->is_array()) f.fail("mlp_only_layers", "is not a list of layer numbers");
    for (const json& v : *only) dense[(size_t)f.integer("mlp_only_layers", v, 0, c.n_layers - 1)] = true;
  }
  for (int64_t i = 0; i < c.n_layers; ++i) c.moe_layers.push_back(!dense[(size_t)i] && (i + 1) % step == 0);
  if (std::find(c.moe_layers.begin(), c.moe_layers.end(), false) == c.moe_layers.end()) c.moe_layers.clear();
}

// Gemma's own fields (Gemma2Config, Gemma3TextConfig; transformers 4.5x and 5): the window and the
// layers it applies to, the RoPE bases, the query scale, the soft-capping; bidirectional attention
// is refused. Where a config leaves one out, its class's default: Gemma 2 soft-caps (50, 30) and
// windows every other layer on one base; Gemma 3 does neither and windows five of six on 10000.
void parse_gemma(const Fields& f, const json& j, const ArchRow& row, ModelConfig& c) {
  const bool gemma2 = std::string_view(row.arch) == "gemma2";
  auto cap = [&](const char* key, float dflt) {
    const json* v = f.get(key);
    if (!v && j.contains(key)) return 0.0f;  // an explicit null: none
    return v ? f.positive(key) : dflt;
  };
  c.attn_softcap = cap("attn_logit_softcapping", gemma2 ? 50.0f : 0.0f);
  c.final_softcap = cap("final_logit_softcapping", gemma2 ? 30.0f : 0.0f);
  if (f.opt_boolean("use_bidirectional_attention", false)) f.fail("use_bidirectional_attention", "= true not supported");
  c.query_scale = 1.0f / std::sqrt(f.opt_positive("query_pre_attn_scalar", 256.0f));
  c.sliding_window = f.get("sliding_window") ? f.integer("sliding_window", 1, kMaxContext) : row.default_window;
  c.sliding_layers.assign((size_t)c.n_layers, false);
  if (const json* types = f.get("layer_types")) {
    if (!types->is_array() || (int64_t)types->size() != c.n_layers)
      f.fail("layer_types", "is not a list of num_hidden_layers (" + std::to_string(c.n_layers) + ") names");
    for (size_t i = 0; i < types->size(); ++i) {
      const json& t = (*types)[i];
      if (t != "sliding_attention" && t != "full_attention")
        f.fail("layer_types", "[" + std::to_string(i) + "] = " + t.dump() + " (sliding_attention or full_attention)");
      c.sliding_layers[i] = t == "sliding_attention";
    }
  } else {
    // The older form: every pattern-th layer is global, counting from 1 (transformers' rule).
    const int64_t pattern = f.opt_integer("sliding_window_pattern", 1, kMaxSize).value_or(gemma2 ? 2 : 6);
    for (int64_t i = 0; i < c.n_layers; ++i) c.sliding_layers[(size_t)i] = (i + 1) % pattern != 0;
  }
  // RoPE: transformers 5 nests it per layer type in rope_parameters; before, rope_theta (with
  // rope_scaling for the global layers) and rope_local_base_freq.
  const json* params = f.get("rope_parameters");
  if (params && params->is_object() && params->contains("full_attention")) {
    const Fields top(*params, f.label(), "rope_parameters.");
    const json global = {{"rope_parameters", top.need("full_attention")}};  // read as a config of its own
    ModelConfig g;
    parse_rope(Fields(global, f.label()), global, g);
    c.rope_theta = global["rope_parameters"].contains("rope_theta") ? g.rope_theta : 1e6f;
    c.rope_scaling = g.rope_scaling;
    const json& local = top.need("sliding_attention");
    const Fields lf(local, f.label(), "rope_parameters.sliding_attention.");
    if (lf.get("rope_type") && lf.string("rope_type") != "default")
      lf.fail("rope_type", "= '" + lf.string("rope_type") + "' not supported for the windowed layers (default is)");
    c.rope_local_theta = lf.get("rope_theta") ? lf.positive("rope_theta") : 10000.0f;
  } else if (gemma2) {  // one base for every layer (Gemma2Config's default 10000, parse_rope's)
    c.rope_local_theta = f.get("rope_local_base_freq") ? f.positive("rope_local_base_freq") : 0.0f;
  } else {
    if (!f.get("rope_theta") && !params) c.rope_theta = 1e6f;  // Gemma3TextConfig's global base
    c.rope_local_theta = f.opt_positive("rope_local_base_freq", 10000.0f);
  }
}

}  // namespace

GgufArch gguf_architecture(std::string_view gguf_arch) {
  std::string names;
  for (const ArchRow& a : kArchs) {
    if (!a.gguf_arch) continue;
    if (gguf_arch == a.gguf_arch) return {a.hf_architecture, a.gguf_qk_permuted};
    names += (names.empty() ? "" : ", ") + std::string(a.gguf_arch);
  }
  throw Error("general.architecture '" + std::string(gguf_arch) + "' is not supported (supported: " + names + ")");
}

std::vector<std::string> supported_architectures() {
  std::vector<std::string> v;
  for (const ArchRow& a : kArchs) v.push_back(a.hf_architecture);
  return v;
}

ModelConfig for_context(const ModelConfig& c, int64_t ctx) {
  if (c.rope_scaling.type != "longrope" || ctx <= c.rope_scaling.original_max_position) return c;
  ModelConfig out = c;
  out.rope_scaling.freq_factors = c.rope_scaling.long_factors;
  return out;
}

ModelConfig parse_hf_config(const json& j, const std::string& file_label) {
  if (!j.is_object()) throw Error(file_label + ": not a JSON object");
  const Fields f(j, file_label);

  const json& archs = f.need("architectures");
  if (!archs.is_array() || archs.empty()) f.fail("architectures", "is not a non-empty list");
  const ArchRow* row = nullptr;
  for (const json& a : archs) {
    if (!a.is_string()) f.fail("architectures", "is not a list of strings");
    if ((row = find_arch(a.get_ref<const std::string&>()))) break;
  }
  if (!row)
    f.fail("architectures", "= " + archs.dump() + ": not supported (supported: " + supported_list() + ")");

  if (f.get("quantization_config"))
    f.fail("quantization_config", "present: already-quantized checkpoints are not supported");
  // The MLP's activation: SiLU in the Llama family, GELU (tanh approximation) in Gemma's.
  const char* act = row->family == Family::gemma ? "gelu_pytorch_tanh" : "silu";
  for (const char* key : {"hidden_act", "hidden_activation"})
    if (f.get(key) && f.string(key) != act)
      f.fail(key, "= '" + f.string(key) + "' not supported (" + act + " is)");

  ModelConfig c;
  c.arch = row->arch;
  c.hf_architecture = row->hf_architecture;
  c.dim = f.integer("hidden_size", 1, kMaxSize);
  c.n_layers = f.integer("num_hidden_layers", 1, kMaxSize);
  c.n_heads = f.integer("num_attention_heads", 1, kMaxSize);
  c.n_kv_heads = f.opt_integer("num_key_value_heads", 1, kMaxSize).value_or(c.n_heads);
  if (const auto hd = f.opt_integer("head_dim", 1, kMaxSize)) {
    c.head_dim = *hd;
  } else if (row->default_head_dim) {
    c.head_dim = row->default_head_dim;
  } else {
    if (c.dim % c.n_heads != 0)
      f.fail("hidden_size", "= " + std::to_string(c.dim) + " is not a multiple of num_attention_heads (" +
                                std::to_string(c.n_heads) + ") and no head_dim is given");
    c.head_dim = c.dim / c.n_heads;
  }
  c.ffn_dim = f.integer("intermediate_size", 1, kMaxSize);
  c.vocab_size = f.integer("vocab_size", 1, kMaxSize);
  c.max_ctx = f.integer("max_position_embeddings", 1, kMaxContext);
  c.norm_eps = f.opt_positive("rms_norm_eps", 1e-6f);  // the HF classes' default
  parse_rope(f, j, c, row->default_theta);
  parse_partial_rotary(f, *row, c);
  if (row->variant == Variant::smollm3) parse_smollm3(f, c);
  if (row->variant == Variant::granite) parse_granite(f, c);
  if (row->variant == Variant::qwen_moe) parse_qwen_moe(f, c);
  if (row->variant == Variant::mixtral) {
    // MixtralConfig: 8 experts of intermediate_size, 2 per token, their weights renormalized.
    c.n_experts = f.opt_integer("num_local_experts", 1, kMaxSize).value_or(8);
    c.n_experts_used = f.opt_integer("num_experts_per_tok", 1, c.n_experts).value_or(std::min<int64_t>(2, c.n_experts));
    c.moe_ffn_dim = c.ffn_dim;
    c.moe_norm_topk = true;
  }
  // Gemma3TextConfig ties by default; the Llama family's classes do not.
  c.tie_embeddings = f.opt_boolean("tie_word_embeddings", row->family == Family::gemma);

  c.qkv_bias = row->qkv_bias;
  c.qk_norm = row->qk_norm;
  if (row->has_attention_bias) {
    // In Llama and Qwen3 this switch adds a bias to o_proj as well, which the runtime has no slot for.
    if (f.opt_boolean("attention_bias", false)) f.fail("attention_bias", "= true not supported");
    if (f.opt_boolean("mlp_bias", false)) f.fail("mlp_bias", "= true not supported");
  }
  switch (row->window) {
    case Window::none: break;
    case Window::sliding_window:
      c.sliding_window = f.get("sliding_window") ? f.integer("sliding_window", 1, kMaxContext)
                         : j.contains("sliding_window") ? 0  // explicit null: no window
                                                        : row->default_window;
      break;
    case Window::qwen2:
      // Qwen2 and Qwen3 window the layers from max_window_layers on (their configs' rule; Qwen2Config's
      // defaults: a window of 4096 from layer 28), and none unless use_sliding_window.
      if (f.opt_boolean("use_sliding_window", false)) {
        c.sliding_window = f.get("sliding_window") ? f.integer("sliding_window", 1, kMaxContext) : 4096;
        const int64_t from = f.opt_integer("max_window_layers", 0, kMaxSize).value_or(28);
        for (int64_t i = 0; i < c.n_layers; ++i) c.sliding_layers.push_back(i >= from);
      }
      break;
    case Window::gemma:
      parse_gemma(f, j, *row, c);
      break;
  }

  if (const json* b = f.get("bos_token_id")) c.bos_id = token_id(f, "bos_token_id", *b);
  if (const json* e = f.get("eos_token_id")) {
    if (e->is_array()) {
      for (const json& x : *e) c.eos_ids.push_back(token_id(f, "eos_token_id", x));
    } else {
      c.eos_ids.push_back(token_id(f, "eos_token_id", *e));
    }
  }
  validate(c, file_label);
  return c;
}

json config_to_json(const ModelConfig& c) {
  return json{
      {"arch", c.arch},
      {"hf_architecture", c.hf_architecture},
      {"dim", c.dim},
      {"n_layers", c.n_layers},
      {"n_heads", c.n_heads},
      {"n_kv_heads", c.n_kv_heads},
      {"head_dim", c.head_dim},
      {"ffn_dim", c.ffn_dim},
      {"vocab_size", c.vocab_size},
      {"max_ctx", c.max_ctx},
      {"norm_eps", c.norm_eps},
      {"rope_theta", c.rope_theta},
      {"rope_scaling",
       {{"type", c.rope_scaling.type},
        {"factor", c.rope_scaling.factor},
        {"low_freq_factor", c.rope_scaling.low_freq_factor},
        {"high_freq_factor", c.rope_scaling.high_freq_factor},
        {"original_max_position", c.rope_scaling.original_max_position},
        {"freq_factors", c.rope_scaling.freq_factors},
        {"long_factors", c.rope_scaling.long_factors},
        {"attention_factor", c.rope_scaling.attention_factor}}},
      {"tie_embeddings", c.tie_embeddings},
      {"qkv_bias", c.qkv_bias},
      {"qk_norm", c.qk_norm},
      {"sliding_window", c.sliding_window},
      {"sliding_layers", c.sliding_layers},
      {"rope_local_theta", c.rope_local_theta},
      {"query_scale", c.query_scale},
      {"attn_softcap", c.attn_softcap},
      {"final_softcap", c.final_softcap},
      {"rotary_dim", c.rotary_dim},
      {"nope_layers", c.nope_layers},
      {"embed_scale", c.embed_scale},
      {"residual_scale", c.residual_scale},
      {"logit_divisor", c.logit_divisor},
      {"n_experts", c.n_experts},
      {"n_experts_used", c.n_experts_used},
      {"moe_ffn_dim", c.moe_ffn_dim},
      {"moe_norm_topk", c.moe_norm_topk},
      {"moe_layers", c.moe_layers},
      {"bos_id", c.bos_id},
      {"eos_ids", c.eos_ids},
  };
}

ModelConfig config_from_json(const json& j, const std::string& label) {
  if (!j.is_object()) throw Error(label + ": model config is not a JSON object");
  const Fields f(j, label);
  ModelConfig c;
  c.arch = f.string("arch");
  const ArchRow* row = find_canonical(c.arch);
  if (!row) f.fail("arch", "= '" + c.arch + "' unknown");
  c.hf_architecture = f.string("hf_architecture");
  if (c.hf_architecture != row->hf_architecture)
    f.fail("hf_architecture", "= '" + c.hf_architecture + "' does not belong to arch '" + c.arch + "'");
  c.dim = f.integer("dim", 1, kMaxSize);
  c.n_layers = f.integer("n_layers", 1, kMaxSize);
  c.n_heads = f.integer("n_heads", 1, kMaxSize);
  c.n_kv_heads = f.integer("n_kv_heads", 1, kMaxSize);
  c.head_dim = f.integer("head_dim", 1, kMaxSize);
  c.ffn_dim = f.integer("ffn_dim", 1, kMaxSize);
  c.vocab_size = f.integer("vocab_size", 1, kMaxSize);
  c.max_ctx = f.integer("max_ctx", 1, kMaxContext);
  c.norm_eps = f.positive("norm_eps");
  c.rope_theta = f.positive("rope_theta");
  const json& rs = f.need("rope_scaling");
  if (!rs.is_object()) f.fail("rope_scaling", "is not an object");
  const Fields r(rs, label, "rope_scaling.");
  c.rope_scaling.type = r.string("type");
  if (c.rope_scaling.type != "" && c.rope_scaling.type != "linear" && c.rope_scaling.type != "llama3" &&
      c.rope_scaling.type != "factors" && c.rope_scaling.type != "longrope")
    r.fail("type", "= '" + c.rope_scaling.type + "' unknown");
  c.rope_scaling.factor = r.positive("factor");
  c.rope_scaling.low_freq_factor = r.positive("low_freq_factor");
  c.rope_scaling.high_freq_factor = r.positive("high_freq_factor");
  c.rope_scaling.original_max_position = (int)r.integer("original_max_position", 1, kMaxContext - 1);
  // Each absent in manifests written before it existed.
  for (const auto& [key, list] : {std::pair{"freq_factors", &c.rope_scaling.freq_factors},
                                  std::pair{"long_factors", &c.rope_scaling.long_factors}}) {
    const json* ff = r.get(key);
    if (!ff) continue;
    if (!ff->is_array()) r.fail(key, "is not a list");
    for (const json& v : *ff) {
      if (!v.is_number()) r.fail(key, "holds a non-number");
      list->push_back(v.get<float>());
    }
  }
  c.rope_scaling.attention_factor = r.opt_positive("attention_factor", 1.0f);
  c.tie_embeddings = f.boolean("tie_embeddings");
  c.qkv_bias = f.boolean("qkv_bias");
  c.qk_norm = f.opt_boolean("qk_norm", false);  // absent in manifests written before Qwen3
  if (c.qk_norm != row->qk_norm) f.fail("qk_norm", std::string("= ") + (c.qk_norm ? "true" : "false") + " does not belong to arch '" + c.arch + "'");
  c.sliding_window = f.integer("sliding_window", 0, kMaxContext);
  // Absent in manifests written before Gemma: every layer windowed alike, one base, 1/sqrt(head_dim).
  if (const json* sl = f.get("sliding_layers")) {
    if (!sl->is_array()) f.fail("sliding_layers", "is not a list");
    for (const json& b : *sl) {
      if (!b.is_boolean()) f.fail("sliding_layers", "holds a non-boolean");
      c.sliding_layers.push_back(b.get<bool>());
    }
  }
  // 0 (as written for "none") or absent, else positive.
  auto zero_or_positive = [&](const char* key) { return f.get(key) && f.need(key) != 0 ? f.positive(key) : 0.0f; };
  c.rope_local_theta = zero_or_positive("rope_local_theta");
  c.query_scale = zero_or_positive("query_scale");
  c.attn_softcap = zero_or_positive("attn_softcap");
  c.final_softcap = zero_or_positive("final_softcap");
  c.rotary_dim = f.opt_integer("rotary_dim", 0, kMaxSize).value_or(0);  // absent before Phi-3
  // Absent before SmolLM3 and Granite: RoPE everywhere, no multipliers.
  if (const json* nl = f.get("nope_layers")) {
    if (!nl->is_array()) f.fail("nope_layers", "is not a list");
    for (const json& b : *nl) {
      if (!b.is_boolean()) f.fail("nope_layers", "holds a non-boolean");
      c.nope_layers.push_back(b.get<bool>());
    }
  }
  c.embed_scale = f.opt_positive("embed_scale", 1.0f);
  c.residual_scale = f.opt_positive("residual_scale", 1.0f);
  c.logit_divisor = f.opt_positive("logit_divisor", 1.0f);
  // Absent before Qwen3-MoE: dense.
  c.n_experts = f.opt_integer("n_experts", 0, kMaxSize).value_or(0);
  c.n_experts_used = f.opt_integer("n_experts_used", 0, kMaxSize).value_or(0);
  c.moe_ffn_dim = f.opt_integer("moe_ffn_dim", 0, kMaxSize).value_or(0);
  c.moe_norm_topk = f.opt_boolean("moe_norm_topk", false);
  if (const json* ml = f.get("moe_layers")) {
    if (!ml->is_array()) f.fail("moe_layers", "is not a list");
    for (const json& b : *ml) {
      if (!b.is_boolean()) f.fail("moe_layers", "holds a non-boolean");
      c.moe_layers.push_back(b.get<bool>());
    }
  }
  if ((c.n_experts > 0) != (row->variant == Variant::qwen_moe || row->variant == Variant::mixtral))
    f.fail("n_experts", "= " + std::to_string(c.n_experts) + " does not belong to arch '" + c.arch + "'");
  c.bos_id = (int32_t)f.integer("bos_id", -1, kMaxSize - 1);
  const json& eos = f.need("eos_ids");
  if (!eos.is_array()) f.fail("eos_ids", "is not a list");
  for (const json& e : eos) c.eos_ids.push_back((int32_t)f.integer("eos_ids", e, 0, kMaxSize - 1));
  validate(c, label);
  return c;
}

bool operator==(const RopeScaling& a, const RopeScaling& b) {
  return a.type == b.type && a.factor == b.factor && a.low_freq_factor == b.low_freq_factor &&
         a.high_freq_factor == b.high_freq_factor && a.original_max_position == b.original_max_position &&
         a.freq_factors == b.freq_factors && a.long_factors == b.long_factors &&
         a.attention_factor == b.attention_factor;
}

bool operator==(const ModelConfig& a, const ModelConfig& b) {
  return a.arch == b.arch && a.hf_architecture == b.hf_architecture && a.dim == b.dim &&
         a.n_layers == b.n_layers && a.n_heads == b.n_heads && a.n_kv_heads == b.n_kv_heads &&
         a.head_dim == b.head_dim && a.ffn_dim == b.ffn_dim && a.vocab_size == b.vocab_size &&
         a.max_ctx == b.max_ctx && a.norm_eps == b.norm_eps && a.rope_theta == b.rope_theta &&
         a.rope_scaling == b.rope_scaling && a.tie_embeddings == b.tie_embeddings &&
         a.qkv_bias == b.qkv_bias && a.qk_norm == b.qk_norm && a.sliding_window == b.sliding_window &&
         a.sliding_layers == b.sliding_layers && a.rope_local_theta == b.rope_local_theta &&
         a.query_scale == b.query_scale && a.attn_softcap == b.attn_softcap && a.final_softcap == b.final_softcap &&
         a.rotary_dim == b.rotary_dim && a.nope_layers == b.nope_layers && a.embed_scale == b.embed_scale &&
         a.residual_scale == b.residual_scale && a.logit_divisor == b.logit_divisor && a.n_experts == b.n_experts &&
         a.n_experts_used == b.n_experts_used && a.moe_ffn_dim == b.moe_ffn_dim &&
         a.moe_norm_topk == b.moe_norm_topk && a.moe_layers == b.moe_layers && a.bos_id == b.bos_id &&
         a.eos_ids == b.eos_ids;
}

// ---- tensors ---------------------------------------------------------------------------------

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

std::string name_of(const ModelConfig& c, Role r, int layer, bool gguf = false, int expert = -1) {
  std::string s = gguf ? role_row(r).gguf_pattern : role_row(r).pattern;
  // Gemma's norm before the MLP is its own module (GGUF names it as Llama's).
  if (!gguf && r == Role::ffn_norm && family_of(c) == Family::gemma) s = "model.layers.#.pre_feedforward_layernorm.weight";
  // Mixtral's checkpoints name the mixture block_sparse_moe and the expert projections w1-w3.
  if (!gguf && c.arch == "mixtral" && (r == Role::router || is_expert(r)))
    s = r == Role::router   ? "model.layers.#.block_sparse_moe.gate.weight"
        : r == Role::e_gate ? "model.layers.#.block_sparse_moe.experts.@.w1.weight"
        : r == Role::e_up   ? "model.layers.#.block_sparse_moe.experts.@.w3.weight"
                            : "model.layers.#.block_sparse_moe.experts.@.w2.weight";
  const size_t hash = s.find('#');
  if (hash != std::string::npos) s.replace(hash, 1, std::to_string(layer));
  const size_t at = s.find('@');
  if (at != std::string::npos) s.replace(at, 1, std::to_string(expert));
  return s;
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
  const ArchRow* row = find_canonical(c.arch);
  if (!row || row->variant != Variant::phi3) return std::nullopt;
  const int64_t q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  const char* qkv = gguf ? "blk.#.attn_qkv.weight" : "model.layers.#.self_attn.qkv_proj.weight";
  const char* gate_up = gguf ? "blk.#.ffn_up.weight" : "model.layers.#.mlp.gate_up_proj.weight";
  auto slice = [&](const char* pattern, int64_t rows, int64_t first) {
    std::string name = pattern;
    name.replace(name.find('#'), 1, std::to_string(layer));
    return StoredSlice{name, {rows, c.dim}, first};
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
