// The architecture table (models/arch.h): every real config.json in ../shared/models parses to
// the values written in it, the expected tensors of the real checkpoints match their files name
// for name and shape, and each bad field is rejected with a message naming it.
#include "tests/error_of.h"
#include "models/arch.h"

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "convert/safetensors.h"
#include "hf_test_util.h"
#include "kernels/error.h"

namespace lowbit {
namespace {

using nlohmann::json;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

json load(const std::string& rel) {
  std::ifstream in(test::kModels + "/" + rel + "/config.json");
  return json::parse(in);
}

ModelConfig parse(const std::string& rel) { return parse_hf_config(load(rel), rel + "/config.json"); }

using test::error_of;

// The message for the stories260K config with one field changed (null erases it).
std::string bad_field(const std::string& field, const json& value, const std::string& base = "stories260K") {
  json j = load(base);
  if (value.is_null()) j.erase(field);
  else j[field] = value;
  return error_of([&] { parse_hf_config(j, "config.json"); });
}

const char* const kRealConfigs[] = {"stories260K", "aidreams260K", "configs/llama-2-7b-hf",
                                    "configs/tinyllama-1.1b-chat-v1.0", "configs/mistral-7b-v0.1",
                                    "configs/qwen2.5-0.5b", "configs/llama-3.2-1b", "configs/smollm2-135m"};

// ---- config.json ------------------------------------------------------------------------------

TEST(Arch, parse_stories260K) {
  const ModelConfig c = parse("stories260K");
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.hf_architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);  // dim / n_heads: the config has no head_dim
  EXPECT_EQ(c.ffn_dim, 172);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_ctx, 512);
  EXPECT_EQ(c.norm_eps, 1e-5f);
  EXPECT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.rope_scaling.type, "");
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_ids, std::vector<int32_t>{2});
}

TEST(Arch, parse_llama_2_7b) {
  const ModelConfig c = parse("configs/llama-2-7b-hf");
  EXPECT_EQ(c.dim, 4096);
  EXPECT_EQ(c.n_layers, 32);
  EXPECT_EQ(c.n_kv_heads, 32);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.ffn_dim, 11008);
  EXPECT_EQ(c.max_ctx, 4096);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_EQ(c.rope_scaling.type, "");  // "rope_scaling": null
}

TEST(Arch, parse_llama_3_2_1b_rope_scaling) {
  const ModelConfig c = parse("configs/llama-3.2-1b");
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_EQ(c.rope_scaling.factor, 32.0f);
  EXPECT_EQ(c.rope_scaling.low_freq_factor, 1.0f);
  EXPECT_EQ(c.rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(c.rope_scaling.original_max_position, 8192);
  EXPECT_EQ(c.max_ctx, 131072);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.bos_id, 128000);
  EXPECT_EQ(c.eos_ids, std::vector<int32_t>{128001});
}

TEST(Arch, parse_mistral_7b_sliding_window) {
  const ModelConfig c = parse("configs/mistral-7b-v0.1");
  EXPECT_EQ(c.arch, "mistral");
  EXPECT_EQ(c.hf_architecture, "MistralForCausalLM");
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.ffn_dim, 14336);
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_FALSE(c.qkv_bias);
}

TEST(Arch, parse_qwen2_5_0_5b) {
  const ModelConfig c = parse("configs/qwen2.5-0.5b");
  EXPECT_EQ(c.arch, "qwen2");
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.dim, 896);
  EXPECT_EQ(c.n_heads, 14);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.norm_eps, 1e-6f);
  EXPECT_EQ(c.rope_theta, 1000000.0f);
  EXPECT_EQ(c.sliding_window, 0);  // "use_sliding_window": false
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.bos_id, 151643);
}

using test::data_config;
json qwen3_json() { return data_config("qwen3-0.6b"); }
json gemma3_json() { return data_config("gemma-3-1b-it"); }

