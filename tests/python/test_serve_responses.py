"""OpenAI's Responses API (POST /v1/responses) through `lowbit serve`, driven by the official
`openai` client: responses.create (whole and streamed), the responses.stream() helper (which
rebuilds the response from the events and checks their order itself), responses.parse, and the
kept responses: previous_response_id, responses.retrieve, responses.input_items.list and
responses.delete.

The reference for each answer is the server's /v1/chat/completions on the same conversation with
the same settings (tested against `lowbit logits`, jinja2 and transformers in test_serve_api.py
and test_serve_tools.py): a Responses request is that conversation in another shape, so its text,
its tool calls and its token counts must be the chat route's. Tool calls use SmolLM2 stored under
Qwen2.5's template, as test_serve_tools.py does; arguments are checked by `jsonschema`.
"""

import json

import jsonschema
import openai
import pydantic
import pytest

from serve_util import SHARED, SMOL, SMOLLM2_GGUF, skip_unless_ready, start

pytestmark = skip_unless_ready

QWEN_CONFIG = SHARED / "models" / "configs" / "qwen2.5-0.5b" / "tokenizer_config.json"
TOOLS_MODEL = "smol-tools"
WEATHER = {"name": "get_weather", "description": "Get the current weather in a city",
           "parameters": {"type": "object", "required": ["city"],
                          "properties": {"city": {"type": "string", "description": "The city name"}}}}
FLAT_TOOLS = [{"type": "function", **WEATHER}]   # the Responses API's form
CHAT_TOOLS = [{"type": "function", "function": WEATHER}]  # chat completions' form
INSTRUCTIONS = "You are a helpful assistant who answers in one sentence."
QUESTION = "Why is the sky blue?"


@pytest.fixture(scope="module")
def server():
    s = start("--parallel", "2")
    if QWEN_CONFIG.exists():
        template = json.loads(QWEN_CONFIG.read_text())["chat_template"]
        r = s.post("/api/create", {"model": TOOLS_MODEL, "from": str(SMOLLM2_GGUF), "template": template,
                                   "stream": False})
        assert r.status_code == 200, r.text
    yield s
    assert s.stop() == 0, s.stderr()


def chat_reference(ai, messages, **kw):
    return ai.chat.completions.create(model=kw.pop("model", SMOL), messages=messages, temperature=0, **kw)


@pytest.mark.parametrize("limit,status", [(300, "completed"), (12, "incomplete")])
def test_text_is_the_chat_routes_answer(ai, limit, status):
    r = ai.responses.create(model=SMOL, instructions=INSTRUCTIONS, input=QUESTION, temperature=0,
                            max_output_tokens=limit)
    ref = chat_reference(ai, [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": QUESTION}],
                         max_tokens=limit)
    assert r.output_text == ref.choices[0].message.content and r.output_text
    assert r.status == status and ref.choices[0].finish_reason == ("stop" if status == "completed" else "length")
    if status == "incomplete":
        assert r.incomplete_details.reason == "max_output_tokens"
    assert r.id.startswith("resp_") and r.object == "response" and r.model == SMOL
    [item] = r.output
    assert item.type == "message" and item.role == "assistant" and item.content[0].type == "output_text"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (ref.usage.prompt_tokens, ref.usage.completion_tokens)
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens


def test_input_items_and_developer_role(ai):
    """Items with content parts and a developer message read as the chat messages they are."""
    items = [{"role": "developer", "content": INSTRUCTIONS},
             {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Name a fruit. "},
                                                              {"type": "input_text", "text": "Then a color."}]}]
    r = ai.responses.create(model=SMOL, input=items, temperature=0, max_output_tokens=60)
    ref = chat_reference(ai, [{"role": "system", "content": INSTRUCTIONS},
                              {"role": "user", "content": "Name a fruit. Then a color."}], max_tokens=60)
    assert r.output_text == ref.choices[0].message.content


def test_stream_events_build_the_same_response(ai):
    kw = dict(model=SMOL, instructions=INSTRUCTIONS, input=QUESTION, temperature=0, max_output_tokens=300)
    whole = ai.responses.create(**kw)
    events = list(ai.responses.create(stream=True, **kw))
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == whole.output_text == events[-1].response.output_text
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1
    # The client's own helper rebuilds the response from the events (and checks their order).
    with ai.responses.stream(**kw) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text == whole.output_text and final.status == "completed"


class City(pydantic.BaseModel):
    city: str
    country: str
    population: int = pydantic.Field(ge=0)


