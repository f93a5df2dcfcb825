"""/api/create beyond `from` through `lowbit serve`, driven by the official `ollama` and `openai`
clients: what `ollama create` sends for a Modelfile.

- Blobs and `files`: create_blob hashes a file and POSTs it to /api/blobs/sha256:<hex> (as `ollama
  create` does with a Modelfile's FROM file), then create(files={name: digest}) makes a model of the
  uploads. The reference for each model made so is the same file or directory created by path
  (/api/create's `from`, tested in test_serve_api.py): the same greedy answer, token for token;
  the digests are hashlib's.
- Defaults (SYSTEM and PARAMETER lines: create's `system` and `parameters`): a request to the
  model is answered as the same request to its source with that system message and those options
  written out, on both APIs; what a request says itself wins.
"""

import hashlib
import json
import socket

import httpx
import ollama
import pytest

from serve_util import SMOL, SMOLLM2_GGUF, STORIES, Server, model_store, skip_unless_ready

pytestmark = skip_unless_ready


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("blob_store")


@pytest.fixture(scope="module")
def server(store):
    # A store of its own (the uploads and the models made stay in it), holding SMOL as the
    # session's store does.
    import shutil

    shutil.copytree(model_store(), store, dirs_exist_ok=True, symlinks=True)
    s = Server(store, "--parallel", "1")
    yield s
    assert s.stop() == 0, s.stderr()


def greedy(oc, model, prompt):
    r = oc.generate(model=model, prompt=prompt, options={"num_predict": 12, "temperature": 0}, keep_alive=0)
    return r.response, r.eval_count


def leftovers(store):
    """What an upload or a create may have left in the blob directory besides whole blobs."""
    return sorted(p.name for p in (store / ".blobs").iterdir() if not p.name.startswith("sha256-"))


def test_an_uploaded_gguf_makes_the_model_its_file_makes(server, store, oc):
    digest = oc.create_blob(SMOLLM2_GGUF)
    assert digest == "sha256:" + hashlib.sha256(SMOLLM2_GGUF.read_bytes()).hexdigest()
    assert httpx.head(f"{server.url}/api/blobs/{digest}").status_code == 200
    oc.create(model="smol-upload", files={SMOLLM2_GGUF.name: digest})
    oc.create(model="smol-path", from_=str(SMOLLM2_GGUF))
    assert greedy(oc, "smol-upload", "Why is the sky blue?") == greedy(oc, "smol-path", "Why is the sky blue?")
    assert oc.show("smol-upload").template == oc.show("smol-path").template
    assert oc.show("smol-upload").details.parent_model == f"{SMOLLM2_GGUF.name} ({digest})"
    assert leftovers(store) == []  # the links a create reads through are gone with it


def test_an_hf_directory_uploaded_file_by_file(server, store, oc):
    files = {p.name: oc.create_blob(p) for p in sorted(STORIES.iterdir())
             if p.name in ("config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json")}
    assert len(files) == 4
    oc.create(model="story-upload", files=files)
    oc.create(model="story-path", from_=str(STORIES))
    assert greedy(oc, "story-upload", "Once upon a time") == greedy(oc, "story-path", "Once upon a time")
    assert leftovers(store) == []


def test_bad_uploads_and_creates_are_400s_that_leave_nothing(server, store, oc):
    data = b"not a model at all"
    real = "sha256:" + hashlib.sha256(data).hexdigest()
    wrong = "sha256:" + "0" * 64
    r = httpx.post(f"{server.url}/api/blobs/{wrong}", content=data)
    assert r.status_code == 400 and real in r.json()["error"], r.text
    assert httpx.head(f"{server.url}/api/blobs/{wrong}").status_code == 404
    for bad in ("sha256:xyz", "md5:" + "0" * 64, "sha256:" + "A" * 64):
        r = httpx.post(f"{server.url}/api/blobs/{bad}", content=data)
        assert r.status_code == 400 and bad in r.json()["error"], r.text
    assert leftovers(store) == []

    assert httpx.post(f"{server.url}/api/blobs/{real}", content=data).status_code == 201
    for files, field in (({"x.gguf": wrong}, "files.x.gguf"), ({"../x.gguf": real}, "files.../x.gguf"),
                         ({"x.gguf": "sha256:12"}, "files.x.gguf"), ({}, "files")):
        with pytest.raises(ollama.ResponseError) as e:
            oc.create(model="bad", files=files)
        assert e.value.status_code == 400 and field in e.value.error, e.value.error
    with pytest.raises(ollama.ResponseError) as e:  # bytes that are no model: the importer says so
        oc.create(model="bad", files={"x.gguf": real})
    assert e.value.status_code == 400 and e.value.error.startswith("files.x.gguf: not a GGUF file"), e.value.error
    r = httpx.post(f"{server.url}/api/create", json={"model": "bad", "from": str(STORIES), "files": {"x.gguf": real}})
    assert r.status_code == 400 and "not both" in r.json()["error"]
    assert "bad:latest" not in [m.model for m in oc.list().models]
    assert leftovers(store) == []


