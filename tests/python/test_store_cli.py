"""The model store from the shell (`lowbit create/list/show/cp/rm/ps`, `lowbit run NAME`) and the
interactive chat of `lowbit run MODEL`, on the built binary and the shared models.

Expected values come from elsewhere: digests from Python's hashlib over the manifest file, sizes
from the file system, the chat's prompt from jinja2 rendering the GGUF's own template (read with
the `gguf` package), and the chat's first reply from `lowbit run` on that independently rendered
prompt.
"""

import hashlib
import http.server
import json
import os
import pathlib
import pty
import re
import select
import signal
import socket
import sys
import threading
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cli_helpers import BIN, SHARED, gguf_string, jinja2_chat_prompt, lowbit, needs_bin, reference_fit  # noqa: E402

STORIES = SHARED / "models" / "stories260K"
SMOL = SHARED / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"

pytestmark = [needs_bin, pytest.mark.skipif(not STORIES.exists(), reason=f"{STORIES} not present")]
needs_smol = pytest.mark.skipif(not SMOL.exists(), reason=f"{SMOL} not present")


@pytest.fixture
def models(tmp_path):
    return tmp_path / "models"


def ok(r):
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r


def model_dir(models, name, tag="latest"):
    return models / name / f":{tag}"


# ---- create / list / show / cp / rm ------------------------------------------------------------
def test_create_list_show_cp_rm(models):
    r = ok(lowbit("create", "stories", STORIES, "--bits", "8", "--threads", "2", "--models", models))
    assert "created stories:latest" in r.stdout
    d = model_dir(models, "stories")
    digest = hashlib.sha256((d / "manifest.json").read_bytes()).hexdigest()
    size = sum(f.stat().st_size for f in d.iterdir())

    listed = ok(lowbit("list", "--models", models)).stdout.splitlines()
    assert listed[0].split()[:3] == ["NAME", "ID", "SIZE"]
    assert listed[1].split()[:2] == ["stories:latest", digest[:12]]

    tags = json.loads(ok(lowbit("list", "--json", "--models", models)).stdout)
    (entry,) = tags["models"]
    assert entry["name"] == entry["model"] == "stories:latest"
    assert entry["digest"] == digest and entry["size"] == size
    assert entry["details"]["family"] == "llama"
    assert entry["details"]["quantization_level"] == "Q8_G32_SYM"
    assert entry["details"]["parent_model"] == str(STORIES)

    show = json.loads(ok(lowbit("show", "stories", "--json", "--models", models)).stdout)
    assert show["digest"] == digest and show["path"] == str(d)
    config = json.loads((STORIES / "config.json").read_text())
    assert show["config"]["n_layers"] == config["num_hidden_layers"]
    text = ok(lowbit("show", "stories:latest", "--models", models)).stdout
    assert re.search(r"architecture\s+llama", text) and digest in text

    ok(lowbit("cp", "stories", "stories:copy", "--models", models))
    names = [m["name"] for m in json.loads(ok(lowbit("list", "--json", "--models", models)).stdout)["models"]]
    assert names == ["stories:copy", "stories:latest"]
    assert (model_dir(models, "stories", "copy") / "weights.bin").stat().st_ino == (d / "weights.bin").stat().st_ino

    r = ok(lowbit("rm", "stories", "--models", models))
    assert "deleted 'stories:latest'" in r.stdout
    names = [m["name"] for m in json.loads(ok(lowbit("list", "--json", "--models", models)).stdout)["models"]]
    assert names == ["stories:copy"]
    r = lowbit("rm", "stories", "--models", models)
    assert r.returncode == 1 and "'stories:latest' not found" in r.stderr