def test_parse_helper_fills_the_model(ai):
    """responses.parse sends the model as text.format {"type": "json_schema"}; the answer is held to it."""
    r = ai.responses.parse(model=SMOL, input="Tell me about Lyon as JSON.", text_format=City, temperature=0,
                           max_output_tokens=200)
    assert r.status == "completed"
    assert isinstance(r.output_parsed, City)
    jsonschema.validate(json.loads(r.output_text), City.model_json_schema())


needs_qwen = pytest.mark.skipif(not QWEN_CONFIG.exists(), reason=f"{QWEN_CONFIG} not present")


@needs_qwen
def test_function_call_is_the_chat_routes_call(ai):
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = ai.responses.create(model=TOOLS_MODEL, input=question, tools=FLAT_TOOLS, tool_choice="required",
                            temperature=0, max_output_tokens=100)
    ref = chat_reference(ai, question, model=TOOLS_MODEL, tools=CHAT_TOOLS, tool_choice="required", max_tokens=100)
    [call] = r.output
    [ref_call] = ref.choices[0].message.tool_calls
    assert call.type == "function_call" and call.call_id.startswith("call_") and call.id.startswith("fc_")
    assert (call.name, json.loads(call.arguments)) == (ref_call.function.name, json.loads(ref_call.function.arguments))
    jsonschema.validate(json.loads(call.arguments), WEATHER["parameters"])
    # Streamed, the helper rebuilds the same call.
    with ai.responses.stream(model=TOOLS_MODEL, input=question, tools=FLAT_TOOLS, tool_choice="required",
                             temperature=0, max_output_tokens=100) as stream:
        for _ in stream:
            pass
        [streamed] = stream.get_final_response().output
    assert (streamed.name, streamed.arguments) == (call.name, call.arguments)
    # A named function ({"type": "function", "name"}) is that call.
    named = ai.responses.create(model=TOOLS_MODEL, input=question, tools=FLAT_TOOLS,
                                tool_choice={"type": "function", "name": "get_weather"}, temperature=0,
                                max_output_tokens=100)
    assert named.output[0].name == "get_weather"

    # The call and its output sent back as items: the answer is the chat route's to the same turns.
    replay = question + [call.model_dump(), {"type": "function_call_output", "call_id": call.call_id,
                                             "output": "Sunny, 21 degrees"}]
    answer = ai.responses.create(model=TOOLS_MODEL, input=replay, tools=FLAT_TOOLS, temperature=0,
                                 max_output_tokens=80)
    ref_answer = chat_reference(ai, question + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}]},
        {"role": "tool", "tool_call_id": call.call_id, "content": "Sunny, 21 degrees"}],
        model=TOOLS_MODEL, tools=CHAT_TOOLS, max_tokens=80)
    assert answer.output_text == (ref_answer.choices[0].message.content or "")
    # The same through previous_response_id: the kept call, under the call_id it was answered with.
    went_on = ai.responses.create(model=TOOLS_MODEL, previous_response_id=r.id, tools=FLAT_TOOLS, temperature=0,
                                  input=[{"type": "function_call_output", "call_id": call.call_id,
                                          "output": "Sunny, 21 degrees"}], max_output_tokens=80)
    assert went_on.output_text == answer.output_text
    assert went_on.usage.input_tokens == answer.usage.input_tokens


@pytest.mark.parametrize("body,param", [
    ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),  # never kept here
    ({"input": "hi", "previous_response_id": 1}, "previous_response_id"),
    ({"input": "hi", "conversation": "conv_1"}, "conversation"),
    ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "input[0].content[0].type"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"}]}, "input[0].arguments"),
    ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"input": "hi", "tools": FLAT_TOOLS, "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice.name"),
    ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "hi", "truncation": "middle"}, "truncation"),
    ({"input": "hi", "text": {"format": {"type": "json_schema", "name": "x", "schema": {"not": {}}}}},
     "text.format.schema"),
    ({"input": 5}, "input"),
])
def test_what_it_cannot_do_is_a_400_naming_the_field(ai, body, param):
    with pytest.raises(openai.BadRequestError) as e:
        ai.responses.create(model=SMOL, **body)
    assert e.value.status_code == 400 and e.value.body["param"] == param, e.value.body


