"""What the tests that drive the built `lowbit` binary share: where it and the shared models are,
and one way to run it ($LOWBIT_BIN, else <repo>/build/lowbit)."""

import functools
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
BIN = pathlib.Path(os.environ.get("LOWBIT_BIN", REPO / "build" / "lowbit"))

needs_bin = pytest.mark.skipif(not BIN.exists(), reason=f"lowbit binary not built ({BIN}; set LOWBIT_BIN)")


def lowbit(*args, **kw):
    """Runs the CLI to completion, text out. stdin is /dev/null unless given: a command that
    behaves differently on a terminal (`lowbit run` without a prompt chats) sees none."""
    if "input" not in kw:
        kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=600, **kw)


def gguf_string(path, key):
    """A string field of a GGUF file's metadata, read by the `gguf` package."""
    gguf = pytest.importorskip("gguf")
    f = gguf.GGUFReader(str(path)).fields[key]
    return bytes(f.parts[f.data[0]]).decode()


@functools.lru_cache(maxsize=None)
def _gguf_chat_template(gguf_path):
    """(template source, bos string, eos string) of a GGUF, read once: GGUFReader walks every
    metadata field in Python, seconds for a 49k-token vocabulary."""
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(str(gguf_path))

    def field_str(key):
        f = reader.fields[key]
        return bytes(f.parts[f.data[0]]).decode()

    def token(key):
        f = reader.fields[key]
        tid = int(f.parts[f.data[0]][0])
        toks = reader.fields["tokenizer.ggml.tokens"]
        return bytes(toks.parts[toks.data[tid]]).decode()

    return (field_str("tokenizer.chat_template"), token("tokenizer.ggml.bos_token_id"),
            token("tokenizer.ggml.eos_token_id"))


def jinja2_chat_prompt(gguf_path, messages):
    """The prompt for `messages` as transformers renders a chat template: jinja2 (sandboxed,
    trim_blocks and lstrip_blocks, raise_exception) over the GGUF's own tokenizer.chat_template,
    with its bos/eos strings. The reference every lowbit chat front end is held to."""
    jinja2 = pytest.importorskip("jinja2")
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    source, bos, eos = _gguf_chat_template(str(gguf_path))

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    template = env.from_string(source)
    return template.render(messages=messages, add_generation_prompt=True, bos_token=bos, eos_token=eos)


def reference_fit(messages, budget, n_tokens):
    """Which turns of a conversation too long for its context a chat front end keeps, worked out
    here from the rule (every system message; the latest turns from a user message on, the most
    that fit the budget), with n_tokens(messages) counting a rendering. Returns (dropped, kept,
    tokens of kept); dropped 0 when the whole conversation fits."""
    n = n_tokens(messages)
    if n <= budget:
        return 0, messages, n
    for s in [i for i, m in enumerate(messages) if m["role"] == "user" and i > 0]:
        kept = [m for m in messages[:s] if m["role"] == "system"] + messages[s:]
        n = n_tokens(kept)
        if n <= budget:
            return sum(m["role"] != "system" for m in messages[:s]), kept, n
    raise AssertionError("not even the last turn fits")


def split_reasoning(reply, opened=True):
    """(reasoning, answer) of a thinking model's reply by the rule runtime/chat/thinking.h states,
    written again here: after a prompt that opened a <think> block, the reasoning runs to </think>
    (or the end), white space next to the tag belonging to neither; opened=False (the prompt closed
    the block, thinking off): all answer."""
    if not opened:
        return "", reply
    if "</think>" not in reply:
        return reply.strip(), ""
    reasoning, answer = reply.split("</think>", 1)
    return reasoning.strip(), answer.lstrip()
