"""Models through the Python API: llama2.c's published greedy outputs on both shared models,
streaming, stop strings, tokenizer, logits, errors, and two models generating on two threads."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading

import numpy as np
import pytest

import lowbit


def test_convert_quantized_with_progress(tmp_path):
    from conftest import hf_model

    calls = []
    summary = lowbit.convert(
        hf_model("stories260K"),
        tmp_path / "q4",
        bits=4,
        keep={"model.layers.0.*": "q8"},
        progress=lambda i, n, name, done, total: calls.append((i, n, name)),
    )
    assert summary["tensors"] == len(calls) == calls[-1][1]
    assert 4.0 < summary["bits_per_weight"] < 9.0
    manifest = json.loads((tmp_path / "q4" / "manifest.json").read_text())
    assert manifest["recipe"]["keep"] == ["model.layers.0.*=q8"]
    model = lowbit.Model(tmp_path / "q4")
    assert len(model.generate("Once", max_tokens=20)) > 0


def test_convert_interrupted_leaves_nothing(tmp_path):
    from conftest import hf_model

    def interrupt(i, n, name, done, total):
        if i == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lowbit.convert(hf_model("stories260K"), tmp_path / "out", bits=4, progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_stories_greedy_matches_llama2c(stories, stories_golden):
    assert stories.generate("", max_tokens=256) + "\n" == stories_golden


def test_aidreams_greedy_matches_llama2c(aidreams_dir, aidreams_golden):
    model = lowbit.Model(aidreams_dir)
    assert model.generate("", max_tokens=128) + "\n" == aidreams_golden


def test_stream_pieces_concatenate_to_the_text(stories, stories_golden):
    pieces = list(stories.generate("", max_tokens=256, stream=True))
    assert len(pieces) > 50
    assert "".join(pieces) + "\n" == stories_golden


def test_stream_closed_early_stops_the_worker(stories):
    before = threading.active_count()
    it = stories.generate("", max_tokens=256, stream=True)
    first = next(it)
    assert first
    it.close()  # joins the worker, which stops at its next token
    assert threading.active_count() == before


def test_stop_string_and_sampling(stories, stories_golden):
    text = stories.generate("", stop=["Lily"])
    assert text == stories_golden[: stories_golden.index("Lily")]
    a = stories.generate("Once", max_tokens=40, temperature=0.8, top_k=40, top_p=0.9, seed=7)
    b = stories.generate("Once", max_tokens=40, temperature=0.8, top_k=40, top_p=0.9, seed=7)
    assert a == b  # same seed, same text


def test_tokenize_detokenize_and_logits(stories, stories_golden):
    ids = stories.tokenize("Once upon a time")
    assert ids[0] == 1  # BOS
    assert stories.tokenize("Once upon a time", add_bos=False) == ids[1:]
    assert stories.detokenize(ids) == "Once upon a time"
    logits = stories.logits(ids)
    assert logits.shape == (len(ids), stories.vocab_size) and logits.dtype == np.float32
    # The greedy continuation of the prompt is the argmax of the last row.
    text = stories.generate("Once upon a time", max_tokens=1)
    assert stories.detokenize(ids + [int(logits[-1].argmax())]).startswith("Once upon a time" + text)
    # From BOS alone, the golden text begins with the argmax token.
    first = int(stories.logits([1])[0].argmax())
    assert stories_golden.startswith(stories.detokenize([first]))


def test_errors_raise_lowbit_error(stories, stories_dir, tmp_path):
    with pytest.raises(lowbit.Error, match="/nonexistent/model"):
        lowbit.Model("/nonexistent/model")
    with pytest.raises(lowbit.Error, match="top_p"):
        stories.generate("", top_p=0)
    with pytest.raises(lowbit.Error, match="outside the vocabulary"):
        stories.logits([100000])
    with pytest.raises(lowbit.Error, match="already exists"):
        lowbit.convert(stories_dir, stories_dir, bits=4)
    with pytest.raises(lowbit.Error, match="bits"):
        lowbit.convert(stories_dir, tmp_path / "out", bits=3)

    newer = tmp_path / "newer"
    shutil.copytree(stories_dir, newer)
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["format_version"] = 99
    (newer / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(lowbit.VersionError, match="format_version 99") as info:
        lowbit.Model(newer)
    assert isinstance(info.value, lowbit.Error)


def test_two_models_on_two_threads(stories_dir, aidreams_dir, stories_golden, aidreams_golden):
    models = [lowbit.Model(stories_dir, threads=1), lowbit.Model(aidreams_dir, threads=1)]
    steps = [256, 128]
    results = [None, None]
    errors = []
    start = threading.Barrier(2)

    def work(i):
        try:
            start.wait()
            results[i] = [models[i].generate("", max_tokens=steps[i]) for _ in range(3)]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(r + "\n" == stories_golden for r in results[0])
    assert all(r + "\n" == aidreams_golden for r in results[1])


def test_interrupt_stops_generation(stories, stories_golden):
    # A signal arriving during a generation surfaces as KeyboardInterrupt from generate(), as
    # Ctrl-C does; the model stays usable.
    seen = []

    def on_piece(piece):
        seen.append(piece)
        if len(seen) == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        stories._core.generate("", max_tokens=256, callback=on_piece)
    assert 3 <= len(seen) < 10
    assert stories.generate("", max_tokens=256) + "\n" == stories_golden


def test_generate_returns_the_text_with_stop_reason_and_speed(stories):
    text = stories.generate("Once upon a time", max_tokens=5)
    assert isinstance(text, str) and isinstance(text, lowbit.Generation)
    assert text.stop_reason == "length"
    assert len(text.ids) == text.generated_tokens == 5
    assert text.prompt_tokens == len(stories.tokenize("Once upon a time"))
    assert text.gen_tokens_per_s == pytest.approx(5 / text.gen_seconds)
    assert text.prompt_tokens_per_s == pytest.approx(text.prompt_tokens / text.prompt_seconds)
    assert stories.detokenize(stories.tokenize("Once upon a time") + text.ids) == "Once upon a time" + text
    assert type(text + "") is str  # operations give plain str, as before
    eos = stories.generate("", max_tokens=1000)
    assert eos.stop_reason == "eos"
    stream = stories.generate("Once", max_tokens=12, stream=True)
    pieces = list(stream)
    assert stream.result == "".join(pieces) and stream.result.stop_reason == "length"


def test_special_ids_are_those_of_the_reference_tokenizer(stories):
    import sentencepiece
    from conftest import hf_model

    sp = sentencepiece.SentencePieceProcessor(model_file=str(hf_model("stories260K") / "tokenizer.model"))
    assert stories.bos_id == sp.bos_id()
    assert stories.eos_ids == [sp.eos_id()]


def test_text_reads_on_from_the_prompt_as_sentencepiece_decodes(stories):
    import sentencepiece
    from conftest import hf_model

    sp = sentencepiece.SentencePieceProcessor(model_file=str(hf_model("stories260K") / "tokenizer.model"))
    for prompt in ["The dog", "Lily", "Once upon a time"]:
        text = stories.generate(prompt, max_tokens=12)
        ids = [sp.bos_id()] + sp.encode(prompt)
        whole, head = sp.decode(ids + text.ids), sp.decode(ids)
        assert text == whole[len(head):], prompt
        assert "".join(stories.generate(prompt, max_tokens=12, stream=True)) == text


def test_messages_name_the_python_arguments(stories, stories_dir, tmp_path):
    with pytest.raises(lowbit.Error, match=r"^top_p must be in \(0, 1\]$"):
        stories.generate("", top_p=2)
    with pytest.raises(lowbit.Error, match=r"^temperature must be >= 0$"):
        stories.generate("", temperature=-1)
    with pytest.raises(lowbit.Error, match=r"^bits=3 is not one of"):
        lowbit.convert(stories_dir, tmp_path / "out", bits=3)
    small = lowbit.Model(stories_dir, ctx=4)
    with pytest.raises(lowbit.Error, match=r"^the prompt is \d+ tokens but the model was loaded with ctx=4") as e:
        small.generate("Once upon a time, there was a little girl")
    assert "--" not in str(e.value)


def test_model_docstring_and_ctx_warning(stories_dir):
    doc = lowbit.Model.__init__.__doc__
    assert all(word in doc for word in ("threads", "ctx", "isa"))
    trained = lowbit.Model(stories_dir).config["max_ctx"]
    with pytest.warns(UserWarning, match=f"ctx={2 * trained} is longer than the {trained} positions"):
        lowbit.Model(stories_dir, ctx=2 * trained)


def test_sampling_without_a_seed_differs_and_reports_it(stories):
    a = stories.generate("Once", max_tokens=40, temperature=1.0)
    b = stories.generate("Once", max_tokens=40, temperature=1.0)
    assert a.seed != b.seed and a != b
    assert stories.generate("Once", max_tokens=40, temperature=1.0, seed=a.seed) == a


SMOLLM2 = "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"


def test_gguf_model_runs_directly_and_agrees_with_the_cli():
    """A real trained model, straight from its GGUF file: the Python front end gives the CLI's
    greedy ids (same library, same ISA), and raw and ChatML prompts both get the right answer."""
    import subprocess

    from conftest import MODELS, REPO

    path = MODELS / SMOLLM2
    if not path.is_file():
        pytest.skip(f"{path} not found")
    m = lowbit.Model(str(path), threads=2)
    assert m.vocab_size == 49152 and m.config["n_layers"] == 30  # SOURCE.md's shape
    raw = m.generate("The capital of France is", max_tokens=12)
    cli = subprocess.run([os.environ.get("LOWBIT_BIN", str(REPO / "build" / "lowbit")), "run", str(path), "--raw", "-p",
                          "The capital of France is", "-n", "12", "--threads", "2", "--json"],
                         capture_output=True, text=True, check=True)
    assert raw.ids == json.loads(cli.stdout)["ids"]
    assert "Paris" in raw
    chat = m.generate("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
                      max_tokens=24)
    assert "Paris" in chat and chat.stop_reason == "eos"


@pytest.mark.parametrize("system", [None, "You are a pirate."])
def test_chat_replies_to_the_conversation_its_template_renders(system):
    """chat() reads the conversation as jinja2 renders the model's own template (the reference),
    so its reply is generate() of that text, token for token; streamed it is the same reply."""
    import sys

    from conftest import MODELS, REPO

    sys.path.insert(0, str(REPO / "tests" / "python"))
    from cli_helpers import jinja2_chat_prompt  # the reference rendering, shared with the CLI's tests

    path = MODELS / SMOLLM2
    if not path.is_file():
        pytest.skip(f"{path} not found")
    m = lowbit.Model(str(path), threads=2, ctx=512)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
    ]
    rendered = jinja2_chat_prompt(path, messages)
    assert m.apply_chat_template(messages) == rendered
    reply = m.chat(messages, max_tokens=24)
    reference = m.generate(rendered, max_tokens=24)
    assert reply.ids == reference.ids and reply == reference
    assert reply.prompt_tokens == len(m.tokenize(rendered))
    stream = m.chat(messages, max_tokens=24, stream=True)
    assert "".join(stream) == reply and stream.result.ids == reply.ids


def test_json_format_gives_one_object():
    """format="json": the reply is one object as Python's json module reads it (the same prompt
    without it is not), through chat() and generate() alike."""
    from conftest import MODELS

    path = MODELS / SMOLLM2
    if not path.is_file():
        pytest.skip(f"{path} not found")
    m = lowbit.Model(str(path), threads=2, ctx=512)
    messages = [{"role": "user", "content": "Describe a cat as a JSON object with name, age and color."}]
    reply = m.chat(messages, max_tokens=200, format="json")
    assert reply.stop_reason == "eos" and isinstance(json.loads(reply), dict), reply
    assert m.generate(m.apply_chat_template(messages), max_tokens=200, format="json").ids == reply.ids
    with pytest.raises(ValueError):
        json.loads(m.chat(messages, max_tokens=200))
    with pytest.raises(lowbit.Error, match="format: 'yaml' is not supported"):
        m.chat(messages, format="yaml")


def test_json_schema_format_gives_a_value_of_the_schema():
    """format=a schema dict: the reply validates against it (the jsonschema package's judgement)
    and parses into the pydantic model it came from, through chat() and generate() alike; a
    keyword the constraint cannot enforce is an error naming it."""
    jsonschema = pytest.importorskip("jsonschema")
    pydantic = pytest.importorskip("pydantic")
    from conftest import MODELS

    class Cat(pydantic.BaseModel):
        name: str
        age: int
        color: str

    path = MODELS / SMOLLM2
    if not path.is_file():
        pytest.skip(f"{path} not found")
    m = lowbit.Model(str(path), threads=2, ctx=512)
    schema = Cat.model_json_schema()
    messages = [{"role": "user", "content": "Describe a cat as JSON."}]
    reply = m.chat(messages, max_tokens=200, format=schema)
    assert reply.stop_reason == "eos", reply
    jsonschema.validate(json.loads(reply), schema)
    Cat.model_validate_json(str(reply))
    assert m.generate(m.apply_chat_template(messages), max_tokens=200, format=schema).ids == reply.ids
    assert m.chat(messages, max_tokens=200, format=Cat).ids == reply.ids  # the model class itself
    with pytest.raises(lowbit.Error, match="format.properties.age: 'not' is not supported"):
        m.chat(messages, format={"properties": {"age": {"type": "integer", "not": {"const": 2}}}})


def test_generate_batch_format_per_prompt_matches_generate_alone():
    """format in generate_batch, for all prompts or one: each text is the one generate() gives it
    alone with the same format, and the schema's validates (the jsonschema package)."""
    jsonschema = pytest.importorskip("jsonschema")
    from conftest import MODELS

    path = MODELS / SMOLLM2
    if not path.is_file():
        pytest.skip(f"{path} not found")
    m = lowbit.Model(str(path), threads=2, ctx=512)
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "lives": {"type": "integer", "minimum": 1,
                                                                                     "maximum": 9}},
              "required": ["name", "lives"]}
    ask = "Describe a cat as JSON: its name, age, weight and colors."
    prompt = m.apply_chat_template([{"role": "user", "content": ask}])
    prompts = [prompt, {"prompt": prompt, "format": "json"}, {"prompt": prompt, "format": None}]
    results = m.generate_batch(prompts, max_tokens=200, format=schema, add_bos=False)
    assert [r["stop_reason"] for r in results[:2]] == ["eos", "eos"], results
    jsonschema.validate(json.loads(results[0]["text"]), schema)
    assert isinstance(json.loads(results[1]["text"]), dict)
    for p, fmt, r in zip(prompts, [schema, "json", None], results):
        assert r["text"] == m.generate(prompt, max_tokens=200, format=fmt, add_bos=False, seed=0), fmt
    with pytest.raises(lowbit.Error, match="format: 'not' is not supported"):
        m.generate_batch([prompt], format={"type": "integer", "not": {"const": 2}})


