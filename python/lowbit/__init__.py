"""lowbit: LLM inference with 1/2/4/8-bit quantized weights.

    import lowbit
    lowbit.convert("path/to/hf_model", "model.q4", bits=4)
    model = lowbit.Model("model.q4")
    print(model.generate("Once upon a time", max_tokens=64))
    for piece in model.generate("Once upon a time", stream=True):
        print(piece, end="", flush=True)

    w = lowbit.quantize(weights, bits=4, group=32)   # float32 (n, k) -> QTensor
    y = lowbit.matmul(w, x)                          # x (m, k) -> (m, n)

Errors from the library raise lowbit.Error with its message (lowbit.VersionError for files
newer than this version). Compute runs without the GIL, so threads run models in parallel;
Ctrl-C stops a generation or a conversion with KeyboardInterrupt.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from . import _core
from ._core import Error, QTensor, VersionError

__version__: str = _core.__version__

__all__ = [
    "Error",
    "VersionError",
    "QTensor",
    "Model",
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


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


class Model:
    """A model loaded from a manifest directory (lowbit convert / lowbit.convert).

    One Model may be used from several threads at once; each call runs in its own session.
    """

    def __init__(self, path: str, threads: int = 0, ctx: int = 0, isa: str = "auto"):
        self._core = _core.Model(str(path), threads=threads, ctx=ctx, isa=isa)

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
    def config(self) -> dict:
        return self._core.config

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
        seed: int = 0,
        stop: Optional[Sequence[str]] = None,
        stream: bool = False,
        add_bos: bool = True,
    ) -> Union[str, Iterator[str]]:
        """Generates from prompt: the text, or with stream=True an iterator of text pieces.

        temperature 0 is greedy; stop strings end the generation and are left out of the text.
        """
        kwargs = dict(
            max_tokens=max_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            min_p=min_p,
            repetition_penalty=repetition_penalty,
            seed=seed,
            stop=list(stop) if stop is not None else None,
            add_bos=add_bos,
        )
        if stream:
            return self._stream(prompt, kwargs)
        return self._core.generate(prompt, **kwargs)["text"]

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
    ) -> Union[list, Iterator[tuple]]:
        """Generates from many prompts at once, decoded together (one pass over the weights per
        step serves every sequence; see runtime/batch.h).

        Each prompt is a string, or a dict with "prompt" and any of the keyword settings for that
        prompt alone (e.g. {"prompt": "Once", "temperature": 0.8, "seed": 3}); the keywords are
        the defaults. Each sequence gets exactly the text generate() gives it alone. max_sequences
        generate at once (the rest wait); max_step_tokens bounds the rows of one step (decode
        rows plus prompt chunks).

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
            seed=seed,
            stop=list(stop) if stop is not None else None,
            add_bos=add_bos,
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
        if stream:
            return self._stream_batch(texts, settings, max_sequences, max_step_tokens)
        return self._core.generate_batch(texts, settings, max_sequences=max_sequences, max_step_tokens=max_step_tokens)

    def _stream_batch(self, texts, settings, max_sequences, max_step_tokens) -> Iterator[tuple]:
        # As _stream: the batch runs on a worker thread and hands (index, piece) over a queue.
        pieces: queue.Queue = queue.Queue()
        stop = threading.Event()
        done = object()

        def on_piece(index: int, piece: str) -> bool:
            pieces.put((index, piece))
            return stop.is_set()

        def work() -> None:
            try:
                self._core.generate_batch(
                    texts, settings, max_sequences=max_sequences, max_step_tokens=max_step_tokens, callback=on_piece
                )
                pieces.put(done)
            except BaseException as e:  # handed to the consumer, raised there
                pieces.put(_Failed(e))

        worker = threading.Thread(target=work, name="lowbit-generate-batch", daemon=True)
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

    def _stream(self, prompt: str, kwargs: dict) -> Iterator[str]:
        # The generation runs on a worker thread (without the GIL while it computes) and hands
        # pieces over a queue; closing the iterator early, or Ctrl-C while waiting on it, tells
        # the worker to stop at its next token.
        pieces: queue.Queue = queue.Queue()
        stop = threading.Event()
        done = object()

        def on_piece(piece: str) -> bool:
            pieces.put(piece)
            return stop.is_set()

        def work() -> None:
            try:
                self._core.generate(prompt, callback=on_piece, **kwargs)
                pieces.put(done)
            except BaseException as e:  # handed to the consumer, raised there
                pieces.put(_Failed(e))

        worker = threading.Thread(target=work, name="lowbit-generate", daemon=True)
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

    def __repr__(self) -> str:
        return f"lowbit.Model({self.path!r})"