def test_the_store_defaults_to_lowbit_models(models):
    env = dict(os.environ, LOWBIT_MODELS=str(models))
    ok(lowbit("create", "tiny:q2", STORIES, "-q", "q2_K", "--threads", "2", env=env))
    assert "tiny:q2" in ok(lowbit("list", env=env)).stdout
    assert model_dir(models, "tiny", "q2").is_dir()
    env = dict(os.environ, HOME=str(models.parent / "home"))
    env.pop("LOWBIT_MODELS", None)
    ok(lowbit("create", "tiny", STORIES, "--threads", "2", env=env))
    assert (models.parent / "home" / ".lowbit" / "models" / "tiny" / ":latest" / "manifest.json").is_file()


# ---- run by name ------------------------------------------------------------------------------
def run_text(model, models, prompt, n=24):
    j = json.loads(ok(lowbit("run", model, "-p", prompt, "-n", n, "--json", "--threads", "2", "--models", models)).stdout)
    return j["text"]


def test_run_by_name_reads_as_run_by_path(models):
    ok(lowbit("create", "stories", STORIES, "--threads", "2", "--models", models))
    by_name = run_text("stories", models, "Once upon a time")
    assert by_name == run_text(model_dir(models, "stories"), models, "Once upon a time")
    assert by_name  # something was generated


def test_create_with_a_template_of_ones_own(models, tmp_path):
    """--template gives a model without one (stories260K) a chat template: `lowbit show --template`
    prints it, and a chat prompt is rendered by it as jinja2 renders it; the model's digest is not
    that of the same weights without it. A Go template (Ollama's) or a broken one is refused."""
    jinja2 = pytest.importorskip("jinja2")
    source = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"
    tfile = tmp_path / "t.jinja"
    tfile.write_text(source)
    ok(lowbit("create", "plain", STORIES, "--threads", "2", "--models", models))
    ok(lowbit("create", "chat", STORIES, "--template", tfile, "--threads", "2", "--models", models))
    assert ok(lowbit("show", "chat", "--template", "--models", models)).stdout == source + "\n"
    digests = {n: hashlib.sha256((model_dir(models, n) / "manifest.json").read_bytes()).hexdigest() for n in ("plain", "chat")}
    assert digests["plain"] != digests["chat"]
    prompt = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(source).render(
        messages=[{"role": "user", "content": "Once upon a time"}], add_generation_prompt=True)
    expected = json.loads(ok(lowbit("run", "plain", "--raw", "-p", prompt, "-n", 16, "--json", "--threads", "2",
                                    "--models", models)).stdout)["text"]
    assert run_text("chat", models, "Once upon a time", n=16) == expected
    for text, said in [("{{ .Prompt }}", "Go template"), ("{% for %}", "does not parse")]:
        tfile.write_text(text)
        r = lowbit("create", "broken", STORIES, "--template", tfile, "--models", models)
        assert r.returncode != 0 and said in r.stderr, r.stderr
    assert not (models / "broken").exists()
    r = lowbit("create", "broken", STORIES, "--template", tmp_path / "missing.jinja", "--models", models)
    assert r.returncode != 0 and "missing.jinja" in r.stderr
    # A template that writes tool calls (Qwen2.5's) gives the model the "tools" capability, as
    # `ollama show` lists it; one that does not, only "completion".
    qwen = SHARED / "models" / "configs" / "qwen2.5-0.5b" / "tokenizer_config.json"
    if qwen.exists():
        tfile.write_text(json.loads(qwen.read_text())["chat_template"])
        ok(lowbit("create", "tools", STORIES, "--template", tfile, "--threads", "2", "--models", models))
        assert json.loads(ok(lowbit("show", "tools", "--json", "--models", models)).stdout)["capabilities"] == \
            ["completion", "tools"]
        assert "completion, tools" in ok(lowbit("show", "tools", "--models", models)).stdout
    assert json.loads(ok(lowbit("show", "chat", "--json", "--models", models)).stdout)["capabilities"] == ["completion"]


