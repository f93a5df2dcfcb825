// The Llama family's variants in the architecture table (models/arch.h): the real configs of
// Phi-3-mini, Phi-4-mini, SmolLM3-3B, Granite 3.3 and Qwen3-30B-A3B parse to the values written in
// them and in transformers' config classes (Phi3Config and its LongRoPE rules, SmolLM3Config,
// GraniteConfig, Qwen3MoeConfig), Phi-3's fused checkpoint tensors and a GGUF's 3-D expert
// tensors map onto the runtime's roles, and what cannot run is named.
#include <cmath>
#include <functional>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "hf_test_util.h"
#include "models/arch.h"
#include "tests/error_of.h"

namespace lowbit {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using test::data_config;
using test::error_of;

TEST(ArchPhi3, parse_phi3_mini_4k) {
  const ModelConfig c = parse_hf_config(data_config("phi-3-mini-4k-instruct"), "config.json");
  EXPECT_EQ(c.arch, "phi3");
  EXPECT_EQ(family_of(c), Family::llama);
  EXPECT_EQ(c.head_dim, 96);  // 3072 / 32
  EXPECT_EQ(rotary_dims(c), 96);
  EXPECT_EQ(c.sliding_window, 2047);
  EXPECT_TRUE(c.sliding_layers.empty());  // every layer
  EXPECT_EQ(c.rope_scaling.type, "");
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_EQ(c.eos_ids, (std::vector<int32_t>{32000}));
  EXPECT_EQ(config_from_json(config_to_json(c), "m"), c);
  EXPECT_EQ(gguf_architecture("phi3").hf_architecture, "Phi3ForCausalLM");
  EXPECT_FALSE(gguf_architecture("phi3").qk_permuted);
}

TEST(ArchPhi3, parse_phi4_mini_partial_rotary_and_longrope) {
  const json j = data_config("phi-4-mini-instruct");
  const ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rotary_dim, 96);  // partial_rotary_factor 0.75
  EXPECT_TRUE(c.tie_embeddings);
  const RopeScaling& r = c.rope_scaling;
  EXPECT_EQ(r.type, "longrope");
  EXPECT_EQ(r.original_max_position, 4096);
  ASSERT_EQ(r.freq_factors.size(), 48u);
  ASSERT_EQ(r.long_factors.size(), 48u);
  EXPECT_EQ(r.freq_factors, std::vector<float>(48, 1.0f));  // the short factors
  EXPECT_EQ(r.long_factors[1], 1.118320672f);
  EXPECT_EQ(r.long_factors[47], 47.77f);
  // transformers' default: factor 131072 / 4096 = 32, attention factor sqrt(1 + ln 32 / ln 4096).
  EXPECT_FLOAT_EQ(r.attention_factor, (float)std::sqrt(1 + std::log(32.0) / std::log(4096.0)));
  EXPECT_EQ(config_from_json(json::parse(config_to_json(c).dump()), "m"), c);

  // The long factors replace the short ones past the pretraining length, as llama.cpp decides.
  EXPECT_EQ(for_context(c, 4096), c);
  const ModelConfig l = for_context(c, 4097);
  EXPECT_EQ(l.rope_scaling.freq_factors, r.long_factors);
  EXPECT_EQ(l.rope_scaling.attention_factor, r.attention_factor);

  // transformers 5's form: rope_parameters holding the type, the factors and the partial factor;
  // an explicit attention_factor wins.
  json t5 = j;
  for (const char* k : {"rope_scaling", "partial_rotary_factor", "rope_theta"}) t5.erase(k);
  t5["rope_parameters"] = {{"rope_type", "longrope"}, {"rope_theta", 10000.0}, {"partial_rotary_factor", 0.75},
                           {"long_factor", j["rope_scaling"]["long_factor"]},
                           {"short_factor", j["rope_scaling"]["short_factor"]}, {"attention_factor", 1.5}};
  const ModelConfig d = parse_hf_config(t5, "config.json");
  EXPECT_EQ(d.rotary_dim, 96);
  EXPECT_EQ(d.rope_scaling.attention_factor, 1.5f);
  EXPECT_EQ(d.rope_scaling.long_factors, r.long_factors);
  // No original_max_position_embeddings anywhere: max_position_embeddings, factor 1, no scaling.
  json plain = j;
  plain.erase("original_max_position_embeddings");
  EXPECT_EQ(parse_hf_config(plain, "config.json").rope_scaling.attention_factor, 1.0f);
}

