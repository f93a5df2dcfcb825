"""`lowbit convert --target-bpw X`: the whole weights.bin never exceeds X bits per weight (several
budgets, two models), the choice is printed and stored in the recipe, and on stories260K an
allocated model is no worse than the uniform type of the same size on text held out from the
calibration (a harness gate)."""
import json
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
TEXT = SHARED / "corpus" / "tinystories_sample.txt"
BIN = pathlib.Path(os.environ.get("LOWBIT_BIN", REPO / "build" / "lowbit"))

pytestmark = [
    pytest.mark.skipif(not BIN.exists(), reason=f"lowbit binary not built ({BIN}; set LOWBIT_BIN)"),
    pytest.mark.skipif(not (SHARED / "models" / "stories260K").exists(), reason="shared models not present"),
]


def lowbit(*args, ok=True):
    r = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=900)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def file_bpw(manifest):
    m = json.loads((manifest / "manifest.json").read_text())
    weights = 0
    for t in m["tensors"]:
        n = 1
        for d in t["shape"]:
            n *= d
        weights += n
    return 8 * (manifest / "weights.bin").stat().st_size / weights, m


CALIB = ["--calib", TEXT, "--calib-tokens", 2048, "--threads", 1]


@pytest.mark.parametrize("model", ["stories260K", "aidreams260K"])
def test_never_over_budget(model, tmp_path):
    src = SHARED / "models" / model
    for target in (4.6, 5.5, 9.0):
        out = tmp_path / f"a{target}"
        r = lowbit("convert", src, out, "--target-bpw", target, *CALIB)
        bpw, m = file_bpw(out)
        assert bpw <= target, f"{model} target {target}: {bpw}"
        alloc = m["recipe"]["allocation"]
        assert alloc["target_bpw"] == target
        assert abs(alloc["bits_per_weight"] - bpw) < 1e-9  # the plan is what the file holds
        for name, typ in alloc["types"].items():
            assert next(t for t in m["tensors"] if t["name"] == name)["type"] == typ
            assert f"{name}" in r.stdout  # printed
        # The greedy plan was measured beside the uniform ones that fit, and the file holds the
        # one of least measured KL: a uniform plan's types are one type everywhere but the
        # embedding/head.
        plans = alloc["plan_kl"]
        assert "greedy" in plans and alloc["plan"] in plans
        assert plans[alloc["plan"]] == min(plans.values())
        if alloc["plan"].startswith("uniform "):
            body = {t for n, t in alloc["types"].items() if "embed_tokens" not in n and "lm_head" not in n}
            assert body == {alloc["plan"].split()[1].rstrip(",")}
    r = lowbit("convert", src, tmp_path / "tiny", "--target-bpw", 1.0, *CALIB, ok=False)
    assert r.returncode == 1 and "--target-bpw" in r.stderr and "cheapest" in r.stderr


def kl(model, ref, text):
    out = model.parent / (model.name + ".json")
    lowbit("eval", model, "--ref-logits", ref, "--text", text, "--ctx", 128, "--max-tokens", 4096,
           "--threads", 1, "--json", out)
    return json.loads(out.read_text())["kl_mean"]["value"]


@pytest.mark.parametrize("bits,group", [(4, "32"), (2, "32")])
def test_no_worse_than_uniform_of_same_size(bits, group, tmp_path):
    src = SHARED / "models" / "stories260K"
    held_out = tmp_path / "held_out.txt"
    held_out.write_bytes(TEXT.read_bytes()[-120000:])  # the calibration reads the first ~10 KB
    lowbit("convert", src, tmp_path / "f32", "--bits", 32)
    ref = tmp_path / "ref.bin"
    lowbit("eval", tmp_path / "f32", "--ref", tmp_path / "f32", "--text", held_out, "--ctx", 128,
           "--max-tokens", 4096, "--threads", 1, "--save-ref", ref)
    lowbit("convert", src, tmp_path / "uniform", "--bits", bits, "--group", group, *CALIB)
    size, _ = file_bpw(tmp_path / "uniform")
    lowbit("convert", src, tmp_path / "alloc", "--target-bpw", f"{size:.6f}", *CALIB)
    assert file_bpw(tmp_path / "alloc")[0] <= size + 1e-6
    u, a = kl(tmp_path / "uniform", ref, held_out), kl(tmp_path / "alloc", ref, held_out)
    print(f"{size:.3f} bpw: KL uniform q{bits}_g{group} {u:.5f}, allocated {a:.5f}")
    assert a <= u
