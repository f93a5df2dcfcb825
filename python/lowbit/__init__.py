"""lowbit: LLM inference with 1/2/4/8-bit quantized weights.

    import lowbit
    lowbit.convert("path/to/hf_model", "model.q4", bits=4)
    model = lowbit.Model("model.q4")
    text = model.generate("Once upon a time", max_tokens=64)
    print(text, text.stop_reason, text.gen_tokens_per_s)   # a str, with the run's figures
    stream = model.generate("Once upon a time", stream=True)
    for piece in stream:
        print(piece, end="", flush=True)
    print(stream.result.stop_reason)
    reply = model.chat([{"role": "user", "content": "Why is the sky blue?"}])  # its chat template

    w = lowbit.quantize(weights, bits=4, group=32)   # float32 (n, k) -> QTensor
    y = lowbit.matmul(w, x)                          # x (m, k) -> (m, n)

Errors from the library raise lowbit.Error with its message (lowbit.VersionError for files
newer than this version). Compute runs without the GIL, so threads run models in parallel;
Ctrl-C stops a generation or a conversion with KeyboardInterrupt.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import warnings
from typing import Callable, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _core
from ._core import Error, QTensor, VersionError

__version__: str = _core.__version__

__all__ = [
    "Error",
    "VersionError",
    "QTensor",
    "Model",
    "Generation",
    "Stream",
    "Piece",
    "quantize",
    "matmul",
    "convert",
    "__version__",
]


def _group_value(group: Union[int, str, None]) -> int:
    """32, 64, 128, 256; 'row', None or 0 for one group per row."""
    if group is None or group == "row":
        return 0
    return int(group)


def quantize(
    array: np.ndarray,
    bits: int = 4,
    group: Union[int, str, None] = 32,
    scheme: Optional[str] = None,
    quantizer: str = "search",
    *,
    type: Optional[str] = None,
) -> QTensor:
    """Quantizes a float32 (n, k) matrix (rows are output features, as in nn.Linear.weight).

    bits: 1, 2, 4, 8 (quantized), 16 (f16) or 32 (f32). group: weights per scale (32, 64, 128,
    256) or 'row'. scheme: 'sym', 'asym', or None for the converter's default (sym at 8 bits,
    asym below). quantizer: 'search' (least squared error) or 'rtn' (round to nearest).
    type: a type name such as 'q4_g32_asym' or 'bf16', instead of bits/group/scheme.
    """
    if type is None:
        type = _core.linear_type(bits, _group_value(group), scheme)
    return _core.quantize(array, type, quantizer)


def matmul(w: QTensor, x: np.ndarray) -> np.ndarray:
    """y = x @ w.T with lowbit's kernels: x (k,) or (m, k) float32 -> (n,) or (m, n).

    Quantized weights take int8 activations (one scale per 32 values), as inside a model, so the
    result differs from x @ w.dequantize().T by at most what that rounding allows.
    A float32 C-contiguous x is used in place; anything else is converted first.
    """
    return _core.matmul(w, x)


def _keep_pairs(keep) -> list:
    if keep is None:
        return []
    if isinstance(keep, Mapping):
        return [(str(k), str(v)) for k, v in keep.items()]
    pairs = []
    for item in keep:
        if isinstance(item, str):
            glob, sep, type_name = item.rpartition("=")
            if not sep or not glob:
                raise Error(f"keep: expected 'NAME_GLOB=TYPE', got '{item}'")
            pairs.append((glob, type_name))
        else:
            glob, type_name = item
            pairs.append((str(glob), str(type_name)))
    return pairs


def convert(
    hf_dir: str,
    out_dir: str,
    bits: int = 4,
    group: Union[int, str, None] = 32,
    scheme: Optional[str] = None,
    quantizer: str = "search",
    keep: Union[Mapping[str, str], Iterable[str], None] = None,
    force: bool = False,
    *,
    threads: int = 0,
    allow_nonfinite: bool = False,
    progress=None,
) -> dict:
    """Converts a HuggingFace directory (config.json, *.safetensors, tokenizer) to a manifest.

    keep: per-tensor type overrides, {'model.layers.*.mlp.down_proj.weight': 'q8'} or
    ['GLOB=TYPE', ...]; the last match wins. progress(tensor, tensors, name, bytes_done,
    bytes_total) is called after each tensor. Returns a summary dict. The output directory is
    written atomically: on error or Ctrl-C nothing is left behind.
    """
    return _core.convert(
        str(hf_dir),
        str(out_dir),
        bits=bits,
        group=_group_value(group),
        scheme=scheme,
        quantizer=quantizer,
        keep=_keep_pairs(keep),
        force=force,
        threads=threads,
        allow_nonfinite=allow_nonfinite,
        progress=progress,
    )


if hasattr(_core, "evaluate"):

    def evaluate(
        model: Union[str, "Model"],
        text: str,
        ref: Union[str, "Model", None] = None,
        ctx: int = 256,
        max_tokens: int = 0,
        *,
        threads: int = 0,
        ref_logits: Optional[str] = None,
        save_ref: Optional[str] = None,
        progress=None,
    ) -> dict:
        """Measures a quantized model against its FP32 reference on a text file.

        model, ref: manifest directories (or Models). ref_logits: a reference file saved earlier
        with save_ref, instead of running ref. Returns perplexities, their difference, KL
        divergence and top-1 agreement, each with a 95% interval (see eval/eval.h).
        progress(tokens_done, tokens_total) is called after each window.
        """
        path = lambda m: None if m is None else str(m.path if isinstance(m, Model) else m)
        return _core.evaluate(
            path(model),
            str(text),
            ref=path(ref),
            ctx=ctx,
            max_tokens=max_tokens,
            threads=threads,
            ref_logits=None if ref_logits is None else str(ref_logits),
            save_ref=None if save_ref is None else str(save_ref),
            progress=progress,
        )

    __all__.append("evaluate")


class Generation(str):
    """The text of a generation: a str, as generate() has always returned, that also carries
    what the run reports.

    stop_reason: "eos" (the model ended the text), "length" (max_tokens reached), "stop" (a stop
    string), "context" (the context is full) or "callback" (a stream closed early).
    ids: the generated token ids. prompt_tokens, generated_tokens: counts.
    prompt_tokens_per_s, gen_tokens_per_s: speed of the prompt (one batch) and of generation.
    prompt_seconds, gen_seconds: the times they took. seed: the sampler's seed (pass it as
    seed= to repeat a sampled text). dropped_messages: chat(truncate=True) only, how many of the
    oldest messages were left out to fit the context (0 otherwise). tool_calls: chat(tools=...)
    only, the calls the reply makes ([{"name", "arguments": dict}]; [] otherwise). thinking:
    chat() of a thinking model, its reasoning, apart from the answer that is the text ("" otherwise).
    cached_tokens: chat() only, how many of the prompt's tokens the model's chat session held from
    the turn before and did not read again (0 otherwise).

    Operations on it (+, slicing, .strip(), ...) give plain str, as for any str.
    """

    stop_reason: str
    ids: List[int]
    prompt_tokens: int
    generated_tokens: int
    prompt_tokens_per_s: float
    gen_tokens_per_s: float
    prompt_seconds: float
    gen_seconds: float
    seed: int

    _FIELDS = ("stop_reason", "ids", "prompt_tokens", "generated_tokens", "prompt_tokens_per_s",
               "gen_tokens_per_s", "prompt_seconds", "gen_seconds", "seed")

    def __new__(cls, result: dict) -> "Generation":
        self = super().__new__(cls, result["text"])
        for name in cls._FIELDS:
            setattr(self, name, result[name])
        self.dropped_messages = result.get("dropped_messages", 0)
        self.tool_calls = result.get("tool_calls", [])
        self.thinking = result.get("thinking", "")
        self.cached_tokens = result.get("cached_tokens", 0)
        return self

    def __reduce__(self):
        return (Generation, ({"text": str(self), **{n: getattr(self, n) for n in self._FIELDS},
                              "dropped_messages": self.dropped_messages, "tool_calls": self.tool_calls,
                              "thinking": self.thinking, "cached_tokens": self.cached_tokens},))


class Piece(str):
    """A piece of a streamed chat reply. thinking: True for a thinking model's reasoning, whose
    pieces all come before the answer's."""

    thinking: bool

    def __new__(cls, text: str, thinking: bool = False) -> "Piece":
        self = super().__new__(cls, text)
        self.thinking = thinking
        return self