def test_chat_truncate_keeps_the_latest_turns_that_fit():
    """chat(truncate=True): every system message and the latest turns that fit the context with
    room for the reply (which turns: worked out here from the rendering's token count); the reply
    is the one to those turns sent alone."""
    from conftest import MODELS

    path = MODELS / SMOLLM2
    if not path.is_file():
        pytest.skip(f"{path} not found")
    ctx, reply = 256, 24
    m = lowbit.Model(str(path), threads=2, ctx=ctx)
    history = [{"role": "system", "content": "You are a helpful assistant who answers briefly."}]
    for k in range(6):
        history.append({"role": "user", "content": f"Tell me fact number {k} about the sea, with some detail please."})
        history.append({"role": "assistant", "content": f"Fact {k}: the sea covers much of the planet, and its water "
                                                        f"moves in great currents that carry heat from place to place."})
    history.append({"role": "user", "content": "Which fact was the most surprising?"})

    def n_tokens(msgs):
        return len(m.tokenize(m.apply_chat_template(msgs), add_bos=False))

    assert n_tokens(history) > ctx
    with pytest.raises(lowbit.Error, match="ctx"):
        m.chat(history, max_tokens=reply)
    for start in [i for i, x in enumerate(history) if x["role"] == "user" and i > 0]:
        kept = [x for x in history[:start] if x["role"] == "system"] + history[start:]
        if n_tokens(kept) <= ctx - reply:
            break
    r = m.chat(history, max_tokens=reply, truncate=True)
    assert r.dropped_messages == sum(x["role"] != "system" for x in history[:start]) > 0
    assert r.prompt_tokens == n_tokens(kept)
    alone = m.chat(kept, max_tokens=reply)
    assert r == alone and alone.dropped_messages == 0
    streamed = m.chat(history, max_tokens=reply, truncate=True, stream=True)
    assert "".join(streamed) == r and streamed.result.dropped_messages == r.dropped_messages


