"""lowbit's fp32 logits against an independent numpy forward (reference_forward.py), on both
shared trained models and on synthetic models with real Llama, Mistral, Qwen2, Qwen3 (per-head
q/k norms, heads wider than hidden_size / heads) and Llama 3.2 (rope_scaling) configs scaled down. The requirement is 1e-4 relative: the largest logit error of
a position over the largest logit magnitude there."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SHARED = ROOT.parent / "shared" / "models"
LOWBIT = os.environ.get("LOWBIT_BIN", str(ROOT / "build" / "lowbit"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "tools"))

import reference_forward  # noqa: E402
import make_hf_model  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(LOWBIT), reason=f"{LOWBIT} not built")


def lowbit_logits(hf_dir, ids, tmp_path, ctx=None):
    manifest = tmp_path / "m"
    subprocess.run([LOWBIT, "convert", str(hf_dir), str(manifest), "--bits", "32"], check=True,
                   capture_output=True)
    out = tmp_path / "logits.f32"
    subprocess.run([LOWBIT, "logits", str(manifest), "--ids", " ".join(map(str, ids)), "--out", str(out)]
                   + (["--ctx", str(ctx)] if ctx else []), check=True, capture_output=True)
    return np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)


def check(hf_dir, ids, tmp_path, ctx=None):
    got = lowbit_logits(hf_dir, ids, tmp_path, ctx).astype(np.float64)
    ref = reference_forward.forward(str(hf_dir), ids)
    assert got.shape == ref.shape
    rel = np.abs(got - ref).max(axis=1) / np.abs(ref).max(axis=1)
    assert rel.max() < 1e-4, f"worst position {rel.argmax()}: relative error {rel.max():.2e}"


@pytest.mark.parametrize("model", ["stories260K", "aidreams260K"])
def test_shared_models(model, tmp_path):
    rng = np.random.default_rng(0)
    ids = [1] + rng.integers(3, 512, size=60).tolist()
    check(SHARED / model, ids, tmp_path)


@pytest.mark.parametrize("config,extra", [
    ("tinyllama-1.1b-chat-v1.0", {}),
    ("mistral-7b-v0.1", {}),
    ("qwen2.5-0.5b", {}),
    ("llama-3.2-1b", {}),
    ("smollm2-135m", {}),
    pytest.param(str(ROOT / "tests" / "data" / "configs" / "qwen3-0.6b"), {"head_dim": 32}, id="qwen3-0.6b"),
    # Qwen2's window on the layers from max_window_layers on: layer 0 full, layer 1 the last 8.
    pytest.param("qwen2.5-0.5b", {"config_edit": {"use_sliding_window": True, "sliding_window": 8,
                                                  "max_window_layers": 1}}, id="qwen2.5-sliding"),
])
def test_synthetic_layouts(config, extra, tmp_path):
    hf = tmp_path / "hf"
    make_hf_model.make_model(hf, config, layers=2, dim=64, ffn=96, heads=4, kv_heads=2, vocab=320,
                             dtype="F32", seed=3, tokenizer=False, **extra)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 320, size=40).tolist()
    check(hf, ids, tmp_path)


GEMMA3 = ROOT / "tests" / "data" / "configs" / "gemma-3-1b-it"
GEMMA2 = ROOT / "tests" / "data" / "configs" / "gemma-2-2b-it"


@pytest.mark.parametrize("edit", [{"attn_logit_softcapping": 1.0, "final_logit_softcapping": 0.5},
                                  {"attn_logit_softcapping": None, "final_logit_softcapping": None}],
                         ids=["softcap", "no-softcap"])
def test_gemma2(edit, tmp_path):
    """Gemma 2: every other layer windowed (here to the last 8), no q/k norms, one RoPE base, scores
    and logits soft-capped, and the same without the capping. Caps of 1 and 0.5 with a score scale
    of 1 (query_pre_attn_scalar) put this small model's scores and logits on the caps' curved part
    (the 2B's 50 and 30 would leave them nearly linear here)."""
    hf = tmp_path / "hf"
    make_hf_model.make_model(hf, GEMMA2, layers=4, dim=64, ffn=96, heads=4, kv_heads=2, vocab=320, head_dim=32,
                             dtype="F32", seed=5, tokenizer=False,
                             config_edit={"sliding_window": 8, "query_pre_attn_scalar": 1, **edit})
    ids = np.random.default_rng(1).integers(0, 320, size=40).tolist()
    check(hf, ids, tmp_path)


@pytest.mark.parametrize("edit", [
    {"sliding_window": 8},  # 40 positions: the windowed layers see the last 8
    {"sliding_window": 8, "rope_scaling": {"rope_type": "linear", "factor": 8.0}},  # Gemma 3 4B's, global layers only
    {"sliding_window": 8, "layer_types": ["sliding_attention", "full_attention"] * 3, "query_pre_attn_scalar": 24},
], ids=["1b", "linear-rope", "layer-types"])
def test_gemma3(edit, tmp_path):
    """Gemma 3's text model: 6 layers, so layer 5 is global (the 1B config's pattern of 6); heads of
    32 with query_pre_attn_scalar 256 (the 1B's), so the score scale is not 1/sqrt(head_dim)."""
    hf = tmp_path / "hf"
    make_hf_model.make_model(hf, GEMMA3, layers=6, dim=64, ffn=96, heads=4, kv_heads=1, vocab=320, head_dim=32,
                             dtype="F32", seed=4, tokenizer=False, config_edit=edit)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 320, size=40).tolist()
    check(hf, ids, tmp_path)


