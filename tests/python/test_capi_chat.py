"""The C API's chat calls (lowbit_chat_apply_template, lowbit_chat_tokenize,
lowbit_generate_tokens) through ctypes on the built liblowbit.so, against the references: jinja2
rendering the GGUF's own template, and `lowbit run MODEL PROMPT` (held to that same rendering in
test_store_cli.py) for the reply. Tool calling (lowbit_tools_*) against transformers' rendering of
Qwen2.5's template with the tools, the call syntax that template documents, and jsonschema."""

import ctypes
import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cli_helpers import BIN, SHARED, jinja2_chat_prompt, lowbit, needs_bin  # noqa: E402

LIB = BIN.parent / "liblowbit.so"
SMOL = SHARED / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
pytestmark = [needs_bin, pytest.mark.skipif(not LIB.exists(), reason=f"{LIB} not built"),
              pytest.mark.skipif(not SMOL.exists(), reason=f"{SMOL} not present")]

OK, BUFFER_TOO_SMALL = 0, 8
CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int32, ctypes.c_void_p)


# The parameter structs as include/lowbit.h declares them (ABI version 5; 5 changed none of these).
class LoadParams(ctypes.Structure):
    _fields_ = [("threads", ctypes.c_int32), ("ctx", ctypes.c_int64), ("isa", ctypes.c_char_p),
                ("gpu_layers", ctypes.c_int32)]


class SamplerParams(ctypes.Structure):
    _fields_ = [("temperature", ctypes.c_float), ("top_k", ctypes.c_int32), ("top_p", ctypes.c_float),
                ("min_p", ctypes.c_float), ("repetition_penalty", ctypes.c_float),
                ("repetition_window", ctypes.c_int32), ("presence_penalty", ctypes.c_float),
                ("frequency_penalty", ctypes.c_float), ("seed", ctypes.c_uint64)]


class GenerateParams(ctypes.Structure):
    _fields_ = [("max_tokens", ctypes.c_int64), ("sampler", SamplerParams),
                ("stop", ctypes.POINTER(ctypes.c_char_p)), ("n_stop", ctypes.c_size_t), ("add_bos", ctypes.c_int),
                ("format", ctypes.c_char_p)]


@pytest.fixture(scope="module")
def lib():
    c = ctypes.CDLL(str(LIB))
    c.lowbit_last_error.restype = ctypes.c_char_p
    assert c.lowbit_abi_version() == 5, "the structs below follow ABI version 5"
    c.lowbit_load_default_params.restype = LoadParams
    c.lowbit_generate_default_params.restype = GenerateParams
    c.lowbit_chat_apply_template.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                             ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    c.lowbit_chat_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                       ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    c.lowbit_generate_tokens.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t,
                                         ctypes.c_void_p, CALLBACK, ctypes.c_void_p, ctypes.c_void_p]
    c.lowbit_tools_create.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    c.lowbit_tools_free.argtypes = [ctypes.c_void_p]
    c.lowbit_tools_apply_template.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t,
                                              ctypes.POINTER(ctypes.c_size_t)]
    c.lowbit_tools_format.argtypes = [ctypes.c_void_p]
    c.lowbit_tools_format.restype = ctypes.c_char_p
    c.lowbit_tools_read_reply.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                          ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    return c


@pytest.fixture(scope="module")
def model(lib):
    params = lib.lowbit_load_default_params()
    params.threads, params.ctx = 2, 512
    handle = ctypes.c_void_p()
    assert lib.lowbit_model_load(str(SMOL).encode(), ctypes.byref(params), ctypes.byref(handle)) == OK, \
        lib.lowbit_last_error()
    yield handle
    lib.lowbit_model_free(handle)


def render(lib, model, messages):
    raw = json.dumps(messages).encode()
    n = ctypes.c_size_t()
    assert lib.lowbit_chat_apply_template(model, raw, 1, None, 0, ctypes.byref(n)) == OK, lib.lowbit_last_error()
    buf = ctypes.create_string_buffer(n.value + 1)
    assert lib.lowbit_chat_apply_template(model, raw, 1, buf, n.value, ctypes.byref(n)) == BUFFER_TOO_SMALL
    assert lib.lowbit_chat_apply_template(model, raw, 1, buf, len(buf), ctypes.byref(n)) == OK
    return buf.value.decode()


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Who are you?"},
     {"role": "assistant", "content": "Arr, a pirate."}, {"role": "user", "content": "Where is your ship? ünïcödé"}],
])
def test_the_template_renders_as_jinja2_does(lib, model, messages):
    assert render(lib, model, messages) == jinja2_chat_prompt(SMOL, messages)


