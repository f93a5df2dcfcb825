"""`lowbit run` with a thinking model: "Thinking..." and the reasoning before the answer, as
`ollama run` prints them, --hidethinking, --think=false, `thinking` in --json, and /set think and
/set nothink in the chat.

The model is SmolLM2-135M-Instruct stored under our own thinking template
(tests/data/chat_templates/think_history.jinja) with an answered question written in front, whose
answer reasons first, so the small model answers the next one in that format. The expected text
comes from outside lowbit's chat path: transformers renders the prompt, `lowbit run --raw`
continues it, and the split is runtime/chat/thinking.h's rule written again here.
"""

import json

import pytest

from cli_helpers import REPO, lowbit, needs_bin, split_reasoning
from serve_util import SMOLLM2_GGUF
from test_store_cli import Chat

pytestmark = [needs_bin, pytest.mark.skipif(SMOLLM2_GGUF is None, reason="../shared/models not present")]
ctu = pytest.importorskip("transformers.utils.chat_template_utils")

SHOT = ("{{- '<|im_start|>user\\nWhat is 2+2?<|im_end|>\\n<|im_start|>assistant\\n<think>\\n2 plus 2 is 4.\\n"
        "</think>\\n\\nThe answer is 4.<|im_end|>\\n' }}\n")
TEMPLATE = SHOT + (REPO / "tests" / "data" / "chat_templates" / "think_history.jinja").read_text()
N = 40
FLAGS = ["-n", N, "--temp", 0, "--threads", 2]


def ok(r):
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("store")
    t = d / "think.jinja"
    t.write_text(TEMPLATE)
    ok(lowbit("create", "thinker", SMOLLM2_GGUF, "--template", t, "--models", d))
    ok(lowbit("create", "plain", SMOLLM2_GGUF, "--models", d))
    return d


def reference(question, **template_kwargs):
    """(thinking, answer) of the greedy reply to one question."""
    rendered, _ = ctu.render_jinja_template(conversations=[[{"role": "user", "content": question}]],
                                            chat_template=TEMPLATE, add_generation_prompt=True, **template_kwargs)
    text = json.loads(ok(lowbit("run", SMOLLM2_GGUF, "--raw", "-p", rendered[0], "--json", *FLAGS)).stdout)["text"]
    return split_reasoning(text, opened=template_kwargs.get("enable_thinking") is not False)


def test_json_and_text(store):
    thinking, answer = reference("What is 5+5?")
    assert thinking and answer  # the format took, so both parts are tested
    j = json.loads(ok(lowbit("run", "thinker", "What is 5+5?", "--json", "--models", store, *FLAGS)).stdout)
    assert (j["thinking"], j["text"]) == (thinking, answer)
    out = ok(lowbit("run", "thinker", "What is 5+5?", "--models", store, *FLAGS)).stdout
    assert out == f"Thinking...\n{thinking}\n...done thinking.\n\n{answer}\n"
    out = ok(lowbit("run", "thinker", "What is 5+5?", "--hidethinking", "--models", store, *FLAGS)).stdout
    assert out == answer + "\n"


def test_think_false(store):
    j = json.loads(ok(lowbit("run", "thinker", "What is 5+5?", "--think=false", "--json", "--models", store,
                             *FLAGS)).stdout)
    assert "thinking" not in j
    assert ("", j["text"]) == reference("What is 5+5?", enable_thinking=False)


def test_refusals(store):
    r = lowbit("run", "plain", "Hi", "--think", "--models", store, *FLAGS)
    assert r.returncode == 1 and "does not support thinking" in r.stderr
    r = lowbit("run", "thinker", "--raw", "-p", "Hi", "--think", "--models", store)
    assert r.returncode == 2 and "--think goes with the chat template" in r.stderr


def test_chat_set_nothink_and_think(store):
    thinking, answer = reference("What is 5+5?")
    chat = Chat("thinker", "--models", store, *FLAGS)
    chat.read_until(b">>> ")
    assert chat.say("/set nothink") == "Set 'nothink' mode.\n"
    # Its own turn: the conversation restarts, so the prompt is the one-question one.
    assert chat.say("/clear").startswith("Cleared")
    assert chat.say("What is 5+5?") == reference("What is 5+5?", enable_thinking=False)[1] + "\n\n"
    assert chat.say("/clear").startswith("Cleared")
    assert chat.say("/set think") == "Set 'think' mode.\n"
    # On a terminal the reasoning is dimmed.
    assert chat.say("What is 5+5?") == f"\x1b[2mThinking...\n{thinking}\n...done thinking.\n\n\x1b[0m{answer}\n\n"
    chat.send("/bye\n")
    assert chat.wait() == 0
    plain = Chat("plain", "--models", store, *FLAGS)
    plain.read_until(b">>> ")
    assert "does not support thinking" in plain.say("/set think")
    plain.send("/bye\n")
    assert plain.wait() == 0


def test_info_says_what_the_template_offers(store, tmp_path):
    """`lowbit info MODEL`: the chat template's offer as the server reads it (tools, thinking,
    the token a turn ends with: SmolLM2's <|im_end|> in every template here, ChatML)."""
    qwen3 = REPO / "tests" / "data" / "chat_templates" / "qwen3.jinja"  # tools and thinking
    ok(lowbit("create", "qwen3-like", SMOLLM2_GGUF, "--template", qwen3, "--models", store))
    want = {"thinker": (False, True), "plain": (False, False), "qwen3-like": (True, True)}
    for name, (tools, thinking) in want.items():
        chat = json.loads(ok(lowbit("info", name, "--json", "--models", store)).stdout)["model"]["chat"]
        assert chat == {"template": True, "tools": tools, "thinking": thinking, "end_of_turn": "<|im_end|>"}, name
    line = [l for l in ok(lowbit("info", "qwen3-like", "--models", store)).stdout.splitlines() if l.startswith("chat:")]
    assert line == ["chat:    template with tools, thinking; a turn ends with <|im_end|>"]