TEST(ArchPhi3, fused_tensors_hold_the_roles) {
  const ModelConfig c = parse_hf_config(data_config("phi-4-mini-instruct"), "config.json");
  const int64_t q = 24 * 128, kv = 8 * 128;
  const auto wk = stored_slice(c, Role::wk, 5);
  ASSERT_TRUE(wk);
  EXPECT_EQ(wk->name, "model.layers.5.self_attn.qkv_proj.weight");
  EXPECT_EQ(wk->shape, (std::vector<int64_t>{q + 2 * kv, 3072}));
  EXPECT_EQ(wk->first_row, q);
  EXPECT_EQ(stored_slice(c, Role::wv, 5)->first_row, q + kv);
  EXPECT_EQ(stored_slice(c, Role::wq, 5)->first_row, 0);
  EXPECT_EQ(stored_slice(c, Role::w_up, 2)->name, "model.layers.2.mlp.gate_up_proj.weight");
  EXPECT_EQ(stored_slice(c, Role::w_up, 2)->first_row, 8192);
  EXPECT_EQ(stored_slice(c, Role::w_gate, 2, true)->name, "blk.2.ffn_up.weight");
  EXPECT_EQ(stored_slice(c, Role::w_gate, 2, true)->first_row, 0);
  EXPECT_EQ(stored_slice(c, Role::wv, 0, true)->name, "blk.0.attn_qkv.weight");
  EXPECT_FALSE(stored_slice(c, Role::wo, 0));
  EXPECT_FALSE(stored_slice(c, Role::w_down, 0));
  const ModelConfig llama = parse_hf_config(data_config("qwen3-0.6b"), "config.json");
  EXPECT_FALSE(stored_slice(llama, Role::wq, 0));

  // A checkpoint holds the fused tensors (6 per layer, tied head); a manifest the split ones.
  std::map<std::string, std::vector<int64_t>> checkpoint, manifest;
  for (const TensorSpec& s : expected_tensors(c)) {
    manifest[s.name] = s.shape;
    const auto slice = stored_slice(c, s.role, s.layer);
    checkpoint[slice ? slice->name : s.name] = slice ? slice->shape : s.shape;
  }
  EXPECT_EQ(checkpoint.size(), 1u + 32 * 6 + 1);
  EXPECT_NO_THROW(check_tensors(c, checkpoint, "phi", true));
  EXPECT_NO_THROW(check_tensors(c, manifest, "phi"));
  EXPECT_THAT(error_of([&] { check_tensors(c, manifest, "phi", true); }),
              HasSubstr("missing 'model.layers.0.mlp.gate_up_proj.weight'"));
  checkpoint["model.layers.0.self_attn.qkv_proj.weight"] = {q, 3072};
  EXPECT_THAT(error_of([&] { check_tensors(c, checkpoint, "phi", true); }),
              HasSubstr("tensor 'model.layers.0.self_attn.qkv_proj.weight': shape [3072, 3072] but config.json "
                        "implies [5120, 3072]"));
}