@needs_smol
def test_a_gguf_created_by_name_runs_as_the_gguf_itself(models):
    ok(lowbit("create", "smollm2:135m", SMOL, "--threads", "2", "--models", models))
    prompt = "The capital of France is"
    assert run_text("smollm2:135m", models, prompt) == run_text(SMOL, models, prompt)
    # The chat template travels with it, as the GGUF holds it (read by the gguf package).
    shown = ok(lowbit("show", "smollm2:135m", "--template", "--models", models)).stdout
    assert shown == gguf_string(SMOL, "tokenizer.chat_template") + "\n"
    assert json.loads(ok(lowbit("show", "smollm2:135m", "--json", "--models", models)).stdout)["template"] == shown[:-1]
    ok(lowbit("create", "stories", STORIES, "--threads", "2", "--models", models))
    r = lowbit("show", "stories", "--template", "--models", models)
    assert r.returncode == 1 and "stories:latest: the model has no chat template" in r.stderr


# ---- errors name what they are about ----------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["run", "ghost", "-p", "x"], "'ghost' is neither an existing file or directory nor a model in the store"),
    (["logits", "ghost:v2", "--ids", "1"], "'ghost:v2' is neither"),
    (["bench", "model", "ghost"], "'ghost' is neither"),
    (["show", "ghost"], "'ghost' is neither"),
    (["rm", "ghost"], "model 'ghost:latest' not found"),
    (["cp", "ghost", "other"], "model 'ghost:latest' not found"),
    (["create", "bad name", str(STORIES)], "model name 'bad name' holds ' '"),
    (["create", "a:b:c", str(STORIES)], "model name 'a:b:c' holds more than one ':'"),
    (["create", "../up", str(STORIES)], "model name '../up'"),
    (["create", "x", "/no/such/source.gguf"], "/no/such/source.gguf"),
    (["create", "x", str(STORIES), "--quantize", "q7_X"], "quantization 'q7_X'"),
    (["cp", "ghost", "bad name"], "model name 'bad name'"),
])
def test_bad_names_and_unknown_models_fail_naming_them(models, args, message):
    r = lowbit(*args, "--models", models)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert message in r.stderr, r.stderr
    assert r.stdout == ""
    # Nothing was left in the store, not even a work directory.
    assert not models.exists() or list(models.rglob("*")) == []


def test_quantize_and_bits_exclude_each_other(models):
    r = lowbit("create", "x", STORIES, "--bits", "4", "--quantize", "q4_0", "--models", models)
    assert r.returncode == 2 and "--bits" in r.stderr and "--quantize" in r.stderr


# ---- ps: a server's /api/ps -------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ps_without_a_server_says_so():
    port = free_port()
    r = lowbit("ps", "--host", f"127.0.0.1:{port}")
    assert r.returncode == 1
    assert f"no lowbit server answers at http://127.0.0.1:{port}" in r.stderr
    r = lowbit("ps", env=dict(os.environ, LOWBIT_HOST=f"127.0.0.1:{port}"))
    assert f"http://127.0.0.1:{port}" in r.stderr


