#!/usr/bin/env python3
"""Two CPU kernel sets (ISAs) of one build, side by side: every measurement alternates between
them in the same run, so a neighbour on a shared host slows both sides of a ratio, not one.
Prints, per case, each ISA's figures and the ratio second/first of every alternated pair.

  bench/isa_ab.py matmul --types q8_g32_sym,q4_g32_asym --m 1,512        # lowbit bench matmul
  bench/isa_ab.py core --types q8_g32_sym,q4_g32_asym                     # matmul_bench core/
  bench/isa_ab.py model /tmp/tl_q4 --prompt-len 512 --gen-len 64         # lowbit bench model

Defaults: --isas avx2,avx512, --reps 3, --threads 2, --build build. The matmul shape is
N = 14336 x K = 4096 (bench/README.md's). Decode (M = 1) reports G weights/s and the fraction
of the same-run DRAM probe, prefill GFLOP/s and the fraction of the same-run FMA probe; the
ratio column compares those fractions (matmul) or the rates (core, model).
"""
import argparse
import json
import os
import re
import subprocess
import sys


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out[out.index("{"):])


def matmul_case(a, isa, t, m):
    cmd = [f"{a.build}/lowbit", "bench", "matmul", "--type", t, "--m", str(m), "--n", "14336", "--k", "4096",
           "--threads", str(a.threads), "--isa", isa, "--json"]
    if m > 1:
        cmd += ["--reps", "3"]
    j = run_json(cmd)
    # Compared by the fraction of the probe taken in the same round: on a shared host the
    # absolute rates of two runs a minute apart can differ several-fold.
    if m == 1:
        return j["ratio_to_dram"], f"{j['weights_per_s'] / 1e9:.1f} Gw/s ({j['ratio_to_dram']:.2f} of DRAM)"
    return j["ratio_to_fma_peak"], f"{j['gflops']:.0f} GFLOP/s ({j['ratio_to_fma_peak']:.2f} of FMA)"


def core_cases(a, isa):
    filt = a.filter or "core/(" + "|".join(re.escape(t) for t in a.types) + ")/m:(1|32)/n:128/k:4096$"
    env = dict(os.environ, LOWBIT_ISA=isa)
    j = run_json([f"{a.build}/bench/matmul_bench", f"--benchmark_filter={filt}", "--benchmark_min_time=0.2",
                  "--benchmark_format=json"], env)
    out = {}
    for b in j["benchmarks"]:
        key = "weights_per_s" if "/m:1/" in b["name"] else "gflops"
        v = b[key] / 1e9 if key == "weights_per_s" else b[key]
        out[b["name"]] = (v, f"{v:.1f} {'Gw/s' if key == 'weights_per_s' else 'GFLOP/s'}")
    return out


def model_case(a, isa):
    j = run_json([f"{a.build}/lowbit", "bench", "model", a.model, "--prompt-len", str(a.prompt_len), "--gen-len",
                  str(a.gen_len), "--reps", "1", "--threads", str(a.threads), "--isa", isa, "--json"])
    p, g = j["prompt_tokens_per_s"], j["gen_tokens_per_s"]
    return {"prompt": (p, f"{p:.1f} tok/s"), "generation": (g, f"{g:.1f} tok/s ({j.get('ratio_to_dram', 0):.2f} of DRAM)")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["matmul", "core", "model"])
    ap.add_argument("model", nargs="?", help="model directory (mode model)")
    ap.add_argument("--isas", default="avx2,avx512")
    ap.add_argument("--types", default="q8_g32_sym,q4_g32_asym,q2_g32_asym,q1_g32_asym")
    ap.add_argument("--m", default="1,512")
    ap.add_argument("--filter", help="mode core: a --benchmark_filter instead of --types (e.g. 'core/q8_g32_sym/m:128/')")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", default="build")
    ap.add_argument("--prompt-len", type=int, default=512)
    ap.add_argument("--gen-len", type=int, default=64)
    a = ap.parse_args()
    a.types = a.types.split(",")
    isas = a.isas.split(",")
    if a.mode == "model" and not a.model:
        ap.error("mode model needs a model directory")

    results = {}  # case -> isa -> [(value, text)]
    for rep in range(a.reps):
        for isa in isas:
            if a.mode == "matmul":
                got = {f"{t} M={m}": matmul_case(a, isa, t, int(m)) for t in a.types for m in a.m.split(",")}
            elif a.mode == "core":
                got = core_cases(a, isa)
            else:
                got = model_case(a, isa)
            for case, v in got.items():
                results.setdefault(case, {}).setdefault(isa, []).append(v)
            print(f"rep {rep + 1} {isa}: " + "; ".join(f"{c} {v[1]}" for c, v in got.items()), file=sys.stderr, flush=True)

    print(f"| case | {' | '.join(isas)} | {isas[-1]} / {isas[0]} |")
    print("|---|" + "---|" * (len(isas) + 1))
    for case, by in results.items():
        cols = [", ".join(t for _, t in by.get(i, [])) for i in isas]
        ratios = [n[0] / b[0] for b, n in zip(by.get(isas[0], []), by.get(isas[-1], [])) if b[0] > 0]
        r = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"
        print(f"| {case} | {' | '.join(cols)} | {r} |")


if __name__ == "__main__":
    main()