def test_chat_tools_read_calls_and_force_them(tmp_path):
    """chat(tools=...) on SmolLM2 stored under Qwen2.5's chat template (`lowbit create --template`),
    against the reference: transformers' rendering of the conversation with its tools, continued by
    generate(). A forced call is what generate() writes after the template's opening, held to the
    same schema (the tools' parameters, as the template documents a call); an auto reply is
    generate() of the rendering; streams end with the same result."""
    import subprocess

    import jsonschema
    from conftest import MODELS, REPO

    ctu = pytest.importorskip("transformers.utils.chat_template_utils")
    path, qwen = MODELS / SMOLLM2, MODELS / "configs" / "qwen2.5-0.5b" / "tokenizer_config.json"
    if not path.is_file() or not qwen.is_file():
        pytest.skip(f"{path} or {qwen} not found")
    template = json.loads(qwen.read_text())["chat_template"]
    (tmp_path / "t.jinja").write_text(template)
    subprocess.run([os.environ.get("LOWBIT_BIN", str(REPO / "build" / "lowbit")), "create", "smol", str(path),
                    "--template", str(tmp_path / "t.jinja"), "--models", str(tmp_path / "store")], check=True,
                   capture_output=True)
    m = lowbit.Model(str(tmp_path / "store" / "smol" / ":latest"), threads=2, ctx=512)
    weather = {"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city",
                                                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                               "required": ["city"]}}}
    add = {"type": "function", "function": {"name": "add", "description": "Add two integers",
                                            "parameters": {"type": "object", "required": ["a", "b"], "properties": {
                                                "a": {"type": "integer"}, "b": {"type": "integer"}}}}}
    tools = [weather, add]
    messages = [{"role": "user", "content": "What is 2 plus 3?"}]
    rendered = ctu.render_jinja_template(conversations=[messages], tools=tools, chat_template=template,
                                         add_generation_prompt=True)[0][0]

    named = m.chat(messages, tools=tools, tool_choice="add", max_tokens=60)
    args = add["function"]["parameters"]
    expected = m.generate(rendered + '<tool_call>\n{"name": "add", "arguments": ', max_tokens=60, format=args)
    assert named == "" and named.tool_calls == [{"name": "add", "arguments": json.loads(expected)}]
    jsonschema.validate(named.tool_calls[0]["arguments"], args)

    required = m.chat(messages, tools=tools, tool_choice="required", max_tokens=60)
    one_of = {"anyOf": [{"type": "object", "properties": {"name": {"const": t["function"]["name"]},
                                                          "arguments": t["function"]["parameters"]},
                         "required": ["name", "arguments"]} for t in tools]}
    expected = json.loads(m.generate(rendered + "<tool_call>\n", max_tokens=60, format=one_of))
    assert required.tool_calls == [expected]
    stream = m.chat(messages, tools=tools, tool_choice="required", max_tokens=60, stream=True)
    assert "".join(stream) == "" and stream.result.tool_calls == required.tool_calls

    auto = m.chat(messages, tools=tools, max_tokens=30)
    reference = m.generate(rendered, max_tokens=30)
    assert "<tool_call>" not in reference  # this small model answers in prose unless made to call
    assert auto == reference and auto.tool_calls == []
    stream = m.chat(messages, tools=tools, max_tokens=30, stream=True)
    assert "".join(stream) == reference and stream.result.ids == reference.ids

    with pytest.raises(lowbit.Error, match="does not support tools"):
        lowbit.Model(str(path), threads=2, ctx=512).chat(messages, tools=tools)
    with pytest.raises(lowbit.Error, match="tool_choice: 'mul'"):
        m.chat(messages, tools=tools, tool_choice="mul")
    with pytest.raises(lowbit.Error, match=r"tools\[1\].function.name: 'get_weather' names two tools"):
        m.chat(messages, tools=[weather, weather])
    with pytest.raises(lowbit.Error, match="tool_choice: 'required' needs tools"):
        m.chat(messages, tool_choice="required")


