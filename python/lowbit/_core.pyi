"""Type stubs of lowbit._core, the compiled module (python/src). Use the lowbit package."""

from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

__version__: str
build_features: str

class Error(RuntimeError):
    """An error reported by lowbit; the message names the file, tensor or field at fault."""

    code: str  # "invalid_argument", "not_found", "context_full", ... (kernels/error.h ErrorCode)

class VersionError(Error):
    """A file newer than this version of lowbit understands."""

class QTensor:
    @property
    def shape(self) -> Tuple[int, int]: ...
    @property
    def type(self) -> str: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def bits_per_weight(self) -> float: ...
    def dequantize(self) -> npt.NDArray[np.float32]: ...
    def tobytes(self) -> bytes: ...

def linear_type(bits: int, group: int, scheme: Optional[str] = None) -> str: ...
def quantize(array: npt.ArrayLike, type: str, quantizer: str = "search") -> QTensor: ...
def matmul(w: QTensor, x: npt.ArrayLike) -> npt.NDArray[np.float32]: ...

class Model:
    def __init__(self, path: str, threads: int = 0, ctx: int = 0, isa: str = "auto", gpu_layers: str = "0") -> None: ...
    @property
    def device_layers(self) -> int: ...
    @property
    def placement(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def ctx(self) -> int: ...
    @property
    def bos_id(self) -> int: ...
    @property
    def eos_ids(self) -> List[int]: ...
    @property
    def config(self) -> dict: ...
    def tokenize(self, text: str, add_bos: bool = True) -> List[int]: ...
    def detokenize(self, ids: Sequence[int]) -> str: ...
    def logits(self, ids: Sequence[int]) -> npt.NDArray[np.float32]: ...
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
        add_bos: bool = True,
        json: bool = False,
        schema: Optional[str] = None,  # a JSON schema's text (with json=True)
        callback: Optional[Callable[[str], Optional[bool]]] = None,
    ) -> dict: ...
    def render_chat(self, messages_json: str, add_generation_prompt: bool = True) -> str: ...
    # The conversation's ids, (with _fit: how many messages were dropped,) and whether the prompt
    # opened a thinking block; vars_json: more template variables ({"enable_thinking": ...}).
    def chat_tokens(
        self, messages_json: str, add_special: bool = True, tools_json: str = "", reply_start: str = "",
        vars_json: str = ""
    ) -> Tuple[List[int], bool]: ...
    def chat_tokens_fit(
        self, messages_json: str, max_tokens: int, tools_json: str = "", reply_start: str = "", vars_json: str = ""
    ) -> Tuple[List[int], int, bool]: ...
    @property
    def thinks(self) -> bool: ...  # a thinking model's chat template
    # Tool calling: the plan for a tool_choice ("auto", "none", "required" or a function's name),
    # a finished reply read back as (content, [(name, arguments JSON text)]), and how many bytes
    # of a streamed reply may be shown.
    def tool_plan(self, tools_json: str, choice: str) -> dict: ...
    def tool_read(
        self, text: str, tools_json: str, reply_start: str, reply_end: str, forced: bool
    ) -> Tuple[str, List[Tuple[str, str]]]: ...
    def tool_hold_from(self, text: str) -> int: ...
    def generate_tokens(
        self,
        ids: Sequence[int],
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        repetition_penalty: float = 1.0,
        seed: int = 0,
        stop: Optional[Sequence[str]] = None,
        json: bool = False,
        schema: Optional[str] = None,  # a JSON schema's text (with json=True)
        callback: Optional[Callable[[str], Optional[bool]]] = None,
        chat: bool = False,  # continue the model's chat session (its KV cache of the last turn)
    ) -> dict: ...
    def generate_batch(
        self,
        prompts: Sequence[str],
        settings: Sequence[dict],  # generate()'s keyword arguments, one dict per prompt
        max_sequences: int = 16,
        max_step_tokens: int = 256,
        callback: Optional[Callable[[int, str], Optional[bool]]] = None,
    ) -> List[dict]: ...

def convert(
    hf_dir: str,
    out_dir: str,
    bits: int = 4,
    group: int = 32,
    scheme: Optional[str] = None,
    quantizer: str = "search",
    keep: Sequence[Tuple[str, str]] = ...,
    force: bool = False,
    threads: int = 0,
    allow_nonfinite: bool = False,
    progress: Optional[Callable[[int, int, str, int, int], None]] = None,
) -> dict: ...

# Present when the library was built with the accuracy harness (eval/eval.h).
def evaluate(
    model: str,
    text: str,
    ref: Optional[str] = None,
    ctx: int = 256,
    max_tokens: int = 0,
    threads: int = 0,
    ref_logits: Optional[str] = None,
    save_ref: Optional[str] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> dict: ...


class ThinkingSplitter:
    """A reply cut into a thinking model's reasoning and answer as it streams."""
    def __init__(self, in_thinking: bool = False) -> None: ...
    def feed(self, piece: str) -> Tuple[str, str]: ...  # (reasoning, answer) now certain
    def finish(self) -> Tuple[str, str]: ...
