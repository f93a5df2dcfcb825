"""Thinking models through `lowbit serve`, with the official ollama and openai clients: the
reasoning apart from the answer (Ollama's `thinking`, OpenAI-compatible `reasoning_content`, a
Responses API reasoning item), `think` / reasoning_effort / chat_template_kwargs turning it off.

The model is SmolLM2-135M-Instruct stored under our own thinking template
(tests/data/chat_templates/think_history.jinja: ChatML, past reasoning shown, the generation
prompt opening a <think> block), given a few-shot conversation whose answers reason first, which
the small model continues in the same format. What the answers are checked against comes from
outside the server: the prompt is transformers' rendering of the same messages; the reply is what
`lowbit run --raw` generates from it; the split is the rule runtime/chat/thinking.h states,
written again here.
"""

import json

import httpx
import ollama
import pytest

from cli_helpers import split_reasoning
from serve_util import REPO, SMOLLM2_GGUF, Server, skip_unless_ready
from test_serve_tools import run_raw

pytestmark = skip_unless_ready

ctu = pytest.importorskip("transformers.utils.chat_template_utils")

TEMPLATE = (REPO / "tests" / "data" / "chat_templates" / "think_history.jinja").read_text()
THINKER, PLAIN = "smol-think", "smol"
N = 48
# Greedy as `lowbit run --temp 0` (Ollama's default repeat_penalty of 1.1 would change the text).
GREEDY = {"temperature": 0, "num_predict": N, "repeat_penalty": 1}


def few_shot(question, key="reasoning_content"):
    """Two answered questions whose answers reason first, then `question`; the reasoning under
    `key` (Ollama's clients send "thinking")."""
    msgs = []
    for a in (2, 3):
        msgs.append({"role": "user", "content": f"What is {a}+{a}?"})
        msgs.append({"role": "assistant", "content": f"The answer is {2 * a}.", key: f"{a} plus {a} is {2 * a}."})
    msgs.append({"role": "user", "content": question})
    return msgs


def reference(messages, **template_kwargs):
    """(thinking, content) of the reply: transformers' prompt, `lowbit run --raw`'s greedy text,
    cut by the documented rule (the prompt opened the block unless thinking is off)."""
    rendered, _ = ctu.render_jinja_template(conversations=[messages], chat_template=TEMPLATE,
                                            add_generation_prompt=True, **template_kwargs)
    return split_reasoning(run_raw(rendered[0], N), opened=template_kwargs.get("enable_thinking") is not False)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("store"), "--parallel", "2")
    with ollama.Client(host=s.url) as c:
        c.create(model=THINKER, from_=str(SMOLLM2_GGUF), template=TEMPLATE)
        c.create(model=PLAIN, from_=str(SMOLLM2_GGUF))
    yield s
    assert s.stop() == 0, s.stderr()


@pytest.fixture(scope="module")
def expected():
    return reference(few_shot("What is 5+5?"))


def test_the_model_reasons_in_the_format(expected):
    thinking, content = expected
    assert thinking and content  # the few-shot format took: both parts, so the split is tested


def test_capabilities(oc):
    assert "thinking" in oc.show(THINKER).capabilities
    assert "thinking" not in oc.show(PLAIN).capabilities


@pytest.mark.parametrize("think", [True, None])  # unset: the model's default, which thinks
def test_ollama_chat(oc, expected, think):
    msgs = few_shot("What is 5+5?", key="thinking")
    r = oc.chat(model=THINKER, messages=msgs, think=think, options=GREEDY)
    assert (r.message.thinking, r.message.content) == expected
    thinking, content, order = "", "", []
    for chunk in oc.chat(model=THINKER, messages=msgs, think=think, stream=True,
                         options=GREEDY):
        if chunk.message.thinking:
            thinking += chunk.message.thinking
            order.append("t")
        if chunk.message.content:
            content += chunk.message.content
            order.append("c")
    assert (thinking, content) == expected
    assert order == sorted(order, reverse=True)  # every reasoning piece before the answer's


def test_ollama_think_false(oc):
    msgs = few_shot("What is 5+5?", key="thinking")
    r = oc.chat(model=THINKER, messages=msgs, think=False, options=GREEDY)
    assert r.message.thinking is None
    assert ("", r.message.content) == reference(few_shot("What is 5+5?"), enable_thinking=False)


def test_ollama_generate(oc):
    r = oc.generate(model=THINKER, prompt="What is 7+7?", think=True, options=GREEDY)
    assert (r.thinking or "", r.response) == reference([{"role": "user", "content": "What is 7+7?"}])


