"""Embeddings from `lowbit serve` (/api/embed, /api/embeddings, /v1/embeddings) against the
independent numpy forward (reference_forward.py) on stories260K at fp32: the mean of the final
normed hidden states over the input's tokens, L2-normalized (docs/SERVING.md says so).

The bound is the project's fp32-against-numpy requirement (test_reference_forward.py: 1e-4 of the
largest magnitude), applied to unit vectors, whose largest component is at most 1."""

import httpx
import numpy as np
import ollama
import openai
import pytest
import sentencepiece

import reference_forward
from serve_util import STORIES, skip_unless_ready, start

pytestmark = skip_unless_ready

NAME = "stories-f32"
TEXTS = ["Once upon a time", "Lily and Tom went to the park to play."]


@pytest.fixture(scope="module")
def server():
    s = start()
    r = s.post("/api/create", {"model": NAME, "from": str(STORIES), "quantize": "f32", "stream": False})
    assert r.status_code == 200, r.text
    yield s
    httpx.request("DELETE", s.url + "/api/delete", json={"model": NAME})
    assert s.stop() == 0, s.stderr()


def reference(text):
    sp = sentencepiece.SentencePieceProcessor(model_file=str(STORIES / "tokenizer.model"))
    ids = [sp.bos_id()] + sp.encode(text)
    h = reference_forward.forward(str(STORIES), ids, hidden=True).mean(axis=0)
    return h / np.linalg.norm(h), len(ids)


def test_ollama_embed_is_the_pooled_normed_hidden_state(server):
    r = ollama.Client(host=server.url).embed(model=NAME, input=TEXTS)
    assert len(r.embeddings) == len(TEXTS)
    total = 0
    for text, got in zip(TEXTS, r.embeddings):
        want, n = reference(text)
        total += n
        got = np.asarray(got)
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-4
        assert abs(np.linalg.norm(got) - 1) < 1e-5
    assert r.prompt_eval_count == total


def test_openai_and_legacy_routes_agree(server):
    want, n = reference(TEXTS[0])
    ai = openai.OpenAI(base_url=server.url + "/v1", api_key="x")
    # Left out, the client asks for base64 and decodes it; "float" asks for JSON numbers.
    for kw in ({}, {"encoding_format": "float"}):
        e = ai.embeddings.create(model=NAME, input=TEXTS[0], **kw)
        assert np.abs(np.asarray(e.data[0].embedding) - want).max() < 1e-4
        assert e.usage.prompt_tokens == n
    legacy = server.post("/api/embeddings", {"model": NAME, "prompt": TEXTS[0]}).json()["embedding"]
    assert np.abs(np.asarray(legacy) - want).max() < 1e-4


def test_dimensions_shorten_the_vector_as_openai_does(server):
    """dimensions N: the first N components of the pooled vector, normalized again (OpenAI's
    shortened embeddings), on both routes."""
    full, _ = reference(TEXTS[1])
    want = full[:16] / np.linalg.norm(full[:16])
    ai = openai.OpenAI(base_url=server.url + "/v1", api_key="x")
    got = np.asarray(ai.embeddings.create(model=NAME, input=TEXTS[1], dimensions=16).data[0].embedding)
    assert got.shape == (16,) and np.abs(got - want).max() < 1e-4
    r = ollama.Client(host=server.url).embed(model=NAME, input=TEXTS[1], dimensions=16)
    assert np.abs(np.asarray(r.embeddings[0]) - want).max() < 1e-4
    for bad in (0, len(full) + 1):
        r = server.post("/api/embed", {"model": NAME, "input": "a", "dimensions": bad})
        assert r.status_code == 400 and r.json()["error"].startswith("dimensions: must be"), r.text


def test_embed_errors_name_the_field(server):
    r = server.post("/api/embed", {"model": NAME, "input": ["a", 3]})
    assert r.status_code == 400 and "input[1]" in r.json()["error"]
    r = server.post("/api/embed", {"model": NAME, "input": "word " * 700, "truncate": False})
    assert r.status_code == 400 and "input" in r.json()["error"]
    r = server.post("/api/embed", {"model": NAME, "input": "word " * 700})
    assert r.status_code == 200 and len(r.json()["embeddings"]) == 1