def test_ps_prints_the_servers_models():
    # A stand-in answering as Ollama's docs/api.md shows GET /api/ps.
    answer = {"models": [{"name": "smollm2:latest", "model": "smollm2:latest", "size": 101_000_000,
                          "digest": "2ae6f6dd7a3dd734790bbbf58b8909a606e0e7e97e94b7604e0aa7ae4490e6d8",
                          "details": {"format": "lowbit", "family": "llama"},
                          "expires_at": "2099-01-01T00:00:00Z", "size_vram": 0}]}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(answer if self.path == "/api/ps" else {"error": "no"}).encode()
            self.send_response(200 if self.path == "/api/ps" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = ok(lowbit("ps", "--host", f"127.0.0.1:{server.server_port}"))
        header, row = r.stdout.splitlines()
        assert header.split() == ["NAME", "ID", "SIZE", "PROCESSOR", "UNTIL"]
        assert row.split()[:4] == ["smollm2:latest", "2ae6f6dd7a3d", "101", "MB"]
        assert "100% CPU" in row
        j = json.loads(ok(lowbit("ps", "--json", "--host", f"http://127.0.0.1:{server.server_port}")).stdout)
        assert j == answer
    finally:
        server.shutdown()


# ---- the interactive chat, through a pseudo-terminal ------------------------------------------
class Chat:
    """`lowbit run MODEL` on a pseudo-terminal: what a person at a terminal sees and types."""

    def __init__(self, *args):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the terminal is its controlling tty, so ^C is SIGINT
            os.execv(str(BIN), [str(BIN), "run", *map(str, args)])
        self.out = b""

    def read_until(self, marker, timeout=120):
        end = time.time() + timeout
        while marker not in self.out:
            left = end - time.time()
            if left <= 0:
                raise AssertionError(f"no {marker!r} after {timeout} s; got {self.out[-2000:]!r}")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the child exited
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"the chat ended before {marker!r}; got {self.out[-2000:]!r}")
                self.out += chunk
        at = self.out.index(marker) + len(marker)
        got, self.out = self.out[:at], self.out[at:]
        return got

    def send(self, text):
        os.write(self.fd, text.encode())

    def say(self, line):
        """Types a line and returns the reply (the text up to the next prompt)."""
        self.send(line + "\n")
        self.read_until(line.encode() + b"\r\n")  # the terminal's echo
        reply = self.read_until(b">>> ")[:-4]
        return reply.decode().replace("\r\n", "\n")

    def wait(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:  # keep the terminal drained
                if select.select([self.fd], [], [], 0.1)[0]:
                    os.read(self.fd, 4096)
            except OSError:
                pass
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("the chat did not exit")


def smol_template_prompt(messages):
    return jinja2_chat_prompt(SMOL, messages)


@needs_smol
def test_chat_first_reply_is_run_on_the_template_rendered_by_jinja2():
    question = "What is the capital of France?"
    prompt = smol_template_prompt([{"role": "user", "content": question}])
    expected = json.loads(ok(lowbit("run", SMOL, "--raw", "-p", prompt, "-n", 24, "--json", "--threads", "2")).stdout)["text"]
    chat = Chat(SMOL, "-n", 24, "--threads", "2")
    chat.read_until(b">>> ")
    reply = chat.say(question)
    assert reply == expected + "\n\n"
    # A second turn runs on the conversation so far (the reply is there and ends).
    assert chat.say("And of Italy?").strip()
    chat.say("/clear")
    chat.send("/bye\n")
    assert chat.wait() == 0


@needs_smol
def test_a_chat_longer_than_the_context_forgets_its_oldest_turns():
    """With --ctx 200 and -n 24 the chat outgrows its context within a few turns: each turn runs
    on the latest turns that fit in 176 tokens (which ones, worked out here from jinja2's
    rendering and `lowbit tokenize`), says how many messages it forgot, and replies as `lowbit run
    --raw` does on that conversation rendered by jinja2."""
    ctx, n = 200, 24
    flags = ["-n", n, "--ctx", ctx, "--threads", "2"]

    def n_tokens(messages):
        return len(ok(lowbit("tokenize", SMOL, smol_template_prompt(messages))).stdout.split())

    chat = Chat(SMOL, *flags)
    chat.read_until(b">>> ")
    messages, drops = [], []
    for k in range(6):
        line = f"Tell me fact number {k} about the sea, with some detail please."
        dropped, kept, _ = reference_fit(messages + [{"role": "user", "content": line}], ctx - n, n_tokens)
        expected = json.loads(ok(lowbit("run", SMOL, "--raw", "-p", smol_template_prompt(kept), "--json",
                                        *flags)).stdout)["text"]
        notice = (f"(the conversation outgrew the context of {ctx} tokens: its {dropped} oldest messages are "
                  f"forgotten)\n") if dropped else ""
        assert chat.say(line) == notice + expected + "\n\n", f"turn {k}"
        messages = kept + [{"role": "assistant", "content": expected}]
        drops.append(dropped)
    assert drops[0] == 0 and any(drops), drops
    chat.send("/bye\n")
    assert chat.wait() == 0


@needs_smol
def test_chat_set_parameter_changes_the_next_reply():
    """`/set parameter` under Ollama's names: the next reply is what `lowbit run --raw` gives on
    the jinja2 rendering with the same settings as flags; bad names and values are refused and
    change nothing; `/show parameters` lists them; `/set verbose` adds the rates line."""
    question = "What is the capital of France?"
    prompt = smol_template_prompt([{"role": "user", "content": question}])

    def expected(*flags):
        return json.loads(ok(lowbit("run", SMOL, "--raw", "-p", prompt, "--json", "--threads", "2", "--seed", 7,
                                    *flags)).stdout)["text"]

    chat = Chat(SMOL, "-n", 24, "--threads", "2", "--seed", 7)
    chat.read_until(b">>> ")
    shown = chat.say("/show parameters")
    assert "temperature 0\n" in shown and "num_predict 24\n" in shown and "seed 7\n" in shown, shown
    assert chat.say("/set parameter temperature 0.9").strip() == "Set parameter 'temperature' to '0.9'"
    assert chat.say("/set parameter num_predict 12").strip() == "Set parameter 'num_predict' to '12'"
    assert chat.say("/set parameter top_k 5").strip() == "Set parameter 'top_k' to '5'"
    assert chat.say("/set parameter top_p 2").strip() == "error: top_p must be in (0, 1]"
    assert chat.say("/set parameter top_k many").strip() == "error: 'many' is not a value for top_k"
    assert chat.say("/set parameter warmth 3").strip().startswith("error: unknown parameter 'warmth'; known: ")
    shown = chat.say("/show parameters")
    assert "temperature 0.9\n" in shown and "top_k 5\n" in shown and "top_p 1\n" in shown, shown
    assert chat.say(question) == expected("--temp", 0.9, "--top-k", 5, "-n", 12) + "\n\n"
    chat.say("/clear")
    assert chat.say("/set parameter temperature 0").strip() == "Set parameter 'temperature' to '0'"
    assert chat.say("/set parameter stop , .").strip() == "Set parameter 'stop' to ', .'"
    assert chat.say("/set parameter presence_penalty 0.9").strip() == "Set parameter 'presence_penalty' to '0.9'"
    assert chat.say("/set parameter frequency_penalty 3").strip() == "error: frequency_penalty must be in [-2, 2]"
    assert chat.say("/set parameter frequency_penalty 1.1").strip() == "Set parameter 'frequency_penalty' to '1.1'"
    assert chat.say("/set verbose").strip() == "Set 'verbose' mode."
    reply = chat.say(question)
    want = expected("-n", 12, "--stop", ",", "--stop", ".", "--presence-penalty", 0.9, "--frequency-penalty", 1.1)
    assert reply.startswith(want + "\n\n"), reply
    assert re.search(r"prompt: \d+ tokens, [\d.]+ tokens/s \| generation: \d+ tokens, [\d.]+ tokens/s \(stop\)", reply)
    chat.send("/bye\n")
    assert chat.wait() == 0


# ---- one chat turn from the shell: `lowbit run MODEL PROMPT`, as `ollama run MODEL PROMPT` --------
def run_json(*args, n=16, **kw):
    return json.loads(ok(lowbit("run", SMOL, "-n", n, "--json", "--threads", "2", *args, **kw)).stdout)


@needs_smol
@pytest.mark.parametrize("system", [None, "You are a pirate."])
def test_a_prompt_is_one_user_turn_in_the_template_rendered_by_jinja2(system):
    """The question reads as one user message in the model's own template (its default system
    message, or --system's): the same tokens as the jinja2 rendering continued with --raw, and
    only the reply is printed. From stdin (`echo QUESTION | lowbit run MODEL`) it is the same turn."""
    question = "What is the capital of France?"
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    reference = run_json("--raw", "-p", smol_template_prompt(messages))
    flags = ["--system", system] if system else []
    turn = run_json(*flags, question)
    assert reference["templated"] is False and turn["templated"] is True
    assert turn["prompt_tokens"] == reference["prompt_tokens"]
    assert turn["ids"] == reference["ids"] and turn["text"] == reference["text"]
    assert run_json(*flags, input=question + "\n")["ids"] == turn["ids"]
    printed = ok(lowbit("run", SMOL, "-n", 16, "--threads", "2", *flags, question)).stdout
    assert printed == turn["text"] + "\n"  # the reply alone, not the rendered prompt


@needs_smol
def test_format_json_answers_with_one_object():
    """--format json: Python's json module reads the answer back as one object; without it the
    same question is answered in prose."""
    question = "List three colors and their hex codes as JSON."
    answer = run_json("--format", "json", question, n=200)
    assert answer["stop_reason"] == "eos"
    assert isinstance(json.loads(answer["text"]), dict), answer["text"]
    with pytest.raises(ValueError):
        json.loads(run_json(question, n=200)["text"])


@needs_smol
def test_format_schema_answers_with_a_value_of_it(tmp_path):
    """--format FILE or --format '{...}': the answer validates against the schema (the jsonschema
    package's judgement) where --format json alone gives an object of another shape."""
    import jsonschema

    schema = {"type": "object", "properties": {"name": {"type": "string"}, "country": {"type": "string"},
                                               "population": {"type": "integer"},
                                               "landmarks": {"type": "array", "items": {"type": "string"},
                                                             "maxItems": 3}},
              "required": ["name", "country", "population", "landmarks"]}
    path = tmp_path / "city.json"
    path.write_text(json.dumps(schema))
    question = "Describe Paris as JSON."
    answer = run_json("--format", str(path), question, n=200)
    assert answer["stop_reason"] == "eos", answer["text"]
    jsonschema.validate(json.loads(answer["text"]), schema)
    assert run_json("--format", json.dumps(schema), question, n=200)["ids"] == answer["ids"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(run_json("--format", "json", question, n=200)["text"]), schema)


@needs_smol
def test_chat_with_format_holds_every_reply_to_the_schema(tmp_path):
    """`lowbit run MODEL --format SCHEMA` without a prompt: each reply of the chat is a value of
    the schema (the jsonschema package's judgement), as with `ollama run --format`."""
    import jsonschema

    schema = {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 80},
                                               "confident": {"type": "boolean"}},
              "required": ["answer", "confident"]}
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(schema))
    chat = Chat(SMOL, "-n", 120, "--threads", "2", "--format", str(path))
    chat.read_until(b">>> ")
    for question in ("What is the capital of France?", "And of Italy?"):
        reply = chat.say(question)
        jsonschema.validate(json.loads(reply), schema)
    chat.send("/bye\n")
    assert chat.wait() == 0


