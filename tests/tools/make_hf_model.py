#!/usr/bin/env python3
"""Writes a synthetic HuggingFace model directory for tests: a real config.json scaled down,
random weights, and the source's tokenizer files.

The config comes from ../shared/models/configs/<name>/config.json (or ../shared/models/<name>/,
or any directory holding a config.json); --layers/--dim/--ffn/--heads/--kv-heads/--vocab shrink
it. Weights are drawn N(0, 0.02) from numpy's default_rng(seed) in a fixed order (the HF tensor
order below) and in float32, then rounded to the requested dtype. So two models made with the
same seed and shape hold the same values whatever their dtype or sharding: an F16 or BF16 tensor
is exactly the round-to-nearest-even of the F32 one. RMSNorm weights are 1 + N(0, 0.02), so a
forward pass through the model stays well scaled (Gemma stores them as offsets from 1: N(0, 0.02)).

The tensor names and shapes are written here from HF's modeling code, independently of the C++
architecture table, so that the table is checked against a second source.

  python make_hf_model.py OUT_DIR --config qwen2.5-0.5b --layers 2 --dim 64 --heads 4 \\
      --kv-heads 2 --ffn 96 --vocab 256 --dtype BF16 --shards 3
"""

import argparse
import json
import os
import shutil
import struct
import sys
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("LOWBIT_SHARED_DIR",
                             Path(__file__).resolve().parents[2] / ".." / "shared"))

# Tokenizer-side files copied from the source directory when present.
TOKENIZER_FILES = ["tokenizer.model", "tokenizer.json", "tokenizer_config.json", "vocab.json",
                   "merges.txt", "special_tokens_map.json", "generation_config.json",
                   "chat_template.jinja"]

DTYPES = ("F32", "F16", "BF16")


def find_config_dir(config):
    """A directory holding config.json: a path, or a name under shared/models[/configs]."""
    for d in (Path(config), SHARED / "models" / "configs" / config, SHARED / "models" / config):
        if (d / "config.json").is_file():
            return d
    raise FileNotFoundError(f"no config.json for '{config}' (looked in {SHARED / 'models'})")


def scale_config(cfg, layers=None, dim=None, ffn=None, heads=None, kv_heads=None, vocab=None,
                 head_dim=None, ctx=None, tie=None):
    cfg = dict(cfg)
    given = {"num_hidden_layers": layers, "hidden_size": dim, "intermediate_size": ffn,
             "num_attention_heads": heads, "num_key_value_heads": kv_heads, "vocab_size": vocab,
             "max_position_embeddings": ctx, "tie_word_embeddings": tie}
    cfg.update({key: value for key, value in given.items() if value is not None})
    if kv_heads is None and heads is not None and "num_key_value_heads" in cfg:
        cfg["num_key_value_heads"] = min(cfg["num_key_value_heads"], heads)
    if head_dim is not None:
        cfg["head_dim"] = head_dim
    elif cfg.get("head_dim") is not None and (dim is not None or heads is not None):
        # A given head_dim belongs to the full-size shape; keep the scaled one consistent.
        cfg["head_dim"] = cfg["hidden_size"] // cfg["num_attention_heads"]
    # Special token ids must stay inside a shrunk vocabulary.
    n = cfg["vocab_size"]
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        v = cfg.get(key)
        if isinstance(v, int) and v >= n:
            cfg[key] = v % n
        elif isinstance(v, list):
            cfg[key] = [x % n for x in v]
    return cfg


