"""`lowbit serve` under load: many clients at once get what each would get alone, a client that
leaves frees its slot, a full queue answers 503, and memory stays flat over many requests.

The reference for each concurrent answer is the same request sent alone to the same server (the
scheduler promises a sequence's tokens do not depend on what shares its steps: runtime/batch.h).
"""

import concurrent.futures as cf
import json
import threading
import time

import httpx
import ollama
import openai
import pytest

from serve_util import SMOL, STORY, rss_kib, skip_unless_ready, start, wait_until

pytestmark = skip_unless_ready

PROMPTS = ["Why is the sky blue?", "Name three animals.", "What is rust?", "Tell me a joke.",
           "Write a haiku about snow.", "What is 7 times 8?", "Describe a cat.", "Where is Paris?"]


def request(i):
    """Sixteen different requests: routes, prompts, lengths, stop strings, greedy and seeded."""
    kind = i % 4
    n = 6 + i % 5
    prompt = PROMPTS[i % len(PROMPTS)]
    if kind == 0:
        return ("generate", dict(model=SMOL, prompt=prompt, options={"temperature": 0, "num_predict": n}))
    if kind == 1:
        return ("chat", dict(model=SMOL, messages=[{"role": "user", "content": prompt}],
                             options={"temperature": 0, "num_predict": n, "repeat_penalty": 1.3}))
    if kind == 2:
        return ("openai", dict(model=SMOL, messages=[{"role": "user", "content": prompt}], max_tokens=n,
                               temperature=0, stop=["\n\n"]))
    return ("generate", dict(model=STORY, prompt="Once upon a time " + prompt,
                             options={"seed": i, "temperature": 0.9, "num_predict": 3 * n}))


def run(server, i, stream):
    kind, kw = request(i)
    if kind == "openai":
        c = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
        if stream:
            return "".join(ch.choices[0].delta.content or "" for ch in
                           c.chat.completions.create(**kw, stream=True) if ch.choices)
        return c.chat.completions.create(**kw).choices[0].message.content
    oc = ollama.Client(host=server.url)
    if kind == "chat":
        if stream:
            return "".join(p.message.content for p in oc.chat(**kw, stream=True))
        return oc.chat(**kw).message.content
    if stream:
        return "".join(p.response for p in oc.generate(**kw, stream=True))
    return oc.generate(**kw).response


def test_sixteen_clients_at_once_each_as_alone():
    s = start("--parallel", "8", "--queue", "32")
    try:
        alone = [run(s, i, stream=False) for i in range(16)]
        assert all(a for a in alone), alone
        with cf.ThreadPoolExecutor(16) as pool:
            together = list(pool.map(lambda i: run(s, i, stream=i % 2 == 0), range(16)))
        for i in range(16):
            assert together[i] == alone[i], (i, request(i), together[i], alone[i])
    finally:
        assert s.stop() == 0, s.stderr()


def test_disconnect_frees_the_slot_and_a_full_queue_answers_503():
    s = start("--parallel", "1", "--queue", "1")
    try:
        long = {"model": SMOL, "prompt": "Write a long story about a dragon.", "options": {"num_predict": 400, "temperature": 0}}
        s.post("/api/generate", {"model": SMOL, "prompt": ""})  # loaded before the clock starts
        with httpx.Client(timeout=60) as a, httpx.Client(timeout=60) as b:
            with a.stream("POST", s.url + "/api/generate", json=long) as ra:
                lines = ra.iter_lines()  # kept: a dropped iterator closes the response
                next(lines)  # the first piece: it holds the one slot
                assert s.metric("lowbit_requests_running", SMOL) == 1
                def hold():
                    try:
                        b.post(s.url + "/api/generate", json=long)
                    except httpx.HTTPError:
                        pass  # closed below, on purpose

                holder = threading.Thread(target=hold)
                holder.daemon = True
                holder.start()  # the one queue place
                assert wait_until(lambda: s.metric("lowbit_requests_waiting", SMOL) == 1)
                full = s.post("/api/generate", {**long, "stream": False})
                assert full.status_code == 503 and full.headers.get("Retry-After")
                assert "busy" in full.json()["error"]
                oa = s.post("/v1/chat/completions", {"model": SMOL, "messages": [{"role": "user", "content": "x"}]})
                assert oa.status_code == 503 and oa.json()["error"]["message"]
            # Client a is gone: its sequence is cancelled, long before its 400 tokens.
            t0 = time.time()
            b.close()  # and b, waiting or just admitted, goes too
        assert wait_until(lambda: s.metric("lowbit_requests_running", SMOL) == 0
                          and s.metric("lowbit_requests_waiting", SMOL) == 0, timeout=30)
        assert time.time() - t0 < 30
        assert s.metric("lowbit_requests_cancelled_total") >= 1
        assert s.metric("lowbit_kv_cache_bytes", SMOL) == 0
        # And it still serves.
        r = s.post("/api/generate", {"model": SMOL, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}})
        assert r.status_code == 200 and r.json()["eval_count"] == 2
    finally:
        assert s.stop() == 0, s.stderr()


