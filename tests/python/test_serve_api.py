"""`lowbit serve` through the official `ollama` and `openai` Python clients, unchanged.

What the answers are checked against comes from outside the server: the streamed pieces against
the same request unstreamed (same seed), token counts against `lowbit tokenize` of the prompt as
Python's jinja2 renders the model's template (which /api/show hands out), stop strings against
the text generated without them, /api/ps against what was asked to load and unload.
"""

import subprocess

import jinja2
import numpy as np
import ollama
import openai
import pytest

from serve_util import BIN, SMOL, SMOLLM2_GGUF, STORIES, STORY, skip_unless_ready, start, tokenize, wait_until

pytestmark = skip_unless_ready


@pytest.fixture(scope="module")
def server():
    s = start("--parallel", "4")
    yield s
    assert s.stop() == 0, s.stderr()


def render(server, messages):
    """The prompt as jinja2 renders SmolLM2's own template (as transformers' apply_chat_template)."""
    source = server.post("/api/show", {"model": SMOL}).json()["template"]
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(source).render(messages=messages, add_generation_prompt=True,
                                          bos_token="", eos_token="<|im_end|>")


# ---- the streamed pieces join to the unstreamed text (same seed) ----------------------------------
def test_generate_streamed_joins_to_unstreamed(oc):
    opts = {"seed": 42, "num_predict": 24, "temperature": 0.8}
    whole = oc.generate(model=SMOL, prompt="Why is the sky blue?", options=opts)
    parts = list(oc.generate(model=SMOL, prompt="Why is the sky blue?", options=opts, stream=True))
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    assert "".join(p.response for p in parts) == whole.response
    assert whole.response.strip()
    assert parts[-1].eval_count == whole.eval_count == 24 and whole.done_reason == "length"
    assert whole.prompt_eval_count == parts[-1].prompt_eval_count > 0
    for f in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert getattr(whole, f) is not None and getattr(whole, f) >= 0


def test_chat_streamed_joins_to_unstreamed(oc):
    msgs = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a fruit."}]
    opts = {"seed": 7, "num_predict": 16}
    whole = oc.chat(model=SMOL, messages=msgs, options=opts)
    parts = list(oc.chat(model=SMOL, messages=msgs, options=opts, stream=True))
    assert "".join(p.message.content for p in parts) == whole.message.content
    assert whole.message.role == "assistant" and whole.done