class Stream:
    """The pieces of a generation as they come (generate(..., stream=True)). Iterate it; once
    the iteration has ended, result is the whole Generation (text, stop_reason, speed, ...).
    close() (or leaving a for loop early and dropping it) stops the generation at its next token.
    """

    def __init__(self) -> None:
        self.result: Optional[Generation] = None
        self._pieces: Iterator[str] = iter(())

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def _streamed(run: Callable[[Callable[..., bool]], None], name: str) -> Iterator:
    """Yields what run(on_piece) hands to on_piece, as it comes. run works on a thread of its own
    (the generation computes without the GIL) and passes pieces over a queue; closing the
    iterator early, or Ctrl-C while waiting on it, makes on_piece return True, which stops the
    generation at its next token. An exception in run is raised here."""
    pieces: queue.Queue = queue.Queue()
    stop = threading.Event()
    done = object()

    def on_piece(*item) -> bool:
        pieces.put(item[0] if len(item) == 1 else item)
        return stop.is_set()

    def work() -> None:
        try:
            run(on_piece)
            pieces.put(done)
        except BaseException as e:  # handed to the consumer, raised there
            pieces.put(_Failed(e))

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = pieces.get()
            if item is done:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()


def _format_args(format) -> dict:
    """format= as the core takes it: json (JSON mode on) and schema (JSON text, or None)."""
    if hasattr(format, "model_json_schema"):  # a pydantic model class: its schema
        format = format.model_json_schema()
    if not (format is None or format == "json" or isinstance(format, dict)):
        raise Error(f"format: {format!r} is not supported (None, \"json\" for one JSON object, a JSON schema as a "
                    "dict, or a pydantic model)")
    return dict(json=format is not None, schema=json.dumps(format) if isinstance(format, dict) else None)


