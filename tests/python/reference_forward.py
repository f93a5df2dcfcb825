"""An independent Llama-family forward pass in numpy (float64), written from the HuggingFace
modeling conventions (rotate-half RoPE, grouped-query attention, SwiGLU, RMSNorm, Qwen2 q/k/v
bias, Qwen3 per-head q/k RMSNorm, Llama 3 rope_scaling, Phi-3's fused q/k/v and gate/up with
partial rotary and LongRoPE as modeling_phi3.py computes them, SmolLM3's layers without RoPE,
Granite's multipliers), and Gemma 3's text model, reading the HF directory directly with the `safetensors` package.
It shares no code with lowbit: the tests compare lowbit's fp32 logits to it."""
import json
import math
import os

import numpy as np
from safetensors.numpy import load_file


def load_hf(hf_dir):
    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    tensors = {}
    single = os.path.join(hf_dir, "model.safetensors")
    if os.path.exists(single):
        files = [single]
    else:
        index = json.load(open(os.path.join(hf_dir, "model.safetensors.index.json")))
        files = sorted({os.path.join(hf_dir, f) for f in index["weight_map"].values()})
    for f in files:
        for name, arr in load_file(f).items():
            if arr.dtype == np.uint16:  # bf16 stored as raw bits by the test writer
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            tensors[name] = arr.astype(np.float64)
    return cfg, tensors


def rotary_dims(cfg, head_dim):
    """transformers' int(head_dim * partial_rotary_factor): Phi-4-mini rotates 96 of 128."""
    params = cfg.get("rope_parameters") or {}
    return int(head_dim * cfg.get("partial_rotary_factor", params.get("partial_rotary_factor", 1.0)))


def inv_freq(cfg, head_dim, seq_len=None):
    """(inverse frequencies, attention factor) for the rotated dims of a head (head_dim: their
    count). LongRoPE picks its long factors when seq_len exceeds the pretraining length and
    scales cos and sin by its attention factor (modeling_rope_utils._compute_longrope_parameters)."""
    # transformers 5 moved rope_theta and the scaling into "rope_parameters".
    params = cfg.get("rope_parameters") or {}
    theta = cfg.get("rope_theta", params.get("rope_theta", 10000.0))
    f = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    rs = cfg.get("rope_scaling") or (params if params.get("rope_type", "default") != "default" else {})
    kind = rs.get("rope_type", rs.get("type"))
    if kind in ("longrope", "su"):
        orig = cfg.get("original_max_position_embeddings",
                       rs.get("original_max_position_embeddings", cfg["max_position_embeddings"]))
        factor = rs.get("factor", cfg["max_position_embeddings"] / orig)
        attn = rs.get("attention_factor")
        if attn is None:
            attn = 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(orig))
        ext = rs["long_factor"] if seq_len and seq_len > orig else rs["short_factor"]
        return f / np.array(ext, dtype=np.float64), attn
    if kind == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        orig = rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / f
        lo_wl, hi_wl = orig / lo, orig / hi
        smooth = (orig / wavelen - lo) / (hi - lo)
        scaled = np.where(wavelen > lo_wl, f / factor, f)
        mid = (wavelen <= lo_wl) & (wavelen >= hi_wl)
        scaled = np.where(mid, (1 - smooth) * f / factor + smooth * f, scaled)
        f = scaled
    elif kind == "linear":
        f = f / rs["factor"]
    return f, 1.0


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def attend(q, k, v, mask, scale, softcap=None):
    """Causal GQA attention of q (n, heads, hd) over k, v (n, kv_heads, hd) with mask (n, n);
    softcap: scores become softcap * tanh(scores / softcap) before the mask and softmax."""
    rep = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
    scores = np.einsum("qhd,khd->hqk", q, k) * scale
    if softcap:
        scores = softcap * np.tanh(scores / softcap)
    scores = np.where(mask[None], scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)
    w = np.exp(scores)
    w /= w.sum(axis=-1, keepdims=True)
    return np.einsum("hqk,khd->qhd", w, v).reshape(q.shape[0], -1)