def generate_from_c(lib, model, question, max_tokens, fmt=None, text=None):
    """A chat turn through the C calls: the question rendered by lowbit_chat_apply_template (or the
    prompt text given), lowbit_chat_tokenize, lowbit_generate_tokens (greedy). (status, prompt
    tokens, reply, error)."""
    text = (text or render(lib, model, [{"role": "user", "content": question}])).encode()
    n = ctypes.c_size_t()
    assert lib.lowbit_chat_tokenize(model, text, len(text), None, 0, ctypes.byref(n)) == OK
    ids = (ctypes.c_int32 * n.value)()
    assert lib.lowbit_chat_tokenize(model, text, len(text), ids, n.value, ctypes.byref(n)) == OK
    params = lib.lowbit_generate_default_params()
    params.max_tokens = max_tokens
    params.format = fmt
    pieces = []
    collect = CALLBACK(lambda piece, size, token, user: pieces.append(ctypes.string_at(piece, size)) or 0)
    session = ctypes.c_void_p()
    assert lib.lowbit_session_create(model, ctypes.byref(session)) == OK
    try:
        status = lib.lowbit_generate_tokens(session, ids, n.value, ctypes.byref(params), collect, None, None)
        error = lib.lowbit_last_error().decode()  # before another call clears it
    finally:
        lib.lowbit_session_free(session)
    return status, n.value, b"".join(pieces).decode(), error


def test_a_chat_turn_from_c_is_lowbit_run_s_reply(lib, model):
    question = "What is the capital of France?"
    status, n, reply, error = generate_from_c(lib, model, question, 16)
    assert status == OK, error
    cli = json.loads(lowbit("run", SMOL, question, "-n", 16, "--json", "--threads", "2", "--ctx", 512).stdout)
    assert cli["templated"] and cli["prompt_tokens"] == n
    assert reply == cli["text"]


def test_format_from_c_is_lowbit_run_s_structured_output(lib, model):
    """lowbit_generate_params.format: a schema holds the reply to one value of it (the jsonschema
    package's judgement), the same reply `lowbit run --format SCHEMA` gives."""
    import jsonschema

    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 0},
                                               "area_km2": {"type": "number", "exclusiveMinimum": 0}},
              "required": ["city", "population", "area_km2"]}
    question = "Describe Lyon as JSON."
    status, _, reply, error = generate_from_c(lib, model, question, 200, json.dumps(schema).encode())
    assert status == OK, error
    jsonschema.validate(json.loads(reply), schema)
    cli = json.loads(lowbit("run", SMOL, question, "-n", 200, "--json", "--threads", "2", "--ctx", 512,
                            "--format", json.dumps(schema)).stdout)
    assert reply == cli["text"]
    status, _, _, error = generate_from_c(lib, model, question, 8, b'{"type": "integer", "not": {"const": 2}}')
    assert status == 1 and "lowbit_generate_tokens: format: 'not' is not supported" in error


QWEN = SHARED / "models" / "configs" / "qwen2.5-0.5b" / "tokenizer_config.json"
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
ADD = {"type": "function", "function": {"name": "add", "description": "Add two integers",
                                        "parameters": {"type": "object", "required": ["a", "b"], "properties": {
                                            "a": {"type": "integer"}, "b": {"type": "integer"}}}}}
TOOLS = [WEATHER, ADD]


@pytest.fixture(scope="module")
def tools_model(lib, tmp_path_factory):
    """SmolLM2 under Qwen2.5's template (which offers tools), made by `lowbit create --template`."""
    if not QWEN.exists():
        pytest.skip(f"{QWEN} not present")
    d = tmp_path_factory.mktemp("capi_tools")
    template = json.loads(QWEN.read_text())["chat_template"]
    (d / "t.jinja").write_text(template)
    lowbit("create", "smol", SMOL, "--template", d / "t.jinja", "--models", d / "store")
    params = lib.lowbit_load_default_params()
    params.threads, params.ctx = 2, 512
    handle = ctypes.c_void_p()
    assert lib.lowbit_model_load(str(d / "store" / "smol" / ":latest").encode(), ctypes.byref(params),
                                 ctypes.byref(handle)) == OK, lib.lowbit_last_error()
    yield handle, template
    lib.lowbit_model_free(handle)


