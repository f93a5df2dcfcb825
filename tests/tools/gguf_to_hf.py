#!/usr/bin/env python3
"""Writes an HF model directory from a GGUF file of a `llama` or `qwen2` model, with numpy and the
`gguf` package alone on the weight side, so lowbit's HF converter also runs on real trained weights
(the SmolLM2 GGUF in ../shared has no HF twin on these machines).

- config.json: from the GGUF metadata (LlamaForCausalLM / Qwen2ForCausalLM field names).
- model.safetensors: every tensor dequantized by gguf.quants.dequantize, stored F32 under its HF
  name; attn_q/attn_k rows of `llama` files put back in HF order (llama.cpp's converter permutes
  them, convert_hf_to_gguf.py LlamaModel.permute; this undoes it in numpy, independently of the
  C++ importer).
- tokenizer.json, tokenizer_config.json: a byte-level BPE built with the `tokenizers` package
  from tokenizer.ggml.tokens/merges, CONTROL tokens as special added tokens, and the pre-tokenizer
  that the HF tokenizer.json of that `tokenizer.ggml.pre` family publishes (gpt2: ByteLevel with
  GPT-2's regex; smollm: single digits first, as SmolLM2's own tokenizer.json).

  python gguf_to_hf.py MODEL.gguf OUT_DIR
"""
import argparse
import json
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import save_file

HF_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}


def field(r, key, default=None):
    f = r.fields.get(key)
    return default if f is None else f.contents()


def hf_name(name):
    if name in HF_NAMES:
        return HF_NAMES[name]
    _, layer, rest = name.split(".", 2)
    return f"model.layers.{layer}.{HF_NAMES[rest]}"


def unpermute(w, n_head):
    """Inverse of llama.cpp's permute: GGUF row h*hd + 2b + a holds HF row h*hd + a*hd/2 + b."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf_file")
    ap.add_argument("out_dir")
    a = ap.parse_args()
    r = gguf.GGUFReader(a.gguf_file)
    arch = field(r, "general.architecture")
    k = lambda s: f"{arch}.{s}"  # noqa: E731
    n_head, n_kv = field(r, k("attention.head_count")), field(r, k("attention.head_count_kv"))
    names = {t.name for t in r.tensors}
    cfg = {
        "architectures": [{"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}[arch]],
        "model_type": arch,
        "hidden_size": field(r, k("embedding_length")),
        "intermediate_size": field(r, k("feed_forward_length")),
        "num_hidden_layers": field(r, k("block_count")),
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "max_position_embeddings": field(r, k("context_length")),
        "rms_norm_eps": field(r, k("attention.layer_norm_rms_epsilon")),
        "rope_theta": field(r, k("rope.freq_base"), 10000.0),
        "vocab_size": len(field(r, "tokenizer.ggml.tokens")),
        "tie_word_embeddings": "output.weight" not in names,
        "hidden_act": "silu",
        "bos_token_id": field(r, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": field(r, "tokenizer.ggml.eos_token_id"),
    }
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for t in r.tensors:
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        w = gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float32)
        if arch == "llama" and t.name.endswith(("attn_q.weight", "attn_k.weight")):
            w = unpermute(w, n_head if "attn_q" in t.name else n_kv)
        tensors[hf_name(t.name)] = np.ascontiguousarray(w)
    save_file(tensors, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    write_tokenizer(r, out)


def write_tokenizer(r, out):
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers  # noqa: PLC0415
    from tokenizers.models import BPE  # noqa: PLC0415

    if field(r, "tokenizer.ggml.model") != "gpt2":
        raise SystemExit("only byte-level BPE (tokenizer.ggml.model = gpt2) tokenizers are written")
    pre = field(r, "tokenizer.ggml.pre", "default")
    steps = {"gpt2": [], "smollm": [pre_tokenizers.Digits(individual_digits=True)]}
    if pre not in steps:
        raise SystemExit(f"tokenizer.ggml.pre = {pre} is not one this tool writes")
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ")) for m in field(r, "tokenizer.ggml.merges")]
    tk = Tokenizer(BPE({t: i for i, t in enumerate(tokens)}, merges))
    tk.pre_tokenizer = pre_tokenizers.Sequence(steps[pre] + [pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False)
                           for t, ty in zip(tokens, types) if ty == 3])
    tk.save(str(out / "tokenizer.json"))
    cfg = {"bos_token": tokens[field(r, "tokenizer.ggml.bos_token_id")],
           "eos_token": tokens[field(r, "tokenizer.ggml.eos_token_id")],
           "add_bos_token": bool(field(r, "tokenizer.ggml.add_bos_token", False)),
           "chat_template": field(r, "tokenizer.chat_template")}
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=1))


if __name__ == "__main__":
    main()