def forward_gemma(cfg, t, ids, hidden):
    """Gemma2ForCausalLM and Gemma3ForCausalLM as transformers' modeling_gemma2.py and
    modeling_gemma3.py compute them: embeddings times sqrt(hidden_size); RMSNorm weights as offsets
    from 1; per-head q/k norms (Gemma 3); RoPE with rope_local_base_freq on the sliding layers
    (Gemma 3) and rope_theta (and rope_scaling) on the global ones; scores times
    query_pre_attn_scalar^-0.5, soft-capped by attn_logit_softcapping (Gemma 2: default 50); norms
    after attention and after the MLP too; gelu_pytorch_tanh(gate) * up; logits soft-capped by
    final_logit_softcapping (Gemma 2: default 30)."""
    gemma2 = cfg["architectures"][0] == "Gemma2ForCausalLM"
    dim, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv, hd = cfg.get("num_key_value_heads", nh), cfg.get("head_dim", 256)
    eps = cfg.get("rms_norm_eps", 1e-6)
    pattern = cfg.get("sliding_window_pattern", 2 if gemma2 else 6)
    attn_cap = cfg.get("attn_logit_softcapping", 50.0 if gemma2 else None)
    final_cap = cfg.get("final_logit_softcapping", 30.0 if gemma2 else None)
    types = cfg.get("layer_types") or ["sliding_attention" if (i + 1) % pattern else "full_attention"
                                       for i in range(cfg["num_hidden_layers"])]
    n = len(ids)
    pos = np.arange(n, dtype=np.float64)

    def cos_sin(theta, factor=1.0):
        f = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd) / factor
        ang = pos[:, None] * f[None, :]
        return (np.concatenate([np.cos(ang)] * 2, axis=-1)[:, None, :],
                np.concatenate([np.sin(ang)] * 2, axis=-1)[:, None, :])

    rs = cfg.get("rope_scaling") or {}
    global_cs = cos_sin(cfg.get("rope_theta", 10000.0 if gemma2 else 1e6),
                        rs.get("factor", 1.0) if rs.get("rope_type") == "linear" else 1.0)
    local_cs = global_cs if gemma2 else cos_sin(cfg.get("rope_local_base_freq", 10000.0))
    causal = np.tril(np.ones((n, n), dtype=bool))
    window = causal & ~np.tril(np.ones((n, n), dtype=bool), -cfg.get("sliding_window", 4096))
    scale = cfg.get("query_pre_attn_scalar", 256) ** -0.5

    def norm(x, name):
        return rmsnorm(x, 1.0 + t[name], eps)

    x = t["model.embed_tokens.weight"][ids] * math.sqrt(dim)
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        sliding = types[layer] == "sliding_attention"
        cos, sin = local_cs if sliding else global_cs
        h = norm(x, p + "input_layernorm.weight")
        q = (h @ t[p + "self_attn.q_proj.weight"].T).reshape(n, nh, hd)
        k = (h @ t[p + "self_attn.k_proj.weight"].T).reshape(n, nkv, hd)
        v = (h @ t[p + "self_attn.v_proj.weight"].T).reshape(n, nkv, hd)
        if not gemma2:
            q, k = norm(q, p + "self_attn.q_norm.weight"), norm(k, p + "self_attn.k_norm.weight")
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        att = attend(q, k, v, window if sliding else causal, scale, attn_cap)
        x = x + norm(att @ t[p + "self_attn.o_proj.weight"].T, p + "post_attention_layernorm.weight")
        h = norm(x, p + "pre_feedforward_layernorm.weight")
        a = gelu_tanh(h @ t[p + "mlp.gate_proj.weight"].T) * (h @ t[p + "mlp.up_proj.weight"].T)
        x = x + norm(a @ t[p + "mlp.down_proj.weight"].T, p + "post_feedforward_layernorm.weight")
    x = norm(x, "model.norm.weight")
    if hidden:
        return x
    logits = x @ t.get("lm_head.weight", t["model.embed_tokens.weight"]).T
    return final_cap * np.tanh(logits / final_cap) if final_cap else logits


