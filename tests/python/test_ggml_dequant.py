"""convert/ggml_quants.h against gguf-py (the `gguf` PyPI package), an independent implementation
of ggml's formats: `gguf.quants.dequantize` of the same bytes must give the same float32 bit
patterns.

- Synthetic tensors of every type lowbit dequantizes: written by `gguf.quants.quantize` where
  gguf-py can quantize the type, and random blocks (fp16 scales overwritten with finite values)
  for every type, which also reach codes no quantizer writes.
- Real tensors of the SmolLM2 GGUF (Q4_1 projections, the Q8_0 embedding, F32 norms), read with
  `gguf.GGUFReader`.
- The exact types through `ggml_repack` and lowbit's own dequantization: the same bits, except
  that a symmetric type's zero level may come back +0 where ggml computes -0 (ggml_quants.h).

The C++ side is build/ggml_dequant_tool (beside $LOWBIT_BIN when set).
"""

import os
import pathlib
import subprocess

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
T = gguf.GGMLQuantizationType

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN_DIR = pathlib.Path(os.environ["LOWBIT_BIN"]).parent if "LOWBIT_BIN" in os.environ else REPO / "build"
TOOL = BIN_DIR / "ggml_dequant_tool"
SMOLLM2 = REPO.parent / "shared" / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"

pytestmark = pytest.mark.skipif(not TOOL.exists(), reason=f"{TOOL} not built (cmake --build build --target ggml_dequant_tool)")

# Byte offsets of the fp16 scale fields (d, and dmin / m) in each type's block: ggml-common.h.
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
    T.TQ1_0: [52], T.TQ2_0: [64], T.IQ4_NL: [0], T.IQ4_XS: [0],
}
FLOATS = [T.F32, T.F16, T.BF16]
SUPPORTED = FLOATS + list(F16_FIELDS)
# The exact types, and those among them whose zero level may differ in sign (symmetric).
EXACT = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.TQ1_0, T.TQ2_0]
SYMMETRIC = {T.Q8_0, T.Q4_0, T.TQ1_0, T.TQ2_0}


def quantizable(qtype):
    try:
        gguf.quants.quantize(np.zeros((1, gguf.GGML_QUANT_SIZES[qtype][0]), np.float32), qtype)
        return True
    except NotImplementedError:
        return False


def random_tensor(qtype, rows, blocks_per_row, seed):
    """Raw blocks (rows, bytes per row) and the row length: random bytes, floats finite."""
    rng = np.random.default_rng(seed)
    block_weights, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    cols = blocks_per_row * block_weights
    if qtype in FLOATS:
        w = (rng.standard_normal((rows, cols)) * 2.0 ** rng.integers(-20, 10, (rows, cols))).astype(np.float32)
        if qtype == T.F32:
            return w.view(np.uint8), cols
        if qtype == T.F16:
            return w.astype(np.float16).view(np.uint8), cols
        return (w.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8), cols
    raw = rng.integers(0, 256, (rows * blocks_per_row, block_bytes), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        scale = rng.standard_normal(raw.shape[0]) * 2.0 ** rng.integers(-12, 2, raw.shape[0])
        scale[::7] = 0.0  # a zero scale now and then, as an all-zero block has
        raw[:, off:off + 2] = scale.astype(np.float16).view(np.uint8).reshape(-1, 2)
    return raw.reshape(rows, -1), cols


def run_tool(tmp_path, *args, data):
    src, dst = tmp_path / "in.bin", tmp_path / "out.f32"
    np.ascontiguousarray(data).tofile(src)
    r = subprocess.run([str(TOOL), *map(str, args), src, dst], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return np.fromfile(dst, dtype="<f4")


def assert_same_bits(got, want, zero_sign_may_differ=False):
    want = np.ascontiguousarray(want, dtype=np.float32).ravel()
    assert got.shape == want.shape
    same = got.view(np.uint32) == want.view(np.uint32)
    if zero_sign_may_differ:
        same |= (got == 0) & (want == 0)
    if not same.all():
        i = int(np.flatnonzero(~same)[0])
        pytest.fail(f"{(~same).sum()} of {got.size} differ; first at {i}: "
                    f"got {got[i]!r} ({got.view(np.uint32)[i]:#010x}), "
                    f"gguf {want[i]!r} ({want.view(np.uint32)[i]:#010x})")


def check(tmp_path, qtype, raw, rows, cols):
    want = gguf.quants.dequantize(raw, qtype)
    got = run_tool(tmp_path, "dequantize", qtype.name, rows * cols, data=raw)
    assert_same_bits(got, want)
    if qtype in EXACT:
        got = run_tool(tmp_path, "repack", qtype.name, rows, cols, data=raw)
        assert_same_bits(got, want, zero_sign_may_differ=qtype in SYMMETRIC)


@pytest.mark.parametrize("qtype", SUPPORTED, ids=lambda t: t.name)
def test_random_blocks(tmp_path, qtype):
    for seed, (rows, blocks) in enumerate([(1, 1), (7, 3), (16, 8)]):
        raw, cols = random_tensor(qtype, rows, blocks, seed + 100 * int(qtype))
        check(tmp_path, qtype, raw, rows, cols)


@pytest.mark.parametrize("qtype", [t for t in SUPPORTED if quantizable(t)], ids=lambda t: t.name)
def test_gguf_quantized(tmp_path, qtype):
    rows, cols = 9, 4 * 256
    w = np.random.default_rng(int(qtype)).standard_normal((rows, cols)).astype(np.float32)
    w[3] = 0.0  # an all-zero row: zero scales
    raw = gguf.quants.quantize(w, qtype)
    check(tmp_path, qtype, raw.view(np.uint8).reshape(rows, -1), rows, cols)


@pytest.fixture(scope="module")
def smollm2():
    if not SMOLLM2.exists():
        pytest.skip(f"{SMOLLM2} not present")
    return {t.name: t for t in gguf.GGUFReader(SMOLLM2).tensors}


@pytest.mark.parametrize("name", [
    "token_embd.weight",  # Q8_0
    "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_down.weight", "blk.29.ffn_gate.weight",  # Q4_1
    "blk.0.attn_norm.weight", "output_norm.weight",  # F32
])
def test_smollm2_tensor(tmp_path, smollm2, name):
    t = smollm2[name]
    assert t.tensor_type in (T.Q8_0, T.Q4_1, T.F32), t.tensor_type
    cols = int(t.shape[0])
    rows = int(t.n_elements) // cols
    raw = np.asarray(t.data).view(np.uint8).reshape(rows, -1)
    check(tmp_path, t.tensor_type, raw, rows, cols)
