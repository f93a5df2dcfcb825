"""A mixture of experts through `lowbit serve` (Qwen3-MoE's shape, scaled down, random weights,
stories260K's SentencePiece vocabulary): /api/show names its experts as a GGUF of one does, and
greedy text from concurrent requests, decoded as one batch whose rows each pick their own
experts, equals `lowbit run` of each prompt alone."""

import concurrent.futures
import subprocess
import sys
from pathlib import Path

import ollama
import pytest

from serve_util import BIN, STORIES, Server, skip_unless_ready

pytestmark = skip_unless_ready

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tools"))
import make_hf_model  # noqa: E402

PROMPTS = ["Once upon a time", "The little dog", "Tom and Lily went to the park and"]


@pytest.fixture(scope="module")
def moe_gguf(tmp_path_factory):
    d = tmp_path_factory.mktemp("moe")
    hf = make_hf_model.make_model(d / "hf", ROOT / "tests" / "data" / "configs" / "qwen3-30b-a3b", layers=2, dim=64,
                                  ffn=96, heads=4, kv_heads=2, vocab=512, head_dim=32, dtype="F32", seed=13,
                                  tokenizer=False,
                                  config_edit={"num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                                               "bos_token_id": 1, "eos_token_id": 2})
    (hf / "tokenizer.model").write_bytes((STORIES / "tokenizer.model").read_bytes())
    g = d / "moe.gguf"
    subprocess.run([sys.executable, str(ROOT / "tests" / "tools" / "hf_to_gguf.py"), str(hf), str(g), "--spm-vocab"],
                   check=True)
    return g


def alone(gguf, prompt, n=12):
    """`lowbit run --raw` greedy: the prompt echoed, its continuation, and a line end."""
    out = subprocess.run([str(BIN), "run", str(gguf), "--raw", "-p", prompt, "-n", str(n), "--temp", "0"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith(prompt) and out.endswith("\n"), out
    return out[len(prompt):-1]


def test_experts_shown_and_batched_text_equals_each_alone(moe_gguf, tmp_path):
    s = Server(tmp_path / "store", "--parallel", "4")
    try:
        client = ollama.Client(host=s.url)
        client.create(model="moe", from_=str(moe_gguf))
        info = client.show("moe").modelinfo
        assert (info["qwen3moe.expert_count"], info["qwen3moe.expert_used_count"],
                info["qwen3moe.expert_feed_forward_length"]) == (8, 2, 32)

        def generate(prompt):
            return client.generate(model="moe", prompt=prompt, raw=True,
                                   options={"temperature": 0, "num_predict": 12, "repeat_penalty": 1}).response

        with concurrent.futures.ThreadPoolExecutor(len(PROMPTS)) as pool:
            got = list(pool.map(generate, PROMPTS))
        assert got == [alone(moe_gguf, p) for p in PROMPTS]
    finally:
        assert s.stop() == 0, s.stderr()