@needs_smol
def test_a_message_of_several_lines_between_triple_quotes():
    """Pasted text: lines from one that starts with \"\"\" to one that ends with it are one user
    message (joined by newlines, without the quotes), answered as jinja2's rendering of it is."""
    message = "Summarize this poem:\nRoses are red,\n  violets are blue."
    expected = json.loads(ok(lowbit("run", SMOL, "--raw", "-p", smol_template_prompt([{"role": "user", "content": message}]),
                                    "-n", 24, "--json", "--threads", "2")).stdout)["text"]
    chat = Chat(SMOL, "-n", 24, "--threads", "2")
    chat.read_until(b">>> ")
    first, *middle, last = message.split("\n")
    chat.send('"""' + first + "\n")
    for line in middle:
        chat.read_until(b"... ")
        chat.send(line + "\n")
    chat.read_until(b"... ")
    chat.send(last + '"""\n')
    chat.read_until(b'"""\r\n')  # the terminal's echo of the closing line
    reply = chat.read_until(b">>> ")[:-4].decode().replace("\r\n", "\n")
    assert reply == expected + "\n\n"
    # A one-line message between the quotes is that line; Ctrl-C inside a message drops it.
    chat.send('"""/bye"""\n')  # text, not the command
    chat.read_until(b'"""/bye"""\r\n')
    assert chat.read_until(b">>> ")
    chat.send('"""unfinished\n')
    chat.read_until(b"... ")
    chat.send("\x03")
    chat.read_until(b"The message was dropped.")
    chat.read_until(b">>> ")
    chat.send("/bye\n")
    assert chat.wait() == 0