PHI3_MINI = ROOT / "tests" / "data" / "configs" / "phi-3-mini-4k-instruct"
PHI4_MINI = ROOT / "tests" / "data" / "configs" / "phi-4-mini-instruct"
SMOLLM3 = ROOT / "tests" / "data" / "configs" / "smollm3-3b"
GRANITE = ROOT / "tests" / "data" / "configs" / "granite-3.3-2b-instruct"
QWEN3_MOE = ROOT / "tests" / "data" / "configs" / "qwen3-30b-a3b"
MIXTRAL = ROOT / "tests" / "data" / "configs" / "mixtral-8x7b-instruct"
GRANITE_MOE = ROOT / "tests" / "data" / "configs" / "granite-3.1-3b-a800m-instruct"


def check_scaled(tmp_path, config, seed, n=40, ctx=None, layers=2, kv_heads=2, ffn=96, head_dim=None, edit=None):
    """A real config scaled down (hidden 64, 4 heads, vocab 320), random weights of `seed`, n
    random ids: lowbit's logits against the reference's."""
    hf = tmp_path / "hf"
    make_hf_model.make_model(hf, config, layers=layers, dim=64, ffn=ffn, heads=4, kv_heads=kv_heads, vocab=320,
                             head_dim=head_dim, dtype="F32", seed=seed, tokenizer=False, config_edit=edit)
    check(hf, np.random.default_rng(seed).integers(0, 320, size=n).tolist(), tmp_path, ctx)


def test_phi3_mini(tmp_path):
    """Phi-3-mini: q/k/v and gate/up fused in the checkpoint, every layer windowed (here to the
    last 8 of 40 positions), GQA as Phi-3-medium has it."""
    check_scaled(tmp_path, PHI3_MINI, 6, edit={"sliding_window": 8})


@pytest.mark.parametrize("n,ctx", [(40, None), (12, 16)], ids=["long-factors", "short-factors"])
def test_phi4_mini_partial_rotary_longrope(n, ctx, tmp_path):
    """Phi-4-mini: RoPE over 24 of each head's 32 values (partial_rotary_factor 0.75) with LongRoPE.
    The factors are made up (12 of them, short ones away from 1 as well) since the real 48 belong
    to heads of 128; a trained length of 16 in a context of 64 gives an attention factor of
    sqrt(1 + ln 4 / ln 16). 40 positions: transformers takes the long factors, as lowbit does for
    a context (64) past 16; 12 positions in a context of 16: the short ones on both sides."""
    long_f = np.geomspace(1.0, 40.0, 12).round(4).tolist()
    short_f = np.linspace(1.0, 1.6, 12).round(4).tolist()
    check_scaled(tmp_path, PHI4_MINI, 7, n=n, ctx=ctx, head_dim=32,
                 edit={"max_position_embeddings": 64, "original_max_position_embeddings": 16,
                       "rope_scaling": {"type": "longrope", "long_factor": long_f, "short_factor": short_f},
                       "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2})


@pytest.mark.parametrize("edit", [{"no_rope_layers": [1, 1, 1, 0]}, {"no_rope_layers": [0, 1, 0, 1]}],
                         ids=["every-4th", "other-pattern"])
def test_smollm3_layers_without_rope(edit, tmp_path):
    """SmolLM3: 4 layers, RoPE skipped on the layers no_rope_layers marks 0 (the 3B's pattern and
    another), with the 3B's base of 5e6 and GQA of 4 to 1."""
    check_scaled(tmp_path, SMOLLM3, 9, layers=4, kv_heads=1, edit=edit)


def test_granite_multipliers(tmp_path):
    """Granite 3.3's multipliers as published: embeddings x 12, each sublayer's output x 0.22,
    scores x 1/64 in place of 1/sqrt(head_dim), logits / 8."""
    check_scaled(tmp_path, GRANITE, 10)


@pytest.mark.parametrize("edit", [
    {"num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32},  # the 30B-A3B's switches
    {"num_experts": 6, "num_experts_per_tok": 3, "moe_intermediate_size": 24, "norm_topk_prob": False,
     "mlp_only_layers": [1]},  # Qwen3MoeConfig's default weights, and a dense layer
], ids=["norm-topk", "raw-weights-dense-layer"])
def test_qwen3_moe(edit, tmp_path):
    """Qwen3-MoE: per-head q/k norms, every token routed to its experts; 40 tokens over 8 experts
    of which 2 are chosen, so each expert sees a different subset of the rows."""
    check_scaled(tmp_path, QWEN3_MOE, 11, head_dim=32, edit=edit)


def test_mixtral(tmp_path):
    """Mixtral: Mistral's layer, its MLP 8 experts (w1 gate, w3 up, w2 down) of which 2 per token,
    weights renormalized over the two."""
    check_scaled(tmp_path, MIXTRAL, 12, ffn=48)


def test_granite_moe(tmp_path):
    """Granite's mixture: its multipliers, 8 experts (gate and up fused in input_linear, down in
    output_linear, per layer) of which 2 per token, weighted by the softmax of their logits."""
    check_scaled(tmp_path, GRANITE_MOE, 14, ffn=32, edit={"num_local_experts": 8, "num_experts_per_tok": 2})
