#!/usr/bin/env python3
"""What the prompt cache (`lowbit serve --prompt-cache`) saves a chat: one scripted conversation
of --turns user messages through /api/chat (greedy, --tokens per reply), against a server with
the cache (its default) and one without (--prompt-cache 0), alternated --reps times; per turn,
the prompt's tokens and the time from sending to the first streamed piece (TTFT), median over
the repetitions.

    .venv/bin/python bench/prompt_cache.py [--model PATH] [--turns 8] [--tokens 64] [--threads 2] [--reps 3]

Starts build/lowbit serve with a temporary model store holding the model (SmolLM2-135M-Instruct's
GGUF from ../shared/models by default). Both servers answer token for token alike (tests/python/
test_serve_api.py checks it), so the conversations, and so the prompts, are the same.
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import tempfile
import time

import httpx

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
QUESTIONS = ["Tell me about the city of Lyon.", "What is it famous for?", "How old is it?",
             "What should I eat there?", "Which museums should I visit?", "How do I get there from Paris?",
             "What is the weather like in spring?", "Summarize what you told me."]


def serve(store, *args):
    p = subprocess.Popen([str(REPO / "build" / "lowbit"), "serve", "--port", "0", "--models", str(store), *args],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    return p, line.split("listening on ")[1].split(" ")[0]


def conversation(url, turns, tokens):
    messages, out = [], []
    for q in (QUESTIONS * 4)[:turns]:
        messages.append({"role": "user", "content": q})
        body = {"model": "m", "messages": messages, "stream": True, "options": {"temperature": 0, "num_predict": tokens}}
        t0 = time.perf_counter()
        ttft, text, last = None, "", {}
        with httpx.stream("POST", url + "/api/chat", json=body, timeout=600) as r:
            for line in r.iter_lines():
                part = json.loads(line)
                if ttft is None and part.get("message", {}).get("content"):
                    ttft = time.perf_counter() - t0
                text += part.get("message", {}).get("content", "")
                last = part
        messages.append({"role": "assistant", "content": text})
        out.append((last["prompt_eval_count"], ttft))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(next((SHARED / "models" / "smollm2-135m-instruct").glob("*.gguf"))))
    ap.add_argument("--turns", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as store:
        subprocess.run([str(REPO / "build" / "lowbit"), "create", "m", a.model, "--models", store], check=True,
                       capture_output=True)
        results = {"cache": [], "none": []}
        for _ in range(a.reps):
            for name, args in (("cache", []), ("none", ["--prompt-cache", "0"])):
                p, url = serve(store, "--threads", str(a.threads), "--parallel", "1", *args)
                try:
                    conversation(url, 1, 4)  # load the model and warm up
                    results[name].append(conversation(url, a.turns, a.tokens))
                finally:
                    p.terminate()
                    p.wait()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"host: {cpu}; {a.reps} alternated repetitions, medians")
    print("| turn | prompt tokens | TTFT without cache (ms) | TTFT with cache (ms) | ratio |")
    print("|---|---|---|---|---|")
    for t in range(a.turns):
        n = results["cache"][0][t][0]
        without = statistics.median(r[t][1] for r in results["none"]) * 1e3
        with_ = statistics.median(r[t][1] for r in results["cache"]) * 1e3
        print(f"| {t + 1} | {n} | {without:.0f} | {with_:.0f} | {without / with_:.1f}x |")


if __name__ == "__main__":
    main()
