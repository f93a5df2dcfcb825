"""What a new user meets first: `lowbit run` and the CLI's argument handling, on the built binary
($LOWBIT_BIN, else <repo>/build/lowbit) and stories260K.

The text expected after a prompt comes from the reference tokenizer (sentencepiece decoding
prompt + generated ids), not from lowbit's own decoder; the context limits and token counts
from config.json and sentencepiece.
"""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest
import sentencepiece

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cli_helpers import BIN, REPO, SHARED, lowbit  # noqa: E402

STORIES = SHARED / "models" / "stories260K"
TEXT = SHARED / "corpus" / "tinystories_sample.txt"

pytestmark = [
    pytest.mark.skipif(not BIN.exists(), reason=f"lowbit binary not built ({BIN}; set LOWBIT_BIN)"),
    pytest.mark.skipif(not STORIES.exists(), reason=f"{STORIES} not present"),
]


@pytest.fixture(scope="module")
def stories(tmp_path_factory):
    out = tmp_path_factory.mktemp("run_cli") / "f32"
    r = lowbit("convert", STORIES, out, "--bits", "32", "--threads", "1")
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def sp():
    return sentencepiece.SentencePieceProcessor(model_file=str(STORIES / "tokenizer.model"))


def trained_ctx():
    return json.loads((STORIES / "config.json").read_text())["max_position_embeddings"]


