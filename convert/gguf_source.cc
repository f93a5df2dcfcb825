// A GGUF file as a ModelSource: the metadata mapped onto the architecture table, the tensors found
// by their GGUF names (models/arch.h), kept exactly where lowbit has the type (ggml_quants.h) and
// dequantized exactly otherwise, with llama.cpp's Q/K row permutation undone.
#include <cstring>

#include "convert/ggml_quants.h"
#include "convert/gguf.h"
#include "convert/gguf_tokenizer.h"
#include "convert/source.h"
#include "kernels/error.h"

namespace lowbit {

namespace {

using nlohmann::json;

std::string dims_str(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

// The GGUF metadata of one model, written as the config.json fields parse_hf_config reads, so
// both inputs pass the same checks. Keys are read with their GGUF names (errors name them).
ModelConfig gguf_config(const GgufFile& f) {
  const std::string arch(f.get_string("general.architecture"));
  GgufArch ga;
  try {
    ga = gguf_architecture(arch);
  } catch (const Error& e) {
    throw Error(f.label() + ": " + e.what());
  }
  const auto key = [&](const char* k) { return arch + "." + k; };
  // llama.cpp writes Mixtral as "llama" with experts; their size is the feed-forward length.
  const bool mixtral = arch == "llama" && f.has(key("expert_count")) && f.get_int(key("expert_count")) > 0;
  if (mixtral) ga.hf_architecture = "MixtralForCausalLM";
  const auto positive = [&](const std::string& k) {
    const int64_t v = f.get_int(k);
    if (v <= 0) throw Error(f.label() + ": metadata '" + k + "' = " + std::to_string(v) + " is not positive");
    return v;
  };
  json j;
  j["architectures"] = {ga.hf_architecture};
  j["hidden_size"] = positive(key("embedding_length"));
  j["num_hidden_layers"] = positive(key("block_count"));
  j["intermediate_size"] = positive(key("feed_forward_length"));
  j["num_attention_heads"] = positive(key("attention.head_count"));
  j["num_key_value_heads"] = f.has(key("attention.head_count_kv")) ? positive(key("attention.head_count_kv"))
                                                                  : j["num_attention_heads"].get<int64_t>();
  j["max_position_embeddings"] = positive(key("context_length"));
  j["rms_norm_eps"] = f.get_float(key("attention.layer_norm_rms_epsilon"));
  if (f.has(key("rope.freq_base"))) j["rope_theta"] = f.get_float(key("rope.freq_base"));
  const int64_t head_dim = f.has(key("attention.key_length"))
                               ? positive(key("attention.key_length"))
                               : j["hidden_size"].get<int64_t>() / j["num_attention_heads"].get<int64_t>();
  j["head_dim"] = head_dim;
  if (f.has(key("attention.value_length")) && f.get_int(key("attention.value_length")) != head_dim)
    throw Error(f.label() + ": metadata '" + key("attention.value_length") + "' differs from the key length (not supported)");
  const bool phi3 = ga.hf_architecture == "Phi3ForCausalLM";
  const int64_t rotary = f.has(key("rope.dimension_count")) ? f.get_int(key("rope.dimension_count")) : head_dim;
  if (rotary != head_dim && !phi3)
    throw Error(f.label() + ": metadata '" + key("rope.dimension_count") + "' = " + std::to_string(rotary) +
                " rotates part of each head of " + std::to_string(head_dim) + " (partial RoPE is Phi-3's only)");
  if (rotary != head_dim)  // int(head_dim * factor) is the count; the half keeps it off a rounding edge
    j["partial_rotary_factor"] = ((double)rotary + 0.5) / (double)head_dim;
  if (phi3) {
    // llama.cpp's converter writes Phi-3's window as 0 where the model has none (Phi-4), and
    // LongRoPE as two factor tensors, the attention factor and the pretraining length.
    if (f.has(key("attention.sliding_window")) && f.get_int(key("attention.sliding_window")) > 0)
      j["sliding_window"] = positive(key("attention.sliding_window"));
    const GgufTensorInfo* lf = f.find_tensor(kGgufLongRopeFactors[0]);
    const GgufTensorInfo* sf = f.find_tensor(kGgufLongRopeFactors[1]);
    if (lf || sf) {
      auto factors = [&](const GgufTensorInfo* t, const char* name) {
        if (!t) throw Error(f.label() + ": tensor '" + name + "' is missing (LongRoPE needs both factor tensors)");
        if (t->type != GgmlType::f32 || t->dims.size() != 1)
          throw Error(f.label() + ": tensor '" + name + "' must be F32 with one dimension, not " +
                      ggml_type_name((uint32_t)t->type) + " " + dims_str(t->dims));
        std::vector<float> v((size_t)t->dims[0]);
        std::memcpy(v.data(), f.tensor_bytes(*t).data(), t->bytes);
        return v;
      };
      j["rope_scaling"] = {
          {"type", "longrope"},
          {"long_factor", factors(lf, kGgufLongRopeFactors[0])},
          {"short_factor", factors(sf, kGgufLongRopeFactors[1])},
          {"attention_factor", f.has(key("rope.scaling.attn_factor")) ? f.get_float(key("rope.scaling.attn_factor")) : 1.0},
          {"original_max_position_embeddings", f.has(key("rope.scaling.original_context_length"))
                                                   ? positive(key("rope.scaling.original_context_length"))
                                                   : j["max_position_embeddings"].get<int64_t>()}};
    }
  }
  const bool qwen_moe = ga.hf_architecture == "Qwen3MoeForCausalLM";
  if (mixtral || qwen_moe || ga.hf_architecture == "GraniteMoeForCausalLM") {
    // The experts under the config's own names; Mixtral's and Granite's are feed_forward_length
    // wide. llama.cpp's qwen3moe graph makes every layer a mixture and renormalizes the chosen.
    j[qwen_moe ? "num_experts" : "num_local_experts"] = positive(key("expert_count"));
    j["num_experts_per_tok"] = positive(key("expert_used_count"));
    if (qwen_moe) {
      j["moe_intermediate_size"] = positive(key("expert_feed_forward_length"));
      j["norm_topk_prob"] = true;
    }
  }
  if (ga.hf_architecture == "GraniteForCausalLM" || ga.hf_architecture == "GraniteMoeForCausalLM") {
    // llama.cpp's converter writes Granite's multipliers under names of its own.
    for (const auto& [gguf_key, field] : {std::pair{"embedding_scale", "embedding_multiplier"},
                                          std::pair{"residual_scale", "residual_multiplier"},
                                          std::pair{"attention.scale", "attention_multiplier"},
                                          std::pair{"logit_scale", "logits_scaling"}})
      if (f.has(key(gguf_key))) j[field] = f.get_float(key(gguf_key));
  }
  if (ga.hf_architecture == "Gemma2ForCausalLM" || ga.hf_architecture == "Gemma3ForCausalLM") {
    // What llama.cpp's gemma2/gemma3 graphs take that the file does not say, as they take it (the
    // configs' defaults): a window on every other layer (Gemma 2) or five of six (Gemma 3, with a
    // base of 10000 there), and scores scaled by 1 / sqrt(head_dim), but by 1 / sqrt(hidden /
    // heads) for the 27B models (46 and 62 layers), whose query_pre_attn_scalar is that. Gemma 2's
    // soft-capping comes from its keys, else its config's defaults (50, 30).
    if (f.has(key("attention.sliding_window"))) j["sliding_window"] = positive(key("attention.sliding_window"));
    for (const char* cap : {"attn_logit_softcapping", "final_logit_softcapping"})
      if (f.has(key(cap))) j[cap] = f.get_float(key(cap));
    const int64_t dim = j["hidden_size"], heads = j["num_attention_heads"];
    const int64_t layers_27b = ga.hf_architecture == "Gemma2ForCausalLM" ? 46 : 62;
    j["query_pre_attn_scalar"] = j["num_hidden_layers"] == layers_27b ? dim / heads : head_dim;
  }
  if (f.has(key("rope.scaling.type"))) {
    const std::string_view type = f.get_string(key("rope.scaling.type"));
    if (type == "linear") {
      j["rope_scaling"] = {{"type", "linear"}, {"factor", f.get_float(key("rope.scaling.factor"))}};
    } else if (type != "none") {
      throw Error(f.label() + ": metadata '" + key("rope.scaling.type") + "' = '" + std::string(type) +
                  "' is not supported (none and linear are)");
    }
  }
  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd) throw Error(f.label() + ": tensor 'token_embd.weight' is missing");
  j["vocab_size"] = f.has(key("vocab_size")) ? positive(key("vocab_size"))
                                             : (embd->dims.size() == 2 ? embd->dims[1] : 0);
  j["tie_word_embeddings"] = f.find_tensor("output.weight") == nullptr;
  if (f.has("tokenizer.ggml.bos_token_id")) j["bos_token_id"] = f.get_int("tokenizer.ggml.bos_token_id");
  if (f.has("tokenizer.ggml.eos_token_id")) j["eos_token_id"] = f.get_int("tokenizer.ggml.eos_token_id");
  ModelConfig c = parse_hf_config(j, f.label() + " (GGUF metadata read as config.json fields)");
  if (const GgufTensorInfo* t = f.find_tensor(kGgufRopeFreqs)) {
    const std::string what = f.label() + ": tensor '" + kGgufRopeFreqs + "'";
    if (!c.rope_scaling.type.empty())
      throw Error(what + " comes with rope.scaling.type '" + c.rope_scaling.type + "' (one scaling at a time)");
    if (t->type != GgmlType::f32 || t->dims.size() != 1 || t->dims[0] != c.head_dim / 2)
      throw Error(what + " must be F32 with head_dim/2 = " + std::to_string(c.head_dim / 2) + " values, not " +
                  ggml_type_name((uint32_t)t->type) + " " + dims_str(t->dims));
    c.rope_scaling.type = "factors";
    c.rope_scaling.freq_factors.resize((size_t)t->dims[0]);
    std::memcpy(c.rope_scaling.freq_factors.data(), f.tensor_bytes(*t).data(), t->bytes);
    // The manifest reader's checks (each factor finite and > 0) apply to this config too.
    c = config_from_json(config_to_json(c), what);
  }
  return c;
}

// The lowbit type that keeps at least the source's bits when no exact one exists.
std::optional<QType> requant_type(GgmlType t) {
  switch (t) {
    case GgmlType::q5_0: case GgmlType::q5_1: case GgmlType::q5_k: case GgmlType::q6_k:
    case GgmlType::q8_1: case GgmlType::q8_k:
      return parse_type("q8_g32_sym");
    case GgmlType::q2_k: case GgmlType::q3_k: case GgmlType::q4_k: case GgmlType::iq4_nl: case GgmlType::iq4_xs:
      return parse_type("q4_g32_asym");
    default:
      return std::nullopt;
  }
}

class GgufSource final : public ModelSource {
 public:
  explicit GgufSource(const std::string& path) : ModelSource(path), file_(GgufFile::open(path)) {
    config_ = gguf_config(file_);
    qk_permuted_ = gguf_architecture(file_.get_string("general.architecture")).qk_permuted;
    check_tensors();
  }

