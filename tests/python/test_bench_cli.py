"""`lowbit bench matmul --json` (the built binary: $LOWBIT_BIN, else <repo>/build/lowbit).

The timing itself is not asserted (speed lives in benchmarks, not tests); what is checked is
that the JSON's figures are the ones its definition says: the matrix size from
docs/FORMAT.md's layout, and rates that are that size and shape over the reported time.
"""

import json
import math
import os
import pathlib
import re
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("LOWBIT_BIN", REPO / "build" / "lowbit"))

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"lowbit binary not built ({BIN}; set LOWBIT_BIN)")


def format_bytes(bits, group, asym, n, k):
    """A quantized matrix's size, from docs/FORMAT.md's section formulas."""
    round64 = lambda v: (v + 63) // 64 * 64
    row = math.ceil(k / (256 // bits)) * 32
    groups = 1 if group == "row" else math.ceil(k / group)
    scales = round64(n * row)
    end = scales + 2 * n * groups
    return round64(end) + 2 * n * groups if asym else end


def bench(*args):
    r = subprocess.run([str(BIN), "bench", "matmul", *map(str, args), "--threads", "1", "--json"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("bits,group,scheme,m", [(4, 32, "asym", 1), (8, 32, "sym", 1), (2, "row", "sym", 3)])
def test_bench_matmul_json_figures(bits, group, scheme, m):
    n, k = 1000, 4096 + 172
    j = bench("--bits", bits, "--group", group, "--scheme", scheme, "--m", m, "--n", n, "--k", k, "--reps", 6)
    assert j["type"] == f"q{bits}_{'row' if group == 'row' else f'g{group}'}_{scheme}"
    assert (j["m"], j["n"], j["k"], j["threads"]) == (m, n, k, 1)
    assert j["weight_bytes"] == format_bytes(bits, group, scheme == "asym", n, k)
    assert j["bits_per_weight"] == pytest.approx(8 * j["weight_bytes"] / (n * k), rel=1e-3)
    # Every copy is distinct memory: together they span at least the 512 MiB cycle.
    assert j["copies"] * j["weight_bytes"] >= 512 << 20
    assert j["reps"] >= 6 and j["rounds"] >= 1
    s = j["seconds"]
    assert s > 0
    assert j["weight_gbps"] == pytest.approx(j["weight_bytes"] / s / 1e9, rel=1e-3)
    assert j["weights_per_s"] == pytest.approx(n * k / s, rel=1e-3)
    assert j["gflops"] == pytest.approx(2 * m * n * k / s / 1e9, rel=1e-3)
    assert j["dram_read_gbps"] > 0 and j["ratio_to_dram"] > 0
    assert j["fma_peak_gflops"] > 0 and j["ratio_to_fma_peak"] > 0


def test_bench_matmul_rejects_bad_shape():
    r = subprocess.run([str(BIN), "bench", "matmul", "--bits", "4", "--n", "0", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "--n" in r.stderr


def test_bench_model_json_figures(tmp_path):
    stories = REPO.parent / "shared" / "models" / "stories260K"
    if not stories.exists():
        pytest.skip(f"{stories} not present")
    out = tmp_path / "q8"
    r = subprocess.run([str(BIN), "convert", str(stories), str(out), "--bits", "8", "--threads", "1"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    # --gpu-layers auto places what fits on a GPU, and nothing without one: the JSON says which.
    r = subprocess.run([str(BIN), "bench", "model", str(out), "--prompt-len", "16", "--gen-len", "8", "--reps", "2",
                        "--threads", "1", "--json", "--gpu-layers", "auto"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    # Bytes a generated token reads: all of weights.bin but the embedding, of which it reads one row
    # (unless the embedding is also the head).
    tensors = {t["name"]: t for t in json.loads((out / "manifest.json").read_text())["tensors"]}
    tied = "lm_head.weight" not in tensors
    embed = tensors["model.embed_tokens.weight"]["bytes"]
    assert j["weight_bytes_per_token"] == (out / "weights.bin").stat().st_size - (0 if tied else embed)
    assert (j["prompt_len"], j["gen_len"], j["threads"]) == (16, 8, 1)
    layers = json.loads((out / "manifest.json").read_text())["architecture"]["n_layers"]
    # Every layer is placed: the stages named in the placement cover 0 .. layers - 1.
    assert 0 <= j["device_layers"] <= layers
    assert re.fullmatch(rf"layers 0-{layers - 1} on cpu .*" if j["device_layers"] == 0
                        else rf"layers 0-\d+ on cuda .*", j["placement"]), j["placement"]
    assert j["gen_weight_gbps"] == pytest.approx(j["gen_tokens_per_s"] * j["weight_bytes_per_token"] / 1e9, rel=1e-6)
    assert j["prompt_tokens_per_s"] > 0 and j["dram_read_gbps"] > 0 and j["ratio_to_dram"] > 0