# ---- 2: the text reads on from the prompt -----------------------------------------------------
@pytest.mark.parametrize("prompt", ["The dog", "Once upon a time", "Lily", "Tom had a", ""])
def test_text_reads_on_from_the_prompt_as_sentencepiece_decodes(stories, sp, prompt):
    r = lowbit("run", stories, "-p", prompt, "-n", "16", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    prompt_ids = [sp.bos_id()] + sp.encode(prompt)
    assert j["prompt_tokens"] == len(prompt_ids)
    whole, head = sp.decode(prompt_ids + j["ids"]), sp.decode(prompt_ids)
    assert whole.startswith(head)
    assert j["text"] == whole[len(head):]
    if prompt and sp.id_to_piece(j["ids"][0]).startswith("\u2581"):
        assert j["text"].startswith(" ")  # "The dog" + "▁was" is "The dog was"
    # Streamed: the prompt echoed, then the text, then a newline.
    plain = lowbit("run", stories, "-p", prompt, "-n", "16")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == prompt + whole[len(head):] + "\n"


def test_a_model_without_a_chat_template_continues_the_prompt_from_stdin_too(stories):
    """stories260K has no chat template: a prompt is continued as text, with or without --raw,
    and text on stdin (not a terminal) is the prompt, its last newline dropped."""
    want = json.loads(lowbit("run", stories, "-p", "Once upon a time", "-n", "16", "--json").stdout)
    assert want["templated"] is False
    for args, stdin in [(["--raw", "-p", "Once upon a time"], None), ([], "Once upon a time\n")]:
        kw = {"input": stdin} if stdin is not None else {}
        r = lowbit("run", stories, *args, "-n", "16", "--json", **kw)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["ids"] == want["ids"]
    r = lowbit("run", stories, "--system", "Be brief.", "-p", "Once")
    assert r.returncode == 2 and "has no chat template to put a system message in" in r.stderr


# ---- 3: usage errors name the flag and exit 2 ---------------------------------------------------
NO_MODEL = "/nonexistent/model"  # a usage error is found before anything is loaded
USAGE_ERRORS = [
    (["run", NO_MODEL, "-p", "x", "-n", "abc"], "-n: 'abc' is not an integer"),
    (["run", NO_MODEL, "-p", "x", "-n", "5abc"], "-n: '5abc' is not an integer"),
    (["run", NO_MODEL, "-p", "x", "-n", "-5"], "-n: '-5' must be >= 0"),
    (["run", NO_MODEL, "-p", "x", "--threads", "-3"], "--threads: '-3' must be >= 1"),
    (["run", NO_MODEL, "-p", "x", "--threads", "100000"], "--threads: '100000' must be <= "),
    (["run", NO_MODEL, "-p", "x", "--ctx", "-1"], "--ctx: '-1' must be >= 1"),
    (["run", NO_MODEL, "-p", "x", "--temp", "abc"], "--temp: 'abc' is not a number"),
    (["run", NO_MODEL, "-p", "x", "--temp", "nan"], "--temp: 'nan' is not a number"),
    (["run", NO_MODEL, "-p", "x", "--temp", "-1"], "--temp: '-1' must be >= 0"),
    (["run", NO_MODEL, "-p", "x", "--top-p", "2"], "--top-p: '2' must be in (0, 1]"),
    (["run", NO_MODEL, "-p", "x", "--top-k", "1.5"], "--top-k: '1.5' is not an integer"),
    (["run", NO_MODEL, "-p", "x", "--min-p", "3"], "--min-p: '3' must be in [0, 1]"),
    (["run", NO_MODEL, "-p", "x", "--repeat-penalty", "0"], "--repeat-penalty: '0' must be > 0"),
    (["run", NO_MODEL, "-p", "x", "--presence-penalty", "3"], "--presence-penalty: '3' must be in [-2, 2]"),
    (["run", NO_MODEL, "-p", "x", "--frequency-penalty", "-2.5"], "--frequency-penalty: '-2.5' must be in [-2, 2]"),
    (["run", NO_MODEL, "-p", "x", "--seed", "-1"], "--seed: '-1' is not an integer"),
    (["run", NO_MODEL, "-p", "x", "--isa", "sse"], "--isa: 'sse' is not one of auto, scalar, avx2, avxvnni, avx512, avx512zmm, neon"),
    (["run", NO_MODEL, "-p", "x", "--gpu-layers", "most"], "--gpu-layers: 'most' is not a layer count, all or auto"),
    (["run", NO_MODEL, "-p", "x", "--stop", ""], "--stop: '' must be non-empty"),
    (["run", NO_MODEL, "-p", "x", "--bogus"], "--bogus"),
    (["run", NO_MODEL], "no prompt: give -p, PROMPT or text on stdin"),
    (["run", NO_MODEL, "--raw"], "no prompt: give -p, PROMPT or text on stdin"),
    (["run", NO_MODEL, "-p", "x", "--raw", "--system", "s"], "--system goes with the chat template, which --raw leaves out"),
    (["run", NO_MODEL, "-p", "x", "--format", "xml"], "--format: 'xml' is not json, a JSON schema or a schema file"),
    (["run", NO_MODEL, "-p", "x", "--format", "{\"type\": "], "--format: not valid JSON"),
    (["run", NO_MODEL, "-p", "x", "--format", '{"type": "integer", "not": {"const": 2}}'], "--format: 'not' is not supported"),
    (["run", NO_MODEL, "-p", "x", "--format", '{"properties": {"a": {"not": {"const": 2}}}}'],
     "--format.properties.a: 'not' is not supported"),
    (["run", NO_MODEL, "-p", "x", "-n"], "-n"),
    (["convert", NO_MODEL, "/tmp/out", "--bits", "four"], "--bits: 'four' is not an integer"),
    (["convert", NO_MODEL, "/tmp/out", "--bits", "4", "--group", "3x"], "--group: '3x' is not an integer"),
    (["convert", NO_MODEL], "OUT_DIR is required"),  # --bits is optional: a GGUF keeps its types
    (["bench", "matmul", "--bits", "4", "--m", "0"], "--m: '0' must be >= 1"),
    (["bench", "model", NO_MODEL, "--gen-len", "x"], "--gen-len: 'x' is not an integer"),
    (["eval", NO_MODEL, "--ref", NO_MODEL, "--text", TEXT, "--ctx", "abc"], "--ctx: 'abc' is not an integer"),
    (["eval", NO_MODEL, "--ref", NO_MODEL, "--text", TEXT, "--min-top1", "120"], "--min-top1: '120' must be in [0, 100]"),
    (["logits", NO_MODEL, "--ids", "1", "--top", "0"], "--top: '0' must be >= 1"),
    (["tokenize", STORIES, "--bogus", "hi"], "--bogus"),
    (["info", "--bogus"], "--bogus"),
]


@pytest.mark.parametrize("args,message", USAGE_ERRORS, ids=[m for _, m in USAGE_ERRORS])
def test_usage_errors_name_the_flag_and_exit_2(args, message):
    r = lowbit(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert message in lines[0], lines[0]
    assert lines[0].startswith(f"lowbit {args[0]}: ")


# ---- 4, 5: checked before any output; the context and the memory ------------------------------
def test_prompt_longer_than_the_context_is_refused_before_output(stories, sp):
    prompt = "Once upon a time, there was a little girl named Lily. She loved to play."
    n = 1 + len(sp.encode(prompt))
    r = lowbit("run", stories, "-p", prompt, "--ctx", "8")
    assert r.returncode == 1
    assert r.stdout == ""
    assert f"the prompt is {n} tokens but the context holds 8 (--ctx)" in r.stderr


def test_ctx_beyond_the_trained_length_warns(stories):
    trained = trained_ctx()
    r = lowbit("run", stories, "-p", "Once", "-n", "4", "--ctx", 8 * trained)
    assert r.returncode == 0, r.stderr
    assert f"warning: --ctx {8 * trained} is longer than the {trained} positions" in r.stderr
    quiet = lowbit("run", stories, "-p", "Once", "-n", "4", "--ctx", trained)
    assert "warning" not in quiet.stderr


def test_gpu_layers_auto_runs_and_says_where(stories):
    # auto puts on a GPU what fits and nothing without one: the text is the CPU's either way.
    cpu = lowbit("run", stories, "-p", "Once", "-n", "8", "--seed", "1")
    r = lowbit("run", stories, "-p", "Once", "-n", "8", "--seed", "1", "--gpu-layers", "auto")
    assert r.returncode == 0, r.stderr
    assert r.stdout == cpu.stdout
    assert re.search(r"lowbit run: layers 0-\d+ on ", r.stderr), r.stderr
    assert "gpu_layers auto: " in r.stderr


def test_memory_refusal_lists_parts_that_add_up(stories):
    r = lowbit("run", stories, "-p", "Once", "--ctx", 2**40)
    assert r.returncode == 1 and r.stdout == ""
    m = re.search(r"needs about (\d+) MiB \(weights (\d+) MiB \+ KV cache for \d+ positions (\d+) MiB \+ "
                  r"scratch [^)]*? (\d+) MiB\)", r.stderr)
    assert m, r.stderr
    total, *parts = map(int, m.groups())
    assert total == sum(parts)


# ---- 7: a fresh seed per run, reported --------------------------------------------------------
def test_sampling_without_seed_differs_and_reports_the_seed(stories):
    def sample(*extra):
        r = lowbit("run", stories, "-p", "Once", "-n", "40", "--temp", "1", "--json", *extra)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    a, b = sample(), sample()
    assert a["seed"] != b["seed"]
    assert a["text"] != b["text"]
    again = sample("--seed", a["seed"])
    assert again["seed"] == a["seed"] and again["text"] == a["text"]
    help_text = lowbit("run", "--help").stdout
    assert "--seed" in help_text and "Without --seed" in help_text


# ---- 11: Ctrl-C prints what was generated and the speed, then exits 130 ------------------------
@pytest.fixture(scope="module")
def slow_model(tmp_path_factory):
    """A random-weight model on stories260K's tokenizer, big enough that 400 tokens take a while."""
    d = tmp_path_factory.mktemp("slow")
    make = [sys.executable, REPO / "tests" / "tools" / "make_hf_model.py", d / "hf", "--config", "stories260K",
            "--layers", "6", "--dim", "512", "--heads", "8", "--kv-heads", "4", "--ffn", "1376"]
    subprocess.run(list(map(str, make)), check=True, capture_output=True, timeout=600)
    r = lowbit("convert", d / "hf", d / "q8", "--bits", "8", "--quantizer", "rtn")
    assert r.returncode == 0, r.stderr
    return d / "q8"


def test_sigint_prints_the_text_and_speed_then_exits_130(slow_model):
    args = [str(BIN), "run", str(slow_model), "-p", "Once", "-n", "400", "--threads", "1"]
    # Without Ctrl-C this generation runs its 400 tokens (random weights rarely pick EOS).
    full = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert full.returncode == 0, full.stderr
    assert "generation: 400 tokens" in full.stderr, full.stderr
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    while len(seen) <= len("Once"):  # the echoed prompt, then the first piece
        chunk = os.read(p.stdout.fileno(), 4096)
        assert chunk, "the generation ended before it could be interrupted"
        seen += chunk
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    out = (seen + out).decode()
    err = err.decode()
    m = re.search(r"generation: (\d+) tokens, [\d.]+ tokens/s \(interrupted\)", err)
    assert m, err
    assert 1 <= int(m.group(1)) < 400
    assert out.startswith("Once") and out.endswith("\n") and len(out) > len("Once\n")
    assert full.stdout.startswith(out[:-1])  # greedy: what was printed is the start of the full text


# ---- 12: the top-level help ---------------------------------------------------------------------
def test_help_lists_version():
    r = lowbit("--help")
    assert r.returncode == 0
    assert "--version" in r.stdout
    v = lowbit("--version")
    assert v.returncode == 0 and v.stdout.startswith("lowbit ")