TEST(Arch, parse_qwen3_0_6b_per_head_norms) {
  const ModelConfig c = parse_hf_config(qwen3_json(), "config.json");
  EXPECT_EQ(c.arch, "qwen3");
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.dim, 1024);
  EXPECT_EQ(c.n_heads, 16);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);  // wider than 1024 / 16
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_EQ(c.eos_ids, std::vector<int32_t>{151645});
  std::map<std::string, TensorSpec> by_name;
  for (const TensorSpec& s : expected_tensors(c)) by_name.emplace(s.name, s);
  EXPECT_EQ(by_name.size(), 1u + 28 * 11 + 1);  // embed, 11 per layer, final norm; tied head
  EXPECT_EQ(by_name.at("model.layers.27.self_attn.q_norm.weight").shape, (std::vector<int64_t>{128}));
  EXPECT_EQ(by_name.at("model.layers.0.self_attn.k_norm.weight").role, Role::k_norm);
  EXPECT_TRUE(by_name.at("model.layers.0.self_attn.k_norm.weight").is_norm_or_bias);
  EXPECT_EQ(by_name.at("model.layers.0.self_attn.q_proj.weight").shape, (std::vector<int64_t>{2048, 1024}));
  EXPECT_EQ(by_name.at("model.layers.0.self_attn.o_proj.weight").shape, (std::vector<int64_t>{1024, 2048}));
  EXPECT_EQ(gguf_tensor_name(c, Role::q_norm, 3), "blk.3.attn_q_norm.weight");
  EXPECT_EQ(gguf_architecture("qwen3").hf_architecture, "Qwen3ForCausalLM");
  EXPECT_FALSE(gguf_architecture("qwen3").qk_permuted);
  EXPECT_EQ(config_from_json(config_to_json(c), "m"), c);

  json j = qwen3_json();
  j.erase("head_dim");  // Qwen3Config's default, not hidden_size / heads
  EXPECT_EQ(parse_hf_config(j, "config.json").head_dim, 128);
  j = qwen3_json();
  j["attention_bias"] = true;  // biases on q/k/v and o: no slot for o's
  EXPECT_THAT(error_of([&] { parse_hf_config(j, "config.json"); }), HasSubstr("field 'attention_bias' = true"));
  // use_sliding_window: the window on the layers from max_window_layers on (Qwen3Config's rule).
  j = qwen3_json();
  j["use_sliding_window"] = true;
  j["sliding_window"] = 4096;
  j["max_window_layers"] = 20;
  const ModelConfig w = parse_hf_config(j, "config.json");
  EXPECT_EQ(w.sliding_window, 4096);
  ASSERT_EQ(w.sliding_layers.size(), 28u);
  for (int i = 0; i < 28; ++i) EXPECT_EQ(w.sliding_layers[i], i >= 20) << i;
  j["max_window_layers"] = -1;
  EXPECT_THAT(error_of([&] { parse_hf_config(j, "config.json"); }), HasSubstr("field 'max_window_layers'"));
  json m = config_to_json(c);
  m["qk_norm"] = false;
  EXPECT_THAT(error_of([&] { config_from_json(m, "manifest.json"); }), HasSubstr("field 'qk_norm'"));
  // A manifest written before the field existed reads as without the norms.
  m = config_to_json(parse("configs/qwen2.5-0.5b"));
  m.erase("qk_norm");
  EXPECT_FALSE(config_from_json(m, "manifest.json").qk_norm);
}

