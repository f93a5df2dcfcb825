"""GGUF import end to end through the built `lowbit` binary.

- The real SmolLM2-135M-Instruct GGUF imported at fp32 (`--bits 32`) gives the logits of an
  independent numpy forward over gguf-py's dequantized weights run the llama.cpp way
  (gguf_reference_forward.py: permuted Q/K with adjacent-pair RoPE) to 1e-4, same argmax.
- The same weights written out as an HF directory by tests/tools/gguf_to_hf.py (numpy undoes the
  permutation) convert to bit-identical logits: the HF path on real trained weights.
- Synthetic models of real configs (Llama/TinyLlama with GQA, Qwen2 with q/k/v biases, Qwen3 with
  per-head q/k norms) written as GGUF by tests/tools/hf_to_gguf.py (llama.cpp's permutation
  applied) import to exactly the logits of their HF directories; the Qwen3 one also gives the
  numpy reference's logits over the GGUF (llama.cpp's conventions).
- Bad files (truncated, unsupported architecture, a type lowbit cannot read, a missing tensor) fail
  with a message naming the key or tensor, a non-zero exit, and nothing written.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SHARED = ROOT.parent / "shared"
SMOL = SHARED / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
LOWBIT = os.environ.get("LOWBIT_BIN", str(ROOT / "build" / "lowbit"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "tools"))

import gguf_reference_forward  # noqa: E402
import make_hf_model  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(LOWBIT), reason=f"{LOWBIT} not built")

TEXT = "The quick brown fox jumps over the lazy dog. Once upon a time, there was a little girl named Lily."


def run(*args, check=True):
    return subprocess.run([LOWBIT, *map(str, args)], capture_output=True, text=True, check=check)


def logits(model, ids, tmp_path, *args):
    out = tmp_path / "logits.f32"
    run("logits", model, "--ids", " ".join(map(str, ids)), "--out", out, *args)
    return np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)


def real_ids():
    """Real English as SmolLM2 tokenizes it (the tokenizer has its own reference tests)."""
    return [int(t) for t in run("tokenize", SMOL, "--no-bos", "--", TEXT).stdout.split()]


@pytest.fixture(scope="module")
def smol_f32(tmp_path_factory):
    if not SMOL.is_file():
        pytest.skip(f"{SMOL} not found")
    out = tmp_path_factory.mktemp("smol") / "f32"
    run("convert", SMOL, out, "--bits", "32")
    return out


def test_smollm2_fp32_matches_numpy_reference(smol_f32, tmp_path):
    ids = real_ids()
    assert len(ids) > 20
    got = logits(smol_f32, ids, tmp_path).astype(np.float64)
    ref = gguf_reference_forward.forward(str(SMOL), ids)
    rel = np.abs(got - ref).max(axis=1) / np.abs(ref).max(axis=1)
    assert rel.max() <= 1e-4, f"worst position {rel.argmax()}: relative error {rel.max():.2e}"
    assert (got.argmax(axis=1) == ref.argmax(axis=1)).all()


def test_smollm2_hf_directory_gives_the_same_logits(smol_f32, tmp_path):
    hf = tmp_path / "hf"
    subprocess.run([sys.executable, str(ROOT / "tests" / "tools" / "gguf_to_hf.py"), str(SMOL), str(hf)], check=True)
    run("convert", hf, tmp_path / "m", "--bits", "32")
    a = logits(smol_f32, real_ids()[:8], tmp_path)
    b = logits(tmp_path / "m", real_ids()[:8], tmp_path)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


QWEN3 = str(ROOT / "tests" / "data" / "configs" / "qwen3-0.6b")


SMOLLM3 = str(ROOT / "tests" / "data" / "configs" / "smollm3-3b")
QWEN3_MOE = str(ROOT / "tests" / "data" / "configs" / "qwen3-30b-a3b")
MIXTRAL = str(ROOT / "tests" / "data" / "configs" / "mixtral-8x7b-instruct")
GRANITE_MOE = str(ROOT / "tests" / "data" / "configs" / "granite-3.1-3b-a800m-instruct")
MOE_EDIT = {"num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32}
GRANITE = str(ROOT / "tests" / "data" / "configs" / "granite-3.3-2b-instruct")


@pytest.mark.parametrize("config", ["tinyllama-1.1b-chat-v1.0", "qwen2.5-0.5b", "smollm2-135m", "llama-3.2-1b",
                                    pytest.param(QWEN3, id="qwen3-0.6b"), pytest.param(SMOLLM3, id="smollm3-3b"),
                                    pytest.param(GRANITE, id="granite-3.3-2b"), pytest.param(QWEN3_MOE, id="qwen3-30b-a3b"),
                                    pytest.param(MIXTRAL, id="mixtral-8x7b"), pytest.param(GRANITE_MOE, id="granite-moe")])
def test_synthetic_gguf_matches_its_hf_directory(config, tmp_path):
    hf = tmp_path / "hf"
    # Qwen3's heads are wider than hidden_size / heads (128 x 16 against 1024): kept so here.
    make_hf_model.make_model(hf, config, layers=2, dim=64, ffn=96, heads=4, kv_heads=2, vocab=320,
                             head_dim=32 if config in (QWEN3, QWEN3_MOE) else None, dtype="F32", seed=5,
                             tokenizer=False, config_edit=MOE_EDIT if config == QWEN3_MOE else None)
    g = tmp_path / "m.gguf"
    subprocess.run([sys.executable, str(ROOT / "tests" / "tools" / "hf_to_gguf.py"), str(hf), str(g)], check=True)
    run("convert", hf, tmp_path / "from_hf", "--bits", "32")
    run("convert", g, tmp_path / "from_gguf", "--bits", "32")
    # Llama 3.2's scaling slows only wavelengths past 2048 positions: 200 positions turn them far
    # enough to tell scaled from plain RoPE (1.4e-4 of the largest logit apart here).
    ids = np.random.default_rng(2).integers(0, 320, size=200 if config == "llama-3.2-1b" else 24).tolist()
    a = logits(tmp_path / "from_hf", ids, tmp_path)
    b = logits(tmp_path / "from_gguf", ids, tmp_path)
    if config != "llama-3.2-1b":
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
        return
    # Llama 3.2 scales RoPE (rope_type llama3): the HF side computes each frequency from the four
    # parameters, the GGUF side divides by a factor rounded to float32 (2^-24 relative), so an
    # angle pos * inv_freq moves by at most 200 * 2^-24 rad (1.2e-5) and a logit by that times
    # its sensitivity (< 1 here); bound it by 1e-5 of the row's largest logit.
    rel = np.abs(a - b).max(axis=1) / np.abs(a).max(axis=1)
    assert rel.max() <= 1e-5, rel.max()
    cfg = json.loads((tmp_path / "from_gguf" / "manifest.json").read_text())["architecture"]["rope_scaling"]
    assert cfg["type"] == "factors" and len(cfg["freq_factors"]) == 8
    assert max(cfg["freq_factors"]) == 32.0 and min(cfg["freq_factors"]) == 1.0


@pytest.mark.parametrize("config,layers", [(QWEN3, 2), (SMOLLM3, 4), (GRANITE, 2), (QWEN3_MOE, 2), (MIXTRAL, 2),
                                           (GRANITE_MOE, 2)],
                         ids=["qwen3-0.6b", "smollm3-3b", "granite-3.3-2b", "qwen3-30b-a3b", "mixtral-8x7b", "granite-moe"])
def test_gguf_matches_numpy_reference_of_llama_cpp_s_graph(config, layers, tmp_path):
    """Over gguf-py's dequantized Q8_0 weights, in llama.cpp's conventions (Q/K rows as stored,
    RoPE on adjacent pairs for the permuted archs; smollm3 without RoPE on layer 3; granite's
    multipliers from its keys)."""
    hf = tmp_path / "hf"
    make_hf_model.make_model(hf, config, layers=layers, dim=64, ffn=96, heads=4, kv_heads=2, vocab=320,
                             head_dim=32 if config in (QWEN3, QWEN3_MOE) else None, dtype="F32", seed=7,
                             tokenizer=False, config_edit=MOE_EDIT if config == QWEN3_MOE else None)
    g = tmp_path / "m.gguf"
    subprocess.run([sys.executable, str(ROOT / "tests" / "tools" / "hf_to_gguf.py"), str(hf), str(g), "--type", "Q8_0"],
                   check=True)
    ids = np.random.default_rng(4).integers(0, 320, size=40).tolist()
    ref = gguf_reference_forward.forward(str(g), ids)  # over gguf-py's dequantized Q8_0 weights
    run("convert", g, tmp_path / "f32", "--bits", "32")
    exact = logits(tmp_path / "f32", ids, tmp_path).astype(np.float64)
    rel = np.abs(exact - ref).max(axis=1) / np.abs(ref).max(axis=1)
    assert rel.max() <= 1e-4, f"worst position {rel.argmax()}: relative error {rel.max():.2e}"
    assert (exact.argmax(axis=1) == ref.argmax(axis=1)).all()


GEMMA3 = str(ROOT / "tests" / "data" / "configs" / "gemma-3-1b-it")
GEMMA2 = str(ROOT / "tests" / "data" / "configs" / "gemma-2-2b-it")


def gemma_pair(tmp_path, gguf_type="F32", config=GEMMA3, **edit):
    """A 6-layer Gemma HF directory (Gemma 3: layer 5 global; Gemma 2: every other one) with a
    window of 8 and the query scale llama.cpp's graph takes below 27B (1/sqrt(head_dim)), and its GGUF."""
    hf = tmp_path / "hf"
    make_hf_model.make_model(hf, config, layers=6, dim=64, ffn=96, heads=4, kv_heads=1, vocab=320, head_dim=32,
                             dtype="F32", seed=6, tokenizer=False,
                             config_edit={"sliding_window": 8, "query_pre_attn_scalar": 32, **edit})
    g = tmp_path / "m.gguf"
    subprocess.run([sys.executable, str(ROOT / "tests" / "tools" / "hf_to_gguf.py"), str(hf), str(g), "--type", gguf_type],
                   check=True)
    return hf, g