def moe_mlp(cfg, t, p, h):
    """Qwen3MoeSparseMoeBlock and MixtralSparseMoeBlock: softmax of the router's logits, the
    num_experts_per_tok largest (renormalized with Qwen3's norm_topk_prob, always in Mixtral), each
    token's chosen experts' SwiGLU outputs summed with those weights."""
    arch = cfg["architectures"][0]
    if arch == "GraniteMoeForCausalLM":  # GraniteMoeMoE: top-k logits, their softmax; fused experts
        logits = h @ t[p + "block_sparse_moe.router.layer.weight"].T
        k, F = cfg.get("num_experts_per_tok", 2), cfg["intermediate_size"]
        out = np.zeros_like(h)
        for r in range(h.shape[0]):
            chosen = np.argsort(-logits[r], kind="stable")[:k]
            w = np.exp(logits[r, chosen] - logits[r, chosen].max())
            for e, we in zip(chosen, w / w.sum()):
                gu = t[p + "block_sparse_moe.input_linear.weight"][e] @ h[r]
                g, u = gu[:F], gu[F:]
                out[r] += we * (t[p + "block_sparse_moe.output_linear.weight"][e] @ ((g / (1 + np.exp(-g))) * u))
        return out
    mixtral = arch == "MixtralForCausalLM"
    block = p + ("block_sparse_moe." if mixtral else "mlp.")
    gate, up, down = ("w1", "w3", "w2") if mixtral else ("gate_proj", "up_proj", "down_proj")
    probs = np.exp(h @ t[block + "gate.weight"].T)
    probs /= probs.sum(axis=-1, keepdims=True)
    k = cfg.get("num_experts_per_tok", 2 if mixtral else 8)
    out = np.zeros_like(h)
    for r in range(h.shape[0]):
        chosen = np.argsort(-probs[r], kind="stable")[:k]
        w = probs[r, chosen]
        if mixtral or cfg.get("norm_topk_prob", False):
            w = w / w.sum()
        for e, we in zip(chosen, w):
            q = f"{block}experts.{e}."
            g = h[r] @ t[q + gate + ".weight"].T
            a = (g / (1 + np.exp(-g))) * (h[r] @ t[q + up + ".weight"].T)
            out[r] += we * (a @ t[q + down + ".weight"].T)
    return out