TEST(Arch, parse_gemma3_1b) {
  const ModelConfig c = parse_hf_config(gemma3_json(), "config.json");
  EXPECT_EQ(c.arch, "gemma3");
  EXPECT_EQ(family_of(c), Family::gemma);
  EXPECT_EQ(norm_weight_offset(c), 1.0f);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_EQ(c.query_scale, 1.0f / 16);  // query_pre_attn_scalar 256
  EXPECT_EQ(c.sliding_window, 512);
  EXPECT_EQ(c.rope_theta, 1e6f);
  EXPECT_EQ(c.rope_local_theta, 10000.0f);
  EXPECT_EQ(c.eos_ids, (std::vector<int32_t>{1, 106}));
  ASSERT_EQ(c.sliding_layers.size(), 26u);
  for (int i = 0; i < 26; ++i) EXPECT_EQ(c.sliding_layers[i], (i + 1) % 6 != 0) << i;  // 5, 11, 17, 23 global
  EXPECT_EQ(config_from_json(config_to_json(c), "m"), c);

  std::map<std::string, TensorSpec> by_name;
  for (const TensorSpec& s : expected_tensors(c)) by_name.emplace(s.name, s);
  EXPECT_EQ(by_name.size(), 1u + 26 * 13 + 1);  // embed, 13 per layer, final norm; tied head
  EXPECT_EQ(by_name.at("model.layers.3.post_attention_layernorm.weight").role, Role::post_attn_norm);
  EXPECT_EQ(by_name.at("model.layers.3.pre_feedforward_layernorm.weight").role, Role::ffn_norm);
  EXPECT_EQ(by_name.at("model.layers.3.post_feedforward_layernorm.weight").role, Role::post_ffn_norm);
  EXPECT_EQ(gguf_tensor_name(c, Role::ffn_norm, 3), "blk.3.ffn_norm.weight");
  EXPECT_EQ(gguf_tensor_name(c, Role::post_attn_norm, 3), "blk.3.post_attention_norm.weight");
  EXPECT_EQ(gguf_tensor_name(c, Role::post_ffn_norm, 3), "blk.3.post_ffw_norm.weight");
  EXPECT_EQ(gguf_architecture("gemma3").hf_architecture, "Gemma3ForCausalLM");
  // Llama's post_attention_layernorm is its norm before the MLP, and it has no norms after.
  const ModelConfig l = parse("configs/llama-2-7b-hf");
  EXPECT_EQ(tensor_name(l, Role::ffn_norm, 0), "model.layers.0.post_attention_layernorm.weight");
  EXPECT_EQ(norm_weight_offset(l), 0.0f);
  EXPECT_THAT(error_of([&] { tensor_name(l, Role::post_ffn_norm, 0); }), HasSubstr("no norms after the sublayers"));
}

TEST(Arch, parse_gemma3_transformers5_form) {
  // transformers 5 writes layer_types and rope_parameters per layer type.
  json j = gemma3_json();
  for (const char* k : {"sliding_window_pattern", "rope_theta", "rope_local_base_freq", "rope_scaling"}) j.erase(k);
  j["num_hidden_layers"] = 4;
  j["layer_types"] = {"sliding_attention", "full_attention", "sliding_attention", "full_attention"};
  j["rope_parameters"] = {{"full_attention", {{"rope_type", "linear"}, {"factor", 8.0}, {"rope_theta", 1e6}}},
                          {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}}};
  const ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.sliding_layers, (std::vector<bool>{true, false, true, false}));
  EXPECT_EQ(c.rope_scaling.type, "linear");
  EXPECT_EQ(c.rope_scaling.factor, 8.0f);
  EXPECT_EQ(c.rope_theta, 1e6f);
  EXPECT_EQ(c.rope_local_theta, 10000.0f);
}

TEST(Arch, parse_gemma2_2b) {
  json j = data_config("gemma-2-2b-it");
  const ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.arch, "gemma2");
  EXPECT_EQ(family_of(c), Family::gemma);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.attn_softcap, 50.0f);
  EXPECT_EQ(c.final_softcap, 30.0f);
  EXPECT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.rope_local_theta, 0.0f);  // one base for every layer
  ASSERT_EQ(c.sliding_layers.size(), 26u);
  for (int i = 0; i < 26; ++i) EXPECT_EQ(c.sliding_layers[i], i % 2 == 0) << i;
  EXPECT_EQ(expected_tensors(c).size(), 1u + 26 * 11 + 1);  // no q/k norms
  EXPECT_EQ(config_from_json(config_to_json(c), "m"), c);
  // Gemma2Config's defaults soft-cap; an explicit null does not.
  j.erase("attn_logit_softcapping");
  j["final_logit_softcapping"] = nullptr;
  const ModelConfig d = parse_hf_config(j, "config.json");
  EXPECT_EQ(d.attn_softcap, 50.0f);
  EXPECT_EQ(d.final_softcap, 0.0f);
  EXPECT_EQ(gguf_architecture("gemma2").hf_architecture, "Gemma2ForCausalLM");
}

