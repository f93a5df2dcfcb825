"""OpenAI's Responses API (POST /v1/responses) through `lowbit serve`, driven by the official
`openai` client: responses.create (whole and streamed), the responses.stream() helper (which
rebuilds the response from the events and checks their order itself) and responses.parse.

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


@pytest.mark.parametrize("body,param", [
    ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
    ({"input": "hi", "conversation": "conv_1"}, "conversation"),
    ({"input": [{"type": "reasoning", "summary": []}]}, "input[0].type"),
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
