"""lowbit.evaluate, the accuracy harness, when the library has it."""

from __future__ import annotations

import math

import pytest

import lowbit
from conftest import MODELS, hf_model

pytestmark = pytest.mark.skipif(not hasattr(lowbit, "evaluate"), reason="built without eval/eval.h")

TEXT = MODELS.parent / "corpus" / "tinystories_sample.txt"


def test_reference_against_itself_is_exact(stories_dir):
    r = lowbit.evaluate(stories_dir, TEXT, ref=stories_dir, ctx=64, max_tokens=256)
    assert r["tokens"] == 256
    assert r["kl_mean"]["value"] == 0.0
    assert r["top1_pct"]["value"] == 100.0
    assert r["ppl_quant"]["value"] == r["ppl_ref"]["value"]
    assert 1.0 < r["ppl_ref"]["value"] < 20.0


def test_two_bit_model_differs(stories_dir, tmp_path):
    q2 = tmp_path / "q2"
    lowbit.convert(hf_model("stories260K"), q2, bits=2)
    r = lowbit.evaluate(lowbit.Model(q2), TEXT, ref=lowbit.Model(stories_dir), ctx=64, max_tokens=256)
    assert r["kl_mean"]["value"] > 0
    assert math.isfinite(r["ppl_quant"]["value"])
    with pytest.raises(lowbit.Error):
        lowbit.evaluate(q2, TEXT)  # neither ref nor ref_logits