  std::string format() const override { return "GGUF v" + std::to_string(file_.version()); }
  const ModelConfig& config() const override { return config_; }

  std::optional<QType> exact_type(const TensorSpec& s) const override {
    const GgufTensorInfo& t = tensor(s);
    if (s.shape.size() == 1) return t.type == GgmlType::f32 ? std::optional<QType>(QType{}) : std::nullopt;
    return ggml_exact_type(t.type);
  }

  void read_exact(const TensorSpec& s, uint8_t* dst, ThreadPool* pool) const override {
    const GgufTensorInfo& t = tensor(s);
    if (!exact_type(s)) throw Error(path() + ": tensor '" + t.name + "' has no exact lowbit type (internal)");
    if (s.shape.size() == 1) {
      std::memcpy(dst, file_.tensor_bytes(t).data(), t.bytes);
      return;
    }
    std::vector<uint8_t> held;
    const uint8_t* rows = hf_rows(s, t, held);
    try {
      ggml_repack(t.type, rows, s.shape[0], s.shape[1], dst, pool);
    } catch (const Error& e) {
      throw Error(path() + ": tensor '" + t.name + "': " + e.what());
    }
  }

  std::vector<float> read_f32(const TensorSpec& s, ThreadPool* pool) const override {
    const GgufTensorInfo& t = tensor(s);
    std::vector<uint8_t> held;
    const uint8_t* rows = hf_rows(s, t, held);
    const int64_t n = s.shape.size() == 1 ? s.shape[0] : s.shape[0] * s.shape[1];
    std::vector<float> out((size_t)n);
    try {
      ggml_dequantize(t.type, rows, n, out.data(), pool);
    } catch (const Error& e) {
      throw Error(path() + ": tensor '" + t.name + "': " + e.what());
    }
    return out;
  }