TEST(ArchPhi3Bad, what_cannot_run_is_named) {
  auto bad = [](const std::function<void(json&)>& edit, const char* base = "phi-4-mini-instruct") {
    json j = data_config(base);
    edit(j);
    return error_of([&] { parse_hf_config(j, "config.json"); });
  };
  EXPECT_THAT(bad([](json& j) { j["rope_scaling"]["long_factor"].erase(0); }),
              HasSubstr("47 long_factor values for 96 rotated values per head"));
  EXPECT_THAT(bad([](json& j) { j["rope_scaling"]["short_factor"] = {1.0}; }),
              HasSubstr("1 short_factor values for 96 rotated values"));
  EXPECT_THAT(bad([](json& j) { j["rope_scaling"]["short_factor"][3] = "x"; }),
              HasSubstr("field 'rope_scaling.short_factor' holds \"x\", not a number"));
  EXPECT_THAT(bad([](json& j) { j["rope_scaling"]["long_factor"][3] = -1.0; }),
              HasSubstr("a factor of -1"));
  EXPECT_THAT(bad([](json& j) { j["rope_scaling"].erase("long_factor"); }),
              HasSubstr("field 'rope_scaling.long_factor' missing"));
  EXPECT_THAT(bad([](json& j) { j["partial_rotary_factor"] = 0.7; }),
              HasSubstr("partial_rotary_factor' = 0.700000 rotates 89 of 128 values per head"));
  EXPECT_THAT(bad([](json& j) { j["partial_rotary_factor"] = 1.5; }), HasSubstr("is above 1"));
  EXPECT_THAT(bad([](json& j) { j["rope_scaling"]["type"] = "yarn"; }),
              HasSubstr("'yarn' not supported (default, linear, llama3, longrope are)"));
  // Partial rotary is Phi-3's; a Llama-family config asking for it is refused rather than run wrong.
  EXPECT_THAT(bad([](json& j) { j["partial_rotary_factor"] = 0.5; }, "qwen3-0.6b"),
              HasSubstr("partial_rotary_factor' = 0.500000 not supported for Qwen3ForCausalLM"));
  EXPECT_THAT(bad([](json& j) { j["hidden_act"] = "gelu"; }, "phi-3-mini-4k-instruct"),
              HasSubstr("'gelu' not supported (silu is)"));
  // The manifest's checks: long factors only with LongRoPE, an attention factor only there.
  ModelConfig c = parse_hf_config(data_config("phi-3-mini-4k-instruct"), "config.json");
  json m = config_to_json(c);
  m["rope_scaling"]["attention_factor"] = 2.0;
  EXPECT_THAT(error_of([&] { config_from_json(m, "manifest.json"); }), HasSubstr("with type longrope only"));
  m = config_to_json(c);
  m["rotary_dim"] = 97;
  EXPECT_THAT(error_of([&] { config_from_json(m, "manifest.json"); }),
              HasSubstr("rotary_dim 97 is not an even count of at most head_dim 96"));
}

TEST(ArchSmolLM3, parse_smollm3_3b) {
  const json j = data_config("smollm3-3b");
  const ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.arch, "smollm3");
  EXPECT_EQ(family_of(c), Family::llama);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rope_theta, 5e6f);
  EXPECT_TRUE(c.tie_embeddings);
  ASSERT_EQ(c.nope_layers.size(), 36u);
  for (int i = 0; i < 36; ++i) EXPECT_EQ(c.nope_layers[i], i % 4 == 3) << i;  // 3, 7, ..., 35
  EXPECT_EQ(config_from_json(json::parse(config_to_json(c).dump()), "m"), c);
  EXPECT_EQ(gguf_architecture("smollm3").hf_architecture, "SmolLM3ForCausalLM");
  EXPECT_TRUE(gguf_architecture("smollm3").qk_permuted);  // converted as Llama

  // SmolLM3Config's derivations: the interval when there is no list, its default 4, theta 2e6.
  json k = j;
  for (const char* key : {"no_rope_layers", "rope_theta"}) k.erase(key);
  k["num_hidden_layers"] = 6;
  k["no_rope_layer_interval"] = 3;
  const ModelConfig d = parse_hf_config(k, "config.json");
  EXPECT_EQ(d.nope_layers, (std::vector<bool>{false, false, true, false, false, true}));
  EXPECT_EQ(d.rope_theta, 2e6f);
  k.erase("no_rope_layer_interval");
  EXPECT_EQ(parse_hf_config(k, "config.json").nope_layers,
            (std::vector<bool>{false, false, false, true, false, false}));

  auto bad = [&](const char* field, const json& v) {
    json b = j;
    b[field] = v;
    return error_of([&] { parse_hf_config(b, "config.json"); });
  };
  EXPECT_THAT(bad("no_rope_layers", {1, 1, 0}), HasSubstr("is not a list of at least num_hidden_layers (36)"));
  json two = j["no_rope_layers"];
  two[5] = 2;
  EXPECT_THAT(bad("no_rope_layers", two), HasSubstr("field 'no_rope_layers' [5] = 2 (0 or 1)"));
  EXPECT_THAT(bad("use_sliding_window", true), HasSubstr("= true not supported for SmolLM3"));
  EXPECT_THAT(bad("attention_bias", true), HasSubstr("field 'attention_bias' = true not supported"));
}