def test_previous_response_id_continues_the_kept_conversation(ai):
    """A response is kept ("store" defaults to true): previous_response_id continues its
    conversation, which is the chat route's answer to the same turns. OpenAI carries the earlier
    instructions over no more, so the reference has only the second request's."""
    first = ai.responses.create(model=SMOL, instructions=INSTRUCTIONS, input="My name is Ada. Say hello to me.",
                                temperature=0, max_output_tokens=40)
    assert first.store is True and first.previous_response_id is None and first.instructions == INSTRUCTIONS
    second = ai.responses.create(model=SMOL, previous_response_id=first.id, input="What is my name?",
                                 instructions="Answer in a few words.", temperature=0, max_output_tokens=40)
    turns = [{"role": "user", "content": "My name is Ada. Say hello to me."},
             {"role": "assistant", "content": first.output_text},
             {"role": "user", "content": "What is my name?"}]
    ref = chat_reference(ai, [{"role": "system", "content": "Answer in a few words."}] + turns, max_tokens=40)
    assert second.output_text == ref.choices[0].message.content and second.output_text
    assert (second.usage.input_tokens, second.usage.output_tokens) == (ref.usage.prompt_tokens,
                                                                        ref.usage.completion_tokens)
    assert second.previous_response_id == first.id
    # A chain: the third continues the second, which holds the first's turns too.
    third = ai.responses.create(model=SMOL, previous_response_id=second.id, input="Thank you.", temperature=0,
                                max_output_tokens=20)
    ref3 = chat_reference(ai, turns + [{"role": "assistant", "content": second.output_text},
                                       {"role": "user", "content": "Thank you."}], max_tokens=20)
    assert third.output_text == ref3.choices[0].message.content

    # Kept as answered, with the input as items (newest first, OpenAI's default order).
    assert ai.responses.retrieve(first.id).model_dump() == first.model_dump()
    items = ai.responses.input_items.list(second.id)
    [item] = items.data
    assert item.type == "message" and item.role == "user" and item.id.startswith("msg_")
    assert [c.text for c in item.content] == ["What is my name?"]

    # Deleted: gone, and nothing continues it; what was built on it keeps its own copy of the turns.
    ai.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        ai.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        ai.responses.delete(first.id)
    with pytest.raises(openai.BadRequestError) as e:
        ai.responses.create(model=SMOL, previous_response_id=first.id, input="Hi", max_output_tokens=5)
    assert e.value.body["param"] == "previous_response_id"
    again = ai.responses.create(model=SMOL, previous_response_id=second.id, input="Thank you.", temperature=0,
                                max_output_tokens=20)
    assert again.output_text == third.output_text


def test_input_items_pages(ai):
    """input_items.list pages as OpenAI's lists do: limit, order and after."""
    texts = ["one", "two", "three"]
    r = ai.responses.create(model=SMOL, input=[{"role": "user", "content": t} for t in texts], max_output_tokens=1)
    asc = ai.responses.input_items.list(r.id, order="asc", limit=2)
    assert [i.content[0].text for i in asc.data] == ["one", "two"] and asc.has_more
    rest = ai.responses.input_items.list(r.id, order="asc", after=asc.data[-1].id)
    assert [i.content[0].text for i in rest.data] == ["three"] and not rest.has_more
    # The client's auto-pager follows after/has_more through every page.
    assert [i.content[0].text for i in ai.responses.input_items.list(r.id, limit=1)] == texts[::-1]
    with pytest.raises(openai.BadRequestError) as e:
        ai.responses.input_items.list(r.id, limit=0)
    assert e.value.body["param"] == "limit"


def test_streamed_response_is_kept_and_store_false_is_not(ai):
    events = list(ai.responses.create(model=SMOL, input=QUESTION, temperature=0, max_output_tokens=30, stream=True))
    final = events[-1].response
    assert final.store is True
    assert ai.responses.retrieve(final.id).model_dump() == final.model_dump()
    r = ai.responses.create(model=SMOL, input=QUESTION, temperature=0, max_output_tokens=5, store=False)
    assert r.store is False
    with pytest.raises(openai.NotFoundError):
        ai.responses.retrieve(r.id)


def test_only_the_newest_are_kept():
    """--max-stored-responses N keeps the newest N (the oldest dropped first)."""
    s = start("--max-stored-responses", "2")
    try:
        with openai.OpenAI(base_url=s.url + "/v1", api_key="unused") as ai:
            ids = [ai.responses.create(model=SMOL, input=f"Count to {n}.", max_output_tokens=1).id for n in range(3)]
            with pytest.raises(openai.NotFoundError):
                ai.responses.retrieve(ids[0])
            assert [ai.responses.retrieve(i).id for i in ids[1:]] == ids[1:]
    finally:
        assert s.stop() == 0, s.stderr()