@needs_smol
def test_ctrl_c_stops_a_reply_not_the_chat():
    chat = Chat(SMOL, "-n", 2000, "--threads", "2")
    chat.read_until(b">>> ")
    chat.send("Write a very long story about a dragon who learns to cook.\n")
    chat.read_until(b"cook.\r\n")
    # Wait for the reply to start, then interrupt it.
    first = b""
    end = time.time() + 120
    while len(first) < 8 and time.time() < end:
        if select.select([chat.fd], [], [], 1)[0]:
            first += os.read(chat.fd, 4096)
    assert first, "no reply started"
    chat.out = first
    chat.send("\x03")
    chat.read_until(b"[stopped]")
    chat.read_until(b">>> ", timeout=60)
    # Still chatting: Ctrl-C at the prompt does not end it either, and Ctrl-D does.
    chat.send("\x03")
    chat.read_until(b"/bye to end the chat.")
    chat.read_until(b">>> ")
    chat.send("\x04")  # Ctrl-D: end of input
    assert chat.wait() == 0


def test_chat_with_a_model_without_a_template_is_refused():
    chat = Chat(STORIES, "-n", 8)
    chat.read_until(b"has no chat template")
    assert chat.wait() == 1


@needs_smol
def test_create_defaults_are_what_run_uses_where_the_command_says_nothing(models):
    """`lowbit create --system/--parameter` (a Modelfile's SYSTEM and PARAMETER lines): `lowbit run
    NAME` answers as the source with them given as flags; a flag given wins; a bad one is refused."""
    pirate = "You are a pirate. Answer in one short sentence."
    r = lowbit("create", "pirate", SMOL, "--system", pirate, "--parameter", "temperature 0", "--parameter",
               "num_predict=12", "--parameter", "stop !", "--parameter", "top_k 20", "--models", models)
    assert r.returncode == 0, r.stderr
    shown = json.loads(lowbit("show", "pirate", "--json", "--models", models).stdout)
    assert shown["system"] == pirate
    assert shown["parameters"] == {"temperature": 0, "num_predict": 12, "stop": ["!"], "top_k": 20}
    text = lowbit("show", "pirate", "--models", models).stdout
    assert pirate in text and 'stop ["!"]' in text

    def run(*args):
        out = lowbit("run", *args, "--json", "--threads", 2, "--ctx", 512)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    got = run("pirate", "Who are you?", "--models", models)
    ref = run(SMOL, "Who are you?", "--system", pirate, "--temp", 0, "-n", 12, "--stop", "!", "--top-k", 20)
    assert (got["text"], got["ids"]) == (ref["text"], ref["ids"])
    own = run("pirate", "Who are you?", "--models", models, "-n", 3, "--system", "You are a robot.")
    ref = run(SMOL, "Who are you?", "--system", "You are a robot.", "--temp", 0, "-n", 3, "--stop", "!",
              "--top-k", 20)
    assert own["generated_tokens"] == 3 and own["ids"] == ref["ids"]

    for bad, words in (("temprature 1", "parameters.temprature"), ("top_p 5", "parameters.top_p"),
                       ("temperature", "'NAME VALUE'")):
        r = lowbit("create", "bad", SMOL, "--parameter", bad, "--models", models)
        assert r.returncode == 2 and words in r.stderr, r.stderr
    assert "bad:latest" not in lowbit("list", "--models", models).stdout