def c_text(lib, fn, *args):
    """A text result by the size convention: a size query, then the call into a buffer that fits."""
    n = ctypes.c_size_t()
    assert fn(*args, None, 0, ctypes.byref(n)) == OK, lib.lowbit_last_error()
    buf = ctypes.create_string_buffer(n.value + 1)
    assert fn(*args, buf, len(buf), ctypes.byref(n)) == OK, lib.lowbit_last_error()
    return buf.value.decode()


def c_tools(lib, model, tools, choice):
    handle = ctypes.c_void_p()
    status = lib.lowbit_tools_create(model, json.dumps(tools).encode(), choice and choice.encode(), ctypes.byref(handle))
    return status, handle, lib.lowbit_last_error().decode()


@pytest.mark.parametrize("choice", ["add", "required", None])
def test_a_tool_call_from_c(lib, tools_model, choice):
    """A turn with tools through the C calls: the prompt is transformers' rendering with the tools,
    begun with the call's opening in the template's own syntax when one is forced; a forced reply
    is held to the tool's parameters (the jsonschema package's judgement) and read back as the call."""
    import jsonschema

    ctu = pytest.importorskip("transformers.utils.chat_template_utils")
    model, template = tools_model
    messages = [{"role": "user", "content": "What is 2 plus 3?"}]
    rendered = ctu.render_jinja_template(conversations=[messages], tools=TOOLS, chat_template=template,
                                         add_generation_prompt=True)[0][0]
    status, tools, error = c_tools(lib, model, TOOLS, choice)
    assert status == OK, error
    try:
        prompt = c_text(lib, lib.lowbit_tools_apply_template, tools, json.dumps(messages).encode())
        fmt = lib.lowbit_tools_format(tools)
        one_of = {"anyOf": [{"type": "object", "properties": {"name": {"const": t["function"]["name"]},
                                                              "arguments": t["function"]["parameters"]},
                             "required": ["name", "arguments"]} for t in TOOLS]}
        if choice == "add":  # Qwen2.5's template writes a call as <tool_call>\n{"name": ..., "arguments": ...}
            assert prompt == rendered + '<tool_call>\n{"name": "add", "arguments": '
            assert json.loads(fmt) == ADD["function"]["parameters"]
        elif choice == "required":
            assert prompt == rendered + "<tool_call>\n" and json.loads(fmt) == one_of
        else:
            assert prompt == rendered and fmt is None
        status, _, reply, error = generate_from_c(lib, model, None, 60, fmt, text=prompt)
        assert status == OK, error
        raw = reply.encode()
        read = json.loads(c_text(lib, lib.lowbit_tools_read_reply, tools, raw, len(raw)))
    finally:
        lib.lowbit_tools_free(tools)
    if choice == "add":
        assert read == {"content": "", "tool_calls": [{"name": "add", "arguments": json.loads(reply)}]}
        jsonschema.validate(read["tool_calls"][0]["arguments"], ADD["function"]["parameters"])
    elif choice == "required":
        [call] = read["tool_calls"]
        assert read["content"] == "" and call == json.loads(reply)
        jsonschema.validate(call, one_of)
    else:  # this small model answers in prose unless made to call
        assert read == {"content": reply, "tool_calls": []} and "<tool_call>" not in reply


def test_tool_replies_read_back_and_errors_from_c(lib, model, tools_model):
    tmodel, _ = tools_model
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    for choice, expected in ((None, {"content": "", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}),
                             ("none", {"content": call, "tool_calls": []})):
        status, tools, error = c_tools(lib, tmodel, TOOLS, choice)
        assert status == OK, error
        raw = ("Let me look. " + call).encode() if choice is None else call.encode()
        read = json.loads(c_text(lib, lib.lowbit_tools_read_reply, tools, raw, len(raw)))
        lib.lowbit_tools_free(tools)
        if choice is None:  # the text before the call, less the whitespace before its opening
            expected["content"] = "Let me look."
        assert read == expected
    # Each mistake is INVALID_ARGUMENT (1) or NOT_FOUND (2) with a message that names it.
    for m, tools, choice, status, words in (
            (tmodel, [WEATHER, {"type": "function", "function": {"description": "x"}}], None, 1, "tools_json[1].function.name"),
            (tmodel, {"type": "function"}, None, 1, "not a non-empty JSON array"),
            (tmodel, TOOLS, "mul", 1, "tool_choice: 'mul'"),
            (model, TOOLS, None, 1, "writes no tool calls")):  # SmolLM2's own template
        got, handle, error = c_tools(lib, m, tools, choice)
        assert (got, handle.value) == (status, None) and words in error, error
    assert lib.lowbit_tools_format(None) is None