TEST(ArchGranite, parse_granite_3_3_2b) {
  const json j = data_config("granite-3.3-2b-instruct");
  const ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.arch, "granite");
  EXPECT_EQ(c.embed_scale, 12.0f);
  EXPECT_EQ(c.residual_scale, 0.22f);
  EXPECT_EQ(c.query_scale, 0.015625f);  // replaces 1 / sqrt(64) = 0.125
  EXPECT_EQ(c.logit_divisor, 8.0f);
  EXPECT_EQ(c.rope_theta, 1e7f);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(config_from_json(json::parse(config_to_json(c).dump()), "m"), c);
  EXPECT_EQ(gguf_architecture("granite").hf_architecture, "GraniteForCausalLM");
  EXPECT_TRUE(gguf_architecture("granite").qk_permuted);
  // GraniteConfig's defaults: every multiplier 1, so the scores' factor is 1 (not 1 / sqrt(head_dim)).
  json k = j;
  for (const char* key : {"embedding_multiplier", "residual_multiplier", "attention_multiplier", "logits_scaling"})
    k.erase(key);
  const ModelConfig d = parse_hf_config(k, "config.json");
  EXPECT_EQ(d.embed_scale, 1.0f);
  EXPECT_EQ(d.residual_scale, 1.0f);
  EXPECT_EQ(d.query_scale, 1.0f);
  EXPECT_EQ(d.logit_divisor, 1.0f);
  k = j;
  k["logits_scaling"] = 0;
  EXPECT_THAT(error_of([&] { parse_hf_config(k, "config.json"); }),
              HasSubstr("field 'logits_scaling' = 0 is not a positive finite number"));
  // A manifest written before these fields reads as none of them.
  json m = config_to_json(parse_hf_config(data_config("qwen3-0.6b"), "config.json"));
  for (const char* key : {"nope_layers", "embed_scale", "residual_scale", "logit_divisor", "rotary_dim"}) m.erase(key);
  m["rope_scaling"].erase("long_factors");
  m["rope_scaling"].erase("attention_factor");
  EXPECT_EQ(config_from_json(m, "manifest.json"), parse_hf_config(data_config("qwen3-0.6b"), "config.json"));
}

