#!/usr/bin/env python3
"""Load generator for `lowbit serve`: aggregate tokens/s, time to first token and inter-token
latency (p50/p99) at several numbers of concurrent streaming clients, on loopback.

    .venv/bin/python bench/serve_load.py [--model PATH] [--clients 1,4,8,16] [--tokens 64]
        [--requests-per-client 2] [--threads 2] [--json]

Starts build/lowbit serve (--parallel = the largest client count, --threads as given) with a
temporary model store holding the model (SmolLM2-135M-Instruct's GGUF from ../shared/models by
default), then for each client count runs that many threads, each sending streaming
/api/generate requests one after another (greedy, num_predict = --tokens, a different prompt per
client). Per request: TTFT = from sending to the first streamed piece; inter-token latency = the
gaps between consecutive pieces. Aggregate tokens/s = all generated tokens (eval_count) / the
wall time of that client count's run.
"""

import argparse
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import httpx

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

PROMPTS = ["Write a short story about a robot learning to paint.", "Explain how rain forms.",
           "Describe the city of Paris to a child.", "What are the rules of chess?",
           "Give advice to a new gardener.", "Why do cats purr?", "Tell me about the moon landing.",
           "How does a bicycle stay upright?", "What is the water cycle?", "Describe a perfect breakfast.",
           "How do bees make honey?", "What is a black hole?", "Write a poem about the sea.",
           "Explain photosynthesis simply.", "What makes a good friend?", "Describe a thunderstorm."]


def pct(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def one_request(url, prompt, tokens):
    body = {"model": "bench", "prompt": prompt, "options": {"temperature": 0, "num_predict": tokens}}
    t0 = time.perf_counter()
    first, last, gaps, count = None, None, [], 0
    with httpx.Client(timeout=600) as c, c.stream("POST", url + "/api/generate", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line:
                continue
            j = json.loads(line)
            now = time.perf_counter()
            if j.get("done"):
                count = j["eval_count"]
                break
            if first is None:
                first = now - t0
            else:
                gaps.append(now - last)
            last = now
    return first, gaps, count


def run_level(url, clients, per_client, tokens):
    ttft, itl, total = [], [], [0]
    lock = threading.Lock()

    def client(i):
        for k in range(per_client):
            f, g, n = one_request(url, PROMPTS[(i + k) % len(PROMPTS)], tokens)
            with lock:
                ttft.append(f)
                itl.extend(g)
                total[0] += n

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"clients": clients, "requests": clients * per_client, "tokens": total[0], "seconds": wall,
            "tokens_per_s": total[0] / wall, "ttft_p50_ms": 1e3 * pct(ttft, 50), "ttft_p99_ms": 1e3 * pct(ttft, 99),
            "itl_p50_ms": 1e3 * pct(itl, 50), "itl_p99_ms": 1e3 * pct(itl, 99)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(next((SHARED / "models" / "smollm2-135m-instruct").glob("*.gguf"), "")))
    ap.add_argument("--clients", default="1,4,8,16")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--requests-per-client", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bin", default=os.environ.get("LOWBIT_BIN", str(REPO / "build" / "lowbit")))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    levels = [int(x) for x in a.clients.split(",")]

    store = tempfile.mkdtemp(prefix="lowbit_bench_store_")
    proc = subprocess.Popen([a.bin, "serve", "--port", "0", "--models", store, "--threads", str(a.threads),
                             "--parallel", str(max(levels)), "--queue", str(4 * max(levels))],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = proc.stdout.readline().split("listening on ")[1].split(" ")[0]
        r = httpx.post(url + "/api/create", json={"model": "bench", "from": a.model, "stream": False}, timeout=600)
        r.raise_for_status()
        one_request(url, "Hello", 8)  # loaded and warm
        rows = [run_level(url, c, a.requests_per_client, a.tokens) for c in levels]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        subprocess.run(["rm", "-rf", store])
    load = os.getloadavg()
    if a.json:
        print(json.dumps({"model": a.model, "threads": a.threads, "tokens": a.tokens, "loadavg": load, "rows": rows}))
        return
    print(f"model {pathlib.Path(a.model).name}, {a.threads} threads, {a.tokens} tokens per request, "
          f"load average after {load[0]:.2f}")
    print("| clients | requests | tokens/s (aggregate) | TTFT p50 / p99 (ms) | inter-token p50 / p99 (ms) |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['clients']} | {r['requests']} | {r['tokens_per_s']:.1f} | {r['ttft_p50_ms']:.0f} / "
              f"{r['ttft_p99_ms']:.0f} | {r['itl_p50_ms']:.1f} / {r['itl_p99_ms']:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