def _settings(max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, seed, stop, format,
              presence_penalty=0.0, frequency_penalty=0.0) -> dict:
    """generate()'s and chat()'s keywords as the core takes them; seed None draws one."""
    return dict(
        **_format_args(format),
        max_tokens=max_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        repetition_penalty=repetition_penalty,
        presence_penalty=presence_penalty,
        frequency_penalty=frequency_penalty,
        seed=random.SystemRandom().getrandbits(32) if seed is None else seed,
        stop=list(stop) if stop is not None else None,
    )


def _tools_json(tools: Sequence[Mapping]) -> str:
    """tools as the JSON text the core reads: [{"type": "function", "function": {"name", ...}}]."""
    if isinstance(tools, (str, bytes)) or not isinstance(tools, Sequence):
        raise Error(f"tools: a list of {{'type': 'function', 'function': {{'name': ...}}}} dicts, not {type(tools).__name__}")
    names = set()
    for i, t in enumerate(tools):
        f = t.get("function") if isinstance(t, Mapping) else None
        if not isinstance(f, Mapping) or not isinstance(f.get("name"), str) or not f["name"]:
            raise Error(f"tools[{i}]: a dict {{'type': 'function', 'function': {{'name': ...}}}}, not {t!r}")
        if t.get("type", "function") != "function":
            raise Error(f"tools[{i}].type: only 'function' tools are supported, got {t['type']!r}")
        if f["name"] in names:
            raise Error(f"tools[{i}].function.name: {f['name']!r} names two tools")
        names.add(f["name"])
    try:
        return json.dumps([dict(t) for t in tools], ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise Error(f"tools: not JSON-serializable: {e}") from None


def _messages_json(messages: Sequence[Mapping]) -> str:
    """messages as the JSON text the core's template reads; each must be a mapping with a role."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise Error(f"messages: a list of {{'role': ..., 'content': ...}} dicts, not {type(messages).__name__}")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m:
            raise Error(f"messages[{i}]: a dict with 'role' and 'content', not {m!r}")
    try:
        return json.dumps([dict(m) for m in messages], ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise Error(f"messages: not JSON-serializable: {e}") from None


class Model:
    """A model loaded from a manifest directory (lowbit convert / lowbit.convert), a GGUF file or
    an HF model directory (both imported in memory when loaded).

    One Model may be used from several threads at once; each call runs in its own session.
    """

    def __init__(self, path: str, threads: int = 0, ctx: int = 0, isa: str = "auto",
                 gpu_layers: Union[int, str] = 0):
        """Loads the model at path: a manifest directory's weights are mapped in place; a GGUF
        file is imported in memory, each tensor kept in its own type where lowbit has it (Q4_0,
        Q4_1, Q8_0, F16, ...) and the others requantized at no fewer bits, its tokenizer read from
        its metadata; an HF directory is imported at the 4-bit default of lowbit.convert.

        threads: worker threads for the matmuls; 0 uses every hardware thread (or
        $LOWBIT_THREADS). ctx: the context length every generation gets, prompt included, in
        tokens; 0 uses the length the model was trained for (config["max_ctx"]). A longer one is
        allowed, with a warning: text past the trained length is likely to degrade. The KV cache
        of each generation takes memory in proportion to ctx, and a ctx that cannot fit in the
        available memory is refused. isa: the CPU kernels, "auto" (the best this CPU runs),
        "scalar", "avx2", "avxvnni", "avx512", "avx512zmm" or "neon". gpu_layers: the first gpu_layers layers run on the GPU, the
        rest on the CPU; "all", or "auto" for as many as fit in the GPU's free memory (none
        without a GPU); 0 (the default) runs on the CPU. A count or "all" without a usable GPU
        raises lowbit.Error saying why. A GPU that runs out of memory moves layers to the CPU
        with one warning on stderr.

        Raises lowbit.Error when the manifest cannot be read (lowbit.VersionError when it is
        newer than this version) or does not fit in memory.
        """
        if isinstance(gpu_layers, bool) or not isinstance(gpu_layers, (int, str)):
            raise TypeError(f"gpu_layers must be an int, 'all' or 'auto', not {gpu_layers!r}")
        if isinstance(gpu_layers, int) and gpu_layers < 0:
            raise ValueError(f"gpu_layers must be >= 0, 'all' or 'auto', not {gpu_layers}")
        self._core = _core.Model(str(path), threads=threads, ctx=ctx, isa=isa, gpu_layers=str(gpu_layers))
        trained = self._core.config["max_ctx"]
        if ctx and 0 < trained < self._core.ctx:
            warnings.warn(
                f"ctx={self._core.ctx} is longer than the {trained} positions {path} was trained on; "
                f"text past position {trained} is likely to degrade",
                stacklevel=2,
            )

    @property
    def path(self) -> str:
        return self._core.path

    @property
    def vocab_size(self) -> int:
        return self._core.vocab_size

    @property
    def ctx(self) -> int:
        """Context length each generation gets."""
        return self._core.ctx

    @property
    def gpu_layers(self) -> int:
        """Layers running on the GPU now (0 on the CPU, and after an out-of-memory fallback)."""
        return self._core.device_layers

    @property
    def placement(self) -> str:
        """Which layers run on which backend: "layers 0-4 on cpu avx2, 2 threads"."""
        return self._core.placement

    @property
    def config(self) -> dict:
        """The architecture: arch, dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim,
        vocab_size, max_ctx (the trained context length)."""
        return self._core.config

    @property
    def bos_id(self) -> int:
        """The id the tokenizer puts before a text (tokenize(add_bos=True)); -1 when it has none."""
        return self._core.bos_id

    @property
    def eos_ids(self) -> List[int]:
        """Every id that ends a generation (stop_reason "eos")."""
        return list(self._core.eos_ids)

    def tokenize(self, text: str, add_bos: bool = True) -> list:
        return self._core.tokenize(text, add_bos)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self._core.detokenize(list(ids))

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """float32 (n, vocab): the logits after each of ids, from a fresh session."""
        return self._core.logits(list(ids))

    def generate(
        self,
        prompt: str,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        repetition_penalty: float = 1.0,
        seed: Optional[int] = None,
        stop: Optional[Sequence[str]] = None,
        stream: bool = False,
        add_bos: bool = True,
        format: Union[None, str, dict, type] = None,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
    ) -> Union[Generation, Stream]:
        """Generates a continuation of prompt.

        Returns a Generation: the text (a str) with stop_reason, ids, token counts and
        tokens/s; with stream=True, a Stream that yields the text in pieces as they come and
        holds the Generation in .result once iterated to the end. The text reads on from the
        prompt (prompt + text is the whole), so it may start with a space.

        max_tokens: new tokens at most (0 runs the prompt only). temperature: 0 is greedy;
        above 0 samples, after top_k (0: off), top_p (in (0, 1]; 1: off) and min_p (in [0, 1];
        0: off). repetition_penalty > 0 (1: off) divides the logits of the last 64 tokens;
        presence_penalty and frequency_penalty (in [-2, 2], 0: off) are OpenAI's: a token seen c
        times among them loses c * frequency_penalty + (c > 0) * presence_penalty.
        seed: the sampler's seed; None draws a fresh one, so each call differs (the one used is
        result.seed). stop: strings that end the generation (left out of the text). add_bos:
        put the tokenizer's BOS in front of the prompt. format="json": JSON mode, the text is one
        JSON object (tokens that cannot continue one are never sampled; it ends at the closing
        brace), as Ollama's format and OpenAI's json_object response format; format=a JSON
        schema as a dict, or a pydantic model class (its model_json_schema()): the text is one value
        of it (docs/SERVING.md, "Structured outputs", lists what is supported; a schema with
        other keywords raises lowbit.Error).

        Raises lowbit.Error, before generating anything, for a setting out of range or a prompt
        longer than ctx.
        """
        kwargs = _settings(max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, seed, stop, format,
                           presence_penalty, frequency_penalty)
        kwargs["add_bos"] = add_bos
        if stream:
            s = Stream()
            s._pieces = self._stream(lambda **kw: self._core.generate(prompt, **kw), kwargs, s)
            return s
        return Generation(self._core.generate(prompt, **kwargs))

    def apply_chat_template(self, messages: Sequence[Mapping], add_generation_prompt: bool = True) -> str:
        """The model's own chat template (tokenizer_config.json's chat_template or the GGUF's
        tokenizer.chat_template) over messages, as transformers' apply_chat_template renders it:
        a list of {"role": ..., "content": ...} dicts, with the assistant's turn opened when
        add_generation_prompt. Raises lowbit.Error when the model has no template."""
        return self._core.render_chat(_messages_json(messages), add_generation_prompt)

    def chat(
        self,
        messages: Sequence[Mapping],
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        repetition_penalty: float = 1.0,
        seed: Optional[int] = None,
        stop: Optional[Sequence[str]] = None,
        stream: bool = False,
        format: Union[None, str, dict, type] = None,
        truncate: bool = False,
        tools: Optional[Sequence[Mapping]] = None,
        tool_choice: str = "auto",
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        think: Optional[bool] = None,
    ) -> Union[Generation, Stream]:
        """The assistant's reply to a conversation: messages (a list of {"role", "content"} dicts:
        "system", "user", "assistant") rendered by the model's chat template
        (apply_chat_template) and encoded as `lowbit run`'s chat and `lowbit serve` encode it
        (the tokenizer's BOS where the model uses one, never twice). The reply ends at the
        template's end-of-turn token, which is not in the text. Settings and the result as
        generate()'s (format="json" too). Raises lowbit.Error when the model has no chat template.

        The model keeps one chat session: a call whose conversation begins with the last call's
        prompt and reply reads only the rest (the result's cached_tokens counts what it did not
        read), as `lowbit serve` and `lowbit run`'s chat do. Prompts are read as the server reads
        them (int8 activations at every length), so the reply is the same whether the session
        was continued or not; generate() of the same text may round differently only where an
        ISA reads long 8-bit prompts in fp32 (AVX2).

        truncate=True: a conversation too long for the context keeps every system message and the
        latest turns that fit with room for the reply (max_tokens, at most half the context), as
        `lowbit serve` and `lowbit run`'s chat do; the result's dropped_messages says how many of
        the oldest messages went. Without it such a conversation raises lowbit.Error.

        tools: functions the model may call, as OpenAI's and Ollama's APIs take them
        ([{"type": "function", "function": {"name", "description", "parameters"}}]), shown by the
        template (a model whose template writes no tool calls raises lowbit.Error). The reply's
        calls are in the result's tool_calls ([{"name", "arguments": dict}]) and its text is what
        is left; a stream holds back text that may begin a call. tool_choice: "auto" (the model
        decides), "none" (tools shown, reply read as text), "required" (the reply is one call of
        one of the tools, at most 16) or a function's name (one call of it), held to the tools'
        parameters as `lowbit serve` holds them (docs/SERVING.md, "Tool calling").

        A thinking model (its template writes </think>: Qwen3, DeepSeek-R1, ...) reasons before it
        answers: the reasoning is the result's thinking and the text is the answer; streamed, each
        piece is a Piece whose thinking attribute says which it is. think=False asks the template
        for a reply without reasoning (enable_thinking), think=True for one with it (lowbit.Error
        for a model that does not think); None leaves it to the template. An assistant message's
        reasoning goes under "thinking" (or "reasoning_content") for a template that shows it."""
        kwargs = _settings(max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, seed, stop, format,
                           presence_penalty, frequency_penalty)
        tools_json, plan = "", None
        if tools is not None:
            tools_json = _tools_json(tools)
            plan = self._core.tool_plan(tools_json, tool_choice)
            if plan["schema"] is not None:
                if format is not None:
                    raise Error("format: a forced tool call (tool_choice) cannot also follow format")
                kwargs.update(json=True, schema=plan["schema"])
        elif tool_choice != "auto":
            raise Error(f"tool_choice: {tool_choice!r} needs tools")
        start = plan["reply_start"] if plan else ""
        messages_json = _messages_json(messages)
        thinks = self._core.thinks
        if think and not thinks:
            raise Error("think: the model does not support thinking (its chat template writes no </think>)")
        vars_json = json.dumps({"enable_thinking": bool(think)}) if thinks and think is not None else ""
        dropped = 0
        if truncate:
            ids, dropped, opens = self._core.chat_tokens_fit(messages_json, max_tokens, tools_json, start, vars_json)
        else:
            ids, opens = self._core.chat_tokens(messages_json, True, tools_json, start, vars_json)
        splitting = thinks and think is not False

        def read(text):  # (content, calls) of a finished reply
            if not (plan and plan["active"]):
                return text, []
            content, calls = self._core.tool_read(text, tools_json, plan["reply_start"], plan["reply_end"],
                                                  plan["forced"])
            return content, [{"name": n, "arguments": json.loads(a)} for n, a in calls]

        def run(**kw):
            result = dict(self._core.generate_tokens(ids, chat=True, **kw), dropped_messages=dropped)
            if splitting:
                splitter = _core.ThinkingSplitter(opens)
                (t1, c1), (t2, c2) = splitter.feed(result["text"]), splitter.finish()
                result["thinking"], result["text"] = t1 + t2, c1 + c2
            result["text"], result["tool_calls"] = read(result["text"])
            return result

        if stream:
            s, raw = Stream(), Stream()
            raw._pieces = self._stream(lambda **kw: dict(self._core.generate_tokens(ids, chat=True, **kw),
                                                         dropped_messages=dropped), kwargs, raw)
            hold = bool(plan and plan["active"])
            s._pieces = self._reply(raw, s, read, hold, hold and plan["forced"],
                                    _core.ThinkingSplitter(opens) if splitting else None)
            return s
        return Generation(run(**kwargs))

    def _reply(self, raw: Stream, into: Stream, read, hold: bool, forced: bool,
               splitter: Optional["_core.ThinkingSplitter"]) -> Iterator[Piece]:
        """raw's pieces as a chat reply's: a thinking model's reasoning first (splitter), then the
        answer, less what may begin a tool call (hold), which waits for the end; then into.result
        is raw's with the reply read back as reasoning, content and calls."""
        generated, sent, thinking = "", 0, ""

        def answer(text: str) -> Iterator[Piece]:
            nonlocal generated, sent
            generated += text
            if forced:
                return
            n = len(generated)
            if hold:  # the core counts bytes of UTF-8; it only holds back from an ASCII character
                n = len(generated.encode("utf-8")[: self._core.tool_hold_from(generated)].decode("utf-8"))
            if n > sent:
                yield Piece(generated[sent:n])
                sent = n

        def parts(t: str, c: str) -> Iterator[Piece]:
            nonlocal thinking
            if t:
                thinking += t
                yield Piece(t, thinking=True)
            if c:
                yield from answer(c)

        for piece in raw:
            yield from (parts(*splitter.feed(piece)) if splitter else answer(piece))
        if splitter:
            yield from parts(*splitter.finish())
        content, calls = read(generated)
        if len(content) > sent:
            yield Piece(content[sent:])
        r = raw.result
        into.result = Generation(dict({n: getattr(r, n) for n in Generation._FIELDS}, text=content, tool_calls=calls,
                                      dropped_messages=r.dropped_messages, thinking=thinking,
                                      cached_tokens=r.cached_tokens))

    def generate_batch(
        self,
        prompts: Sequence[Union[str, Mapping]],
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        repetition_penalty: float = 1.0,
        seed: int = 0,
        stop: Optional[Sequence[str]] = None,
        add_bos: bool = True,
        *,
        max_sequences: int = 16,
        max_step_tokens: int = 256,
        stream: bool = False,
        format: Union[None, str, dict, type] = None,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
    ) -> Union[list, Iterator[tuple]]:
        """Generates from many prompts at once, decoded together (one pass over the weights per
        step serves every sequence; see runtime/batch.h).

        Each prompt is a string, or a dict with "prompt" and any of the keyword settings for that
        prompt alone (e.g. {"prompt": "Once", "temperature": 0.8, "seed": 3}); the keywords are
        the defaults. Each sequence gets exactly the text generate() gives it alone. max_sequences
        generate at once (the rest wait); max_step_tokens bounds the rows of one step (decode
        rows plus prompt chunks). format: as generate()'s, for every prompt or per prompt.

        Returns one dict per prompt, in order: text, ids, stop_reason ("eos", "length", "stop",
        "context"), prompt_tokens, generated_tokens, gen_tokens_per_s (its decode rate). With
        stream=True, an iterator of (index, piece) as text arrives instead.
        """
        defaults = dict(
            max_tokens=max_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            min_p=min_p,
            repetition_penalty=repetition_penalty,
            presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
            seed=seed,
            stop=list(stop) if stop is not None else None,
            add_bos=add_bos,
            format=format,
        )
        texts, settings = [], []
        for p in prompts:
            if isinstance(p, str):
                texts.append(p)
                settings.append(dict(defaults))
                continue
            unknown = set(p) - set(defaults) - {"prompt"}
            if unknown or "prompt" not in p:
                raise Error(f"generate_batch: a prompt dict needs 'prompt' and may hold {sorted(defaults)}; got {sorted(p)}")
            texts.append(str(p["prompt"]))
            one = dict(defaults)
            one.update({k: v for k, v in p.items() if k != "prompt"})
            if one.get("stop") is not None:
                one["stop"] = list(one["stop"])
            settings.append(one)
        for one in settings:
            one.update(_format_args(one.pop("format")))
        if stream:
            return self._stream_batch(texts, settings, max_sequences, max_step_tokens)
        return self._core.generate_batch(texts, settings, max_sequences=max_sequences, max_step_tokens=max_step_tokens)

    def _stream_batch(self, texts, settings, max_sequences, max_step_tokens) -> Iterator[tuple]:
        def run(on_piece: Callable[..., bool]) -> None:
            self._core.generate_batch(
                texts, settings, max_sequences=max_sequences, max_step_tokens=max_step_tokens, callback=on_piece
            )

        return _streamed(run, "lowbit-generate-batch")  # yields (index, piece)

    def _stream(self, generate: Callable[..., dict], kwargs: dict, into: Stream) -> Iterator[str]:
        def run(on_piece: Callable[..., bool]) -> None:
            into.result = Generation(generate(callback=on_piece, **kwargs))

        return _streamed(run, "lowbit-generate")

    def __repr__(self) -> str:
        return f"lowbit.Model({self.path!r})"
