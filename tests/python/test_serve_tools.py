"""Tool calling through `lowbit serve`, with the official openai and ollama clients, on a real
trained model: SmolLM2-135M-Instruct stored under Qwen2.5's chat template (ChatML as SmolLM2's own,
plus a tools section and <tool_call> blocks) through /api/create's `template`, the way a user gives
a model a template that offers tools.

What the answers are checked against comes from outside the server: the prompt is what
transformers' render_jinja_template makes of the same messages and tools; the reply is what
`lowbit run --raw` generates from that prompt (held with --format to the schema the template's
documented call format gives, where the call is forced); arguments are validated by the
`jsonschema` package against the tool's parameters.
"""

import json

import httpx
import jsonschema
import ollama
import pytest

from cli_helpers import lowbit
from serve_util import SHARED, SMOLLM2_GGUF, Server, skip_unless_ready

pytestmark = skip_unless_ready

ctu = pytest.importorskip("transformers.utils.chat_template_utils")

QWEN_CONFIG = SHARED / "models" / "configs" / "qwen2.5-0.5b" / "tokenizer_config.json"
if not QWEN_CONFIG.exists():
    pytest.skip(f"{QWEN_CONFIG} not present", allow_module_level=True)
QWEN_TEMPLATE = json.loads(QWEN_CONFIG.read_text())["chat_template"]
TOOLS_MODEL = "smol-tools"
PLAIN_MODEL = "smol"

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "required": ["city"],
                   "properties": {"city": {"type": "string", "description": "The city name"}}}}}
