#!/usr/bin/env python3
"""Writes a GGUF file from an HF model directory (Llama-family, Qwen2, Qwen3, Gemma 2/3, Phi-3, SmolLM3 or
Granite), as llama.cpp's converter lays it out, with the `gguf` package: its metadata keys, its
tensor names, attn_q/attn_k rows permuted for `llama`, `smollm3` and `granite`
(convert_hf_to_gguf.py LlamaModel.permute; `qwen2`/`qwen3` are left as is), and each
matrix stored as --type (F32, F16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, quantized by gguf.quants.quantize; norms and
biases stay F32), and Llama 3.1-style RoPE scaling as llama.cpp's converter writes it: no
metadata, a tensor rope_freqs.weight of per-frequency factors (LlamaModel.generate_extra_tensors).
No tokenizer metadata is written unless --spm-vocab: tests feed token ids. For the importer's
tests, so they need no llama.cpp; bench/compare_llamacpp.py adds --spm-vocab, which writes a
SentencePiece tokenizer.model's pieces, scores and piece types the way llama.cpp's converter does
(tokenizer.ggml.model "llama"; needs the `sentencepiece` package), because llama.cpp will not load
a model without a vocabulary.

  python hf_to_gguf.py HF_DIR OUT.gguf [--type Q8_0] [--spm-vocab] [--drop TENSOR ...]
"""
import argparse
import json
import math
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

GGUF_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",  # Llama's pre-MLP norm (Gemma: below)
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
ARCHS = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2",
         "Qwen3ForCausalLM": "qwen3", "Gemma2ForCausalLM": "gemma2", "Gemma3ForCausalLM": "gemma3",
         "Phi3ForCausalLM": "phi3", "SmolLM3ForCausalLM": "smollm3", "GraniteForCausalLM": "granite",
         "Qwen3MoeForCausalLM": "qwen3moe", "MixtralForCausalLM": "llama", "GraniteMoeForCausalLM": "granitemoe"}
# Converted as Llama by llama.cpp (LlamaModel subclasses): attn_q/attn_k rows permuted.
PERMUTED = ("llama", "smollm3", "granite", "granitemoe")
# Phi-3's fused matrices keep their fusion in the GGUF (gate and up together as ffn_up); a
# mixture of experts' router and stacked experts (stack_experts).
PHI3_NAMES = {"self_attn.qkv_proj.weight": "attn_qkv.weight", "mlp.gate_up_proj.weight": "ffn_up.weight"}
MOE_NAMES = {"mlp.gate.weight": "ffn_gate_inp.weight", "mlp.experts.gate_proj": "ffn_gate_exps.weight",
             "mlp.experts.up_proj": "ffn_up_exps.weight", "mlp.experts.down_proj": "ffn_down_exps.weight"}
# Gemma's norms: one after attention and one after the MLP, its pre-MLP norm named apart.
GEMMA_NAMES = {
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
}


def gguf_name(name, arch):
    if name in GGUF_NAMES:
        return GGUF_NAMES[name]
    _, _, layer, rest = name.split(".", 3)
    names = dict(GGUF_NAMES, **GEMMA_NAMES) if arch.startswith("gemma") else dict(GGUF_NAMES, **PHI3_NAMES, **MOE_NAMES)
    return f"blk.{layer}.{names[rest]}"


