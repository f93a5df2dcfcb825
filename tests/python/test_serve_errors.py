"""Bad input to `lowbit serve`: each answered with a 4xx whose message names the field, in the
route's API shape ({"error": "..."} for Ollama, {"error": {"message", "param", ...}} for OpenAI),
and the server keeps serving after all of them."""

import json

import httpx
import pytest

from serve_util import SMOL, STORY, skip_unless_ready, start

pytestmark = skip_unless_ready


@pytest.fixture(scope="module")
def server():
    s = start()
    yield s
    assert s.stop() == 0, s.stderr()


def raw(server, method, path, content, headers=None):
    return httpx.request(method, server.url + path, content=content, timeout=120,
                         headers=headers or {"Content-Type": "application/json"})


LONG = "word " * 700  # stories260K's context is 512 tokens

# (path, body, status, field named in the message)
CASES = [
    ("/api/generate", b'{"model": "smollm2", "prompt": ', 400, "body"),
    ("/api/generate", b'[1, 2]', 400, "body"),
    ("/api/generate", '{"model": "smollm2", "prompt": "caf\xe9"}'.encode("latin-1"), 400, "UTF-8"),
    ("/api/generate", {"model": SMOL, "prompt": 5}, 400, "prompt"),
    ("/api/generate", {"model": 5, "prompt": "x"}, 400, "model"),
    ("/api/generate", {"prompt": "x"}, 400, "model"),
    ("/api/generate", {"model": SMOL, "prompt": "x", "stream": "yes"}, 400, "stream"),
    ("/api/generate", {"model": SMOL, "prompt": "x", "options": []}, 400, "options"),
    ("/api/generate", {"model": SMOL, "prompt": "x", "options": {"temperature": "hot"}}, 400, "options.temperature"),
    ("/api/generate", {"model": SMOL, "prompt": "x", "options": {"temperature": -1}}, 400, "options.temperature"),
    ("/api/generate", {"model": SMOL, "prompt": "x", "options": {"top_p": 2}}, 400, "options.top_p"),
    ("/api/generate", {"model": SMOL, "prompt": "x", "options": {"num_predict": -5}}, 400, "options.num_predict"),
    ("/api/generate", {"model": SMOL, "prompt": "x", "options": {"num_predict": 10**12}}, 400, "options.num_predict"),
    ("/api/generate", {"model": SMOL, "prompt": "x", "options": {"num_predict": 1.5}}, 400, "options.num_predict"),
    ("/api/generate", {"model": SMOL, "prompt": "x", "options": {"num_ctx": -1}}, 400, "options.num_ctx"),
    ("/api/generate", {"model": SMOL, "prompt": "x", "options": {"num_ctx": 10**9}}, 400, "options.num_ctx"),
    ("/api/generate", {"model": SMOL, "prompt": "x", "options": {"stop": [""]}}, 400, "options.stop[0]"),
    ("/api/generate", {"model": SMOL, "prompt": "x", "keep_alive": "5 parsecs"}, 400, "keep_alive"),
    ("/api/generate", {"model": "no-such-model", "prompt": "x"}, 404, "no-such-model"),
    ("/api/generate", {"model": "/etc/hostname", "prompt": "x"}, 400, "model"),  # a path, but no model
    ("/api/generate", {"model": STORY, "prompt": LONG}, 400, "prompt"),
    ("/api/generate", {"model": SMOL, "prompt": LONG, "options": {"num_ctx": 64}}, 400, "prompt"),
    ("/api/chat", {"model": SMOL, "messages": "hi"}, 400, "messages"),
    ("/api/chat", {"model": SMOL, "messages": [{"role": "user", "content": 3}]}, 400, "messages[0].content"),
    ("/api/chat", {"model": SMOL, "messages": [{"content": "x"}]}, 400, "messages[0].role"),
    ("/api/show", {"model": "no-such-model"}, 404, "no-such-model"),
    ("/api/delete", {}, 400, "model"),
    ("/api/copy", {"source": SMOL}, 400, "destination"),
    ("/api/create", {"model": "x"}, 400, "from"),
    ("/api/generate", {"model": SMOL, "prompt": "x", "format": {"type": "integer", "not": {"const": 2}}}, 400, "format"),
    ("/api/generate", {"model": SMOL, "prompt": "x", "format": 3}, 400, "format"),
    ("/api/chat", {"model": SMOL, "messages": [{"role": "user", "content": "x"}], "format": "yaml"}, 400, "format"),
]