def test_openai_chat_streamed_joins_to_unstreamed(ai):
    kw = dict(model=SMOL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=16, seed=3,
              temperature=0.7)
    whole = ai.chat.completions.create(**kw)
    chunks = list(ai.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    # The same prompt the second time: all of it but its last token is read from the prompt
    # cache (the text above is still the same: the cache changes nothing but the work).
    streamed, unstreamed = chunks[-1].usage.model_dump(), whole.usage.model_dump()
    assert streamed.pop("prompt_tokens_details")["cached_tokens"] == streamed["prompt_tokens"] - 1
    unstreamed.pop("prompt_tokens_details")
    assert streamed == unstreamed


def test_openai_completion_streamed_joins_to_unstreamed(ai):
    kw = dict(model=SMOL, prompt="Once upon a time", max_tokens=12, seed=11, temperature=1.0)
    whole = ai.completions.create(**kw)
    chunks = list(ai.completions.create(**kw, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert whole.choices[0].finish_reason == "length"


# ---- usage counts equal the token counts ---------------------------------------------------------
def test_openai_chat_usage_counts_the_rendered_prompt(server, ai):
    msgs = [{"role": "user", "content": "What is 2 + 2?"}]
    r = ai.chat.completions.create(model=SMOL, messages=msgs, max_tokens=5, temperature=0)
    assert r.usage.prompt_tokens == len(tokenize(render(server, msgs), special=False))
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5
    assert r.usage.total_tokens == r.usage.prompt_tokens + 5


def test_completion_usage_counts_the_prompt(ai):
    prompt = "The quick brown fox jumps over the lazy dog"
    r = ai.completions.create(model=SMOL, prompt=prompt, max_tokens=4, temperature=0)
    assert r.usage.prompt_tokens == len(tokenize(prompt))
    assert r.usage.completion_tokens == 4


def test_ollama_chat_counts_the_rendered_prompt(server, oc):
    msgs = [{"role": "user", "content": "Hi there"}]
    r = oc.chat(model=SMOL, messages=msgs, options={"num_predict": 3, "temperature": 0})
    assert r.prompt_eval_count == len(tokenize(render(server, msgs), special=False))
    assert r.eval_count == 3


# ---- stop strings --------------------------------------------------------------------------------
def test_stop_strings_cut_the_text(oc, ai):
    opts = {"temperature": 0, "num_predict": 40}
    full = oc.generate(model=SMOL, prompt="List three colors:", options=opts).response
    words = full.split()
    assert len(words) > 6, full
    stop = words[len(words) // 2]
    cut = full[: full.index(stop)]
    r = oc.generate(model=SMOL, prompt="List three colors:", options={**opts, "stop": [stop]})
    assert r.response == cut and r.done_reason == "stop"
    streamed = "".join(p.response for p in oc.generate(model=SMOL, prompt="List three colors:",
                                                       options={**opts, "stop": [stop]}, stream=True))
    assert streamed == cut
    c = ai.completions.create(model=SMOL, prompt="List three colors:", max_tokens=40, temperature=0, stop=stop)
    # /v1/completions reads the prompt raw, /api/generate through the template: only the rule is shared.
    assert stop not in c.choices[0].text


# ---- loading and unloading -----------------------------------------------------------------------
def test_keep_alive_zero_unloads(server, oc):
    oc.generate(model=STORY, prompt="Once", options={"num_predict": 2}, keep_alive="5m")
    assert STORY in server.loaded()
    oc.generate(model=STORY, prompt="Once", options={"num_predict": 2}, keep_alive=0)
    assert STORY not in server.loaded()


def test_empty_prompt_loads_and_keep_alive_zero_unloads(server, oc):
    r = oc.generate(model=STORY, prompt="", keep_alive=-1)
    assert r.done and r.done_reason == "load"
    assert STORY in server.loaded()
    ps = server.get("/api/ps").json()["models"]
    assert [m["expires_at"] for m in ps if m["name"] == STORY][0].startswith("2318")
    r = oc.generate(model=STORY, prompt="", keep_alive=0)
    assert r.done_reason == "unload"
    assert STORY not in server.loaded()


def test_keep_alive_expires(server, oc):
    oc.generate(model=STORY, prompt="Once", options={"num_predict": 1}, keep_alive="1s")
    assert STORY in server.loaded()
    assert wait_until(lambda: STORY not in server.loaded(), timeout=10)


# ---- the model store routes ----------------------------------------------------------------------
def test_tags_show_ps(server, oc):
    names = [m.model for m in oc.list().models]
    assert SMOL in names and STORY in names
    show = oc.show(SMOL)
    assert "<|im_start|>" in show.template
    assert show.details.family
    oc.generate(model=SMOL.split(":")[0], prompt="Hi", options={"num_predict": 1})  # "smollm2"
    ps = oc.ps().models  # lists it by its full name, as Ollama does
    assert SMOL in [m.model for m in ps]
    assert all(m.size > 0 for m in ps)


def test_create_copy_delete(server, oc):
    oc.create(model="story-copy", from_=str(STORIES))
    assert "story-copy:latest" in [m.model for m in oc.list().models]
    oc.copy("story-copy", "story-copy2")
    assert "story-copy2:latest" in [m.model for m in oc.list().models]
    # Two names of one model share one load.
    oc.generate(model="story-copy2", prompt="Once", options={"num_predict": 1}, keep_alive="5m")
    oc.generate(model="story-copy", prompt="Once", options={"num_predict": 1}, keep_alive="5m")
    loaded = server.loaded()
    # One load, named as first asked for, in full ("name:tag") as Ollama shows it.
    assert [n for n in loaded if n.startswith("story-copy")] == ["story-copy2:latest"], loaded
    oc.delete("story-copy2")
    oc.delete("story-copy")
    names = [m.model for m in oc.list().models]
    assert "story-copy:latest" not in names and "story-copy2:latest" not in names
    with pytest.raises(ollama.ResponseError) as e:
        oc.delete("story-copy")
    assert e.value.status_code == 404


def test_openai_models_lists_the_store(ai):
    ids = [m.id for m in ai.models.list().data]
    assert SMOL in ids and STORY in ids
    # One by name, as the store reads names ("smollm2" is "smollm2:latest").
    assert ai.models.retrieve(SMOL).id == SMOL == ai.models.retrieve(SMOL.split(":")[0]).id
    with pytest.raises(openai.NotFoundError) as e:
        ai.models.retrieve("no-such-model")
    assert e.value.body["code"] == "model_not_found"


# ---- a model without a chat template -------------------------------------------------------------
def test_chat_without_template_is_a_clear_400(oc, ai):
    with pytest.raises(ollama.ResponseError) as e:
        oc.chat(model=STORY, messages=[{"role": "user", "content": "Hi"}])
    assert e.value.status_code == 400 and "chat template" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e2:
        ai.chat.completions.create(model=STORY, messages=[{"role": "user", "content": "Hi"}])
    assert "chat template" in str(e2.value)
    # The plain prompt routes still work on it.
    assert oc.generate(model=STORY, prompt="Once upon a time", options={"num_predict": 8}).eval_count > 0


# ---- /metrics and /health ------------------------------------------------------------------------
def test_metrics_and_health(server, oc):
    oc.generate(model=SMOL, prompt="Hi", options={"num_predict": 2})
    text = server.get("/metrics").text
    for name in ("lowbit_requests_waiting", "lowbit_requests_running", "lowbit_kv_cache_usage_ratio",
                 "lowbit_generation_tokens_total", "lowbit_prompt_tokens_total",
                 "lowbit_time_to_first_token_seconds_bucket", "lowbit_inter_token_latency_seconds_bucket"):
        assert name in text, name
    assert server.metric("lowbit_generation_tokens_total") >= 2
    assert server.get("/health").json() == {"status": "ok"}
    assert server.get("/api/version").json()["version"]


# ---- --api-key -----------------------------------------------------------------------------------
def test_api_key_is_required_on_every_route_but_health():
    s = start("--api-key", "sekrit")
    try:
        with pytest.raises(ollama.ResponseError) as e:
            ollama.Client(host=s.url).list()
        assert e.value.status_code == 401
        with pytest.raises(ollama.ResponseError) as e:
            ollama.Client(host=s.url, headers={"Authorization": "Bearer wrong"}).list()
        assert e.value.status_code == 401
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=s.url + "/v1", api_key="wrong").models.list()
        assert SMOL in [m.model for m in ollama.Client(host=s.url, headers={"Authorization": "Bearer sekrit"}).list().models]
        assert SMOL in [m.id for m in openai.OpenAI(base_url=s.url + "/v1", api_key="sekrit").models.list().data]
        assert s.get("/health").status_code == 200
        assert s.get("/metrics").status_code == 401
    finally:
        assert s.stop() == 0


def test_a_stored_name_wins_over_a_directory_of_that_name_in_the_servers_cwd(server, oc):
    # The server runs in the repository root, which holds a folder bench/: the stored model is meant.
    oc.copy(STORY, "bench")
    try:
        assert oc.generate(model="bench", prompt="Once", options={"num_predict": 2}, keep_alive=0).eval_count > 0
    finally:
        oc.delete("bench")


def test_lowbit_ps_asks_the_server(server, oc):
    oc.generate(model=SMOL, prompt="Hi", options={"num_predict": 1}, keep_alive="5m")
    r = subprocess.run([str(BIN), "ps", "--host", server.url], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert SMOL in r.stdout


def test_openai_chat_logprobs_are_the_models_log_softmax(server, ai, tmp_path):
    msgs = [{"role": "user", "content": "Name a color."}]
    kw = dict(model=SMOL, messages=msgs, max_tokens=6, temperature=0, logprobs=True)
    r = ai.chat.completions.create(**kw)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(t.token for t in content) == r.choices[0].message.content
    assert all(t.logprob <= 0 for t in content)
    streamed = [t for c in ai.chat.completions.create(**kw, stream=True) if c.choices and c.choices[0].logprobs
                for t in c.choices[0].logprobs.content]
    assert [(t.token, t.logprob) for t in streamed] == [(t.token, t.logprob) for t in content]
    # Against `lowbit logits` over the same ids, the rendered prompt then the generated tokens
    # (found by tokenizing the text, which must give as many), log-softmaxed here in float64. A
    # row's logits do not depend on how the batch is cut (runtime/batch.h), so they are the same
    # floats; what is left is the float32 the server reports (half an ulp: |logprob| x 2^-24)
    # and the order of a double sum over the vocabulary (~1e-12).
    prompt_ids = tokenize(render(server, msgs), special=False)
    gen_ids = tokenize(r.choices[0].message.content, special=False)
    assert len(gen_ids) == len(content)
    out = tmp_path / "logits.f32"
    ids = prompt_ids + gen_ids
    run = subprocess.run([str(BIN), "logits", str(SMOLLM2_GGUF), "--ids", " ".join(map(str, ids)), "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    logits = np.fromfile(out, dtype=np.float32).reshape(len(ids), -1).astype(np.float64)
    for k, (tid, entry) in enumerate(zip(gen_ids, content)):
        row = logits[len(prompt_ids) - 1 + k]
        ref = row[tid] - row.max() - np.log(np.exp(row - row.max()).sum())
        assert abs(entry.logprob - ref) <= abs(ref) * 2**-24 + 1e-9, (k, entry.token, entry.logprob, ref)


def test_presence_and_frequency_penalties_follow_their_formula(server, oc, ai, tmp_path):
    """OpenAI's frequency_penalty / presence_penalty and Ollama's options of those names: each
    greedy token is the argmax of `lowbit logits`' row for it with OpenAI's documented adjustment
    written out here, logit -= count * frequency_penalty + (count > 0) * presence_penalty over the
    last 64 tokens (prompt included, as llama.cpp and Ollama count), after Ollama's repeat_penalty
    (divide positive logits, multiply negative). Positions where the best two adjusted logits lie
    within 1e-4 (float32 against this float64) are not judged."""
    msgs = [{"role": "user", "content": "Write a list of ten fruits."}]
    prompt_ids = tokenize(render(server, msgs), special=False)
    fp, pp = 1.2, 0.8
    r = ai.chat.completions.create(model=SMOL, messages=msgs, max_tokens=40, temperature=0,
                                   frequency_penalty=fp, presence_penalty=pp)
    free = ai.chat.completions.create(model=SMOL, messages=msgs, max_tokens=40, temperature=0)
    assert r.choices[0].message.content != free.choices[0].message.content  # the penalties moved it
    o = oc.chat(model=SMOL, messages=msgs, options={"temperature": 0, "num_predict": 40, "repeat_penalty": 1.1,
                                                    "frequency_penalty": fp, "presence_penalty": pp})
    for text, repeat in [(r.choices[0].message.content, 1.0), (o.message.content, 1.1)]:
        gen_ids = tokenize(text, special=False)
        ids = prompt_ids + gen_ids
        out = tmp_path / "logits.f32"
        run = subprocess.run([str(BIN), "logits", str(SMOLLM2_GGUF), "--ids", " ".join(map(str, ids)), "--out",
                              str(out)], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        logits = np.fromfile(out, dtype=np.float32).reshape(len(ids), -1).astype(np.float64)
        judged = 0
        for k, tid in enumerate(gen_ids):
            at = len(prompt_ids) + k
            row = logits[at - 1].copy()
            tokens, counts = np.unique(ids[max(0, at - 64):at], return_counts=True)
            row[tokens] = np.where(row[tokens] > 0, row[tokens] / repeat, row[tokens] * repeat)
            row[tokens] -= counts * fp + pp
            best, second = np.sort(row)[-2:][::-1]
            if best - second < 1e-4:
                continue
            judged += 1
            assert tid == int(np.argmax(row)), (repeat, k, tid, int(np.argmax(row)))
        assert judged >= len(gen_ids) - 2 and judged > 10


# ---- JSON mode: Ollama's format "json", OpenAI's response_format json_object ----------------------
JSON_ASKS = ["List three colors and their hex codes as JSON.", "Describe a cat as a JSON object with name, age and color."]


@pytest.mark.parametrize("question", JSON_ASKS)
def test_json_mode_answers_are_one_object_python_parses(oc, ai, question):
    """Python's json module (not the server's code) reads each answer back as one object, from
    both clients; the answer without JSON mode is not one. Greedy answers must end (the model
    closes its object); a sampled one may wander until its budget, and is held to the rule when it
    ends."""
    import json

    messages = [{"role": "user", "content": question}]
    greedy = {"temperature": 0, "num_predict": 200}
    ended = [
        (oc.chat(model=SMOL, messages=messages, format="json", options=greedy).message.content, "stop"),
        (oc.generate(model=SMOL, prompt=question, format="json", options=greedy).response, "stop"),
    ]
    oa = ai.chat.completions.create(model=SMOL, messages=messages, response_format={"type": "json_object"},
                                    max_tokens=200, temperature=0)
    ended.append((oa.choices[0].message.content, oa.choices[0].finish_reason))
    sampled = [
        oc.chat(model=SMOL, messages=messages, format="json", options={"temperature": 0.7, "seed": 3, "num_predict": 200}),
        oc.chat(model=SMOL, messages=messages, format="json", options={"temperature": 1.0, "seed": 4, "num_predict": 200}),
    ]
    ended += [(a.message.content, "stop") for a in sampled if a.done_reason == "stop"]
    for text, reason in ended:
        assert reason == "stop", text
        assert isinstance(json.loads(text), dict), text
    free = oc.chat(model=SMOL, messages=messages, options=greedy).message.content
    with pytest.raises(ValueError):
        json.loads(free)


def test_a_chats_next_turn_reads_only_its_new_tokens(ai):
    """The prompt cache (--prompt-cache): each turn of a conversation starts from the last turn's
    keys and values, and answers exactly as a server without the cache does."""
    import openai as openai_module

    def converse(client):
        messages, out = [], []
        for question in ("Name a color.", "Why do you like it?", "Say it again in one word."):
            messages.append({"role": "user", "content": question})
            r = client.chat.completions.create(model=SMOL, messages=messages, max_tokens=24, temperature=0)
            messages.append({"role": "assistant", "content": r.choices[0].message.content})
            out.append((r.choices[0].message.content, r.usage.prompt_tokens, r.usage.prompt_tokens_details.cached_tokens))
        return out

    cached = converse(ai)
    plain_server = start("--prompt-cache", "0")
    try:
        with openai_module.OpenAI(base_url=plain_server.url + "/v1", api_key="unused") as plain:
            reference = converse(plain)
    finally:
        assert plain_server.stop() == 0, plain_server.stderr()
    assert [(t, n) for t, n, _ in cached] == [(t, n) for t, n, _ in reference]
    assert all(c == 0 for _, _, c in reference)
    # Each later turn found the last one's prompt and reply: more than the previous whole prompt.
    for (_, before, _), (_, now, hit) in zip(cached, cached[1:]):
        assert before < hit < now, cached


def test_the_prompt_cache_s_memory_is_counted():
    """A finished request's KV cache, kept by the prompt cache, shows as lowbit_prompt_cache_bytes
    and in /api/ps's size (weights and caches, as Ollama's size counts memory): its room for the
    prompt and max_tokens less one (the last token sampled is never read back), times K and V of
    every layer in fp32 (the model's shape from /api/show)."""
    s = start("--prompt-cache", "1")
    try:
        load = s.post("/api/generate", {"model": SMOL})  # an empty prompt only loads it
        assert load.status_code == 200
        weights = s.get("/api/ps").json()["models"][0]["size"]
        assert s.metric("lowbit_prompt_cache_bytes", SMOL) == 0
        r = s.post("/v1/chat/completions", {"model": SMOL, "messages": [{"role": "user", "content": "Hi there"}],
                                            "max_tokens": 24, "temperature": 0})
        prompt = r.json()["usage"]["prompt_tokens"]
        info = s.post("/api/show", {"model": SMOL}).json()["model_info"]
        arch = info["general.architecture"]
        kv_dim = info[f"{arch}.attention.head_count_kv"] * (info[f"{arch}.embedding_length"] //
                                                           info[f"{arch}.attention.head_count"])
        per_position = 2 * info[f"{arch}.block_count"] * kv_dim * 4
        assert wait_until(lambda: s.metric("lowbit_prompt_cache_bytes", SMOL) > 0, timeout=10)
        room = prompt + 24 - 1
        assert s.metric("lowbit_prompt_cache_bytes", SMOL) == room * per_position
        assert s.get("/api/ps").json()["models"][0]["size"] == weights + room * per_position
    finally:
        assert s.stop() == 0, s.stderr()
