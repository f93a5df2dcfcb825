"""The C API's chat calls (lowbit_chat_apply_template, lowbit_chat_tokenize,
lowbit_generate_tokens) through ctypes on the built liblowbit.so, against the references: jinja2
rendering the GGUF's own template, and `lowbit run MODEL PROMPT` (held to that same rendering in
test_store_cli.py) for the reply."""

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


# The parameter structs as include/lowbit.h declares them (ABI version 4).
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
    assert c.lowbit_abi_version() == 4, "the structs below follow ABI version 4"
    c.lowbit_load_default_params.restype = LoadParams
    c.lowbit_generate_default_params.restype = GenerateParams
    c.lowbit_chat_apply_template.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                             ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    c.lowbit_chat_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                       ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    c.lowbit_generate_tokens.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t,
                                         ctypes.c_void_p, CALLBACK, ctypes.c_void_p, ctypes.c_void_p]
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


def generate_from_c(lib, model, question, max_tokens, fmt=None):
    """A chat turn through the C calls: the question rendered by lowbit_chat_apply_template,
    lowbit_chat_tokenize, lowbit_generate_tokens (greedy). (status, prompt tokens, reply, error)."""
    text = render(lib, model, [{"role": "user", "content": question}]).encode()
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
