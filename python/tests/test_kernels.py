"""quantize / dequantize / matmul against numpy. Bounds come from the arithmetic:
 - round to nearest: each weight within one quantization step of its group (tests/kernels has the
   derivation), computed here from the group's own range;
 - matmul: the kernels round x to int8 per 32-block (scale s = absmax/127), so each output may
   differ from x @ w_dq.T by sum_i |w_i| s_b(i) / 2, plus fp32 accumulation error.
"""

from __future__ import annotations

import numpy as np
import pytest

import lowbit

F16_EPS = 1.0 / 1024  # fp16 relative rounding is at most 2^-11; doubled for products d*q


def rtn_bound(w: np.ndarray, bits: int, scheme: str, group: int) -> np.ndarray:
    """Per-weight bound of round-to-nearest, from each group's range."""
    n, k = w.shape
    gs = group if group else k
    bound = np.empty_like(w, dtype=np.float64)
    for g0 in range(0, k, gs):
        blk = w[:, g0 : g0 + gs].astype(np.float64)
        if scheme == "asym":
            mn, mx = blk.min(axis=1), blk.max(axis=1)
            d = (mx - mn) / (2**bits - 1) * (1 + F16_EPS)
            b = 0.5 * d + np.abs(mn) * F16_EPS + (2**bits - 1) * d * F16_EPS
        else:
            z = 2 ** (bits - 1)
            d = np.abs(blk).max(axis=1) / z * (1 + F16_EPS)
            b = d + z * d * F16_EPS
        bound[:, g0 : g0 + gs] = b[:, None]
    return bound


CASES = [(4, 32, "asym"), (4, 64, "sym"), (2, 32, "asym"), (8, 32, "sym"), (8, 0, "asym"), (2, 0, "sym")]


@pytest.mark.parametrize("bits,group,scheme", CASES, ids=[f"q{b}_{'row' if g == 0 else f'g{g}'}_{s}" for b, g, s in CASES])
def test_quantize_within_one_step(bits, group, scheme):
    rng = np.random.default_rng(bits * 100 + group)
    w = rng.standard_normal((9, 172)).astype(np.float32)  # k not a multiple of the group
    q = lowbit.quantize(w, bits=bits, group=group or "row", scheme=scheme, quantizer="rtn")
    assert q.shape == (9, 172)
    assert q.type == f"q{bits}_{'row' if group == 0 else f'g{group}'}_{scheme}"
    back = q.dequantize()
    assert back.dtype == np.float32 and back.shape == w.shape
    err = np.abs(back.astype(np.float64) - w)
    assert np.all(err <= rtn_bound(w, bits, scheme, group))
    # The searched quantizer keeps the RTN result as a candidate: never a larger squared error.
    s = lowbit.quantize(w, bits=bits, group=group or "row", scheme=scheme, quantizer="search")
    assert ((s.dequantize() - w) ** 2).sum() <= (err**2).sum() * (1 + 1e-6)


def test_qtensor_properties():
    w = np.zeros((64, 256), dtype=np.float32)
    q = lowbit.quantize(w, bits=4)  # the converter's default: asym below 8 bits
    assert q.type == "q4_g32_asym"
    assert q.shape == (64, 256)
    assert q.nbytes == len(q.tobytes())
    # 4-bit codes, plus an fp16 scale and an fp16 minimum per 32 weights; sections 64-byte aligned
    # (no padding at this shape).
    assert q.bits_per_weight == 4 + 16 / 32 + 16 / 32
    assert q.nbytes * 8 == q.bits_per_weight * w.size
    assert np.all(q.dequantize() == 0)
    assert lowbit.quantize(w, bits=8).type == "q8_g32_sym"
    assert lowbit.quantize(w, bits=16).type == "f16"
    assert lowbit.quantize(w, type="bf16").type == "bf16"
    assert "q4_g32_asym" in repr(q)


def int8_act_bound(wd: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(m, n) bound of |matmul - x @ wd.T| for int8 activations with per-32 scales."""
    m, k = x.shape
    kp = -(-k // 32) * 32
    xp = np.zeros((m, kp), dtype=np.float64)
    xp[:, :k] = x
    s = np.abs(xp.reshape(m, -1, 32)).max(axis=2) / 127  # (m, blocks)
    half_step = np.repeat(s / 2, 32, axis=1)[:, :k]
    step = half_step @ np.abs(wd.astype(np.float64)).T
    mag = (np.abs(x) + half_step) @ np.abs(wd.astype(np.float64)).T
    return step * 1.0001 + (k / 32 + 8) * 2.0**-23 * mag + 1e-30


@pytest.mark.parametrize("type_name", ["q4_g32_asym", "q8_g32_sym", "q2_row_asym", "q1_g64_sym", "q4_g128_sym"])
@pytest.mark.parametrize("m", [1, 3, 7])
def test_matmul_matches_numpy_on_dequantized(type_name, m):
    rng = np.random.default_rng(m)
    n, k = 37, 300
    w = rng.standard_normal((n, k)).astype(np.float32)
    w[5] = 0  # an all-zero row
    x = rng.standard_normal((m, k)).astype(np.float32)
    q = lowbit.quantize(w, type=type_name, quantizer="rtn")
    wd = q.dequantize()
    y = lowbit.matmul(q, x)
    assert y.shape == (m, n) and y.dtype == np.float32
    ref = x.astype(np.float64) @ wd.astype(np.float64).T
    assert np.all(np.abs(y - ref) <= int8_act_bound(wd, x))


def test_matmul_float_weights_and_vector_input():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((5, 33)).astype(np.float32)
    x = rng.standard_normal(33)  # float64, 1-D: converted, result is (n,)
    q = lowbit.quantize(w, bits=32)
    y = lowbit.matmul(q, x)
    assert y.shape == (5,)
    ref = w.astype(np.float64) @ x
    mag = np.abs(w).astype(np.float64) @ np.abs(x)
    # fp32 accumulation of 33 products, plus rounding x to float32 on the way in.
    assert np.all(np.abs(y - ref) <= (33 + 1) * 2.0**-24 * mag + 1e-30)


def test_kernel_errors_raise_lowbit_error():
    w = np.ones((2, 32), dtype=np.float32)
    with pytest.raises(lowbit.Error, match="bits 3"):
        lowbit.quantize(w, bits=3)
    with pytest.raises(lowbit.Error, match="2-D"):
        lowbit.quantize(np.ones(32, dtype=np.float32))
    with pytest.raises(lowbit.Error, match="quantizer 'best'"):
        lowbit.quantize(w, quantizer="best")
    bad = w.copy()
    bad[1, 7] = np.nan
    with pytest.raises(lowbit.Error):
        lowbit.quantize(bad, bits=4)
    q = lowbit.quantize(w, bits=8)
    with pytest.raises(lowbit.Error, match="k = 32"):
        lowbit.matmul(q, np.ones((1, 31), dtype=np.float32))
    assert issubclass(lowbit.Error, RuntimeError)