def forward(hf_dir, ids, hidden=False, inputs=None):
    """Logits (len(ids), vocab) of one sequence starting at position 0; with hidden, the hidden
    states after the final norm (len(ids), hidden_size) instead. inputs: a dict that, when given,
    receives the input of every projection under the weight's HF name (n, k)."""
    def seen(name, x):
        if inputs is not None:
            inputs[name] = x
    cfg, t = load_hf(hf_dir)
    if cfg["architectures"][0] in ("Gemma2ForCausalLM", "Gemma3ForCausalLM"):
        assert inputs is None, "the Gemma reference does not report projection inputs"
        return forward_gemma(cfg, t, ids, hidden)
    dim, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim") or dim // nh
    eps = cfg.get("rms_norm_eps", 1e-6)
    # Mistral windows every layer; Qwen2/Qwen3 (use_sliding_window) the layers from max_window_layers on.
    qwen = cfg["architectures"][0] in ("Qwen2ForCausalLM", "Qwen3ForCausalLM")
    window = cfg.get("sliding_window") if cfg.get("use_sliding_window", not qwen) else None
    first_windowed = cfg.get("max_window_layers", 28) if qwen else 0
    n = len(ids)
    # Phi-3 stores q/k/v as one matrix (rows q, k, v) and gate/up as one (gate first).
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        if p + "self_attn.qkv_proj.weight" in t:
            q_rows, kv_rows = nh * hd, nkv * hd
            qkv = t.pop(p + "self_attn.qkv_proj.weight")
            t[p + "self_attn.q_proj.weight"] = qkv[:q_rows]
            t[p + "self_attn.k_proj.weight"] = qkv[q_rows:q_rows + kv_rows]
            t[p + "self_attn.v_proj.weight"] = qkv[q_rows + kv_rows:]
            gate_up = t.pop(p + "mlp.gate_up_proj.weight")
            t[p + "mlp.gate_proj.weight"], t[p + "mlp.up_proj.weight"] = np.split(gate_up, 2)
    x = t["model.embed_tokens.weight"][ids]
    pos = np.arange(n, dtype=np.float64)
    rot = rotary_dims(cfg, hd)  # the rest of each head passes RoPE unchanged
    freqs, attn_factor = inv_freq(cfg, rot, seq_len=n)
    ang = pos[:, None] * freqs[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, axis=-1)[:, None, :] * attn_factor
    sin = np.concatenate([np.sin(ang)] * 2, axis=-1)[:, None, :] * attn_factor

    def rope(v):
        r = v[..., :rot]
        return np.concatenate([r * cos + rotate_half(r) * sin, v[..., rot:]], axis=-1)

    causal = np.tril(np.ones((n, n), dtype=bool))
    windowed = causal & ~np.tril(np.ones((n, n), dtype=bool), -window) if window else causal
    # SmolLM3: RoPE only where no_rope_layers says 1 (SmolLM3Config: else all but every 4th layer).
    n_layers = cfg["num_hidden_layers"]
    uses_rope = [1] * n_layers
    if cfg["architectures"][0] == "SmolLM3ForCausalLM":
        every = cfg.get("no_rope_layer_interval", 4)
        uses_rope = cfg.get("no_rope_layers") or [int((i + 1) % every != 0) for i in range(n_layers)]
    # Granite's multipliers (modeling_granite.py; GraniteConfig's defaults 1).
    granite = cfg["architectures"][0] in ("GraniteForCausalLM", "GraniteMoeForCausalLM")
    mult = (lambda key: cfg.get(key, 1.0)) if granite else (lambda key: 1.0)
    x = x * mult("embedding_multiplier")
    score_scale = mult("attention_multiplier") if granite else 1 / math.sqrt(hd)
    for l in range(n_layers):
        p = f"model.layers.{l}."
        mask = windowed if l >= first_windowed else causal
        h = rmsnorm(x, t[p + "input_layernorm.weight"], eps)
        for r in ("q", "k", "v"):
            seen(p + f"self_attn.{r}_proj.weight", h)
        q = h @ t[p + "self_attn.q_proj.weight"].T + t.get(p + "self_attn.q_proj.bias", 0)
        k = h @ t[p + "self_attn.k_proj.weight"].T + t.get(p + "self_attn.k_proj.bias", 0)
        v = h @ t[p + "self_attn.v_proj.weight"].T + t.get(p + "self_attn.v_proj.bias", 0)
        q = q.reshape(n, nh, hd)
        k = k.reshape(n, nkv, hd)
        v = v.reshape(n, nkv, hd)
        if p + "self_attn.q_norm.weight" in t:  # Qwen3: RMSNorm over each head's hd values
            q = rmsnorm(q, t[p + "self_attn.q_norm.weight"], eps)
            k = rmsnorm(k, t[p + "self_attn.k_norm.weight"], eps)
        if uses_rope[l]:
            q = rope(q)
            k = rope(k)
        rep = nh // nkv
        k = np.repeat(k, rep, axis=1)
        v = np.repeat(v, rep, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) * score_scale
        scores = np.where(mask[None], scores, -np.inf)
        scores -= scores.max(axis=-1, keepdims=True)
        w = np.exp(scores)
        w /= w.sum(axis=-1, keepdims=True)
        att = np.einsum("hqk,khd->qhd", w, v).reshape(n, nh * hd)
        seen(p + "self_attn.o_proj.weight", att)
        x = x + (att @ t[p + "self_attn.o_proj.weight"].T) * mult("residual_multiplier")
        h = rmsnorm(x, t[p + "post_attention_layernorm.weight"], eps)
        if any(p + k in t for k in ("mlp.gate.weight", "block_sparse_moe.gate.weight",
                                     "block_sparse_moe.router.layer.weight")):  # a mixture of experts
            assert inputs is None, "the mixture-of-experts reference does not report projection inputs"
            x = x + moe_mlp(cfg, t, p, h) * mult("residual_multiplier")
            continue
        seen(p + "mlp.gate_proj.weight", h)
        seen(p + "mlp.up_proj.weight", h)
        g = h @ t[p + "mlp.gate_proj.weight"].T
        u = h @ t[p + "mlp.up_proj.weight"].T
        a = (g / (1 + np.exp(-g))) * u
        seen(p + "mlp.down_proj.weight", a)
        x = x + (a @ t[p + "mlp.down_proj.weight"].T) * mult("residual_multiplier")
    x = rmsnorm(x, t["model.norm.weight"], eps)
    if hidden:
        return x
    tied = cfg.get("tie_word_embeddings", False)
    seen("model.embed_tokens.weight" if tied else "lm_head.weight", x)
    head = t["model.embed_tokens.weight"] if tied else t["lm_head.weight"]
    return (x @ head.T) / mult("logits_scaling")