@pytest.mark.parametrize("config,edit", [
    (GEMMA3, {}),
    (GEMMA3, {"rope_scaling": {"rope_type": "linear", "factor": 8.0}}),
    # Caps on this small model's curved part (the 2B's 50 and 30 would be nearly linear here).
    (GEMMA2, {"attn_logit_softcapping": 1.0, "final_logit_softcapping": 0.5}),
], ids=["gemma3-1b", "gemma3-linear-rope", "gemma2-softcap"])
def test_gemma_gguf_matches_its_hf_directory_and_llama_cpp_s_graph(config, edit, tmp_path):
    """The HF side adds Gemma's 1 to its norms; llama.cpp's converter stores them added (both in
    fp32, so bit for bit the same). The GGUF's logits are also those of llama.cpp's gemma2/gemma3
    graph written in numpy over gguf-py's dequantized Q8_0 weights (gguf_reference_forward.py)."""
    hf, g = gemma_pair(tmp_path, "Q8_0", config, **edit)
    f32_hf, _ = gemma_pair(tmp_path / "f32", "F32", config, **edit)
    ids = np.random.default_rng(3).integers(0, 320, size=40).tolist()
    run("convert", f32_hf, tmp_path / "from_hf", "--bits", "32")
    run("convert", tmp_path / "f32" / "m.gguf", tmp_path / "from_gguf", "--bits", "32")
    a = logits(tmp_path / "from_hf", ids, tmp_path)
    b = logits(tmp_path / "from_gguf", ids, tmp_path)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    ref = gguf_reference_forward.forward(str(g), ids)
    run("convert", g, tmp_path / "q8", "--bits", "32")
    got = logits(tmp_path / "q8", ids, tmp_path).astype(np.float64)
    rel = np.abs(got - ref).max(axis=1) / np.abs(ref).max(axis=1)
    assert rel.max() <= 1e-4, f"worst position {rel.argmax()}: relative error {rel.max():.2e}"
    assert (got.argmax(axis=1) == ref.argmax(axis=1)).all()