TEST(ArchBad, gemma3_switches_it_cannot_run) {
  auto bad = [](const char* field, const json& v) {
    json j = gemma3_json();
    j[field] = v;
    return error_of([&] { parse_hf_config(j, "config.json"); });
  };
  EXPECT_THAT(bad("final_logit_softcapping", -1.0), HasSubstr("field 'final_logit_softcapping'"));
  EXPECT_THAT(bad("hidden_activation", "silu"), HasSubstr("field 'hidden_activation' = 'silu' not supported (gelu_pytorch_tanh"));
  EXPECT_THAT(bad("use_bidirectional_attention", true), HasSubstr("field 'use_bidirectional_attention'"));
  EXPECT_THAT(bad("layer_types", json::array({"full_attention"})), HasSubstr("field 'layer_types'"));
  EXPECT_THAT(bad("attention_bias", true), HasSubstr("field 'attention_bias'"));
}

TEST(Arch, parse_smollm2_rope_parameters) {
  // A transformers-5 config: rope_theta lives in "rope_parameters".
  const ModelConfig c = parse("configs/smollm2-135m");
  EXPECT_EQ(c.rope_theta, 100000.0f);
  EXPECT_EQ(c.rope_scaling.type, "");
  EXPECT_EQ(c.n_heads, 9);
  EXPECT_EQ(c.n_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.bos_id, 0);
}

TEST(Arch, parse_tinyllama) {
  const ModelConfig c = parse("configs/tinyllama-1.1b-chat-v1.0");
  EXPECT_EQ(c.n_layers, 22);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.ffn_dim, 5632);
  EXPECT_EQ(c.max_ctx, 2048);
}

TEST(Arch, eos_list_and_null_ids) {
  json j = load("configs/llama-3.2-1b");
  j["eos_token_id"] = {128001, 128008, 128009};
  j["bos_token_id"] = nullptr;
  const ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.eos_ids, (std::vector<int32_t>{128001, 128008, 128009}));
  EXPECT_EQ(c.bos_id, -1);
}

TEST(Arch, mistral_window_null_or_absent) {
  json j = load("configs/mistral-7b-v0.1");
  j["sliding_window"] = nullptr;  // Mistral v0.2 on: no window
  EXPECT_EQ(parse_hf_config(j, "config.json").sliding_window, 0);
  j.erase("sliding_window");  // MistralConfig's default
  EXPECT_EQ(parse_hf_config(j, "config.json").sliding_window, 4096);
}

TEST(Arch, linear_rope_scaling_and_defaults) {
  json j = load("stories260K");
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  j.erase("rope_theta");
  j.erase("rms_norm_eps");
  j.erase("num_key_value_heads");
  const ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.rope_scaling.type, "linear");
  EXPECT_EQ(c.rope_scaling.factor, 2.0f);
  EXPECT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.norm_eps, 1e-6f);
  EXPECT_EQ(c.n_kv_heads, 8);  // absent: one KV head per query head
}

TEST(ArchBad, unknown_architecture_names_it_and_the_supported) {
  const std::string msg = bad_field("architectures", {"GPT2LMHeadModel"});
  EXPECT_THAT(msg, AllOf(HasSubstr("config.json: field 'architectures'"), HasSubstr("GPT2LMHeadModel"),
                         HasSubstr("LlamaForCausalLM"), HasSubstr("MistralForCausalLM"),
                         HasSubstr("Qwen2ForCausalLM"), HasSubstr("Qwen3ForCausalLM"), HasSubstr("Gemma2ForCausalLM"),
                         HasSubstr("Gemma3ForCausalLM"), HasSubstr("Phi3ForCausalLM"), HasSubstr("SmolLM3ForCausalLM"),
                         HasSubstr("GraniteForCausalLM"), HasSubstr("Qwen3MoeForCausalLM"),
                         HasSubstr("MixtralForCausalLM"), HasSubstr("GraniteMoeForCausalLM")));
  EXPECT_THAT(bad_field("architectures", nullptr), HasSubstr("field 'architectures' missing"));
  EXPECT_THAT(bad_field("architectures", "LlamaForCausalLM"), HasSubstr("field 'architectures' is not a non-empty list"));
  EXPECT_EQ(supported_architectures(),
            (std::vector<std::string>{"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM",
                                      "Qwen3ForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM",
                                      "Phi3ForCausalLM", "SmolLM3ForCausalLM", "GraniteForCausalLM",
                                      "Qwen3MoeForCausalLM", "MixtralForCausalLM", "GraniteMoeForCausalLM"}));
}

