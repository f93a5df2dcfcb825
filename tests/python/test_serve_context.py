"""A chat longer than the context, through the official clients: the server keeps every system
message and the latest turns that fit with room for the reply, as Ollama does (`truncate`, default
true), says how many messages it left out (the X-Lowbit-Dropped-Messages header), and answers as
if the client had sent only those.

What the answers are checked against comes from outside the server: the token counts of the
kept conversations as jinja2 renders SmolLM2's GGUF template and `lowbit tokenize` encodes them
(so which turns fit is worked out here), and the reply to the kept conversation sent as it is.
"""

import httpx
import ollama
import pytest

from cli_helpers import jinja2_chat_prompt, reference_fit
from serve_util import SMOL, SMOLLM2_GGUF, skip_unless_ready, start, tokenize

pytestmark = skip_unless_ready

CTX = 256
REPLY = 24  # num_predict / max_tokens: the room the server keeps for the reply

SYSTEM = {"role": "system", "content": "You are a helpful assistant who answers briefly."}


def history(turns):
    msgs = [SYSTEM]
    for k in range(turns):
        msgs.append({"role": "user", "content": f"Tell me fact number {k} about the sea, with some detail please."})
        msgs.append({"role": "assistant", "content": f"Fact {k}: the sea covers much of the planet, and its water "
                                                      f"moves in great currents that carry heat from place to place."})
    msgs.append({"role": "user", "content": "Which fact was the most surprising?"})
    return msgs


def n_tokens(messages):
    return len(tokenize(jinja2_chat_prompt(SMOLLM2_GGUF, messages)))


def expected_fit(messages, budget):
    return reference_fit(messages, budget, n_tokens)


@pytest.fixture(scope="module")
def server():
    s = start("--ctx", CTX, "--parallel", "1")
    yield s
    assert s.stop() == 0, s.stderr()


@pytest.fixture(scope="module")
def case():
    msgs = history(6)
    assert n_tokens(msgs) > CTX  # the whole conversation would not even fit the context
    dropped, kept, n = expected_fit(msgs, CTX - REPLY)
    assert 0 < dropped < 12
    return msgs, dropped, kept, n


def ollama_chat(server, messages, **extra):
    body = {"model": SMOL, "messages": messages, "stream": False,
            "options": {"temperature": 0, "num_predict": REPLY}, **extra}
    return server.post("/api/chat", body)


def test_ollama_chat_keeps_the_latest_turns_that_fit(server, oc, case):
    msgs, dropped, kept, n = case
    r = ollama_chat(server, msgs)
    assert r.status_code == 200, r.text
    assert r.headers["X-Lowbit-Dropped-Messages"] == str(dropped)
    assert r.json()["prompt_eval_count"] == n
    # The same reply as the kept conversation sent as it is, which needs no dropping.
    direct = ollama_chat(server, kept)
    assert "X-Lowbit-Dropped-Messages" not in direct.headers
    assert direct.json()["prompt_eval_count"] == n
    assert r.json()["message"]["content"] == direct.json()["message"]["content"]
    # The official client gets the same answer, streamed too.
    whole = oc.chat(model=SMOL, messages=msgs, options={"temperature": 0, "num_predict": REPLY})
    assert whole.prompt_eval_count == n and whole.message.content == r.json()["message"]["content"]
    parts = list(oc.chat(model=SMOL, messages=msgs, options={"temperature": 0, "num_predict": REPLY}, stream=True))
    assert "".join(p.message.content for p in parts) == whole.message.content
    assert "dropped the %d oldest messages" % dropped in server.stderr()


def test_without_num_predict_a_quarter_of_the_context_is_kept_for_the_reply(server, case):
    msgs = case[0]
    dropped, _, n = expected_fit(msgs, CTX - CTX // 4)
    r = server.post("/api/chat", {"model": SMOL, "messages": msgs, "stream": False,
                                  "options": {"temperature": 0}})
    assert r.status_code == 200, r.text
    assert r.headers["X-Lowbit-Dropped-Messages"] == str(dropped)
    assert r.json()["prompt_eval_count"] == n
    assert r.json()["prompt_eval_count"] + r.json()["eval_count"] <= CTX


def test_a_conversation_that_fits_is_sent_whole(server, case):
    msgs = history(1)
    r = ollama_chat(server, msgs)
    assert r.status_code == 200 and "X-Lowbit-Dropped-Messages" not in r.headers
    assert r.json()["prompt_eval_count"] == n_tokens(msgs)


def test_truncate_false_is_a_400_naming_messages(server, case):
    r = ollama_chat(server, case[0], truncate=False)
    assert r.status_code == 400
    assert r.json()["error"].startswith("messages: the prompt is %d tokens" % n_tokens(case[0]))
    r = ollama_chat(server, case[0], truncate="no")
    assert r.status_code == 400 and "truncate" in r.json()["error"]


def test_a_last_message_too_long_alone_is_still_a_400(server, oc, case):
    msgs = case[0][:-1] + [{"role": "user", "content": "fish " * 400}]
    r = ollama_chat(server, msgs)
    assert r.status_code == 400
    assert "even with only the system messages and the last one" in r.json()["error"]
    assert r.json()["error"].startswith("messages:")
    with pytest.raises(ollama.ResponseError) as e:  # nothing to drop; the official client passes it on
        oc.chat(model=SMOL, messages=[SYSTEM, {"role": "user", "content": "fish " * 400}])
    assert e.value.status_code == 400 and e.value.error.startswith("messages: the prompt is")
    assert ollama_chat(server, history(1)).status_code == 200  # and it keeps serving


def test_openai_chat_drops_the_same_turns(server, ai, case):
    msgs, dropped, kept, n = case
    raw = ai.chat.completions.with_raw_response.create(model=SMOL, messages=msgs, max_tokens=REPLY, temperature=0)
    assert raw.headers["X-Lowbit-Dropped-Messages"] == str(dropped)
    answer = raw.parse()
    assert answer.usage.prompt_tokens == n
    direct = ai.chat.completions.with_raw_response.create(model=SMOL, messages=kept, max_tokens=REPLY, temperature=0)
    assert "X-Lowbit-Dropped-Messages" not in direct.headers
    assert answer.choices[0].message.content == direct.parse().choices[0].message.content