def test_chat_continues_its_session():
    """A conversation's next turn reads only what the turn before did not: the model's chat
    session keeps that turn's prompt and reply. The reply is a fresh model's (which reads the
    whole conversation), token for token; cached_tokens is the common prefix of what the session
    held and the new prompt's ids, worked out here from the tokenizer and the first turn's result."""
    from conftest import MODELS

    path = MODELS / SMOLLM2
    if not path.is_file():
        pytest.skip(f"{path} not found")
    m = lowbit.Model(str(path), threads=2, ctx=1024)
    first = [{"role": "user", "content": "What is the capital of France?"}]
    r1 = m.chat(first, max_tokens=24)
    assert r1.cached_tokens == 0
    ids1 = m.tokenize(m.apply_chat_template(first), add_bos=False)  # SmolLM2 adds no BOS
    assert len(ids1) == r1.prompt_tokens
    second = first + [{"role": "assistant", "content": str(r1)}, {"role": "user", "content": "And of Italy?"}]
    r2 = m.chat(second, max_tokens=24)
    fresh = lowbit.Model(str(path), threads=2, ctx=1024).chat(second, max_tokens=24)
    assert r2 == fresh and r2.ids == fresh.ids and r2.prompt_tokens == fresh.prompt_tokens
    # The session holds the prompt and the reply's tokens it read (the last one too when an end
    # token followed it).
    held = ids1 + r1.ids[: len(r1.ids) if r1.stop_reason == "eos" else len(r1.ids) - 1]
    ids2 = m.tokenize(m.apply_chat_template(second), add_bos=False)
    common = next((i for i, (a, b) in enumerate(zip(held, ids2)) if a != b), min(len(held), len(ids2)))
    assert r2.cached_tokens == min(common, len(ids2) - 1)
    assert r2.cached_tokens > len(ids1)  # the reply's tokens were not read again
    # Streamed, the same; a conversation that shares less reads more.
    stream = m.chat(second, max_tokens=24, stream=True)
    assert "".join(stream) == str(fresh) and stream.result.cached_tokens > 0
    other = m.chat([{"role": "user", "content": "Name a colour."}], max_tokens=8)
    assert other == lowbit.Model(str(path), threads=2, ctx=1024).chat([{"role": "user", "content": "Name a colour."}],
                                                                      max_tokens=8)