TEST(ArchBad, fields_named) {
  EXPECT_EQ(bad_field("hidden_size", nullptr), "config.json: field 'hidden_size' missing");
  EXPECT_EQ(bad_field("hidden_size", "64"), "config.json: field 'hidden_size' is not an integer");
  EXPECT_EQ(bad_field("hidden_size", 64.0), "config.json: field 'hidden_size' is not an integer");
  EXPECT_EQ(bad_field("num_hidden_layers", 0), "config.json: field 'num_hidden_layers' = 0 out of range [1, 16777216]");
  EXPECT_THAT(bad_field("vocab_size", -5), HasSubstr("field 'vocab_size' = -5 out of range"));
  EXPECT_THAT(bad_field("intermediate_size", 18446744073709551615ull), HasSubstr("field 'intermediate_size' = 18446744073709551615 out of range"));
  EXPECT_THAT(bad_field("max_position_embeddings", nullptr), HasSubstr("field 'max_position_embeddings' missing"));
  EXPECT_THAT(bad_field("rms_norm_eps", 0), HasSubstr("field 'rms_norm_eps' = 0 is not a positive finite number"));
  EXPECT_THAT(bad_field("rope_theta", "big"), HasSubstr("field 'rope_theta' is not a number"));
  EXPECT_THAT(bad_field("tie_word_embeddings", 1), HasSubstr("field 'tie_word_embeddings' is not true/false"));
  EXPECT_THAT(bad_field("num_key_value_heads", 3), HasSubstr("num_attention_heads (8) is not a multiple of num_key_value_heads (3)"));
  EXPECT_THAT(bad_field("num_attention_heads", 6), HasSubstr("field 'hidden_size' = 64 is not a multiple of num_attention_heads (6)"));
  EXPECT_THAT(bad_field("head_dim", 7), HasSubstr("head_dim 7 is odd"));
  EXPECT_THAT(bad_field("bos_token_id", 512), HasSubstr("bos_token_id 512 is not below vocab_size 512"));
  EXPECT_THAT(bad_field("eos_token_id", json::array({2, 600})), HasSubstr("eos_token_id 600 is not below vocab_size 512"));
  EXPECT_THAT(bad_field("eos_token_id", "2"), HasSubstr("field 'eos_token_id' is not an integer"));
}