@needs_smol
def test_create_from_a_modelfile(models, tmp_path):
    """`lowbit create NAME -f Modelfile`, as `ollama create` reads one: FROM relative to the file,
    PARAMETER lines (quoted values too), a multi-line SYSTEM, comments; the model is the one the
    same defaults given as flags make. Mistakes name the file and line."""
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "smol.gguf").symlink_to(SMOL)
    system = "You are a pirate.\nAnswer in one short sentence."
    (tmp_path / "Modelfile").write_text(
        "# a pirate\nFROM ./weights/smol.gguf\n\nparameter temperature 0\nPARAMETER stop \"!\"\n"
        "PARAMETER num_predict 12\nSYSTEM \"\"\"You are a pirate.\nAnswer in one short sentence.\"\"\"\n"
        "LICENSE \"\"\"MIT\nor not\"\"\"\n")
    r = lowbit("create", "pirate-mf", "-f", tmp_path / "Modelfile", "--models", models, "--parameter", "top_k 20")
    assert r.returncode == 0, r.stderr
    shown = json.loads(lowbit("show", "pirate-mf", "--json", "--models", models).stdout)
    assert shown["system"] == system
    assert shown["parameters"] == {"temperature": 0, "stop": ["!"], "num_predict": 12, "top_k": 20}
    got = json.loads(lowbit("run", "pirate-mf", "Who are you?", "--json", "--models", models, "--threads", 2).stdout)
    ref = json.loads(lowbit("run", SMOL, "Who are you?", "--json", "--threads", 2, "--system", system, "--temp", 0,
                            "-n", 12, "--stop", "!", "--top-k", 20).stdout)
    assert got["ids"] == ref["ids"] and got["text"] == ref["text"]

    for text, words in (("FROM x\nFROM y\n", "Modelfile:2: FROM: a second FROM"),
                        ("PARAMETER temperature 0\n", "no FROM line"),
                        (f"FROM {SMOL}\nMESSAGE user hi\n", "Modelfile:2: MESSAGE: is not supported"),
                        (f"FROM {SMOL}\nSYSTEM \"\"\"open\nstill open\n", "Modelfile:2: SYSTEM: the \"\"\" opened here"),
                        (f"FROM {SMOL}\nTEMPERATURE 1\n", "Modelfile:2: 'TEMPERATURE' is not a Modelfile instruction"),
                        (f"FROM {SMOL}\nPARAMETER temprature 1\n", "parameters.temprature"),
                        (f"FROM {SMOL}\nTEMPLATE {{{{ .Prompt }}}}\n", "Go template")):
        (tmp_path / "Modelfile").write_text(text)
        r = lowbit("create", "bad", "-f", tmp_path / "Modelfile", "--models", models)
        assert r.returncode != 0 and words in r.stderr, (text, r.stderr)
    assert "bad:latest" not in lowbit("list", "--models", models).stdout


