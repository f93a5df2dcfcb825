#!/usr/bin/env python3
"""lowbit's fp32 logits against llama.cpp's own on tiny random models of each family it was
checked against only through numpy transcriptions in the tests: Phi-3/Phi-4-mini (partial RoPE,
LongRoPE long and short factors), SmolLM3, Granite, Qwen3-MoE, Mixtral and Granite MoE.

  .venv-bench/bin/python bench/crosscheck_llamacpp.py [--build build] [--work /tmp/lowbit-crosscheck]

Each model: tests/tools/make_hf_model.py on the family's real config scaled down (2-4 layers,
hidden 128, 4 heads, vocab 512: heads x head_dim = hidden, as llama.cpp's phi3 requires), F32
weights, stories260K's SentencePiece vocabulary; tests/tools/hf_to_gguf.py writes its GGUF as
llama.cpp's converter does. lowbit converts that GGUF at --bits 32 and prints `lowbit logits` of 40
ids; llama.cpp (llama-cpp-python, built by bench/compare_llamacpp.py's set-up into .venv-bench)
evaluates the same ids with logits for every position. Printed per model: the largest |difference|
over the largest |logit| of a position, worst position, and the share of positions whose argmax
agrees. llama.cpp keeps its KV cache in f16, which sets a floor near 3e-4. Not part of CI.
Phi-3-mini runs without its window: llama.cpp turns Phi's window off (its PR 13676).
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "tests" / "tools"))
import make_hf_model  # noqa: E402

LONGROPE = {"type": "longrope", "long_factor": np.geomspace(1.0, 40.0, 12).round(4).tolist(),
            "short_factor": np.linspace(1.0, 1.6, 12).round(4).tolist()}
IDS = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}
# name -> (config, config edits, head_dim, layers, context for both runtimes (None: the file's))
CASES = {
    "phi3-mini": ("phi-3-mini-4k-instruct", {"sliding_window": None}, None, 2, None),
    # A context of 64 past a trained 16: the long factors; 256 within 512: the short ones (llama.cpp
    # rounds its context up to 256).
    "phi4-mini-long": ("phi-4-mini-instruct", {"max_position_embeddings": 64, "original_max_position_embeddings": 16,
                                               "rope_scaling": LONGROPE, **IDS}, 32, 2, 64),
    "phi4-mini-short": ("phi-4-mini-instruct", {"max_position_embeddings": 2048,
                                                "original_max_position_embeddings": 512, "rope_scaling": LONGROPE,
                                                **IDS}, 32, 2, 256),
    "smollm3": ("smollm3-3b", {}, None, 4, None),
    "granite": ("granite-3.3-2b-instruct", {}, None, 4, None),
    "qwen3moe": ("qwen3-30b-a3b", {"num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                                   "bos_token_id": 1, "eos_token_id": 2}, 32, 4, None),
    "mixtral": ("mixtral-8x7b-instruct", {}, None, 4, None),
    "granite-moe": ("granite-3.1-3b-a800m-instruct", {"num_local_experts": 8, "num_experts_per_tok": 2}, None, 4,
                    None),
}


def llama_logits(gguf, ids, ctx):
    """Runs inside .venv-bench: llama.cpp's logits of every position."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=ctx, logits_all=True, verbose=False, n_threads=2)
    llm.eval(ids)
    return np.asarray(llm.scores[: len(ids)], dtype=np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--work", default="/tmp/lowbit-crosscheck")
    ap.add_argument("--llama-worker", nargs=4, help=argparse.SUPPRESS)  # GGUF IDS_JSON CTX OUT
    a = ap.parse_args()
    if a.llama_worker:
        g, ids, ctx, out = a.llama_worker
        llama_logits(g, json.loads(ids), int(ctx)).tofile(out)
        return
    lowbit = Path(a.build) / "lowbit"
    work = Path(a.work)
    for name, (config, edit, head_dim, layers, ctx) in CASES.items():
        d = work / name
        hf = make_hf_model.make_model(d / "hf", ROOT / "tests" / "data" / "configs" / config, layers=layers, dim=128,
                                      ffn=96, heads=4, kv_heads=2, vocab=512, head_dim=head_dim, dtype="F32", seed=9,
                                      tokenizer=False, config_edit=edit)
        (hf / "tokenizer.model").write_bytes((SHARED / "models" / "stories260K" / "tokenizer.model").read_bytes())
        g = d / "m.gguf"
        subprocess.run([sys.executable, str(ROOT / "tests" / "tools" / "hf_to_gguf.py"), str(hf), str(g), "--spm-vocab"],
                       check=True)
        subprocess.run([str(lowbit), "convert", str(g), str(d / "m"), "--bits", "32", "--force"], check=True,
                       capture_output=True)
        ids = [1] + np.random.default_rng(3).integers(3, 512, size=39).tolist()
        ctx_args = ["--ctx", str(ctx)] if ctx else []
        subprocess.run([str(lowbit), "logits", str(d / "m"), "--ids", " ".join(map(str, ids)), "--out",
                        str(d / "lowbit.f32"), *ctx_args], check=True, capture_output=True)
        subprocess.run([sys.executable, __file__, "--llama-worker", str(g), json.dumps(ids), str(ctx or 64),
                        str(d / "llama.f32")], check=True)
        lb = np.fromfile(d / "lowbit.f32", dtype=np.float32).reshape(len(ids), -1)
        ll = np.fromfile(d / "llama.f32", dtype=np.float32).reshape(len(ids), -1)
        rel = np.abs(lb - ll).max(axis=1) / np.abs(ll).max(axis=1)
        print(f"{name}: relative difference {rel.max():.2e} (position {rel.argmax()}), "
              f"argmax agrees at {(lb.argmax(1) == ll.argmax(1)).mean():.0%} of {len(ids)} positions", flush=True)


if __name__ == "__main__":
    main()