TEST(ArchQwen3Moe, parse_qwen3_30b_a3b) {
  const json j = data_config("qwen3-30b-a3b");
  const ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.arch, "qwen3moe");
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.n_experts, 128);
  EXPECT_EQ(c.n_experts_used, 8);
  EXPECT_EQ(c.moe_ffn_dim, 768);
  EXPECT_TRUE(c.moe_norm_topk);
  EXPECT_TRUE(c.moe_layers.empty());  // every layer
  EXPECT_TRUE(is_moe_layer(c, 47));
  EXPECT_EQ(config_from_json(json::parse(config_to_json(c).dump()), "m"), c);
  EXPECT_EQ(gguf_architecture("qwen3moe").hf_architecture, "Qwen3MoeForCausalLM");

  // Per layer: 4 attention matrices, q/k norms and 2 layer norms, the router and 3 per expert.
  const std::vector<TensorSpec> t = expected_tensors(c);
  EXPECT_EQ(t.size(), 1u + 48 * (8 + 1 + 3 * 128) + 2);
  std::map<std::string, TensorSpec> by_name;
  for (const TensorSpec& s : t) by_name.emplace(s.name, s);
  const TensorSpec& e = by_name.at("model.layers.7.mlp.experts.127.down_proj.weight");
  EXPECT_EQ(e.role, Role::e_down);
  EXPECT_EQ(e.expert, 127);
  EXPECT_EQ(e.shape, (std::vector<int64_t>{2048, 768}));
  EXPECT_EQ(by_name.at("model.layers.7.mlp.gate.weight").shape, (std::vector<int64_t>{128, 2048}));
  EXPECT_EQ(by_name.count("model.layers.7.mlp.gate_proj.weight"), 0u);
  EXPECT_EQ(tensor_name(c, Role::e_up, 3, 5), "model.layers.3.mlp.experts.5.up_proj.weight");
  EXPECT_EQ(gguf_tensor_name(c, Role::router, 3), "blk.3.ffn_gate_inp.weight");
  EXPECT_THAT(error_of([&] { tensor_name(c, Role::e_up, 3, 128); }), HasSubstr("expert 128 invalid (model has 128"));
  EXPECT_THAT(error_of([&] { tensor_name(c, Role::w_up, 3); }), HasSubstr("a mixture of experts"));

  // A GGUF holds a layer's experts in one (experts, rows, cols) tensor, expert e at rows e * rows.
  const auto down = stored_slice(c, Role::e_down, 4, true, 3);
  ASSERT_TRUE(down);
  EXPECT_EQ(down->name, "blk.4.ffn_down_exps.weight");
  EXPECT_EQ(down->shape, (std::vector<int64_t>{128, 2048, 768}));
  EXPECT_EQ(down->first_row, 3 * 2048);
  EXPECT_EQ(stored_slice(c, Role::e_gate, 4, true, 5)->first_row, 5 * 768);
  EXPECT_FALSE(stored_slice(c, Role::e_gate, 4, false, 5));  // HF: one tensor per expert

  // decoder_sparse_step and mlp_only_layers leave some layers dense, as Qwen3MoeDecoderLayer.
  json k = j;
  k["num_hidden_layers"] = 6;
  k["decoder_sparse_step"] = 2;
  k["mlp_only_layers"] = {5};
  const ModelConfig d = parse_hf_config(k, "config.json");
  EXPECT_EQ(d.moe_layers, (std::vector<bool>{false, true, false, true, false, false}));
  EXPECT_EQ(tensor_name(d, Role::w_up, 0), "model.layers.0.mlp.up_proj.weight");
  EXPECT_THAT(error_of([&] { tensor_name(d, Role::router, 0); }), HasSubstr("this layer's MLP is dense"));
  // Qwen3MoeConfig's defaults.
  for (const char* key : {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "norm_topk_prob"}) k.erase(key);
  const ModelConfig def = parse_hf_config(k, "config.json");
  EXPECT_EQ(def.n_experts, 128);
  EXPECT_EQ(def.n_experts_used, 8);
  EXPECT_EQ(def.moe_ffn_dim, 768);
  EXPECT_FALSE(def.moe_norm_topk);

  auto bad = [&](const char* field, const json& v) {
    json b = j;
    b[field] = v;
    return error_of([&] { parse_hf_config(b, "config.json"); });
  };
  EXPECT_THAT(bad("num_experts_per_tok", 129), HasSubstr("field 'num_experts_per_tok' = 129 out of range [1, 128]"));
  EXPECT_THAT(bad("mlp_only_layers", {48}), HasSubstr("field 'mlp_only_layers' = 48 out of range [0, 47]"));
  json m = config_to_json(parse_hf_config(data_config("qwen3-0.6b"), "config.json"));
  m["n_experts"] = 4;
  EXPECT_THAT(error_of([&] { config_from_json(m, "manifest.json"); }), HasSubstr("does not belong to arch 'qwen3'"));
}

