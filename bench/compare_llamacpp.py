#!/usr/bin/env python3
"""lowbit against llama.cpp on this host, side by side: prompt and generation tokens/s of the same
weights, the two runtimes alternated in one run, printed as one ratio table.

  bench/compare_llamacpp.py [--build build] [--work /tmp/lowbit-vs-llamacpp] [--reps 3]
                            [--prompt 512] [--gen 128] [--threads 2] [--models tinyllama,smollm2]

llama.cpp comes from PyPI: `llama-cpp-python` (pinned below) builds its vendored llama.cpp from
source into a bench-only virtual environment (.venv-bench, ~15 minutes on 2 cores, once) for this
CPU (GGML_NATIVE); on GCC 12 with AMX the AMX instructions are turned off, since llama.cpp's AMX
path crashes when GCC 12 builds it (llama.cpp issue 20824). The script then runs itself under that
environment. Not part of CI.

Models:
- tinyllama: random TinyLlama-1.1B-shaped weights (tests/tools/make_hf_model.py, F16), written
  both as the HF directory lowbit converts and, through tests/tools/hf_to_gguf.py, as an F16 GGUF
  that llama.cpp's own quantizer (llama_model_quantize) turns into Q4_0 and Q8_0. lowbit runs
  those very GGUF files (imported: Q4_0/Q8_0 tensors kept bit for bit, llama.cpp's Q6_K output
  requantized to q8) and its own conversion of the HF directory (--bits 4: q4_g32_asym; --bits 8).
- smollm2: the real SmolLM2-135M-Instruct Q4_1 GGUF of ../shared/models, run by both as it is.
- qwen3moe (not in the default list): a mixture of experts of Qwen3-30B-A3B's layer shape, fewer
  layers and experts (prepare_qwen3moe), llama.cpp's Q4_0 against lowbit's --bits 4.

Timing: lowbit through `lowbit bench model MODEL --prompt-len P --gen-len G --reps 1 --json`
(a DRAM read probe pass, then a P-token prompt in one batch, then G tokens one at a time);
llama.cpp through llama_cpp.Llama.eval of the same number of fixed pseudo-random token ids (a
P-token prompt in one batch of P, then G single-token evals), after one warm-up of 16 tokens.
Neither samples. Per repetition every pair runs back to back, so a neighbour's load moves both
sides of a ratio; the table gives each side's median and the range of the per-repetition ratios.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LOWBIT_SHARED_DIR", ROOT.parent / "shared"))
VENV = ROOT / ".venv-bench"
LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
BENCH_PACKAGES = [LLAMA_CPP_PYTHON, "gguf", "numpy", "safetensors", "sentencepiece"]
SMOLLM2_GGUF = SHARED / "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
# llama_ftype values (llama.h) for llama_model_quantize.
LLAMA_FTYPE = {"Q4_0": 2, "Q8_0": 7}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    """A step of the set-up; its output goes to stderr, so stdout is the table alone."""
    log("+", " ".join(str(c) for c in cmd))
    if "capture_output" not in kw:
        kw.setdefault("stdout", sys.stderr)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


# --avx2: llama.cpp built for AVX2-class CPUs (no AVX-512, no VNNI) in its own environment, and
# lowbit run with --isa avx2: what a Zen 3-class user gets from each, measured on whatever host
# this is (its caches and memory stay this host's).
AVX2_ARGS = ["-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON",
             "-DGGML_BMI2=ON", "-DGGML_AVX512=OFF", "-DGGML_AVX_VNNI=OFF", "-DGGML_CUDA=OFF"]


def venv_dir(avx2):
    return ROOT / ".venv-bench-avx2" if avx2 else VENV


def cmake_args(avx2=False):
    """A native build (or an AVX2-only one); AMX off where GCC 12 would build llama.cpp's crashing
    AMX path."""
    if avx2:
        return list(AVX2_ARGS)
    args = ["-DGGML_NATIVE=ON", "-DGGML_CUDA=OFF"]
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    gcc = subprocess.run(["gcc", "-dumpversion"], capture_output=True, text=True).stdout.strip()
    if "amx_tile" in flags and gcc.split(".")[0] == "12":
        no_amx = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
        args += [f"-DCMAKE_C_FLAGS={no_amx}", f"-DCMAKE_CXX_FLAGS={no_amx}"]
    return args


def ensure_venv(avx2=False):
    venv = venv_dir(avx2)
    py = venv / "bin/python"
    if py.exists() and subprocess.run([py, "-c", "import llama_cpp, gguf, sentencepiece, safetensors"],
                                      capture_output=True).returncode == 0:
        return py
    if not py.exists():
        run([sys.executable, "-m", "venv", venv])
    env = dict(os.environ, CMAKE_ARGS=" ".join(cmake_args(avx2)),
               CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
    log("building llama.cpp through", LLAMA_CPP_PYTHON, "with CMAKE_ARGS:", env["CMAKE_ARGS"])
    run([py, "-m", "pip", "install", "--no-cache-dir", *BENCH_PACKAGES], env=env)
    return py


# ---- llama.cpp side (runs inside .venv-bench) -------------------------------------------------

def llama_time(gguf_path, prompt, gen, threads, flash_attn=False, seed=1):
    """Prompt and generation tokens/s of llama.cpp on one GGUF file."""
    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(model_path=str(gguf_path), n_ctx=prompt + gen + 32, n_batch=prompt,
                          n_ubatch=prompt, n_threads=threads, n_threads_batch=threads, flash_attn=flash_attn,
                          verbose=False)
    vocab = llm.n_vocab()
    ids = np.random.default_rng(seed).integers(16, vocab, size=prompt + gen).tolist()
    llm.eval(ids[:16])  # warm-up: pages the weights in, starts the threads
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids[:prompt])
    t1 = time.perf_counter()
    for t in ids[prompt:]:
        llm.eval([t])
    t2 = time.perf_counter()
    return {"prompt_tokens_per_s": prompt / (t1 - t0), "gen_tokens_per_s": gen / (t2 - t1)}


def llama_quantize(src, dst, ftype):
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = LLAMA_FTYPE[ftype]
    params.nthread = os.cpu_count() or 2
    if llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params) != 0:
        raise SystemExit(f"llama_model_quantize failed: {src} -> {dst} ({ftype})")


def llama_version():
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    return f"llama-cpp-python {llama_cpp.__version__}; {info.strip()}"


# ---- lowbit side ------------------------------------------------------------------------------

def lowbit_time(lowbit, model, prompt, gen, threads, isa=None):
    out = subprocess.run([str(lowbit), "bench", "model", str(model), "--prompt-len", str(prompt),
                          "--gen-len", str(gen), "--reps", "1", "--threads", str(threads), "--json",
                          *(["--isa", isa] if isa else [])],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def prepare_tinyllama(work, lowbit, py):
    """The HF directory, llama.cpp's Q4_0/Q8_0 GGUFs of it and lowbit's conversions of both."""
    hf, f16 = work / "tinyllama-hf", work / "tinyllama-f16.gguf"
    tools = ROOT / "tests/tools"
    if not (hf / "config.json").exists():
        run([py, tools / "make_hf_model.py", hf, "--config", "tinyllama-1.1b-chat-v1.0", "--dtype", "F16"])
    if not f16.exists():
        run([py, tools / "hf_to_gguf.py", hf, str(f16) + ".part", "--type", "F16", "--spm-vocab"])
        os.replace(str(f16) + ".part", f16)
    pairs = []
    for bits, ftype in ((4, "Q4_0"), (8, "Q8_0")):
        g = work / f"tinyllama-{ftype.lower()}.gguf"
        if not g.exists():
            llama_quantize(f16, str(g) + ".part", ftype)
            os.replace(str(g) + ".part", g)
        imported, own = work / f"lowbit-{ftype.lower()}", work / f"lowbit-q{bits}"
        if not (imported / "manifest.json").exists():
            run([lowbit, "convert", g, imported, "--force"])
        if not (own / "manifest.json").exists():
            # rtn: the type (and so the speed) is what --bits gives; the search quantizer would take
            # ~15 minutes here for the same bytes.
            run([lowbit, "convert", hf, own, "--bits", bits, "--quantizer", "rtn", "--force"])
        pairs.append((f"TinyLlama shape, {ftype} file, both runtimes", imported, g))
        pairs.append((f"TinyLlama shape, lowbit --bits {bits} vs {ftype}", own, g))
    return pairs


def prepare_qwen3moe(work, lowbit, py):
    """A mixture of experts of Qwen3-30B-A3B's layer shape (hidden 2048, 32 heads of 128 with 4 KV
    heads, experts of 768 with 8 chosen per token) on 12 layers of 32 experts and a 32000-token
    vocabulary (2.2B weights, 0.5B active per token), random F16 weights: llama.cpp's Q4_0 of
    its GGUF and lowbit's --bits 4 of the HF directory."""
    hf, f16, g = work / "qwen3moe-hf", work / "qwen3moe-f16.gguf", work / "qwen3moe-q4_0.gguf"
    tools = ROOT / "tests/tools"
    if not (hf / "config.json").exists():
        edit = {"num_experts": 32, "num_experts_per_tok": 8, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
        run([py, tools / "make_hf_model.py", hf, "--config", ROOT / "tests/data/configs/qwen3-30b-a3b", "--layers", 12,
             "--vocab", 32000, "--dtype", "F16", "--config-edit", json.dumps(edit)])
        (hf / "tokenizer.model").write_bytes((SHARED / "models/configs/llama-2-7b-hf/tokenizer.model").read_bytes())
    if not g.exists():
        if not f16.exists():
            run([py, tools / "hf_to_gguf.py", hf, str(f16) + ".part", "--type", "F16", "--spm-vocab"])
            os.replace(str(f16) + ".part", f16)
        llama_quantize(f16, str(g) + ".part", "Q4_0")
        os.replace(str(g) + ".part", g)
        f16.unlink()
    own = work / "lowbit-qwen3moe-q4"
    if not (own / "manifest.json").exists():
        run([lowbit, "convert", hf, own, "--bits", 4, "--quantizer", "rtn", "--force"])
    return [("Qwen3-MoE layer shape, lowbit --bits 4 vs Q4_0", own, g)]


def cpu_model():
    """lscpu's model name, family and model number, as bench/README.md records hosts."""
    info = open("/proc/cpuinfo").read()
    field = lambda key: (re.search(rf"^{key}\s*:\s*(.+)$", info, re.M) or [None, "?"])[1].strip()
    return f"{field('model name')} (family {field('cpu family')}, model {field('model')})"


def median(v):
    s = sorted(v)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build"), help="lowbit build directory (holds `lowbit`)")
    ap.add_argument("--work", default="/tmp/lowbit-vs-llamacpp", help="models are written and reused here")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="tinyllama,smollm2")
    ap.add_argument("--llama-flash-attn", action="store_true",
                    help="llama.cpp with its flash attention (llama_cpp.Llama's default is off)")
    ap.add_argument("--avx2", action="store_true",
                    help="both sides on AVX2-class kernels: llama.cpp built without AVX-512/VNNI (in "
                         ".venv-bench-avx2), lowbit with --isa avx2")
    ap.add_argument("--llama-worker", nargs=4, metavar=("GGUF", "PROMPT", "GEN", "THREADS"), help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.llama_worker:  # one llama.cpp timing in a fresh process, as lowbit gets
        g, p, n, t = a.llama_worker
        print(json.dumps(llama_time(g, int(p), int(n), int(t), a.llama_flash_attn)))
        return
    py = ensure_venv(a.avx2)
    if Path(sys.prefix).resolve() != venv_dir(a.avx2).resolve():
        os.execv(str(py), [str(py), __file__, *sys.argv[1:]])

    lowbit = Path(a.build) / "lowbit"
    if not lowbit.exists():
        raise SystemExit(f"{lowbit}: not built (cmake --build {a.build} --target lowbit_cli)")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    pairs = []
    models = a.models.split(",")
    if "tinyllama" in models:
        pairs += prepare_tinyllama(work, lowbit, py)
    if "qwen3moe" in models:
        pairs += prepare_qwen3moe(work, lowbit, py)
    if "smollm2" in models:
        pairs.append(("SmolLM2-135M-Instruct Q4_1 (real weights)", SMOLLM2_GGUF, SMOLLM2_GGUF))

    rows = {label: {"lb": [], "ll": [], "dram": []} for label, _, _ in pairs}
    for rep in range(a.reps):
        for label, lb_model, gguf in pairs:
            lb = lowbit_time(lowbit, lb_model, a.prompt, a.gen, a.threads, "avx2" if a.avx2 else None)
            fa = ["--llama-flash-attn"] if a.llama_flash_attn else []
            ll = json.loads(subprocess.run([str(py), __file__, *fa, "--llama-worker", str(gguf), str(a.prompt), str(a.gen),
                                            str(a.threads)], check=True, capture_output=True, text=True).stdout)
            rows[label]["lb"].append(lb)
            rows[label]["ll"].append(ll)
            log(f"rep {rep + 1}/{a.reps} {label}: lowbit pp {lb['prompt_tokens_per_s']:.1f} tg {lb['gen_tokens_per_s']:.1f}"
                f" | llama.cpp pp {ll['prompt_tokens_per_s']:.1f} tg {ll['gen_tokens_per_s']:.1f}")

    print(f"host: {cpu_model()}, {a.threads} threads; {llama_version()}"
          f"{'; AVX2-only on both sides (lowbit --isa avx2)' if a.avx2 else ''}"
          f"{', llama.cpp flash attention on' if a.llama_flash_attn else ''}")
    print(f"prompt {a.prompt} tokens, generation {a.gen} tokens, {a.reps} alternated repetitions; "
          "tokens/s medians, ratio = lowbit / llama.cpp per repetition (min-max)\n")
    print("| model | measure | lowbit | llama.cpp | ratio |")
    print("|---|---|---|---|---|")
    for label, _, _ in pairs:
        r = rows[label]
        for key, name in (("prompt_tokens_per_s", f"prompt {a.prompt}"), ("gen_tokens_per_s", f"generation {a.gen}")):
            lb = [x[key] for x in r["lb"]]
            ll = [x[key] for x in r["ll"]]
            ratios = [x / y for x, y in zip(lb, ll)]
            print(f"| {label} | {name} | {median(lb):.1f} | {median(ll):.1f} | {min(ratios):.2f}-{max(ratios):.2f}x |")
    dram = [x["dram_read_gbps"] for r in rows.values() for x in r["lb"]]
    print(f"\nDRAM read probe (lowbit's, before each lowbit run): {min(dram):.1f}-{max(dram):.1f} GB/s")


if __name__ == "__main__":
    main()