def tensor_layout(cfg):
    """[(name, shape, kind)] in HF order; kind is 'norm', 'bias' or 'weight'."""
    dim = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    hd = cfg.get("head_dim") or dim // heads
    ffn = cfg["intermediate_size"]
    vocab = cfg["vocab_size"]
    arch = cfg["architectures"][0]
    # Qwen2 always has q/k/v biases; Llama's and Qwen3's attention_bias adds them to q/k/v and o.
    qkv_bias = arch == "Qwen2ForCausalLM" or bool(cfg.get("attention_bias"))
    o_bias = arch in ("LlamaForCausalLM", "Qwen3ForCausalLM") and bool(cfg.get("attention_bias"))  # Gemma refused
    # Qwen3-MoE: the MLP of a layer not in mlp_only_layers (and on decoder_sparse_step) is a router
    # and num_experts experts of moe_intermediate_size, as the published checkpoints name them.
    experts = cfg.get("num_experts", 0) if arch == "Qwen3MoeForCausalLM" else 0
    mixtral = arch == "MixtralForCausalLM"  # every layer: block_sparse_moe, experts' w1 (gate), w3 (up), w2 (down)
    granite_moe = arch == "GraniteMoeForCausalLM"  # experts fused: input_linear (gate then up), output_linear
    step, dense_layers = cfg.get("decoder_sparse_step", 1), set(cfg.get("mlp_only_layers") or [])
    qk_norm = arch in ("Qwen3ForCausalLM", "Qwen3MoeForCausalLM", "Gemma3ForCausalLM")  # q_norm/k_norm: RMSNorm(head_dim)
    gemma = arch in ("Gemma2ForCausalLM", "Gemma3ForCausalLM")  # norms after attention and MLP too
    phi3 = arch == "Phi3ForCausalLM"  # q/k/v fused as qkv_proj, gate/up as gate_up_proj
    out = [("model.embed_tokens.weight", (vocab, dim), "weight")]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out.append((p + "input_layernorm.weight", (dim,), "norm"))
        if phi3:
            out.append((p + "self_attn.qkv_proj.weight", ((heads + 2 * kv) * hd, dim), "weight"))
            out.append((p + "self_attn.o_proj.weight", (dim, heads * hd), "weight"))
            out.append((p + "post_attention_layernorm.weight", (dim,), "norm"))
            out.append((p + "mlp.gate_up_proj.weight", (2 * ffn, dim), "weight"))
            out.append((p + "mlp.down_proj.weight", (dim, ffn), "weight"))
            continue
        for proj, rows in (("q", heads * hd), ("k", kv * hd), ("v", kv * hd)):
            out.append((p + f"self_attn.{proj}_proj.weight", (rows, dim), "weight"))
            if qkv_bias:
                out.append((p + f"self_attn.{proj}_proj.bias", (rows,), "bias"))
        out.append((p + "self_attn.o_proj.weight", (dim, heads * hd), "weight"))
        if o_bias:
            out.append((p + "self_attn.o_proj.bias", (dim,), "bias"))
        if qk_norm:
            out.append((p + "self_attn.q_norm.weight", (hd,), "norm"))
            out.append((p + "self_attn.k_norm.weight", (hd,), "norm"))
        out.append((p + "post_attention_layernorm.weight", (dim,), "norm"))
        if gemma:
            out.append((p + "pre_feedforward_layernorm.weight", (dim,), "norm"))
        if granite_moe:
            n = cfg.get("num_local_experts", 8)
            out.append((p + "block_sparse_moe.router.layer.weight", (n, dim), "weight"))
            out.append((p + "block_sparse_moe.input_linear.weight", (n, 2 * ffn, dim), "weight"))
            out.append((p + "block_sparse_moe.output_linear.weight", (n, dim, ffn), "weight"))
        elif mixtral:
            out.append((p + "block_sparse_moe.gate.weight", (cfg.get("num_local_experts", 8), dim), "weight"))
            for e in range(cfg.get("num_local_experts", 8)):
                for w, shape in (("w1", (ffn, dim)), ("w2", (dim, ffn)), ("w3", (ffn, dim))):
                    out.append((p + f"block_sparse_moe.experts.{e}.{w}.weight", shape, "weight"))
        elif experts and i not in dense_layers and (i + 1) % step == 0:
            moe_ffn = cfg["moe_intermediate_size"]
            out.append((p + "mlp.gate.weight", (experts, dim), "weight"))
            for e in range(experts):
                out.append((p + f"mlp.experts.{e}.gate_proj.weight", (moe_ffn, dim), "weight"))
                out.append((p + f"mlp.experts.{e}.up_proj.weight", (moe_ffn, dim), "weight"))
                out.append((p + f"mlp.experts.{e}.down_proj.weight", (dim, moe_ffn), "weight"))
        else:
            out.append((p + "mlp.gate_proj.weight", (ffn, dim), "weight"))
            out.append((p + "mlp.up_proj.weight", (ffn, dim), "weight"))
            out.append((p + "mlp.down_proj.weight", (dim, ffn), "weight"))
        if gemma:
            out.append((p + "post_feedforward_layernorm.weight", (dim,), "norm"))
    out.append(("model.norm.weight", (dim,), "norm"))
    if not cfg.get("tie_word_embeddings", gemma):  # Gemma's configs tie by default
        out.append(("lm_head.weight", (vocab, dim), "weight"))
    return out


def f32_to_bf16_bits(x):
    """float32 array -> uint16 bf16 bits, round to nearest even; NaN stays NaN."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = ((u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))) >> np.uint32(16))
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    rounded = np.where(nan, (u >> np.uint32(16)) | np.uint32(0x40), rounded)
    return rounded.astype(np.uint16)


def write_safetensors(path, tensors, metadata=None):
    """Our own writer, for dtypes numpy lacks. tensors: [(name, dtype_str, shape, raw bytes)],
    written in order. The header is padded with spaces to a multiple of 8, as safetensors does."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, raw in tensors:
            f.write(raw)