def permute(w, n_head):
    """llama.cpp's permute: HF row h*hd + a*hd/2 + b goes to row h*hd + 2b + a."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_factors(cfg, head_dim):
    """The factor each RoPE frequency is slowed by under rope_type llama3: 1 for short wavelengths,
    `factor` for long ones, the reciprocal of a linear blend of 1/factor and 1 between."""
    rs = cfg["rope_scaling"]
    base = cfg.get("rope_theta", 10000.0)
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old_ctx = rs["original_max_position_embeddings"]
    out = []
    for i in range(0, head_dim, 2):
        wavelen = 2 * np.pi * base ** (i / head_dim)
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def add_phi3(w, cfg):
    """What llama.cpp's converter (Phi3MiniModel) writes beyond the common keys: the rotated count
    int(partial_rotary_factor * hidden) // heads, the window (0 for none), and for LongRoPE both
    factor lists as tensors, the attention factor from max/original length and the original length."""
    nh = cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // nh
    rot = int(cfg.get("partial_rotary_factor", 1.0) * nh * hd) // nh
    w.add_rope_dimension_count(rot)
    w.add_sliding_window(cfg.get("sliding_window") or 0)
    rs = cfg.get("rope_scaling")
    if not rs:
        return
    orig = cfg["original_max_position_embeddings"]
    scale = cfg["max_position_embeddings"] / orig
    w.add_rope_scaling_orig_ctx_len(orig)
    w.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1 else 1.0)
    w.add_tensor("rope_factors_long.weight", np.array(rs["long_factor"], dtype=np.float32))
    w.add_tensor("rope_factors_short.weight", np.array(rs["short_factor"], dtype=np.float32))


# llama.cpp's token types (llama.h, enum llama_token_type), in SentencePiece's terms.
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 5, 6


def add_spm_vocab(w, model_file):
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
    pieces, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        pieces.append(sp.id_to_piece(i).encode("utf-8"))
        scores.append(sp.get_score(i))
        types.append(TOKEN_UNKNOWN if sp.is_unknown(i) else TOKEN_CONTROL if sp.is_control(i)
                     else TOKEN_UNUSED if sp.is_unused(i) else TOKEN_BYTE if sp.is_byte(i) else TOKEN_NORMAL)
    w.add_tokenizer_model("llama")
    w.add_token_list(pieces)
    w.add_token_scores(scores)
    w.add_token_types(types)
    for add, tid in ((w.add_bos_token_id, sp.bos_id()), (w.add_eos_token_id, sp.eos_id()), (w.add_unk_token_id, sp.unk_id())):
        if tid >= 0:
            add(tid)


def stack_experts(tensors, cfg):
    """Each layer's experts in one (experts, rows, cols) tensor per projection, as llama.cpp's
    converter stacks them (Qwen3MoeModel), under the names gguf_name gives the stacks."""
    mixtral = cfg["architectures"][0] == "MixtralForCausalLM"
    n = cfg.get("num_local_experts", 8) if mixtral else cfg["num_experts"]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}.mlp."
        src = f"model.layers.{layer}.block_sparse_moe." if mixtral else p
        if src + "gate.weight" not in tensors:
            continue  # a dense layer
        tensors[p + "gate.weight"] = tensors.pop(src + "gate.weight")
        for proj, own in (("gate_proj", "w1"), ("up_proj", "w3"), ("down_proj", "w2")):
            parts = [tensors.pop(f"{src}experts.{e}.{own if mixtral else proj}.weight") for e in range(n)]
            tensors[f"{p}experts.{proj}"] = np.stack(parts)


class DroppingWriter(gguf.GGUFWriter):
    """A GGUFWriter that leaves out the tensors named in drop."""

    def __init__(self, path, arch, drop):
        super().__init__(path, arch)
        self.drop = set(drop)

    def add_tensor(self, name, tensor, **kw):
        if name not in self.drop:
            super().add_tensor(name, tensor, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hf_dir")
    ap.add_argument("out")
    ap.add_argument("--type", default="F32", choices=["F32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"])
    ap.add_argument("--spm-vocab", action="store_true", help="write HF_DIR/tokenizer.model as the GGUF vocabulary")
    ap.add_argument("--drop", action="append", default=[], help="leave out this GGUF tensor (the importer's error tests)")
    a = ap.parse_args()
    w = DroppingWriter(a.out, ARCHS[json.loads((Path(a.hf_dir) / "config.json").read_text())["architectures"][0]], a.drop)
    hf = Path(a.hf_dir)
    cfg = json.loads((hf / "config.json").read_text())
    arch = ARCHS[cfg["architectures"][0]]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_layer_norm_rms_eps(cfg.get("rms_norm_eps", 1e-6))
    # transformers 5 moved rope_theta into "rope_parameters".
    w.add_rope_freq_base(cfg.get("rope_theta", (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0)))
    if cfg.get("head_dim"):
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
    w.add_vocab_size(cfg["vocab_size"])
    if a.spm_vocab:
        add_spm_vocab(w, hf / "tokenizer.model")
    rs = cfg.get("rope_scaling") or {}
    if arch.startswith("gemma"):
        # llama.cpp's converter writes the window, Gemma 2's soft-capping and a linear scaling; the
        # pattern of windowed layers, Gemma 3's local RoPE base and the query scale are its graph's
        # own (every other layer / every 6th global, 10000, 1 / sqrt(head_dim) below 27B).
        w.add_sliding_window(cfg.get("sliding_window", 4096))
        if arch == "gemma2":
            w.add_attn_logit_softcapping(cfg.get("attn_logit_softcapping", 50.0))
            w.add_final_logit_softcapping(cfg.get("final_logit_softcapping", 30.0))
        if rs.get("rope_type", rs.get("type")) == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(rs["factor"])
    elif arch == "phi3":
        add_phi3(w, cfg)
    elif arch in ("granite", "granitemoe"):
        # GraniteModel's keys (llama.cpp names them apart from the config's).
        w.add_embedding_scale(cfg.get("embedding_multiplier", 1.0))
        w.add_residual_scale(cfg.get("residual_multiplier", 1.0))
        w.add_attention_scale(cfg.get("attention_multiplier", 1.0))
        w.add_logit_scale(cfg.get("logits_scaling", 1.0))
        if arch == "granitemoe":
            w.add_expert_count(cfg.get("num_local_experts", 8))
            w.add_expert_used_count(cfg.get("num_experts_per_tok", 2))
    elif arch == "qwen3moe":
        w.add_expert_count(cfg["num_experts"])
        w.add_expert_used_count(cfg["num_experts_per_tok"])
        w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
    elif cfg["architectures"][0] == "MixtralForCausalLM":  # written as llama with experts
        w.add_expert_count(cfg.get("num_local_experts", 8))
        w.add_expert_used_count(cfg.get("num_experts_per_tok", 2))
    elif rs.get("rope_type", rs.get("type")) == "llama3":
        w.add_tensor("rope_freqs.weight", llama3_rope_factors(cfg, cfg.get("head_dim") or cfg["hidden_size"] // nh))
    qt = gguf.GGMLQuantizationType[a.type]
    tensors = {}
    for f in sorted(hf.glob("*.safetensors")):
        tensors.update(load_file(str(f)))
    if arch == "qwen3moe" or cfg["architectures"][0] == "MixtralForCausalLM":
        stack_experts(tensors, cfg)
    if arch == "granitemoe":  # GraniteMoeModel: input_linear's halves as gate and up stacks
        for layer in range(cfg["num_hidden_layers"]):
            p, b = f"model.layers.{layer}.mlp.", f"model.layers.{layer}.block_sparse_moe."
            tensors[p + "gate.weight"] = tensors.pop(b + "router.layer.weight")
            gate_up = tensors.pop(b + "input_linear.weight")
            f = gate_up.shape[1] // 2
            tensors[p + "experts.gate_proj"], tensors[p + "experts.up_proj"] = gate_up[:, :f], gate_up[:, f:]
            tensors[p + "experts.down_proj"] = tensors.pop(b + "output_linear.weight")
    for name, t in tensors.items():
        if name.endswith("rotary_emb.inv_freq") or (name == "lm_head.weight" and cfg.get("tie_word_embeddings")):
            continue
        t = t.astype(np.float32)
        if arch.startswith("gemma") and name.endswith("norm.weight"):
            t = t + np.float32(1.0)  # the converter stores Gemma's norms as the factors they multiply by
        if arch in PERMUTED and name.endswith(("q_proj.weight", "k_proj.weight")):
            t = permute(t, nh if "q_proj" in name else nkv)
        # A router stays F32, as llama.cpp's quantize leaves ffn_gate_inp.
        if t.ndim == 1 or qt == gguf.GGMLQuantizationType.F32 or name.endswith("mlp.gate.weight"):
            w.add_tensor(gguf_name(name, arch), np.ascontiguousarray(t))
        elif qt == gguf.GGMLQuantizationType.F16:
            w.add_tensor(gguf_name(name, arch), t.astype(np.float16))
        else:
            w.add_tensor(gguf_name(name, arch), gguf.quants.quantize(t, qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