def test_json_bodies_still_need_a_length_and_keep_their_limit(server):
    # The blob route takes bodies of any length, streamed; every other route reads its body into
    # memory and is held to the limit before reading it, so it needs the length up front.
    r = httpx.post(f"{server.url}/api/generate", content=iter([b'{"model": "x", ', b'"prompt": "hi"}']))
    assert r.status_code == 411 and "Content-Length" in r.json()["error"]
    # A terabyte announced and never sent: answered before any of it is read.
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n{" % (1 << 40))
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply.partition(b"\r\n\r\n")[2]) < int(
                reply.lower().split(b"content-length: ")[1].split(b"\r\n")[0]):
            reply += s.recv(65536)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and b"limit" in body, reply


PIRATE = "You are a pirate. Answer in one short sentence."
PARAMS = {"temperature": 0, "num_predict": 24, "stop": ["!"], "top_k": 20, "repeat_penalty": 1.3}


def test_defaults_answer_as_the_source_with_them_written_out(server, oc, ai):
    oc.create(model="pirate", from_=SMOL, system=PIRATE, parameters=PARAMS)
    shown = oc.show("pirate")
    assert server.post("/api/show", {"model": "pirate"}).json()["system"] == PIRATE  # the client's type lacks it
    assert [line.split() for line in shown.parameters.splitlines()] == [
        ["temperature", "0"], ["num_predict", "24"], ["stop", '"!"'], ["top_k", "20"], ["repeat_penalty", "1.3"]]
    assert f"SYSTEM {PIRATE}\n" in shown.modelfile and "PARAMETER top_k 20\n" in shown.modelfile
    question = [{"role": "user", "content": "Who are you?"}]
    written_out = [{"role": "system", "content": PIRATE}] + question

    got = oc.chat(model="pirate", messages=question)
    ref = oc.chat(model=SMOL, messages=written_out, options=PARAMS)
    assert got.message.content == ref.message.content and got.eval_count == ref.eval_count
    gen = oc.generate(model="pirate", prompt="Who are you?")
    ref_gen = oc.generate(model=SMOL, prompt="Who are you?", system=PIRATE, options=PARAMS)
    assert gen.response == ref_gen.response and gen.eval_count == ref_gen.eval_count
    # OpenAI's client sends no temperature, max_tokens or stop here: the model's apply (OpenAI's
    # default temperature, 1, would sample).
    oa = ai.chat.completions.create(model="pirate", messages=question)
    assert oa.choices[0].message.content == ref.message.content
    assert oa.usage.completion_tokens == ref.eval_count

    # What a request says wins: its own system message, its own options.
    own = [{"role": "system", "content": "You are a robot."}] + question
    assert oc.chat(model="pirate", messages=own).message.content == \
        oc.chat(model=SMOL, messages=own, options=PARAMS).message.content
    short = oc.chat(model="pirate", messages=question, options={"num_predict": 5})
    assert short.eval_count == 5 and short.message.content == \
        oc.chat(model=SMOL, messages=written_out, options={**PARAMS, "num_predict": 5}).message.content
    oa = ai.chat.completions.create(model="pirate", messages=question, max_tokens=5)
    assert oa.usage.completion_tokens == 5 and oa.choices[0].message.content == short.message.content

    # Made from it: its defaults, with the new parameters over them.
    oc.create(model="pirate-brief", from_="pirate", parameters={"num_predict": 8})
    brief = oc.show("pirate-brief")
    assert server.post("/api/show", {"model": "pirate-brief"}).json()["system"] == PIRATE
    assert ["num_predict", "8"] in [line.split() for line in brief.parameters.splitlines()]
    assert oc.chat(model="pirate-brief", messages=question).message.content == \
        oc.chat(model=SMOL, messages=written_out, options={**PARAMS, "num_predict": 8}).message.content


@pytest.mark.parametrize("body,field", [
    ({"parameters": {"temprature": 0.5}}, "parameters.temprature"),
    ({"parameters": {"top_p": 5}}, "parameters.top_p"),
    ({"parameters": {"num_predict": "many"}}, "parameters.num_predict"),
    ({"parameters": [1]}, "parameters"),
    ({"system": 5}, "system"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "messages"),
    ({"adapters": {"a.gguf": "sha256:" + "0" * 64}}, "adapters"),
])
def test_bad_defaults_are_400s_naming_the_field(server, oc, body, field):
    r = httpx.post(f"{server.url}/api/create", json={"model": "bad-defaults", "from": SMOL, **body})
    assert r.status_code == 400 and r.json()["error"].startswith(field), r.text
    assert "bad-defaults:latest" not in [m.model for m in oc.list().models]