  std::optional<QType> source_type(const TensorSpec& s) const override {
    if (s.shape.size() == 1) return QType{};  // norms and biases are f32 in every manifest
    if (auto t = exact_type(s)) return t;
    return requant_type(tensor(s).type);
  }

  std::string source_type_name(const TensorSpec& s) const override {
    return ggml_type_name((uint32_t)tensor(s).type);
  }
  int64_t source_bytes(const TensorSpec& s) const override {
    const GgufTensorInfo& t = tensor(s);
    return stored_slice(config_, s.role, s.layer, true, s.expert) ? (int64_t)t.bytes / t.rows() * s.shape[0] : (int64_t)t.bytes;
  }
  void release(const TensorSpec& s) const override { file_.drop_pages(tensor(s)); }

  // A file without tokenizer metadata still runs on token ids (as a manifest without tokenizer
  // files does); whatever needs text then says there is no tokenizer.
  std::map<std::string, std::string> tokenizer_files() const override {
    if (!file_.has("tokenizer.ggml.model")) return {};
    return gguf_tokenizer_files(file_);
  }

 private:
  // The file's tensor holding s: its own, or the fused one it is a slice of (Phi-3's).
  std::string stored_name(const TensorSpec& s) const {
    const auto slice = stored_slice(config_, s.role, s.layer, true, s.expert);
    return slice ? slice->name : gguf_tensor_name(config_, s.role, s.layer);
  }
  const GgufTensorInfo& tensor(const TensorSpec& s) const {
    return *file_.find_tensor(stored_name(s));  // present: checked at open
  }