def test_chat_thinking_model(tmp_path):
    """chat() of a thinking model: SmolLM2 stored under our own thinking template
    (tests/data/chat_templates/think_history.jinja), given a few-shot conversation whose answers
    reason first. The reference: transformers' rendering continued by generate(), cut by the rule
    runtime/chat/thinking.h states (the prompt opens the block)."""
    import subprocess

    from conftest import MODELS, REPO

    ctu = pytest.importorskip("transformers.utils.chat_template_utils")
    path = MODELS / SMOLLM2
    if not path.is_file():
        pytest.skip(f"{path} not found")
    template_file = REPO / "tests" / "data" / "chat_templates" / "think_history.jinja"
    template = template_file.read_text()
    subprocess.run([os.environ.get("LOWBIT_BIN", str(REPO / "build" / "lowbit")), "create", "smol", str(path),
                    "--template", str(template_file), "--models", str(tmp_path / "store")], check=True,
                   capture_output=True)
    m = lowbit.Model(str(tmp_path / "store" / "smol" / ":latest"), threads=2, ctx=512)
    messages, reference_messages = [], []  # the reasoning as Ollama's "thinking"; transformers' name
    for a in (2, 3):
        question = {"role": "user", "content": f"What is {a}+{a}?"}
        answer = {"role": "assistant", "content": f"The answer is {2 * a}."}
        messages += [question, dict(answer, thinking=f"{a} plus {a} is {2 * a}.")]
        reference_messages += [question, dict(answer, reasoning_content=f"{a} plus {a} is {2 * a}.")]
    messages.append({"role": "user", "content": "What is 5+5?"})
    reference_messages.append(messages[-1])

    def rendered(**kw):
        return ctu.render_jinja_template(conversations=[reference_messages], chat_template=template,
                                         add_generation_prompt=True, **kw)[0][0]

    text = m.generate(rendered(), max_tokens=40)
    thinking, answer = text.split("</think>", 1)
    thinking, answer = thinking.strip(), answer.lstrip()
    assert thinking and answer  # the format took
    reply = m.chat(messages, max_tokens=40)
    assert (reply.thinking, str(reply)) == (thinking, answer) and reply.ids == text.ids
    stream = m.chat(messages, max_tokens=40, think=True, stream=True)
    pieces = list(stream)
    assert "".join(p for p in pieces if p.thinking) == thinking and "".join(p for p in pieces if not p.thinking) == answer
    assert [p.thinking for p in pieces] == sorted((p.thinking for p in pieces), reverse=True)  # reasoning first
    assert stream.result.thinking == thinking and stream.result == answer

    plain = m.chat(messages, max_tokens=40, think=False)
    assert plain.thinking == "" and plain == m.generate(rendered(enable_thinking=False), max_tokens=40)
    with pytest.raises(lowbit.Error, match="does not support thinking"):
        lowbit.Model(str(path), threads=2, ctx=512).chat(messages, think=True)