PHI3_MINI = str(ROOT / "tests" / "data" / "configs" / "phi-3-mini-4k-instruct")
PHI4_MINI = str(ROOT / "tests" / "data" / "configs" / "phi-4-mini-instruct")
# Phi-4-mini's scaled down: 24 of 32 values per head rotated, 12 made-up LongRoPE factors of each
# kind, a trained length of 16 in a context of 64.
PHI4_EDIT = {"max_position_embeddings": 64, "original_max_position_embeddings": 16,
             "rope_scaling": {"type": "longrope", "long_factor": np.geomspace(1.0, 40.0, 12).round(4).tolist(),
                              "short_factor": np.linspace(1.0, 1.6, 12).round(4).tolist()},
             "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}


@pytest.mark.parametrize("config,edit,n,ctx", [
    (PHI3_MINI, {"sliding_window": 8}, 40, None),
    (PHI4_MINI, PHI4_EDIT, 40, None),  # a context of 64: the long factors
    (PHI4_MINI, PHI4_EDIT, 12, 16),    # a context of 16: the short ones
], ids=["phi3-mini-window", "phi4-mini-long", "phi4-mini-short"])
def test_phi3_gguf_matches_its_hf_directory_and_llama_cpp_s_graph(config, edit, n, ctx, tmp_path):
    """Both files hold q/k/v and gate/up fused; lowbit splits them into its own matrices on import.
    The F32 GGUF gives the HF directory's logits bit for bit (the LongRoPE attention factor: the
    HF side computes it, the GGUF stores the converter's, both the same float). The Q8_0 GGUF
    (fused rows sliced inside quantized data) gives llama.cpp's phi3 graph written in numpy over
    gguf-py's dequantized weights (gguf_reference_forward.py)."""
    files = {}
    for kind in ("F32", "Q8_0"):
        hf = tmp_path / kind / "hf"
        make_hf_model.make_model(hf, config, layers=2, dim=64, ffn=96, heads=4, kv_heads=2, vocab=320,
                                 head_dim=32 if config == PHI4_MINI else None, dtype="F32", seed=8,
                                 tokenizer=False, config_edit=edit)
        files[kind] = tmp_path / kind / "m.gguf"
        subprocess.run([sys.executable, str(ROOT / "tests" / "tools" / "hf_to_gguf.py"), str(hf), str(files[kind]),
                        "--type", kind], check=True)
    ids = np.random.default_rng(5).integers(0, 320, size=n).tolist()
    ctx_args = ["--ctx", str(ctx)] if ctx else []
    run("convert", tmp_path / "F32" / "hf", tmp_path / "from_hf", "--bits", "32")
    run("convert", files["F32"], tmp_path / "from_gguf", "--bits", "32")
    a = logits(tmp_path / "from_hf", ids, tmp_path, *ctx_args)
    b = logits(tmp_path / "from_gguf", ids, tmp_path, *ctx_args)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    ref = gguf_reference_forward.forward(str(files["Q8_0"]), ids, ctx=ctx)
    run("convert", files["Q8_0"], tmp_path / "q8", "--bits", "32")
    got = logits(tmp_path / "q8", ids, tmp_path, *ctx_args).astype(np.float64)
    rel = np.abs(got - ref).max(axis=1) / np.abs(ref).max(axis=1)
    assert rel.max() <= 1e-4, f"worst position {rel.argmax()}: relative error {rel.max():.2e}"
    assert (got.argmax(axis=1) == ref.argmax(axis=1)).all()


@pytest.mark.parametrize("edit,drop,phrase", [
    ({}, "rope_factors_short.weight", "tensor 'rope_factors_short.weight' is missing (LongRoPE needs both"),
    ({}, "blk.1.attn_qkv.weight", "tensor 'blk.1.attn_qkv.weight' is missing"),
    ({"rope_scaling": dict(PHI4_EDIT["rope_scaling"], long_factor=[1.0] * 11)}, None,
     "11 long_factor values for 24 rotated values per head"),
    ({"partial_rotary_factor": 0.72}, None, "rotates 23 of 32 values per head"),
], ids=["one-factor-tensor", "no-qkv", "factor-count", "odd-rotary"])
def test_bad_phi3_gguf_is_named(edit, drop, phrase, tmp_path):
    hf = tmp_path / "hf"
    make_hf_model.make_model(hf, PHI4_MINI, layers=2, dim=64, ffn=96, heads=4, kv_heads=2, vocab=320, head_dim=32,
                             dtype="F32", seed=8, tokenizer=False, config_edit={**PHI4_EDIT, **edit})
    g = tmp_path / "m.gguf"
    subprocess.run([sys.executable, str(ROOT / "tests" / "tools" / "hf_to_gguf.py"), str(hf), str(g)]
                   + (["--drop", drop] if drop else []), check=True)
    expect_failure(g, tmp_path, phrase)


def test_partial_rotary_gguf_of_another_architecture_is_named(tmp_path):
    g = synthetic_gguf(tmp_path, kv={"llama.rope.dimension_count": 8})
    expect_failure(g, tmp_path, "metadata 'llama.rope.dimension_count' = 8 rotates part of each head of 16",
                   "partial RoPE is Phi-3's only")


@pytest.mark.parametrize("drop,phrase", [
    ("blk.1.ffn_down_exps.weight", "tensor 'blk.1.ffn_down_exps.weight' is missing"),
    ("blk.0.ffn_gate_inp.weight", "tensor 'blk.0.ffn_gate_inp.weight' is missing"),
])
def test_bad_moe_gguf_is_named(drop, phrase, tmp_path):
    hf = tmp_path / "hf"
    make_hf_model.make_model(hf, QWEN3_MOE, layers=2, dim=64, ffn=96, heads=4, kv_heads=2, vocab=320, head_dim=32,
                             dtype="F32", seed=7, tokenizer=False, config_edit=MOE_EDIT)
    g = tmp_path / "m.gguf"
    subprocess.run([sys.executable, str(ROOT / "tests" / "tools" / "hf_to_gguf.py"), str(hf), str(g), "--drop", drop],
                   check=True)
    expect_failure(g, tmp_path, phrase)


def test_info_names_the_experts(tmp_path):
    """`lowbit info` of a mixture of experts, from its GGUF: how many of how many experts."""
    hf = tmp_path / "hf"
    make_hf_model.make_model(hf, QWEN3_MOE, layers=2, dim=64, ffn=96, heads=4, kv_heads=2, vocab=320, head_dim=32,
                             dtype="F32", seed=7, tokenizer=False, config_edit=MOE_EDIT)
    g = tmp_path / "m.gguf"
    subprocess.run([sys.executable, str(ROOT / "tests" / "tools" / "hf_to_gguf.py"), str(hf), str(g)], check=True)
    out = run("info", g).stdout
    assert "qwen3moe, 2 layers" in out and "experts: 2 of 8 per token, ffn 32 each, every layer" in out, out
    cfg = json.loads(run("info", g, "--json").stdout)["model"]["config"]
    assert (cfg["n_experts"], cfg["n_experts_used"], cfg["moe_ffn_dim"], cfg["moe_norm_topk"]) == (8, 2, 32, True)
    # Converted to 4 bits, the routers stay f32 and every expert is quantized.
    run("convert", hf, tmp_path / "q4", "--bits", "4")
    types = {t["name"]: t["type"] for t in json.loads((tmp_path / "q4" / "manifest.json").read_text())["tensors"]}
    assert {n: ty for n, ty in types.items() if n.endswith("mlp.gate.weight")} == {
        f"model.layers.{l}.mlp.gate.weight": "f32" for l in range(2)}
    assert {ty for n, ty in types.items() if ".experts." in n} == {"q4_g32_asym"}


def synthetic_gguf(tmp_path, arch="llama", drop=None, tensor_type=None, extra=None, kv=None):
    """A tiny GGUF written directly with gguf-py, optionally broken; extra: more tensors by name."""
    path = tmp_path / f"{arch}.gguf"
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(64)
    w.add_feed_forward_length(96)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    for key, value in (kv or {}).items():
        w.add_uint32(key, value)
    rng = np.random.default_rng(0)
    shapes = {"token_embd.weight": (320, 64), "output_norm.weight": (64,), "blk.0.attn_norm.weight": (64,),
              "blk.0.attn_q.weight": (64, 64), "blk.0.attn_k.weight": (32, 64), "blk.0.attn_v.weight": (32, 64),
              "blk.0.attn_output.weight": (64, 64), "blk.0.ffn_norm.weight": (64,),
              "blk.0.ffn_gate.weight": (96, 64), "blk.0.ffn_up.weight": (96, 64), "blk.0.ffn_down.weight": (64, 96)}
    for name, shape in shapes.items():
        if name == drop:
            continue
        t = rng.standard_normal(shape).astype(np.float32)
        if tensor_type and name == "blk.0.ffn_up.weight":
            block_weights, block_bytes = gguf.GGML_QUANT_SIZES[tensor_type]
            raw = np.zeros((shape[0], shape[1] // block_weights * block_bytes), dtype=np.uint8)
            w.add_tensor(name, raw, raw_dtype=tensor_type)
        else:
            w.add_tensor(name, t)
    for name, t in (extra or {}).items():
        w.add_tensor(name, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def expect_failure(source, tmp_path, *phrases):
    out = tmp_path / "out"
    r = run("convert", source, out, "--bits", "8", check=False)
    assert r.returncode != 0
    for p in phrases:
        assert p in r.stderr, r.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "lowbit-tmp" in p.name]


def test_synthetic_gguf_converts(tmp_path):
    run("convert", synthetic_gguf(tmp_path), tmp_path / "ok", "--bits", "8")
    run("verify", tmp_path / "ok")


def test_truncated_gguf_is_rejected(tmp_path):
    whole = synthetic_gguf(tmp_path).read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: len(whole) - 100])
    expect_failure(cut, tmp_path, "cut.gguf", "run past the end of the file")


def test_unsupported_architecture_is_named(tmp_path):
    expect_failure(synthetic_gguf(tmp_path, arch="phi2"), tmp_path, "general.architecture 'phi2' is not supported")


def test_missing_tensor_is_named(tmp_path):
    expect_failure(synthetic_gguf(tmp_path, drop="blk.0.ffn_down.weight"), tmp_path,
                   "tensor 'blk.0.ffn_down.weight' is missing")


def test_unreadable_tensor_type_is_named(tmp_path):
    # MXFP4: a valid ggml type (17 bytes per 32 weights) that lowbit does not decode.
    g = synthetic_gguf(tmp_path, tensor_type=gguf.GGMLQuantizationType.MXFP4)
    expect_failure(g, tmp_path, "tensor 'blk.0.ffn_up.weight' has type MXFP4")


@pytest.mark.parametrize("factors,phrase", [
    (np.ones(4, np.float32), "must be F32 with head_dim/2 = 8 values, not F32 [4]"),
    (np.array([1, 2, 4, 8, 16, 32, 32, -1], np.float32), "a factor of -1"),
    (np.array([1, 2, 4, 8, 16, 32, 32, np.inf], np.float32), "a factor of inf")])
def test_bad_rope_freqs_are_named(factors, phrase, tmp_path):
    g = synthetic_gguf(tmp_path, extra={"rope_freqs.weight": factors})
    expect_failure(g, tmp_path, "tensor 'rope_freqs.weight'", phrase)


@pytest.mark.parametrize("gguf_type,lowbit_type,exact", [
    ("Q8_0", "q8_g32_sym", True), ("Q4_0", "q4_g32_sym", True), ("Q4_1", "q4_g32_asym", True),
    ("F16", "f16", True), ("Q5_0", "q8_g32_sym", False), ("Q5_1", "q8_g32_sym", False)])
def test_types_kept_or_requantized_at_no_fewer_bits(gguf_type, lowbit_type, exact, tmp_path):
    """Without --bits each matrix keeps its type where lowbit has it; a 5-bit one becomes 8-bit, and
    the converter reports the error it added, which one 8-bit rounding bounds: at most half a
    step, max|w| / 127 / 2 per weight, so well under 1% of the row norm for these tensors."""
    hf = tmp_path / "hf"
    make_hf_model.make_model(hf, "tinyllama-1.1b-chat-v1.0", layers=1, dim=64, ffn=96, heads=4, kv_heads=2,
                             vocab=320, dtype="F32", seed=5, tokenizer=False)
    g = tmp_path / "m.gguf"
    subprocess.run([sys.executable, str(ROOT / "tests" / "tools" / "hf_to_gguf.py"), str(hf), str(g), "--type", gguf_type],
                   check=True)
    r = run("convert", g, tmp_path / "m")
    manifest = __import__("json").loads((tmp_path / "m" / "manifest.json").read_text())
    types = {t["name"]: t["type"] for t in manifest["tensors"]}
    assert types["model.layers.0.mlp.up_proj.weight"] == lowbit_type
    assert types["model.layers.0.input_layernorm.weight"] == "f32"
    reports = [line for line in r.stderr.splitlines() if "relative error" in line]
    if exact:
        assert not reports
    else:
        assert len(reports) == 9  # the embedding, 7 projections and the head
        for line in reports:
            assert f"{gguf_type} -> q8_g32_sym" in line
            assert float(line.rsplit(" ", 1)[1]) < 0.01
    run("verify", tmp_path / "m")


def greedy(model, prompt, isa, n=32):
    out = run("run", model, "--raw", "-p", prompt, "-n", n, "--isa", isa, "--threads", "2", "--ctx", 256, "--json").stdout
    return __import__("json").loads(out)["ids"]


@pytest.mark.parametrize("prompt", ["The capital of France is", "def fibonacci(n):",
                                    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"])
def test_smollm2_greedy_agrees_across_isas_up_to_a_proven_near_tie(prompt, tmp_path):
    """SmolLM2 as shipped (Q4_1, kept exactly) through the int8-activation kernels. The ISAs sum
    fp32 in different orders, so an activation that lands within an ulp of an int8 rounding
    boundary can round differently, and after 30 layers logits differ by about as much as int8
    rounding itself moves them (~1-4% of the largest logit on this model, measured against fp32
    too). Greedy texts must therefore agree until a step where the two best tokens are closer
    than the two ISAs' logits are to each other: where they part, that is checked."""
    if not SMOL.is_file():
        pytest.skip(f"{SMOL} not found")
    supported = run("info", "--json").stdout
    isas = [i for i in ("scalar", "avx2", "avxvnni", "avx512", "avx512zmm", "neon") if f'"{i}"' in supported.split('"cpu_isas"')[1].split("]")[0]]
    a, b = greedy(SMOL, prompt, isas[0]), greedy(SMOL, prompt, isas[-1])
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    if first is None:
        assert a == b
        return
    prompt_ids = [int(t) for t in run("tokenize", SMOL, "--", prompt).stdout.split()]
    ids = " ".join(map(str, prompt_ids + a[:first]))
    la, lb = (tmp_path / "a.f32", tmp_path / "b.f32")
    run("logits", SMOL, "--ids", ids, "--isa", isas[0], "--ctx", 256, "--out", la)
    run("logits", SMOL, "--ids", ids, "--isa", isas[-1], "--ctx", 256, "--out", lb)
    xa = np.fromfile(la, dtype=np.float32).reshape(-1, 49152)[-1]
    xb = np.fromfile(lb, dtype=np.float32).reshape(-1, 49152)[-1]
    spread = np.abs(xa - xb).max()
    for x in (xa, xb):
        top2 = np.sort(x)[-2:]
        assert top2[1] - top2[0] <= spread, (f"parted at step {first} where the best token leads by "
                                             f"{top2[1] - top2[0]:.4f} but the ISAs differ by only {spread:.4f}")
    assert first >= 3, "greedy texts parted almost at once"


def test_chat_template_survives_convert(smol_f32):
    """The GGUF's tokenizer.chat_template reaches the manifest's tokenizer_config.json, where the
    runtime's Tokenizer::chat_template() reads it."""
    import json

    reader = gguf.GGUFReader(str(SMOL))
    field = reader.fields["tokenizer.chat_template"]
    template = bytes(field.parts[field.data[0]]).decode("utf-8")
    cfg = json.loads((smol_f32 / "tokenizer_config.json").read_text())
    assert cfg["chat_template"] == template
    assert cfg["bos_token"] == "<|im_start|>" and cfg["eos_token"] == "<|im_end|>"