ADD = {"type": "function", "function": {
    "name": "add", "description": "Add two integers",
    "parameters": {"type": "object", "required": ["a", "b"],
                   "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}
TOOLS = [WEATHER, ADD]  # keys in the order the ollama client sends them (its pydantic models' order)
PARIS = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("store"), "--parallel", "2")
    oc = ollama.Client(host=s.url)
    oc.create(model=TOOLS_MODEL, from_=str(SMOLLM2_GGUF), template=QWEN_TEMPLATE)
    oc.create(model=PLAIN_MODEL, from_=str(SMOLLM2_GGUF))
    yield s
    assert s.stop() == 0, s.stderr()


def reference_prompt(messages, tools):
    """transformers' rendering of the conversation with its tools (tool-call arguments as objects,
    as its templates expect)."""
    if hasattr(ctu, "_normalize_chat_messages"):
        messages = ctu._normalize_chat_messages(messages)
    rendered, _ = ctu.render_jinja_template(conversations=[messages], tools=tools, chat_template=QWEN_TEMPLATE,
                                            add_generation_prompt=True)
    return rendered[0]


def run_raw(prompt, n, schema=None, temp=0, seed=None):
    args = ["run", SMOLLM2_GGUF, "--raw", "-p", prompt, "-n", n, "--temp", temp, "--json", "--threads", 2]
    if seed is not None:
        args += ["--seed", seed]
    if schema is not None:
        args += ["--format", json.dumps(schema)]
    r = lowbit(*args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["text"]


def call_object_schema(tools):
    """One call of any of `tools` as Qwen2.5's template documents it: {"name": <function-name>,
    "arguments": <args-json-object>}."""
    alternatives = [{"type": "object",
                     "properties": {"name": {"const": t["function"]["name"]}, "arguments": t["function"]["parameters"]},
                     "required": ["name", "arguments"]} for t in tools]
    return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}


def test_create_with_a_template_offers_tools(oc):
    assert "tools" in oc.show(TOOLS_MODEL).capabilities
    assert "tools" not in oc.show(PLAIN_MODEL).capabilities  # SmolLM2's own template writes no calls
    assert oc.show(TOOLS_MODEL).template == QWEN_TEMPLATE
    names = {m.model for m in oc.list().models}
    for template, said in [("{{ .Prompt }}", "Go template"), ("{% if %}", "does not parse")]:
        with pytest.raises(ollama.ResponseError) as e:
            oc.create(model="broken", from_=str(SMOLLM2_GGUF), template=template)
        assert e.value.status_code == 400 and said in str(e.value)
    assert {m.model for m in oc.list().models} == names  # nothing left behind


# Six more functions, so a forced call chooses among eight (the recognizer follows 16 at once).
MORE_TOOLS = TOOLS + [{"type": "function", "function": {
    "name": name, "description": what, "parameters": {"type": "object", "required": [arg],
                                                      "properties": {arg: {"type": kind}}}}}
    for name, what, arg, kind in [("get_time", "Get the current time in a city", "city", "string"),
                                  ("convert_currency", "Convert an amount of euros to dollars", "euros", "number"),
                                  ("search_web", "Search the web", "query", "string"),
                                  ("send_email", "Send an email", "to", "string"),
                                  ("set_alarm", "Set an alarm", "hour", "integer"),
                                  ("translate", "Translate a text to French", "text", "string")]]


@pytest.mark.parametrize("question,tools", [("What is the weather in Paris?", TOOLS), ("What is 2 plus 3?", TOOLS),
                                            ("What time is it in Tokyo?", MORE_TOOLS)])
def test_required_call_is_the_reference_call(ai, question, tools):
    """tool_choice "required": the reply is one call, the one `lowbit run` writes after the
    template's "<tool_call>\\n" held to the schema of a call of any of the tools."""
    messages = [{"role": "user", "content": question}]
    r = ai.chat.completions.create(model=TOOLS_MODEL, messages=messages, tools=tools, tool_choice="required",
                                   temperature=0, max_tokens=100)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, next(t["function"]["parameters"] for t in tools
                                        if t["function"]["name"] == call.function.name))
    expected = json.loads(run_raw(reference_prompt(messages, tools) + "<tool_call>\n", 100, call_object_schema(tools)))
    assert {"name": call.function.name, "arguments": arguments} == expected


def test_a_call_the_model_opens_is_held_to_the_tools(ai):
    """tool_choice "auto": the reply is free until it writes the template's call prefix
    ("<tool_call>\\n"), then held to a call object of the tools until it closes. Sampled with seed
    3, the free reply (`lowbit run --raw`, same prompt, settings and seed) opens a call and writes
    a URL in it, no call; the server's reply makes the same draws up to the prefix, then a call
    whose arguments validate against its tool's parameters."""
    messages = [{"role": "user", "content": "Tell me the weather in London and Rome."}]
    r = ai.chat.completions.create(model=TOOLS_MODEL, messages=messages, tools=MORE_TOOLS, temperature=0.8, seed=3,
                                   max_tokens=100)
    free = run_raw(reference_prompt(messages, MORE_TOOLS), 100, temp=0.8, seed=3)
    opened = free.index("<tool_call>\n")
    with pytest.raises(ValueError):  # what the model wrote after the prefix is no call object
        json.loads(free[opened + len("<tool_call>\n"):].split("</tool_call>")[0])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls, choice.message
    assert (choice.message.content or "") == free[:opened].strip()
    for call in choice.message.tool_calls:
        tool = next(t["function"] for t in MORE_TOOLS if t["function"]["name"] == call.function.name)
        jsonschema.validate(json.loads(call.function.arguments), tool["parameters"])


def test_named_call_is_the_reference_call(ai):
    """A named function: the prompt goes on with the template's own opening of that call, and the
    arguments are held to its parameters."""
    choice = {"type": "function", "function": {"name": "add"}}
    messages = [{"role": "user", "content": "I have 7 apples and buy 5 more."}]
    r = ai.chat.completions.create(model=TOOLS_MODEL, messages=messages, tools=TOOLS, tool_choice=choice,
                                   temperature=0, max_tokens=100)
    [call] = r.choices[0].message.tool_calls
    assert call.function.name == "add" and call.type == "function" and call.id.startswith("call_")
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, ADD["function"]["parameters"])
    opening = '<tool_call>\n{"name": "add", "arguments": '  # the template's text, quoted from its source
    assert "'\\n<tool_call>\\n{\"name\": \"'" in QWEN_TEMPLATE and "'\", \"arguments\": '" in QWEN_TEMPLATE
    expected = run_raw(reference_prompt(messages, TOOLS) + opening, 100, ADD["function"]["parameters"])
    assert arguments == json.loads(expected)