def test_chat_errors_name_what_is_wrong(stories):
    with pytest.raises(lowbit.Error, match="has no chat template"):
        stories.chat([{"role": "user", "content": "hi"}])
    with pytest.raises(lowbit.Error, match=r"messages\[0\]: a dict with 'role'"):
        stories.chat(["hi"])
    with pytest.raises(lowbit.Error, match="messages: a list of"):
        stories.chat("hi")


def test_generate_batch_matches_generate_alone(stories, stories_golden):
    # Mixed prompts and settings, decoded together 2 at a time with prompts read in chunks: each
    # sequence's text is the one generate() gives it alone, and the greedy one from BOS is
    # llama2.c's sample.
    prompts = [
        "",
        {"prompt": "Once upon a time", "temperature": 0.8, "top_k": 40, "seed": 7, "max_tokens": 50},
        {"prompt": "One day, a cat", "stop": ["."]},
        {"prompt": "The little girl", "temperature": 1.0, "top_p": 0.9, "seed": 3, "max_tokens": 70},
        {"prompt": "Lily and Ben", "presence_penalty": 1.5, "frequency_penalty": 0.6, "max_tokens": 60},
    ]
    results = stories.generate_batch(prompts, max_tokens=256, max_sequences=2, max_step_tokens=8)
    assert len(results) == 5
    assert results[4]["text"] != stories.generate("Lily and Ben", max_tokens=60)  # the penalties bite
    assert results[0]["text"] + "\n" == stories_golden
    for p, r in zip(prompts, results):
        kwargs = dict(p) if isinstance(p, dict) else {"prompt": p}
        kwargs.setdefault("max_tokens", 256)
        assert r["text"] == stories.generate(**kwargs)
        assert r["generated_tokens"] == len(r["ids"]) > 0
    assert results[2]["stop_reason"] == "stop"