def test_rss_flat_over_200_sequential_requests():
    s = start("--parallel", "2")
    try:
        oc = ollama.Client(host=s.url)
        # Each request's KV cache is sized for 400 new tokens (about 0.5 MB), the stop string ends
        # it after a sentence: a cache or sequence left behind per request would show.
        def one(i):
            r = oc.generate(model=STORY, prompt=f"Once upon a time {i}", options={"num_predict": 400, "stop": ["."],
                                                                                   "seed": i})
            assert r.done
        for i in range(20):
            one(i)
        before = rss_kib(s.proc.pid)
        for i in range(200):
            one(i)
        after = rss_kib(s.proc.pid)
        # 200 leaked caches would be ~100 MiB; allocator slack is a few MiB.
        assert after - before < 16 * 1024, (before, after)
    finally:
        assert s.stop() == 0, s.stderr()


def test_sigterm_ends_running_streams_and_exits_cleanly():
    s = start()
    body = {"model": SMOL, "prompt": "Write a long story.", "options": {"num_predict": 2000, "temperature": 0}}
    lines = []

    def client():
        with httpx.stream("POST", s.url + "/api/generate", json=body, timeout=60) as r:
            for line in r.iter_lines():
                lines.append(json.loads(line))

    t = threading.Thread(target=client)
    t.start()
    assert wait_until(lambda: len(lines) >= 3, timeout=60)
    t0 = time.time()
    assert s.stop() == 0, s.stderr()
    assert time.time() - t0 < 10  # not the 80 s the 2000 tokens would take
    t.join(timeout=10)
    assert "shutting down" in lines[-1]["error"]


def test_sigterm_does_not_wait_out_idle_keep_alive_connections():
    s = start()
    # Two clients holding idle connections open after a request, as the official clients do.
    with httpx.Client(timeout=60) as a, httpx.Client(timeout=60) as b:
        assert a.get(s.url + "/api/tags").status_code == 200
        assert b.get(s.url + "/api/version").status_code == 200
        t0 = time.time()
        assert s.stop() == 0, s.stderr()
        # Each would hold a worker for the server's keep-alive timeout, 5 s (server/server.cc).
        assert time.time() - t0 < 4


def test_an_sse_client_that_leaves_while_queued_frees_its_queue_place():
    s = start("--parallel", "1", "--queue", "1")
    try:
        long = {"model": SMOL, "prompt": "Write a long story about a dragon.",
                "options": {"num_predict": 1000, "temperature": 0}}  # 25 s or more
        with httpx.Client(timeout=60) as a:
            with a.stream("POST", s.url + "/api/generate", json=long) as ra:
                lines = ra.iter_lines()
                next(lines)  # a holds the one slot
                with httpx.Client(timeout=60) as b:
                    body = {"model": SMOL, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
                    with b.stream("POST", s.url + "/v1/chat/completions", json=body) as rb:
                        next(rb.iter_lines())  # the role chunk: b is queued
                        assert wait_until(lambda: s.metric("lowbit_requests_waiting", SMOL) == 1)
                # b is gone; its SSE keep-alive comment fails within about a second, while a still runs.
                assert wait_until(lambda: s.metric("lowbit_requests_waiting", SMOL) == 0, timeout=10)
                assert s.metric("lowbit_requests_running", SMOL) == 1
    finally:
        assert s.stop() == 0, s.stderr()
