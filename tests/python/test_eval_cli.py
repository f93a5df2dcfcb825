"""Exit codes and output of `lowbit eval` (the built binary: $LOWBIT_BIN, else <repo>/build/lowbit).

0: evaluated, every gate passed; 3: a gate failed, with a `gate failed: ...` line per gate;
1: an error (e.g. a mismatched reference file); 2: bad usage.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cli_helpers import BIN, SHARED, lowbit  # noqa: E402

STORIES = SHARED / "models" / "stories260K"
TEXT = SHARED / "corpus" / "tinystories_sample.txt"

pytestmark = [
    pytest.mark.skipif(not BIN.exists(), reason=f"lowbit binary not built ({BIN}; set LOWBIT_BIN)"),
    pytest.mark.skipif(not STORIES.exists(), reason=f"{STORIES} not present"),
]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval_cli")
    for name, args in {"f32": ["--bits", "32"], "q8": ["--bits", "8"], "q1": ["--bits", "1", "--group", "row"]}.items():
        r = lowbit("convert", STORIES, d / name, *args, "--threads", "1")
        assert r.returncode == 0, r.stderr
    return d


def evaluate(models, quant, *extra):
    return lowbit("eval", models / quant, "--ref", models / "f32", "--text", TEXT, "--ctx", "128",
                  "--max-tokens", "512", "--threads", "1", *extra)


def test_passing_gates_exit_0_and_json_has_every_number(models, tmp_path):
    out = tmp_path / "r.json"
    r = evaluate(models, "q8", "--max-kld", "0.05", "--min-top1", "80", "--json", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "gate failed" not in r.stdout + r.stderr
    j = json.loads(out.read_text())
    assert j["tokens"] == 512
    for key in ("ppl_quant", "ppl_ref", "delta_ppl", "delta_ppl_pct", "kl_mean", "kl_p99", "top1_pct"):
        assert j[key]["lo"] <= j[key]["value"] <= j[key]["hi"], key
    assert j["gates_failed"] == []


def test_failed_gates_exit_3_naming_each(models):
    r = evaluate(models, "q1", "--max-kld", "0.001", "--max-ppl-delta-pct", "1", "--min-top1", "95")
    assert r.returncode == 3, r.stdout + r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("gate failed: ")]
    assert [l.split()[2] for l in lines] == ["kld", "ppl", "top1"]
    assert "> max 0.001" in lines[0]


def test_mismatched_reference_file_is_error_1(models, tmp_path):
    ref = tmp_path / "ref.lbref"
    assert evaluate(models, "q8", "--save-ref", ref).returncode == 0
    same = lowbit("eval", models / "q8", "--ref-logits", ref, "--text", TEXT, "--ctx", "128",
                  "--max-tokens", "512", "--threads", "1")
    assert same.returncode == 0, same.stderr
    other = lowbit("eval", models / "q8", "--ref-logits", ref, "--text", TEXT, "--ctx", "64",
                   "--max-tokens", "512", "--threads", "1")
    assert other.returncode == 1
    assert "ctx differs" in other.stderr


def test_usage_errors_exit_2(models):
    assert lowbit("eval", models / "q8").returncode == 2


def sweep(plot, **env):
    return subprocess.run([str(BIN), "eval", "--sweep", str(STORIES), "--text", str(TEXT), "--bits", "8", "--groups",
                           "32", "--quantizers", "rtn", "--max-tokens", "256", "--ctx", "64", "--threads", "1",
                           "--plot", str(plot)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


def test_sweep_plot_is_drawn_and_a_plot_that_cannot_be_made_is_an_error(tmp_path):
    ok = sweep(tmp_path / "sweep.png")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (tmp_path / "sweep.png").read_bytes().startswith(b"\x89PNG")
    # A requested plot is part of the result: when it cannot be written, the exit status says so.
    bad = sweep(tmp_path / "missing_dir" / "sweep.png")
    assert bad.returncode == 1
    assert "--plot" in bad.stderr


def test_fp32_acts_leaves_out_activation_rounding(models, tmp_path):
    # ctx 256: each window is a prompt of 255 rows, past the AVX2 fp32 path's 128-row threshold
    # for 8-bit grouped weights (kernels/matmul_qf32_avx2.cc); elsewhere both runs are int8. The
    # AVX2 kernel set is forced: the VNNI sets keep 8-bit prompts on the int8 path (faster there).
    import platform
    x86 = platform.machine() in ("x86_64", "AMD64")
    env = dict(os.environ, LOWBIT_ISA="avx2") if x86 else None
    kl = {}
    for extra in ([], ["--fp32-acts"]):
        out = tmp_path / f"r{len(extra)}.json"
        r = lowbit("eval", models / "q8", "--ref", models / "f32", "--text", TEXT, "--ctx", "256",
                   "--max-tokens", "1024", "--threads", "1", "--json", out, *extra, env=env)
        assert r.returncode == 0, r.stderr
        kl[len(extra)] = json.loads(out.read_text())["kl_mean"]["value"]
    if x86:
        assert kl[1] < kl[0]  # activation rounding is part of the int8 figure only
    else:
        assert kl[1] <= kl[0]