THINK_TEMPLATE = pathlib.Path(__file__).resolve().parents[1] / "data" / "chat_templates" / "think_history.jinja"


@pytest.fixture(scope="module")
def think_model(lib, tmp_path_factory):
    """SmolLM2 under our own thinking template (tests/data/chat_templates/think_history.jinja)."""
    d = tmp_path_factory.mktemp("capi_think")
    lowbit("create", "smol", SMOL, "--template", THINK_TEMPLATE, "--models", d / "store")
    params = lib.lowbit_load_default_params()
    params.threads, params.ctx = 2, 512
    handle = ctypes.c_void_p()
    assert lib.lowbit_model_load(str(d / "store" / "smol" / ":latest").encode(), ctypes.byref(params),
                                 ctypes.byref(handle)) == OK, lib.lowbit_last_error()
    yield handle
    lib.lowbit_model_free(handle)


def test_a_thinking_turn_from_c(lib, model, think_model):
    """lowbit_chat_apply_template_vars against transformers' rendering (enable_thinking either
    way); a reply fed to lowbit_thinking in pieces comes out as the documented rule cuts it; a few-shot
    conversation whose answers reason first, so the small model's reply has both parts."""
    ctu = pytest.importorskip("transformers.utils.chat_template_utils")
    lib.lowbit_chat_thinks.argtypes = [ctypes.c_void_p]
    lib.lowbit_chat_apply_template_vars.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                                    ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    lib.lowbit_thinking_create.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.lowbit_thinking_free.argtypes = [ctypes.c_void_p]
    lib.lowbit_thinking_feed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    for fn in (lib.lowbit_thinking_reasoning, lib.lowbit_thinking_answer):
        fn.argtypes, fn.restype = [ctypes.c_void_p], ctypes.c_char_p
    assert lib.lowbit_chat_thinks(think_model) == 1 and lib.lowbit_chat_thinks(model) == 0

    messages = []
    for a in (2, 3):
        messages += [{"role": "user", "content": f"What is {a}+{a}?"},
                     {"role": "assistant", "content": f"The answer is {2 * a}.", "reasoning_content": f"{a} plus {a} is {2 * a}."}]
    messages.append({"role": "user", "content": "What is 5+5?"})
    template = THINK_TEMPLATE.read_text()
    for vars_ in (None, {"enable_thinking": False}, {"enable_thinking": True}):
        got = c_text(lib, lib.lowbit_chat_apply_template_vars, think_model, json.dumps(messages).encode(), 1,
                     vars_ and json.dumps(vars_).encode())
        assert got == ctu.render_jinja_template(conversations=[messages], chat_template=template,
                                                add_generation_prompt=True, **(vars_ or {}))[0][0]
    assert lib.lowbit_chat_apply_template_vars(think_model, b"[]", 1, b'{"messages": 1}', None, 0,
                                               ctypes.byref(ctypes.c_size_t())) == 1
    assert lib.lowbit_chat_apply_template_vars(think_model, b"[]", 1, b"[1]", None, 0,
                                               ctypes.byref(ctypes.c_size_t())) == 1
    assert b"vars_json is not a JSON object" in lib.lowbit_last_error()

    prompt = c_text(lib, lib.lowbit_chat_apply_template_vars, think_model, json.dumps(messages).encode(), 1, None)
    status, _, reply, error = generate_from_c(lib, think_model, None, 40, text=prompt)
    assert status == OK, error
    thinking, answer = reply.split("</think>", 1)  # the prompt opened the block
    assert thinking.strip() and answer.strip()
    handle = ctypes.c_void_p()
    assert lib.lowbit_thinking_create(prompt.encode(), ctypes.byref(handle)) == OK
    data = reply.encode()
    got_thinking, got_answer = b"", b""
    for i in range(0, len(data), 3):  # 3-byte pieces cut tags and characters anywhere
        piece = data[i:i + 3]
        assert lib.lowbit_thinking_feed(handle, piece, len(piece), int(i + 3 >= len(data))) == OK
        got_thinking += lib.lowbit_thinking_reasoning(handle)
        got_answer += lib.lowbit_thinking_answer(handle)
    assert (got_thinking.decode(), got_answer.decode()) == (thinking.strip(), answer.lstrip())
    lib.lowbit_thinking_free(handle)
    assert lib.lowbit_thinking_feed(handle, b"x", 1, 0) == 1  # freed
    assert lib.lowbit_thinking_reasoning(handle) is None