TEST(ArchBad, unsupported_features_named) {
  EXPECT_THAT(bad_field("hidden_act", "gelu"), HasSubstr("field 'hidden_act' = 'gelu' not supported"));
  EXPECT_THAT(bad_field("attention_bias", true), HasSubstr("field 'attention_bias' = true not supported"));
  EXPECT_THAT(bad_field("mlp_bias", true), HasSubstr("field 'mlp_bias' = true not supported"));
  EXPECT_THAT(bad_field("quantization_config", {{"quant_method", "gptq"}}),
              HasSubstr("field 'quantization_config' present"));
  EXPECT_THAT(bad_field("rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}),
              HasSubstr("field 'rope_scaling.rope_type' = 'yarn' not supported"));
  EXPECT_THAT(bad_field("rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}}),
              HasSubstr("field 'rope_scaling.low_freq_factor' missing"));
  EXPECT_THAT(bad_field("rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0},
                                         {"high_freq_factor", 1.0}, {"original_max_position_embeddings", 8192}}),
              HasSubstr("high_freq_factor must exceed low_freq_factor"));
  EXPECT_THAT(bad_field("rope_scaling", 2.0), HasSubstr("field 'rope_scaling' is not an object"));
  EXPECT_THAT(bad_field("rope_parameters", {{"rope_type", "dynamic"}}),
              HasSubstr("field 'rope_parameters.rope_type' = 'dynamic' not supported"));
  EXPECT_THAT(error_of([] { parse_hf_config(json::array(), "x/config.json"); }), HasSubstr("x/config.json: not a JSON object"));
}

// ---- the manifest form ------------------------------------------------------------------------

TEST(Arch, config_json_round_trips) {
  for (const char* rel : kRealConfigs) {
    SCOPED_TRACE(rel);
    const ModelConfig c = parse(rel);
    const json j = config_to_json(c);
    EXPECT_TRUE(config_from_json(j, "manifest.json") == c);
    // And through text, as the manifest stores it.
    EXPECT_TRUE(config_from_json(json::parse(j.dump()), "manifest.json") == c);
  }
}

// Per-frequency RoPE factors (a GGUF's rope_freqs.weight) travel through the manifest, and a
// manifest written before they existed (no freq_factors field) still reads.
TEST(Arch, config_json_round_trips_rope_factors) {
  ModelConfig c = parse("configs/llama-3.2-1b");
  c.rope_scaling = RopeScaling{};
  c.rope_scaling.type = "factors";
  for (int64_t i = 0; i < c.head_dim / 2; ++i) c.rope_scaling.freq_factors.push_back(1.0f + 0.5f * (float)i);
  EXPECT_TRUE(config_from_json(json::parse(config_to_json(c).dump()), "manifest.json") == c);
  json old = config_to_json(parse("configs/llama-3.2-1b"));
  old["rope_scaling"].erase("freq_factors");
  EXPECT_TRUE(config_from_json(old, "manifest.json") == parse("configs/llama-3.2-1b"));
  json few = config_to_json(c);
  few["rope_scaling"]["freq_factors"].erase(0);
  EXPECT_THAT(error_of([&] { config_from_json(few, "manifest.json"); }),
              HasSubstr("31 freq_factors values for 64 rotated values per head (want half as many)"));
  json stray = config_to_json(parse("configs/llama-3.2-1b"));
  stray["rope_scaling"]["freq_factors"] = {1.0};
  EXPECT_THAT(error_of([&] { config_from_json(stray, "manifest.json"); }),
              HasSubstr("freq_factors given with type 'llama3'"));
}

TEST(ArchBad, config_from_json_fields_named) {
  const json good = config_to_json(parse("configs/llama-3.2-1b"));
  auto bad = [&](const std::string& field, const json& v) {
    json j = good;
    if (v.is_null()) j.erase(field);
    else j[field] = v;
    return error_of([&] { config_from_json(j, "manifest.json"); });
  };
  EXPECT_EQ(bad("dim", nullptr), "manifest.json: field 'dim' missing");
  EXPECT_EQ(bad("arch", "gpt2"), "manifest.json: field 'arch' = 'gpt2' unknown");
  EXPECT_THAT(bad("hf_architecture", "Qwen2ForCausalLM"), HasSubstr("field 'hf_architecture'"));
  EXPECT_THAT(bad("n_kv_heads", 0), HasSubstr("field 'n_kv_heads' = 0 out of range"));
  EXPECT_THAT(bad("eos_ids", 3), HasSubstr("field 'eos_ids' is not a list"));
  EXPECT_THAT(bad("rope_scaling", {{"type", "llama3"}}), HasSubstr("field 'rope_scaling.factor' missing"));
  EXPECT_THAT(bad("sliding_window", -1), HasSubstr("field 'sliding_window' = -1 out of range"));
}

// ---- tensors ----------------------------------------------------------------------------------

// The arch table's tensors are exactly those of the real checkpoints, names and shapes.
TEST(Arch, expected_tensors_match_real_checkpoints) {
  for (const char* model : {"stories260K", "aidreams260K"}) {
    SCOPED_TRACE(model);
    const ModelConfig c = parse(model);
    const SafetensorsFile f = SafetensorsFile::open(test::kModels + "/" + model + "/model.safetensors");
    std::map<std::string, std::vector<int64_t>> found, expected;
    for (const TensorInfo& t : f.tensors()) found[t.name] = t.shape;
    for (const TensorSpec& s : expected_tensors(c)) expected[s.name] = s.shape;
    EXPECT_EQ(found, expected);
    EXPECT_NO_THROW(check_tensors(c, found));
  }
  EXPECT_EQ(expected_tensors(parse("stories260K")).size(), 47u);
  EXPECT_EQ(expected_tensors(parse("aidreams260K")).size(), 38u);
}

TEST(Arch, expected_tensors_real_shapes) {
  // Counts as published for these checkpoints: Llama 2 7B 291 tensors, Qwen2.5-0.5B 290 (tied,
  // 12 per layer with the q/k/v biases), Mistral 7B 291.
  EXPECT_EQ(expected_tensors(parse("configs/llama-2-7b-hf")).size(), 291u);
  EXPECT_EQ(expected_tensors(parse("configs/qwen2.5-0.5b")).size(), 290u);
  EXPECT_EQ(expected_tensors(parse("configs/mistral-7b-v0.1")).size(), 291u);

  const ModelConfig q = parse("configs/qwen2.5-0.5b");
  std::map<std::string, TensorSpec> by_name;
  for (const TensorSpec& s : expected_tensors(q)) by_name.emplace(s.name, s);
  EXPECT_EQ(by_name.at("model.layers.23.self_attn.q_proj.weight").shape, (std::vector<int64_t>{896, 896}));
  EXPECT_EQ(by_name.at("model.layers.23.self_attn.k_proj.weight").shape, (std::vector<int64_t>{128, 896}));
  EXPECT_EQ(by_name.at("model.layers.0.self_attn.k_proj.bias").shape, (std::vector<int64_t>{128}));
  EXPECT_EQ(by_name.at("model.layers.0.mlp.down_proj.weight").shape, (std::vector<int64_t>{896, 4864}));
  EXPECT_EQ(by_name.at("model.embed_tokens.weight").shape, (std::vector<int64_t>{151936, 896}));
  EXPECT_TRUE(by_name.at("model.layers.0.self_attn.k_proj.bias").is_norm_or_bias);
  EXPECT_TRUE(by_name.at("model.norm.weight").is_norm_or_bias);
  EXPECT_FALSE(by_name.at("model.layers.0.mlp.up_proj.weight").is_norm_or_bias);
  EXPECT_EQ(by_name.count("lm_head.weight"), 0u);
  EXPECT_EQ(by_name.at("model.layers.7.self_attn.v_proj.bias").layer, 7);
  EXPECT_EQ(by_name.at("model.layers.7.self_attn.v_proj.bias").role, Role::bv);

  // head_dim set apart from dim / n_heads (Llama 3.2 1B: 2048 / 32 = 64 anyway; force 128).
  json j = load("configs/llama-3.2-1b");
  j["head_dim"] = 128;
  const ModelConfig l = parse_hf_config(j, "config.json");
  const std::vector<TensorSpec> t = expected_tensors(l);
  EXPECT_EQ(t[2].name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(t[2].shape, (std::vector<int64_t>{32 * 128, 2048}));
  EXPECT_EQ(t[5].name, "model.layers.0.self_attn.o_proj.weight");
  EXPECT_EQ(t[5].shape, (std::vector<int64_t>{2048, 32 * 128}));
  EXPECT_EQ(t.back().name, "model.norm.weight");  // tied: no lm_head
  const std::vector<TensorSpec> untied = expected_tensors(parse("configs/llama-2-7b-hf"));
  EXPECT_EQ(untied.back().name, "lm_head.weight");
  EXPECT_EQ(untied.back().shape, (std::vector<int64_t>{32000, 4096}));
  EXPECT_EQ(untied.front().role, Role::embed);
  EXPECT_EQ(untied.front().layer, -1);
}

TEST(Arch, tensor_name_agrees_with_expected_tensors) {
  for (const char* rel : kRealConfigs) {
    SCOPED_TRACE(rel);
    const ModelConfig c = parse(rel);
    for (const TensorSpec& s : expected_tensors(c)) EXPECT_EQ(tensor_name(c, s.role, s.layer), s.name);
  }
  const ModelConfig c = parse("stories260K");
  EXPECT_EQ(tensor_name(c, Role::w_down, 4), "model.layers.4.mlp.down_proj.weight");
  EXPECT_EQ(tensor_name(c, Role::final_norm), "model.norm.weight");
  EXPECT_EQ(role_name(Role::w_gate), "w_gate");
}

TEST(ArchBad, tensor_name_roles_absent) {
  const ModelConfig c = parse("stories260K");  // tied, no biases
  EXPECT_THAT(error_of([&] { tensor_name(c, Role::lm_head); }), HasSubstr("embeddings are tied"));
  EXPECT_THAT(error_of([&] { tensor_name(c, Role::bq, 0); }), HasSubstr("no q/k/v bias"));
  EXPECT_THAT(error_of([&] { tensor_name(c, Role::q_norm, 0); }), HasSubstr("no per-head q/k norm"));
  EXPECT_THAT(error_of([&] { tensor_name(c, Role::wq, 5); }), HasSubstr("layer 5 invalid (model has 5 layers"));
  EXPECT_THAT(error_of([&] { tensor_name(c, Role::wq, -1); }), HasSubstr("layer -1 invalid"));
  EXPECT_THAT(error_of([&] { tensor_name(c, Role::embed, 0); }), HasSubstr("global roles take -1"));
}

std::map<std::string, std::vector<int64_t>> shapes_of(const ModelConfig& c) {
  std::map<std::string, std::vector<int64_t>> m;
  for (const TensorSpec& s : expected_tensors(c)) m[s.name] = s.shape;
  return m;
}

TEST(ArchBad, check_tensors_lists_everything_wrong_at_once) {
  const ModelConfig c = parse("stories260K");
  auto found = shapes_of(c);
  found.erase("model.layers.2.mlp.up_proj.weight");
  found.erase("model.norm.weight");
  found["model.layers.0.mlp.extra.weight"] = {4};
  found["model.layers.1.mlp.down_proj.weight"] = {172, 64};  // transposed
  const std::string msg = error_of([&] { check_tensors(c, found, "stories"); });
  EXPECT_THAT(msg, AllOf(HasSubstr("stories: tensors do not match config.json (LlamaForCausalLM)"),
                         HasSubstr("missing 'model.layers.2.mlp.up_proj.weight', 'model.norm.weight'"),
                         HasSubstr("unexpected 'model.layers.0.mlp.extra.weight'"),
                         HasSubstr("tensor 'model.layers.1.mlp.down_proj.weight': shape [172, 64] but "
                                   "config.json implies [64, 172]"),
                         Not(HasSubstr("\n"))));
}

TEST(ArchBad, check_tensors_long_lists_are_cut) {
  const ModelConfig c = parse("configs/llama-2-7b-hf");
  const std::string msg = error_of([&] { check_tensors(c, {}); });
  EXPECT_THAT(msg, HasSubstr("(+285 more)"));  // 291 missing, 6 named
}

TEST(Arch, check_tensors_ignorable) {
  const ModelConfig c = parse("stories260K");  // tied
  auto found = shapes_of(c);
  // Older transformers saved RoPE's inv_freq buffer; it is recomputed, not read.
  found["model.layers.0.self_attn.rotary_emb.inv_freq"] = {4};
  // A tied checkpoint that still ships lm_head: accepted, and not needed.
  found["lm_head.weight"] = {512, 64};
  EXPECT_NO_THROW(check_tensors(c, found));
  EXPECT_TRUE(is_ignorable_tensor(c, "lm_head.weight"));
  found["lm_head.weight"] = {511, 64};
  EXPECT_THAT(error_of([&] { check_tensors(c, found); }),
              HasSubstr("tensor 'lm_head.weight': shape [511, 64] but config.json implies [512, 64]"));
  // Untied, lm_head is required, not ignorable.
  const ModelConfig u = parse("configs/llama-2-7b-hf");
  EXPECT_FALSE(is_ignorable_tensor(u, "lm_head.weight"));
  auto fu = shapes_of(u);
  fu.erase("lm_head.weight");
  EXPECT_THAT(error_of([&] { check_tensors(u, fu); }), HasSubstr("missing 'lm_head.weight'"));
  EXPECT_FALSE(is_ignorable_tensor(c, "rotary_emb.inv_freq"));
}

}  // namespace
}  // namespace lowbit