def test_think_on_a_model_that_does_not(oc, server):
    with pytest.raises(ollama.ResponseError) as e:
        oc.chat(model=PLAIN, messages=[{"role": "user", "content": "Hi"}], think=True)
    assert e.value.status_code == 400 and "does not support thinking" in str(e.value)
    r = oc.chat(model=PLAIN, messages=[{"role": "user", "content": "Hi"}], think=False,
                options={"temperature": 0, "num_predict": 8})
    assert r.message.thinking is None and r.message.content
    bad = server.post("/api/chat", {"model": THINKER, "messages": [], "think": "maybe"})
    assert bad.status_code == 400 and "think" in bad.json()["error"]


def test_openai_chat(ai, expected):
    msgs = few_shot("What is 5+5?")
    r = ai.chat.completions.create(model=THINKER, messages=msgs, temperature=0, max_tokens=N)
    m = r.choices[0].message
    assert (m.model_extra.get("reasoning_content"), m.content) == expected
    thinking, content = "", ""
    for chunk in ai.chat.completions.create(model=THINKER, messages=msgs, temperature=0, max_tokens=N, stream=True):
        if chunk.choices:
            d = chunk.choices[0].delta
            assert not (content and d.model_extra.get("reasoning_content"))
            thinking += d.model_extra.get("reasoning_content") or ""
            content += d.content or ""
    assert (thinking, content) == expected


@pytest.mark.parametrize("how", [{"reasoning_effort": "none"},
                                 {"extra_body": {"chat_template_kwargs": {"enable_thinking": False}}}])
def test_openai_without_thinking(ai, how):
    r = ai.chat.completions.create(model=THINKER, messages=few_shot("What is 5+5?"), temperature=0, max_tokens=N, **how)
    m = r.choices[0].message
    assert "reasoning_content" not in (m.model_extra or {})
    assert ("", m.content) == reference(few_shot("What is 5+5?"), enable_thinking=False)


def test_openai_bad_effort(server):
    r = server.post("/v1/chat/completions", {"model": THINKER, "messages": [{"role": "user", "content": "x"}],
                                             "reasoning_effort": "extreme"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "reasoning_effort"
    r = server.post("/v1/chat/completions", {"model": THINKER, "messages": [{"role": "user", "content": "x"}],
                                             "chat_template_kwargs": {"messages": []}})
    assert r.status_code == 400 and "'messages'" in r.json()["error"]["message"]


def responses_input(messages):
    """The few-shot conversation as Responses API items: each reasoning as the reasoning item a
    response outputs, before its answer's message."""
    items = []
    for m in messages:
        if m.get("reasoning_content"):
            items.append({"type": "reasoning", "summary": [],
                          "content": [{"type": "reasoning_text", "text": m["reasoning_content"]}]})
        items.append({"type": "message", "role": m["role"], "content": m["content"]})
    return items


def test_responses(ai, expected):
    msgs = responses_input(few_shot("What is 5+5?"))
    r = ai.responses.create(model=THINKER, input=msgs, temperature=0, max_output_tokens=N)
    assert [item.type for item in r.output] == ["reasoning", "message"]
    assert (r.output[0].content[0].text, r.output_text) == expected
    events = list(ai.responses.create(model=THINKER, input=msgs, temperature=0, max_output_tokens=N, stream=True))
    deltas = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    answer = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert (deltas, answer) == expected
    done = events[-1].response
    assert [item.type for item in done.output] == ["reasoning", "message"]
    assert done.output[0].content[0].text == expected[0] and done.output_text == expected[1]
    # A kept response goes on with its reasoning, as the client sending its output back would.
    later = [{"type": "message", "role": "user", "content": "What is 6+6?"}]
    chained = ai.responses.create(model=THINKER, previous_response_id=r.id, input=later, temperature=0,
                                  max_output_tokens=N)
    whole = ai.responses.create(model=THINKER, temperature=0, max_output_tokens=N, store=False,
                                input=msgs + [item.model_dump(exclude_none=True) for item in r.output] + later)
    assert [i.type for i in chained.output] == [i.type for i in whole.output] == ["reasoning", "message"]
    assert chained.output[0].content[0].text == whole.output[0].content[0].text
    assert chained.output_text == whole.output_text
    r = ai.responses.create(model=THINKER, input=msgs, temperature=0, max_output_tokens=N, reasoning={"effort": "none"})
    assert [item.type for item in r.output] == ["message"]