def save(path, arrays, dtype):
    """arrays: [(name, float32 array)] -> one safetensors file of the given dtype."""
    meta = {"format": "pt"}
    if dtype == "BF16":
        write_safetensors(path, [(n, "BF16", a.shape, f32_to_bf16_bits(a).tobytes())
                                 for n, a in arrays], meta)
    else:
        from safetensors.numpy import save_file
        np_dtype = np.float32 if dtype == "F32" else np.float16
        save_file({n: np.ascontiguousarray(a.astype(np_dtype)) for n, a in arrays}, str(path),
                  metadata=meta)


def make_model(out_dir, config_name, layers=None, dim=None, ffn=None, heads=None,
               kv_heads=None, vocab=None, head_dim=None, ctx=None, tie=None, dtype="F32",
               shards=1, seed=0, lm_head_when_tied=False, tokenizer=True, config_edit=None):
    """Writes the model directory out_dir and returns its Path. config_edit: config.json fields
    set after scaling (None deletes one), for switches the real config has otherwise."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype} not one of {DTYPES}")
    src = find_config_dir(config_name)
    with open(src / "config.json") as f:
        cfg = scale_config(json.load(f), layers, dim, ffn, heads, kv_heads, vocab, head_dim,
                           ctx, tie)
    cfg.update(config_edit or {})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "config.json", "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    if tokenizer:
        for name in TOKENIZER_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, out / name)

    layout = tensor_layout(cfg)
    if lm_head_when_tied and cfg.get("tie_word_embeddings", False):
        layout.append(("lm_head.weight", (cfg["vocab_size"], cfg["hidden_size"]), "tied"))
    rng = np.random.default_rng(seed)
    arrays = []
    for name, shape, kind in layout:
        if kind == "tied":  # a tied checkpoint that ships lm_head anyway: a copy of the embedding
            arrays.append((name, arrays[0][1].copy()))
            continue
        a = rng.normal(0.0, 0.02, size=shape).astype(np.float32)
        if kind == "norm" and not cfg["architectures"][0].startswith("Gemma"):
            a += np.float32(1.0)
        arrays.append((name, a))

    if shards < 1 or shards > len(arrays):
        raise ValueError(f"shards must be in [1, {len(arrays)}], got {shards}")
    if shards == 1:
        save(out / "model.safetensors", arrays, dtype)
        return out
    # Contiguous groups of about equal byte size, each at least one tensor.
    sizes = np.array([a.size for _, a in arrays], dtype=np.float64)
    cum = np.cumsum(sizes)
    bounds = [0]
    for s in range(1, shards):
        cut = int(np.searchsorted(cum, cum[-1] * s / shards)) + 1
        bounds.append(min(max(cut, bounds[-1] + 1), len(arrays) - (shards - s)))
    bounds.append(len(arrays))
    elem = 4 if dtype == "F32" else 2
    weight_map = {}
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        group = arrays[bounds[s]:bounds[s + 1]]
        save(out / name, group, dtype)
        for n, _ in group:
            weight_map[n] = name
    index = {"metadata": {"total_size": int(sizes.sum()) * elem}, "weight_map": weight_map}
    with open(out / "model.safetensors.index.json", "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--config", required=True,
                   help="name under shared/models/configs (or shared/models), or a directory")
    for opt in ("layers", "dim", "ffn", "heads", "kv-heads", "vocab", "head-dim", "ctx"):
        p.add_argument("--" + opt, type=int)
    p.add_argument("--tie", dest="tie", action="store_true", default=None,
                   help="set tie_word_embeddings true")
    p.add_argument("--untie", dest="tie", action="store_false", help="set it false")
    p.add_argument("--lm-head-when-tied", action="store_true",
                   help="tied model that still ships lm_head.weight (a copy of the embedding)")
    p.add_argument("--dtype", choices=DTYPES, default="F32")
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-tokenizer", action="store_true",
                   help="do not copy tokenizer files (they may not fit a shrunk --vocab)")
    p.add_argument("--config-edit", default="{}",
                   help="a JSON object of config.json fields set after scaling (null deletes one)")
    a = p.parse_args(argv)
    out = make_model(a.out_dir, a.config, a.layers, a.dim, a.ffn, a.heads, a.kv_heads, a.vocab,
                     a.head_dim, a.ctx, a.tie, a.dtype, a.shards, a.seed, a.lm_head_when_tied,
                     not a.no_tokenizer, json.loads(a.config_edit))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