def test_generate_batch_streams_each_sequence(stories):
    prompts = ["Once upon a time", "The dog"]
    whole = stories.generate_batch(prompts, max_tokens=30)
    texts = ["", ""]
    for index, piece in stories.generate_batch(prompts, max_tokens=30, stream=True):
        texts[index] += piece
    assert texts == [r["text"] for r in whole]
    # Closing the stream early stops the batch.
    it = stories.generate_batch(prompts, max_tokens=200, stream=True)
    next(it)
    it.close()


def test_generate_batch_errors_have_codes(stories):
    with pytest.raises(lowbit.Error) as e:
        stories.generate_batch(["x"], temperature=-1.0)
    assert e.value.code == "invalid_argument"
    with pytest.raises(lowbit.Error):
        stories.generate_batch([{"text": "no prompt key"}])
    small = lowbit.Model(stories.path, ctx=4)
    with pytest.raises(lowbit.Error) as e:
        small.generate_batch(["Once upon a time, there was a little girl"])
    assert e.value.code == "context_full"


def test_gpu_layers(stories_dir, stories_golden):
    # auto places what fits on a GPU and nothing without one; either way the text is llama2.c's.
    m = lowbit.Model(stories_dir, gpu_layers="auto")
    assert 0 <= m.gpu_layers <= 5
    assert m.placement.startswith("layers 0-")
    assert m.generate("", max_tokens=256) + "\n" == stories_golden
    assert lowbit.Model(stories_dir).gpu_layers == 0
    with pytest.raises(ValueError, match="gpu_layers"):
        lowbit.Model(stories_dir, gpu_layers=-1)
    with pytest.raises(TypeError, match="gpu_layers"):
        lowbit.Model(stories_dir, gpu_layers=True)
    with pytest.raises(lowbit.Error, match="gpu_layers"):
        lowbit.Model(stories_dir, gpu_layers="most")
    try:
        on_gpu = lowbit.Model(stories_dir, gpu_layers=2)
    except lowbit.Error as e:  # no usable GPU here: the reason, not a crash
        assert "gpu_layers 2: no device backend" in str(e)
    else:
        assert on_gpu.gpu_layers == 2