OPENAI_CASES = [
    ("/v1/chat/completions", {"model": SMOL}, 400, "messages"),
    ("/v1/chat/completions", {"model": SMOL, "messages": []}, 400, "messages"),
    ("/v1/chat/completions", {"model": SMOL, "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, 400,
     "max_tokens"),
    ("/v1/chat/completions", {"model": SMOL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 10**9}, 400,
     "max_tokens"),
    ("/v1/chat/completions", {"model": SMOL, "messages": [{"role": "user", "content": "x"}], "n": 2}, 400, "n"),
    ("/v1/chat/completions", {"model": SMOL, "messages": [{"role": "user", "content": "x"}], "temperature": 5}, 400,
     "temperature"),
    ("/v1/chat/completions", {"model": SMOL, "messages": [{"role": "user", "content": "x"}], "stop": 3}, 400, "stop"),
    ("/v1/chat/completions", {"model": SMOL, "messages": [{"role": "user", "content": "x"}], "logprobs": True,
                              "top_logprobs": 2}, 400, "top_logprobs"),
    ("/v1/completions", {"model": SMOL, "prompt": "x", "logprobs": 1}, 400, "logprobs"),
    ("/v1/completions", {"model": SMOL, "prompt": {"a": 1}}, 400, "prompt"),
    ("/v1/completions", {"model": SMOL, "prompt": "x", "max_tokens": "ten"}, 400, "max_tokens"),
    ("/v1/completions", {"model": "no-such-model", "prompt": "x"}, 404, "model"),
    ("/v1/chat/completions", {"model": SMOL, "messages": [{"role": "user", "content": "x"}],
                              "response_format": {"type": "json_schema"}}, 400, "response_format.json_schema"),
    ("/v1/chat/completions", {"model": SMOL, "messages": [{"role": "user", "content": "x"}],
                              "response_format": {"type": "json_schema", "json_schema": {
                                  "name": "x", "schema": {"properties": {"a": {"type": "integer", "not": {"const": 2}}}}}}},
     400, "response_format.json_schema.schema"),
    ("/v1/chat/completions", {"model": SMOL, "messages": [{"role": "user", "content": "x"}],
                              "response_format": {"type": "xml"}}, 400, "response_format.type"),
    ("/v1/chat/completions", {"model": SMOL, "messages": [{"role": "user", "content": "x"}],
                              "response_format": "json"}, 400, "response_format"),
]


@pytest.mark.parametrize("path,body,status,field", CASES, ids=[f"{c[0]}-{c[3]}-{i}" for i, c in enumerate(CASES)])
def test_ollama_bad_input_names_the_field(server, path, body, status, field):
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    method = "DELETE" if path == "/api/delete" else "POST"
    r = raw(server, method, path, content)
    assert r.status_code == status, r.text
    assert field in r.json()["error"], r.text


@pytest.mark.parametrize("path,body,status,field", OPENAI_CASES,
                         ids=[f"{c[0]}-{c[3]}-{i}" for i, c in enumerate(OPENAI_CASES)])
def test_openai_bad_input_names_the_field(server, path, body, status, field):
    r = raw(server, "POST", path, httpx.Request("POST", "/", json=body).content)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert field in err["message"] and err["type"], r.text
    if status == 400:
        assert err["param"] == field


def test_unknown_route_is_404_json(server):
    r = server.get("/api/nothing-here")
    assert r.status_code == 404 and "/api/nothing-here" in r.json()["error"]
    r = server.post("/v1/nothing", {})
    assert r.status_code == 404 and r.json()["error"]["message"]


def test_body_over_the_limit_is_413(server):
    r = raw(server, "POST", "/api/generate", b'{"model": "x", "prompt": "' + b"a" * (17 << 20) + b'"}')
    assert r.status_code == 413 and "body" in r.json()["error"]


def test_still_serving_after_all_of_it(server):
    r = server.post("/api/generate", {"model": SMOL, "prompt": "Hi", "stream": False, "options": {"num_predict": 3}})
    assert r.status_code == 200 and r.json()["eval_count"] == 3
    assert server.proc.poll() is None


def test_a_timeout_ends_a_stream_with_an_error_line_and_a_whole_answer_with_503():
    s = start("--timeout", "1")
    try:
        body = {"model": SMOL, "prompt": "Write a long story.", "options": {"num_predict": 2000, "temperature": 0}}
        with httpx.stream("POST", s.url + "/api/generate", json=body, timeout=60) as r:
            lines = [json.loads(line) for line in r.iter_lines() if line]
        assert "timed out" in lines[-1]["error"] and not any(line.get("done") for line in lines)
        # Greedy, on the prompt that outlasts the timeout above: sampled at the default temperature,
        # "Hi" could reach its end token within the second, and the faster decode made that likely.
        with httpx.stream("POST", s.url + "/v1/completions", json={"model": SMOL, "prompt": "Write a long story.",
                                                                 "max_tokens": 2000, "temperature": 0,
                                                                 "stream": True}, timeout=60) as r:
            events = [line for line in r.iter_lines() if line.startswith("data: ")]
        assert "timed out" in json.loads(events[-2][6:])["error"]["message"] and events[-1] == "data: [DONE]"
        r = s.post("/api/generate", {**body, "stream": False})
        assert r.status_code == 503 and "timed out" in r.json()["error"]
    finally:
        assert s.stop() == 0, s.stderr()
