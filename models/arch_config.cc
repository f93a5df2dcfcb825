// config.json and the manifest's own form of a ModelConfig (models/arch.h): the readers, each
// field validated and named in errors, and the family-specific fields of each architecture.
#include <math.h>

#include <algorithm>
#include <cmath>

#include "kernels/error.h"
#include "models/arch.h"
#include "models/arch_table.h"

namespace lowbit {

using nlohmann::json;
using namespace arch_table;

namespace {

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
  // A list of numbers (JSON integers or floats), as floats.
  std::vector<float> numbers(const char* field) const {
    const json& v = need(field);
    if (!v.is_array()) fail(field, "is not a list");
    std::vector<float> out;
    for (const json& x : v) {
      if (!x.is_number()) fail(field, "holds " + x.dump() + ", not a number");
      out.push_back(x.get<float>());
    }
    return out;
  }
  std::vector<float> opt_numbers(const char* field) const { return get(field) ? numbers(field) : std::vector<float>{}; }
  // A list of true/false; absent: empty.
  std::vector<bool> opt_booleans(const char* field) const {
    if (!get(field)) return {};
    const json& v = need(field);
    if (!v.is_array()) fail(field, "is not a list");
    std::vector<bool> out;
    for (const json& x : v) {
      if (!x.is_boolean()) fail(field, "holds " + x.dump() + ", not true/false");
      out.push_back(x.get<bool>());
    }
    return out;
  }
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
  // The per-layer switches: empty (the same for every layer) or one entry per layer.
  for (const auto& [name, list] : {std::pair{"sliding_layers", &c.sliding_layers}, std::pair{"nope_layers", &c.nope_layers},
                                   std::pair{"moe_layers", &c.moe_layers}})
    if (!list->empty() && (int64_t)list->size() != c.n_layers)
      fail(std::string(name) + ": " + std::to_string(list->size()) + " entries for " + std::to_string(c.n_layers) +
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
    r.freq_factors = f.numbers("short_factor");
    r.long_factors = f.numbers("long_factor");
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
  if (row->variant == Variant::granite || row->variant == Variant::granite_moe) parse_granite(f, c);
  if (row->variant == Variant::qwen_moe) parse_qwen_moe(f, c);
  if (row->variant == Variant::mixtral || row->variant == Variant::granite_moe) {
    // MixtralConfig and GraniteMoeConfig: 8 experts of intermediate_size, 2 per token, their
    // weights renormalized (GraniteMoe's softmax over the chosen logits is the same).
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
  c.rope_scaling.freq_factors = r.opt_numbers("freq_factors");
  c.rope_scaling.long_factors = r.opt_numbers("long_factors");
  c.rope_scaling.attention_factor = r.opt_positive("attention_factor", 1.0f);
  c.tie_embeddings = f.boolean("tie_embeddings");
  c.qkv_bias = f.boolean("qkv_bias");
  c.qk_norm = f.opt_boolean("qk_norm", false);  // absent in manifests written before Qwen3
  if (c.qk_norm != row->qk_norm) f.fail("qk_norm", std::string("= ") + (c.qk_norm ? "true" : "false") + " does not belong to arch '" + c.arch + "'");
  c.sliding_window = f.integer("sliding_window", 0, kMaxContext);
  // Absent in manifests written before Gemma: every layer windowed alike, one base, 1/sqrt(head_dim).
  c.sliding_layers = f.opt_booleans("sliding_layers");
  // 0 (as written for "none") or absent, else positive.
  auto zero_or_positive = [&](const char* key) { return f.get(key) && f.need(key) != 0 ? f.positive(key) : 0.0f; };
  c.rope_local_theta = zero_or_positive("rope_local_theta");
  c.query_scale = zero_or_positive("query_scale");
  c.attn_softcap = zero_or_positive("attn_softcap");
  c.final_softcap = zero_or_positive("final_softcap");
  c.rotary_dim = f.opt_integer("rotary_dim", 0, kMaxSize).value_or(0);  // absent before Phi-3
  // Absent before SmolLM3 and Granite: RoPE everywhere, no multipliers.
  c.nope_layers = f.opt_booleans("nope_layers");
  c.embed_scale = f.opt_positive("embed_scale", 1.0f);
  c.residual_scale = f.opt_positive("residual_scale", 1.0f);
  c.logit_divisor = f.opt_positive("logit_divisor", 1.0f);
  // Absent before Qwen3-MoE: dense.
  c.n_experts = f.opt_integer("n_experts", 0, kMaxSize).value_or(0);
  c.n_experts_used = f.opt_integer("n_experts_used", 0, kMaxSize).value_or(0);
  c.moe_ffn_dim = f.opt_integer("moe_ffn_dim", 0, kMaxSize).value_or(0);
  c.moe_norm_topk = f.opt_boolean("moe_norm_topk", false);
  c.moe_layers = f.opt_booleans("moe_layers");
  const bool moe = row->variant == Variant::qwen_moe || row->variant == Variant::mixtral ||
                   row->variant == Variant::granite_moe;
  if ((c.n_experts > 0) != moe)
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

}  // namespace lowbit
