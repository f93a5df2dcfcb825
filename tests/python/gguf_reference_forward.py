"""An independent forward pass over a GGUF file in numpy (float64), written from llama.cpp's
conventions rather than HF's: weights read with gguf-py's GGUFReader and dequantized by
gguf.quants.dequantize, Q/K kept in the GGUF row order, and RoPE rotating ADJACENT pairs (llama.cpp's
normal mode for `llama`, whose converter permuted Q/K rows for exactly that), or the two halves
(NEOX mode, `qwen2`, `qwen3` and `gemma3`, stored unpermuted; `qwen3` normalizes each head of q and k
first). `gemma2`/`gemma3` and `phi3` follow llama.cpp's graphs for them (forward_gemma, forward_phi3). lowbit undoes the permutation and rotates halves, so the
two agree only if the permutation is undone right. Shares no code with lowbit."""
import math

import gguf
import numpy as np

from reference_forward import attend, gelu_tanh  # the maths both conventions share


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def load(path):
    r = gguf.GGUFReader(path)
    arch = _field(r, "general.architecture")
    cfg = {
        "arch": arch,
        "n_layers": _field(r, f"{arch}.block_count"),
        "dim": _field(r, f"{arch}.embedding_length"),
        "n_heads": _field(r, f"{arch}.attention.head_count"),
        "n_kv": _field(r, f"{arch}.attention.head_count_kv"),
        "eps": _field(r, f"{arch}.attention.layer_norm_rms_epsilon"),
        "theta": _field(r, f"{arch}.rope.freq_base", 10000.0),
        "head_dim": _field(r, f"{arch}.attention.key_length"),
        "window": _field(r, f"{arch}.attention.sliding_window"),
        "rope_factor": _field(r, f"{arch}.rope.scaling.factor", 1.0),
        "attn_cap": _field(r, f"{arch}.attn_logit_softcapping"),
        "final_cap": _field(r, f"{arch}.final_logit_softcapping"),
        "n_rot": _field(r, f"{arch}.rope.dimension_count"),
        "attn_factor": _field(r, f"{arch}.rope.scaling.attn_factor", 1.0),
        "ctx_orig": _field(r, f"{arch}.rope.scaling.original_context_length"),
        "embedding_scale": _field(r, f"{arch}.embedding_scale", 1.0),
        "residual_scale": _field(r, f"{arch}.residual_scale", 1.0),
        "attention_scale": _field(r, f"{arch}.attention.scale"),
        "logit_scale": _field(r, f"{arch}.logit_scale", 1.0),
        "n_expert_used": _field(r, f"{arch}.expert_used_count"),
    }
    weights = {}
    for t in r.tensors:
        # GGUF dims are innermost first; the numpy shape is the reverse (rows, cols).
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        w = gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape)
        weights[t.name] = w.astype(np.float64)
    return cfg, weights


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, pos, theta, neox):
    """x: (n, heads, hd). Normal mode rotates (x[2i], x[2i+1]); NEOX mode (x[i], x[i+hd/2])."""
    hd = x.shape[-1]
    freq = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = pos[:, None, None] * freq[None, None, :]
    c, s = np.cos(ang), np.sin(ang)
    if neox:
        a, b = x[..., : hd // 2], x[..., hd // 2:]
        return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = a * s + b * c
    return out


def forward_gemma(cfg, t, ids):
    """llama.cpp's gemma2 and gemma3 graphs: norms multiply by the stored factors, embeddings times
    sqrtf(n_embd), every other layer windowed (gemma2, one RoPE base, scores and logits
    soft-capped) or all but every 6th (gemma3, RoPE base 10000 on them, q/k normed per head), NEOX
    RoPE, scores times 1/sqrt(head_dim), norms after attention and MLP, GELU (tanh) gate."""
    gemma2 = cfg["arch"] == "gemma2"
    nh, nkv, dim, hd = cfg["n_heads"], cfg["n_kv"], cfg["dim"], cfg["head_dim"]
    n, eps = len(ids), cfg["eps"]
    pos = np.arange(n, dtype=np.float64)
    causal = np.tril(np.ones((n, n), dtype=bool))
    window = causal & ~np.tril(np.ones((n, n), dtype=bool), -cfg["window"])
    x = t["token_embd.weight"][ids] * math.sqrt(dim)
    for l in range(cfg["n_layers"]):
        p = f"blk.{l}."
        sliding = (l + 1) % (2 if gemma2 else 6) != 0
        theta, factor = (10000.0, 1.0) if sliding and not gemma2 else (cfg["theta"], cfg["rope_factor"])
        h = rmsnorm(x, t[p + "attn_norm.weight"], eps)
        q = (h @ t[p + "attn_q.weight"].T).reshape(n, nh, hd)
        k = (h @ t[p + "attn_k.weight"].T).reshape(n, nkv, hd)
        if not gemma2:
            q, k = rmsnorm(q, t[p + "attn_q_norm.weight"], eps), rmsnorm(k, t[p + "attn_k_norm.weight"], eps)
        v = (h @ t[p + "attn_v.weight"].T).reshape(n, nkv, hd)
        q, k = rope(q, pos / factor, theta, True), rope(k, pos / factor, theta, True)
        att = attend(q, k, v, window if sliding else causal, 1 / math.sqrt(hd), cfg["attn_cap"])
        x = x + rmsnorm(att @ t[p + "attn_output.weight"].T, t[p + "post_attention_norm.weight"], eps)
        h = rmsnorm(x, t[p + "ffn_norm.weight"], eps)
        a = gelu_tanh(h @ t[p + "ffn_gate.weight"].T) * (h @ t[p + "ffn_up.weight"].T)
        x = x + rmsnorm(a @ t[p + "ffn_down.weight"].T, t[p + "post_ffw_norm.weight"], eps)
    x = rmsnorm(x, t["output_norm.weight"], eps)
    logits = x @ t.get("output.weight", t["token_embd.weight"]).T
    cap = cfg["final_cap"]
    return cap * np.tanh(logits / cap) if cap else logits


def moe(cfg, t, p, h):
    """llama.cpp's build_moe_ffn as qwen3moe and llama (Mixtral) call it: softmax gating, the
    expert_used_count largest, their weights renormalized, each expert's SwiGLU from the stacked
    (experts, rows, cols) tensors."""
    probs = np.exp(h @ t[p + "ffn_gate_inp.weight"].T)
    probs /= probs.sum(axis=-1, keepdims=True)
    out = np.zeros_like(h)
    for r in range(h.shape[0]):
        chosen = np.argsort(-probs[r], kind="stable")[: cfg["n_expert_used"]]
        w = probs[r, chosen] / probs[r, chosen].sum()
        for e, we in zip(chosen, w):
            g, u = t[p + "ffn_gate_exps.weight"][e] @ h[r], t[p + "ffn_up_exps.weight"][e] @ h[r]
            out[r] += we * (t[p + "ffn_down_exps.weight"][e] @ ((g / (1 + np.exp(-g))) * u))
    return out


def forward_phi3(cfg, t, ids, ctx):
    """llama.cpp's phi3 graph: q, k and v as views of one attn_qkv product, NEOX RoPE over the
    first n_rot values of each head with the frequencies divided by the long factors when the
    context (ctx) exceeds the original one, else the short ones, cos and sin times attn_factor,
    ffn_up's product split in halves for SwiGLU (the first gated). Every layer is windowed by the
    file's sliding_window (0: none) as transformers windows Phi-3; llama.cpp b10573 turns Phi's
    window off ("Phi SWA is currently disabled", its PR 13676), which the real Phi-3-mini's 2047
    makes a difference from position 2047 on. Checked against llama-cpp-python 0.3.36 on such
    files without a window: within its f16 KV cache's rounding."""
    nh, nkv, dim = cfg["n_heads"], cfg["n_kv"], cfg["dim"]
    hd = cfg["head_dim"] or dim // nh
    n, rot, eps = len(ids), cfg["n_rot"], cfg["eps"]
    pos = np.arange(n, dtype=np.float64)
    freq = cfg["theta"] ** (-np.arange(0, rot, 2, dtype=np.float64) / rot)
    if "rope_factors_long.weight" in t:
        freq = freq / t["rope_factors_long.weight" if ctx > cfg["ctx_orig"] else "rope_factors_short.weight"]
    ang = pos[:, None, None] * freq[None, None, :]
    c, s = np.cos(ang) * cfg["attn_factor"], np.sin(ang) * cfg["attn_factor"]

    def rope_part(x):
        a, b = x[..., : rot // 2], x[..., rot // 2: rot]
        return np.concatenate([a * c - b * s, a * s + b * c, x[..., rot:]], axis=-1)

    causal = np.tril(np.ones((n, n), dtype=bool))
    mask = causal & ~np.tril(np.ones((n, n), dtype=bool), -cfg["window"]) if cfg["window"] else causal
    x = t["token_embd.weight"][ids]
    for l in range(cfg["n_layers"]):
        p = f"blk.{l}."
        h = rmsnorm(x, t[p + "attn_norm.weight"], eps)
        qkv = h @ t[p + "attn_qkv.weight"].T
        q = rope_part(qkv[:, : nh * hd].reshape(n, nh, hd))
        k = rope_part(qkv[:, nh * hd: (nh + nkv) * hd].reshape(n, nkv, hd))
        v = qkv[:, (nh + nkv) * hd:].reshape(n, nkv, hd)
        att = attend(q, k, v, mask, 1 / math.sqrt(hd))
        x = x + att @ t[p + "attn_output.weight"].T
        h = rmsnorm(x, t[p + "ffn_norm.weight"], eps)
        g, u = np.split(h @ t[p + "ffn_up.weight"].T, 2, axis=-1)
        x = x + ((g / (1 + np.exp(-g))) * u) @ t[p + "ffn_down.weight"].T
    x = rmsnorm(x, t["output_norm.weight"], eps)
    return x @ t.get("output.weight", t["token_embd.weight"]).T


def forward(path, ids, loaded=None, ctx=None):
    """Logits (len(ids), vocab) of one sequence starting at position 0; ctx: the context llama.cpp
    would be run with (phi3's LongRoPE picks its factors by it; default the file's)."""
    cfg, t = loaded or load(path)
    if cfg["arch"] in ("gemma2", "gemma3"):
        return forward_gemma(cfg, t, ids)
    if cfg["arch"] == "phi3":
        return forward_phi3(cfg, t, ids, ctx or _field(gguf.GGUFReader(path), "phi3.context_length"))
    nh, nkv, dim = cfg["n_heads"], cfg["n_kv"], cfg["dim"]
    hd = cfg["head_dim"] or dim // nh
    neox = cfg["arch"] in ("qwen2", "qwen3", "qwen3moe")
    n = len(ids)
    # granite's graph: embeddings, sublayer outputs, scores and logits scaled by its keys; smollm3's
    # skips RoPE on every 4th layer (a step of its own, no key).
    x = t["token_embd.weight"][ids] * cfg["embedding_scale"]
    pos = np.arange(n, dtype=np.float64)
    mask = np.tril(np.ones((n, n), dtype=bool))
    for l in range(cfg["n_layers"]):
        p = f"blk.{l}."
        use_rope = not (cfg["arch"] == "smollm3" and (l + 1) % 4 == 0)
        h = rmsnorm(x, t[p + "attn_norm.weight"], cfg["eps"])
        q = (h @ t[p + "attn_q.weight"].T + t.get(p + "attn_q.bias", 0)).reshape(n, nh, hd)
        k = (h @ t[p + "attn_k.weight"].T + t.get(p + "attn_k.bias", 0)).reshape(n, nkv, hd)
        v = (h @ t[p + "attn_v.weight"].T + t.get(p + "attn_v.bias", 0)).reshape(n, nkv, hd)
        if p + "attn_q_norm.weight" in t:  # per head, over its hd values
            q = rmsnorm(q, t[p + "attn_q_norm.weight"], cfg["eps"])
            k = rmsnorm(k, t[p + "attn_k_norm.weight"], cfg["eps"])
        if use_rope:
            q, k = rope(q, pos, cfg["theta"], neox), rope(k, pos, cfg["theta"], neox)
        k = np.repeat(k, nh // nkv, axis=1)
        v = np.repeat(v, nh // nkv, axis=1)
        s = np.einsum("qhd,khd->hqk", q, k) * (cfg["attention_scale"] or 1 / math.sqrt(hd))
        s = np.where(mask[None], s, -np.inf)
        s -= s.max(axis=-1, keepdims=True)
        w = np.exp(s)
        w /= w.sum(axis=-1, keepdims=True)
        x = x + np.einsum("hqk,khd->qhd", w, v).reshape(n, nh * hd) @ t[p + "attn_output.weight"].T * cfg["residual_scale"]
        h = rmsnorm(x, t[p + "ffn_norm.weight"], cfg["eps"])
        if p + "ffn_gate_inp.weight" in t:
            x = x + moe(cfg, t, p, h) * cfg["residual_scale"]
            continue
        g, u = h @ t[p + "ffn_gate.weight"].T, h @ t[p + "ffn_up.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * u) @ t[p + "ffn_down.weight"].T * cfg["residual_scale"]
    x = rmsnorm(x, t["output_norm.weight"], cfg["eps"])
    return x @ t.get("output.weight", t["token_embd.weight"]).T / cfg["logit_scale"]