TEST(ArchMixtral, parse_mixtral_8x7b) {
  const ModelConfig c = parse_hf_config(data_config("mixtral-8x7b-instruct"), "config.json");
  EXPECT_EQ(c.arch, "mixtral");
  EXPECT_EQ(c.n_experts, 8);
  EXPECT_EQ(c.n_experts_used, 2);
  EXPECT_EQ(c.moe_ffn_dim, 14336);  // intermediate_size is each expert's
  EXPECT_TRUE(c.moe_norm_topk);
  EXPECT_EQ(c.sliding_window, 0);   // null
  EXPECT_EQ(config_from_json(json::parse(config_to_json(c).dump()), "m"), c);
  EXPECT_EQ(tensor_name(c, Role::router, 2), "model.layers.2.block_sparse_moe.gate.weight");
  EXPECT_EQ(tensor_name(c, Role::e_gate, 2, 7), "model.layers.2.block_sparse_moe.experts.7.w1.weight");
  EXPECT_EQ(tensor_name(c, Role::e_up, 2, 7), "model.layers.2.block_sparse_moe.experts.7.w3.weight");
  EXPECT_EQ(tensor_name(c, Role::e_down, 2, 7), "model.layers.2.block_sparse_moe.experts.7.w2.weight");
  EXPECT_EQ(gguf_tensor_name(c, Role::router, 2), "blk.2.ffn_gate_inp.weight");
  EXPECT_EQ(stored_slice(c, Role::e_down, 2, true, 7)->name, "blk.2.ffn_down_exps.weight");
  // 291 tensors as Mistral 7B's, less 3 dense projections per layer, plus a router and 24 experts'.
  EXPECT_EQ(expected_tensors(c).size(), 291u + 32 * (1 + 24 - 3));
}

TEST(ArchGraniteMoe, parse_granite_3_1_3b_a800m) {
  const ModelConfig c = parse_hf_config(data_config("granite-3.1-3b-a800m-instruct"), "config.json");
  EXPECT_EQ(c.arch, "granitemoe");
  EXPECT_EQ(c.n_experts, 40);
  EXPECT_EQ(c.n_experts_used, 8);
  EXPECT_EQ(c.moe_ffn_dim, 512);
  EXPECT_TRUE(c.moe_norm_topk);  // the softmax of the chosen logits
  EXPECT_EQ(c.embed_scale, 12.0f);
  EXPECT_EQ(c.logit_divisor, 6.0f);
  EXPECT_EQ(config_from_json(json::parse(config_to_json(c).dump()), "m"), c);
  EXPECT_EQ(gguf_architecture("granitemoe").hf_architecture, "GraniteMoeForCausalLM");
  EXPECT_EQ(tensor_name(c, Role::router, 1), "model.layers.1.block_sparse_moe.router.layer.weight");
  // Each layer's experts are two fused checkpoint tensors: gate then up rows, and down.
  const auto up = stored_slice(c, Role::e_up, 1, false, 3);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->name, "model.layers.1.block_sparse_moe.input_linear.weight");
  EXPECT_EQ(up->shape, (std::vector<int64_t>{40, 1024, 1536}));
  EXPECT_EQ(up->first_row, 3 * 1024 + 512);
  EXPECT_EQ(stored_slice(c, Role::e_gate, 1, false, 3)->first_row, 3 * 1024);
  const auto down = stored_slice(c, Role::e_down, 1, false, 3);
  EXPECT_EQ(down->name, "model.layers.1.block_sparse_moe.output_linear.weight");
  EXPECT_EQ(down->shape, (std::vector<int64_t>{40, 1536, 512}));
  EXPECT_EQ(down->first_row, 3 * 1536);
  EXPECT_EQ(stored_slice(c, Role::e_gate, 1, true, 3)->name, "blk.1.ffn_gate_exps.weight");  // GGUF: split stacks
  std::map<std::string, std::vector<int64_t>> checkpoint;
  for (const TensorSpec& s : expected_tensors(c)) {
    const auto slice = stored_slice(c, s.role, s.layer, false, s.expert);
    checkpoint[slice ? slice->name : s.name] = slice ? slice->shape : s.shape;
  }
  EXPECT_EQ(checkpoint.size(), 1u + 32 * (4 + 2 + 1 + 2) + 1);  // tied: no lm_head
  EXPECT_NO_THROW(check_tensors(c, checkpoint, "granite", true));
}

}  // namespace
}  // namespace lowbit