@needs_smol
def test_show_modelfile_reads_back_as_the_same_model(models, tmp_path):
    """`lowbit show --modelfile` writes what `lowbit create -f` reads: the model made from it has the
    same template, defaults and answers (a multi-line system message, a template with quotes)."""
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    r = lowbit("create", "orig", SMOL, "--template", template, "--system", "Be brief.\nBe kind.", "--parameter",
               "temperature 0", "--parameter", "stop <|im_end|>", "--parameter", "num_predict 9", "--models", models)
    assert r.returncode == 0, r.stderr
    text = lowbit("show", "orig", "--modelfile", "--models", models).stdout
    (tmp_path / "Modelfile").write_text(text)
    r = lowbit("create", "copy", "-f", tmp_path / "Modelfile", "--models", models)
    assert r.returncode == 0, (text, r.stderr)
    a, b = (json.loads(lowbit("show", n, "--json", "--models", models).stdout) for n in ("orig", "copy"))
    assert (a["template"], a["system"], a["parameters"]) == (b["template"], b["system"], b["parameters"])
    assert a["template"] == template.read_text() and a["system"] == "Be brief.\nBe kind."
    ids = [json.loads(lowbit("run", n, "Hi", "--json", "--threads", 2, "--models", models).stdout)["ids"]
           for n in ("orig", "copy")]
    assert ids[0] == ids[1] and len(ids[0]) <= 9