@pytest.mark.parametrize("keep_alive", [None, 0])
def test_streamed_call_equals_the_whole(ai, keep_alive):
    """keep_alive 0 unloads the model as the stream ends, before the reply is read back as calls:
    what reads it must not depend on the model still being loaded."""
    kw = dict(model=TOOLS_MODEL, messages=PARIS, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=100)
    whole = ai.chat.completions.create(**kw).choices[0].message.tool_calls
    calls, finish = {}, None
    extra = {} if keep_alive is None else {"extra_body": {"keep_alive": keep_alive}}
    for chunk in ai.chat.completions.create(stream=True, **kw, **extra):
        for d in chunk.choices[0].delta.tool_calls or []:
            c = calls.setdefault(d.index, {"name": "", "arguments": ""})
            c["name"] += d.function.name or ""
            c["arguments"] += d.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == \
        [(c.function.name, json.loads(c.function.arguments)) for c in whole]


def test_auto_reply_is_the_reference_reply(server, oc, ai):
    """tool_choice "auto" (Ollama's only mode): the tools are in the prompt, the reply is the model's
    own, and it is a call exactly when the reference text holds one; streamed == whole."""
    prompt = reference_prompt(PARIS, [WEATHER])
    expected = run_raw(prompt, 40)
    assert "<tool_call>" not in expected  # this small model answers in prose here
    # Raw HTTP for Ollama: the reference renders the tools exactly as sent (key order included).
    body = {"model": TOOLS_MODEL, "messages": PARIS, "tools": [WEATHER], "stream": False,
            "options": {"temperature": 0, "num_predict": 40, "repeat_penalty": 1.0}}
    r = httpx.post(server.url + "/api/chat", json=body, timeout=120).json()
    assert r["message"]["content"] == expected and "tool_calls" not in r["message"]
    streamed = "".join(p.message.content for p in oc.chat(model=TOOLS_MODEL, messages=PARIS, tools=[WEATHER],
                                                          options=body["options"], stream=True))
    assert streamed == expected
    a = ai.chat.completions.create(model=TOOLS_MODEL, messages=PARIS, tools=[WEATHER], temperature=0, max_tokens=40)
    assert a.choices[0].message.content == expected and a.choices[0].message.tool_calls is None
    assert a.choices[0].finish_reason == "length"


def test_a_conversation_with_calls_and_results(oc, ai):
    """The call and its result go back to the template as transformers' templates take them (the
    arguments an object, whether the client sent an object (Ollama) or its JSON text (OpenAI))."""
    result = "Sunny, 24 C"
    openai_turns = PARIS + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": result}]
    reference_turns = PARIS + [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": result}]
    expected = run_raw(reference_prompt(reference_turns, TOOLS), 30)
    a = ai.chat.completions.create(model=TOOLS_MODEL, messages=openai_turns, tools=TOOLS, temperature=0, max_tokens=30)
    assert a.choices[0].message.content == expected

    ollama_turns = PARIS + [
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": result, "tool_name": "get_weather"}]
    expected = run_raw(reference_prompt(ollama_turns, [WEATHER]), 30)
    o = oc.chat(model=TOOLS_MODEL, messages=ollama_turns, tools=[WEATHER], options={"temperature": 0, "num_predict": 30, "repeat_penalty": 1.0})
    assert o.message.content == expected


@pytest.mark.parametrize("body, field", [
    ({"model": PLAIN_MODEL, "tools": [WEATHER]}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools[0].function.name"),
    ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "add"}}}, "tool_choice.function.name"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [dict(WEATHER, function=dict(WEATHER["function"], name=f"f{i}")) for i in range(17)],
      "tool_choice": "required"}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"n": {"type": "integer", "not": {"const": 3}}}}}}], "tool_choice": "required"},
     "tools[0].function.parameters"),
    ({"tools": [WEATHER], "tool_choice": "required", "response_format": {"type": "json_object"}}, "tool_choice"),
    ({"messages": PARIS + [{"role": "assistant", "tool_calls": [{"function": {"name": "get_weather", "arguments": "{oops"}}]}],
      "tools": [WEATHER]}, "messages[1].tool_calls[0].function.arguments"),
    ({"functions": [WEATHER["function"]]}, "functions"),
])
def test_refusals_name_the_field(server, body, field):
    req = {"model": TOOLS_MODEL, "messages": PARIS, "max_tokens": 5, **body}
    r = httpx.post(server.url + "/v1/chat/completions", json=req, timeout=120)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == field, r.text
    assert httpx.get(server.url + "/api/version", timeout=30).status_code == 200  # still serving