  // Every tensor the architecture needs is present, shaped as the config implies (GGUF dims are
  // the HF shape reversed) and of a type lowbit can read; nothing else is in the file.
  void check_tensors() const {
    std::vector<std::string> problems;
    std::map<std::string, bool, std::less<>> expected;
    if (config_.rope_scaling.type == "factors") expected[kGgufRopeFreqs] = true;  // read into the config
    if (config_.rope_scaling.type == "longrope")
      for (const char* name : kGgufLongRopeFactors) expected[name] = true;
    for (const TensorSpec& s : expected_tensors(config_)) {
      const std::string name = stored_name(s);
      if (expected.count(name)) continue;  // a fused tensor met before
      expected[name] = true;
      const GgufTensorInfo* t = file_.find_tensor(name);
      if (!t) {
        problems.push_back("tensor '" + name + "' is missing");
        continue;
      }
      const auto slice = stored_slice(config_, s.role, s.layer, true, s.expert);
      const std::vector<int64_t>& shape = slice ? slice->shape : s.shape;
      const std::vector<int64_t> want(shape.rbegin(), shape.rend());
      if (t->dims != want)
        problems.push_back("tensor '" + name + "' has dims " + dims_str(t->dims) + " but the metadata implies " + dims_str(want));
      else if (!ggml_can_dequantize(t->type))
        problems.push_back("tensor '" + name + "' has type " + ggml_type_name((uint32_t)t->type) +
                           ", which lowbit cannot read (it reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, "
                           "Q2_K-Q6_K, TQ1_0, TQ2_0, IQ4_NL, IQ4_XS)");
    }
    for (const GgufTensorInfo& t : file_.header().tensors)
      if (!expected.count(t.name)) problems.push_back("tensor '" + t.name + "' is not part of a " + config_.arch + " model");
    if (problems.empty()) return;
    std::string msg = path() + ": " + problems[0];
    for (size_t i = 1; i < problems.size() && i < 6; ++i) msg += "; " + problems[i];
    if (problems.size() > 6) msg += " (+" + std::to_string(problems.size() - 6) + " more)";
    throw Error(msg);
  }

  // s's rows in HF order: in the file where they are stored so (a fused tensor's slice at its
  // first row), else reordered into held.
  const uint8_t* hf_rows(const TensorSpec& s, const GgufTensorInfo& t, std::vector<uint8_t>& held) const {
    held = row_ordered(s, t);
    if (!held.empty()) return held.data();
    const auto slice = stored_slice(config_, s.role, s.layer, true, s.expert);
    return file_.tensor_bytes(t).data() + (slice ? slice->first_row * (int64_t)(t.bytes / t.rows()) : 0);
  }

  // llama.cpp's converter stores the rows of each head of attn_q/attn_k in the order
  // (pair index, half) where HF has (half, pair index): HF row h*hd + a*hd/2 + b is GGUF row
  // h*hd + 2b + a. Rows are whole blocks, so undoing it moves rows and touches no value.
  // Returns the rows in HF order, or nothing when the tensor is stored in HF order already.
  std::vector<uint8_t> row_ordered(const TensorSpec& s, const GgufTensorInfo& t) const {
    if (!qk_permuted_ || (s.role != Role::wq && s.role != Role::wk)) return {};
    const int64_t heads = s.role == Role::wq ? config_.n_heads : config_.n_kv_heads, hd = config_.head_dim;
    const size_t row_bytes = t.bytes / t.rows();
    const uint8_t* src = file_.tensor_bytes(t).data();
    std::vector<uint8_t> out(t.bytes);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t a = 0; a < 2; ++a)
        for (int64_t b = 0; b < hd / 2; ++b)
          std::memcpy(&out[(h * hd + a * hd / 2 + b) * row_bytes], src + (h * hd + 2 * b + a) * row_bytes, row_bytes);
    return out;
  }

  GgufFile file_;
  ModelConfig config_;
  bool qk_permuted_ = false;
};

}  // namespace

std::unique_ptr<ModelSource> open_gguf_source(const std::string& file) { return std::make_unique<GgufSource>(file); }

}  // namespace lowbit
