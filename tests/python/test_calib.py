"""`lowbit convert --calib`: the activation statistics against an independent numpy forward
(reference_forward.py) over the same token windows, the recipe that records the calibration, and
a harness gate: on stories260K a calibrated conversion is no worse than an uncalibrated one on
text held out from the calibration."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = REPO.parent / "shared"
STORIES = SHARED / "models" / "stories260K"
TEXT = SHARED / "corpus" / "tinystories_sample.txt"
BIN = pathlib.Path(os.environ.get("LOWBIT_BIN", REPO / "build" / "lowbit"))
sys.path.insert(0, str(HERE))

import reference_forward  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not BIN.exists(), reason=f"lowbit binary not built ({BIN}; set LOWBIT_BIN)"),
    pytest.mark.skipif(not STORIES.exists(), reason=f"{STORIES} not present"),
]


def lowbit(*args):
    r = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return r


def test_statistics_equal_numpy(tmp_path):
    stats = tmp_path / "calib.json"
    lowbit("convert", STORIES, tmp_path / "q", "--bits", "4", "--calib", TEXT, "--calib-tokens", 300,
           "--calib-ctx", 128, "--calib-save", stats, "--threads", 1)
    got = json.loads(stats.read_text())
    assert got["tokens"] == 300 and got["ctx"] == 128
    assert [len(w) for w in got["windows"]] == [128, 128, 44]
    assert all(w[0] == 1 for w in got["windows"])  # each window starts with BOS

    ref, rows = {}, 0
    for ids in got["windows"]:
        inputs = {}
        reference_forward.forward(str(STORIES), ids, inputs=inputs)
        for name, x in inputs.items():
            ref[name] = ref.get(name, 0) + (x * x).sum(axis=0)
        rows += len(ids)
    # Every projection: 5 layers x 7, plus the head (the tied embedding).
    assert sorted(got["tensors"]) == sorted(ref)
    assert len(ref) == 5 * 7 + 1
    for name, r in ref.items():
        t = got["tensors"][name]
        assert t["rows"] == rows, name
        s = np.array(t["sum_sq"])
        # lowbit's fp32 forward agrees with the float64 one to ~1e-6 relative per activation
        # (test_reference_forward asks 1e-4 of the logits); a sum of squares doubles that.
        np.testing.assert_allclose(s, r, rtol=1e-4, atol=1e-6 * r.max(), err_msg=name)

    recipe = json.loads((tmp_path / "q" / "manifest.json").read_text())["recipe"]
    c = recipe["calibration"]
    assert c["text"] == str(TEXT) and c["tokens"] == 300 and c["ctx"] == 128
    assert c["text_checksum"].startswith("xxh3:") and len(c["text_checksum"]) == 5 + 16


def test_calib_needs_search(tmp_path):
    r = subprocess.run([str(BIN), "convert", STORIES, tmp_path / "q", "--bits", "4", "--quantizer", "rtn",
                        "--calib", TEXT], capture_output=True, text=True)
    assert r.returncode == 1 and "--calib needs --quantizer search" in r.stderr


def kl(model, ref_logits, text):
    out = model.parent / (model.name + ".json")
    lowbit("eval", model, "--ref-logits", ref_logits, "--text", text, "--ctx", 128, "--max-tokens", 4096,
           "--threads", 1, "--json", out)
    return json.loads(out.read_text())["kl_mean"]["value"]


@pytest.mark.parametrize("bits,group", [(4, "32"), (2, "32"), (4, "128")])
def test_calibrated_no_worse_on_held_out_text(bits, group, tmp_path):
    # Calibrate on the first 8192 tokens (about 35 KB) of the sample, evaluate on its last 120 KB.
    held_out = tmp_path / "held_out.txt"
    held_out.write_bytes(TEXT.read_bytes()[-120000:])
    assert len(TEXT.read_bytes()) > 190000
    lowbit("convert", STORIES, tmp_path / "f32", "--bits", 32)
    ref = tmp_path / "ref.bin"
    lowbit("eval", tmp_path / "f32", "--ref", tmp_path / "f32", "--text", held_out, "--ctx", 128,
           "--max-tokens", 4096, "--threads", 1, "--save-ref", ref)
    common = ["--bits", bits, "--group", group, "--threads", 1]
    lowbit("convert", STORIES, tmp_path / "plain", *common)
    lowbit("convert", STORIES, tmp_path / "calib", *common, "--calib", TEXT, "--calib-tokens", 8192)
    plain, calib = kl(tmp_path / "plain", ref, held_out), kl(tmp_path / "calib", ref, held_out)
    print(f"q{bits} g{group}: KL plain {plain:.5f} calibrated {calib:.5f}")
    assert calib <= plain


def test_saved_statistics_reproduce_the_conversion(tmp_path):
    stats = tmp_path / "calib.json"
    lowbit("convert", STORIES, tmp_path / "a", "--bits", "2", "--calib", TEXT, "--calib-tokens", 600,
           "--calib-save", stats, "--threads", 1)
    lowbit("convert", STORIES, tmp_path / "b", "--bits", "2", "--calib-load", stats, "--threads", 1)
    assert (tmp_path / "a" / "weights.bin").read_bytes() == (tmp_path / "b" / "weights.bin").read_bytes()
    # GPTQ's moments: collected in the calibration pass with --calib, by a second pass over the
    # saved windows with --calib-load; the same inputs, so the same file.
    lowbit("convert", STORIES, tmp_path / "ga", "--bits", "2", "--calib", TEXT, "--calib-tokens", 600,
           "--gptq", "--threads", 1)
    lowbit("convert", STORIES, tmp_path / "gb", "--bits", "2", "--calib-load", stats, "--gptq", "--threads", 1)
    assert (tmp_path / "ga" / "weights.bin").read_bytes() == (tmp_path / "gb" / "weights.bin").read_bytes()
    assert (tmp_path / "ga" / "weights.bin").read_bytes() != (tmp_path / "a" / "weights.bin").read_bytes()
    recipe = lambda d: json.loads((d / "manifest.json").read_text())["recipe"]["calibration"]  # noqa: E731
    assert recipe(tmp_path / "a") == recipe(tmp_path / "b")
    bad = tmp_path / "bad.json"
    bad.write_text('{"text": "x"}')
    r = subprocess.run([str(BIN), "convert", STORIES, tmp_path / "c", "--bits", "2", "--calib-load", bad],
                       capture_output=True, text=True)
    assert r.returncode == 1 and str(bad) in r.stderr and "not a calibration file" in r.stderr


@pytest.mark.parametrize("bits,group", [(2, "32"), (4, "64")])
def test_gptq_better_on_held_out_text(bits, group, tmp_path):
    """GPTQ minimizes each projection's output error on the calibration inputs: on text of the
    same kind held out from the calibration it must lower the KL of the calibrated conversion
    (GPTQ's gain is out of reach of the per-channel statistics alone, so this can fail)."""
    held_out = tmp_path / "held_out.txt"
    held_out.write_bytes(TEXT.read_bytes()[-120000:])
    lowbit("convert", STORIES, tmp_path / "f32", "--bits", 32)
    ref = tmp_path / "ref.bin"
    lowbit("eval", tmp_path / "f32", "--ref", tmp_path / "f32", "--text", held_out, "--ctx", 128,
           "--max-tokens", 4096, "--threads", 1, "--save-ref", ref)
    stats = tmp_path / "calib.json"
    common = ["--bits", bits, "--group", group, "--threads", 1]
    lowbit("convert", STORIES, tmp_path / "calib", *common, "--calib", TEXT, "--calib-tokens", 8192,
           "--calib-save", stats)
    lowbit("convert", STORIES, tmp_path / "gptq", *common, "--calib-load", stats, "--gptq")
    calib, gptq = kl(tmp_path / "calib", ref, held_out), kl(tmp_path / "gptq", ref, held_out)
    print(f"q{bits} g{group}: KL calibrated {calib:.5f} gptq {gptq:.5f}")
    assert gptq < calib
    recipe = json.loads((tmp_path / "gptq" / "manifest.json").read_text())["recipe"]
    assert recipe["gptq"] == {"damp": 0.01, "tokens": 8192}


def test_gptq_needs_calibration(tmp_path):
    r = subprocess.run([str(BIN), "convert", STORIES, tmp_path / "q", "--bits", "2", "--gptq"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "--gptq needs --calib" in r.stderr
    assert not (tmp_path / "q").exists()
    r = subprocess.run([str(BIN), "convert", STORIES, tmp_path / "q", "--bits", "2", "--calib", TEXT,
                        "--gptq", "--gptq-damp", "-1"], capture_output=True, text=True)
    assert r.returncode == 1 and "--gptq-damp" in r.stderr


SMOLLM2 = next((SHARED / "models" / "smollm2-135m-instruct").glob("*.gguf"), None)
CHATML = "<|im_start|>{role}\n{content}<|im_end|>\n"


def smollm2_prompt(question):
    """The prompt for one user question, rendered by jinja2 from the GGUF's own chat template
    (transformers' renderer, as test_chat_template_reference checks lowbit's against)."""
    ctu = pytest.importorskip("transformers.utils.chat_template_utils")
    gguf = pytest.importorskip("gguf")
    field = gguf.GGUFReader(str(SMOLLM2)).fields["tokenizer.chat_template"]
    template = bytes(field.parts[field.data[0]]).decode("utf-8")
    rendered, _ = ctu.render_jinja_template(conversations=[[{"role": "user", "content": question}]],
                                            chat_template=template, add_generation_prompt=True)
    return rendered[0]


def smollm2_tokens(text):
    """SmolLM2's token ids of text, specials parsed, no BOS added (`lowbit tokenize`, checked against
    the HF tokenizer by test_gguf_tokenizer)."""
    r = subprocess.run([str(BIN), "tokenize", "--no-bos", str(SMOLLM2), text], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [int(t) for t in r.stdout.split()]


@pytest.mark.skipif(SMOLLM2 is None, reason="../shared/models/smollm2-135m-instruct not present")
def test_chat_windows_are_the_models_own_greedy_answers(tmp_path):
    """--calib-chat: each window is the question rendered by the model's chat template (checked
    against jinja2's rendering), then tokens each of which is the float64 reference forward's argmax
    at its position (gguf_reference_forward, sharing no code with lowbit), ending with an end token
    or at --calib-chat-tokens; a --calib text's windows come first."""
    import gguf_reference_forward as ref_fwd

    questions = ["What is the capital of France?", "Name a fruit that is yellow."]
    qfile = tmp_path / "questions.txt"
    qfile.write_text(f"{questions[0]}\n\n   \n{questions[1]}\r\n")
    stats, cap = tmp_path / "calib.json", 24
    lowbit("convert", SMOLLM2, tmp_path / "q", "--bits", 8, "--calib", TEXT, "--calib-tokens", 100,
           "--calib-chat", qfile, "--calib-chat-tokens", cap, "--calib-save", stats)
    got = json.loads(stats.read_text())
    recipe = json.loads((tmp_path / "q" / "manifest.json").read_text())["recipe"]["calibration"]
    assert recipe == {k: v for k, v in got.items() if k not in ("windows", "tensors")}
    assert recipe["chat"]["questions"] == str(qfile) and recipe["chat"]["answer_tokens"] == cap
    assert recipe["chat"]["conversations"] == 2 and recipe["chat"]["checksum"].startswith("xxh3:")
    assert recipe["text"] == str(TEXT) and recipe["tokens"] == sum(len(w) for w in got["windows"])
    assert len(got["windows"]) == 3 and len(got["windows"][0]) == 100  # the text's window, first
    assert all(t["rows"] == recipe["tokens"] for t in got["tensors"].values())

    loaded = ref_fwd.load(str(SMOLLM2))
    eos = {2, 0}  # <|im_end|> (the template's end of turn) and <|endoftext|>
    for question, window in zip(questions, got["windows"][1:]):
        prompt = smollm2_tokens(smollm2_prompt(question))
        assert window[:len(prompt)] == prompt, question
        answer = window[len(prompt):]
        assert 1 <= len(answer) <= cap + 1
        assert answer[-1] in eos or len(answer) == cap, (question, answer)
        assert not any(t in eos for t in answer[:-1])
        logits = ref_fwd.forward(str(SMOLLM2), window, loaded)
        for i in range(len(prompt), len(window)):
            row = logits[i - 1]
            best = int(np.argmax(row))
            # lowbit's fp32 logits agree with the float64 reference to ~1e-4 (test_reference_forward):
            # a token other than the argmax is an error unless the two are closer than that.
            assert window[i] == best or row[best] - row[window[i]] < 1e-3, (question, i, window[i], best)


def test_calib_chat_errors_name_what_is_wrong(tmp_path):
    def convert(*extra):
        r = subprocess.run([str(BIN), "convert", STORIES, tmp_path / "q", "--bits", "4", *map(str, extra)],
                           capture_output=True, text=True)
        assert r.returncode == 1
        assert not (tmp_path / "q").exists()
        return r.stderr
    q = tmp_path / "q.txt"
    q.write_text("Hello?\n")
    # stories260K's tokenizer carries no chat template
    assert str(q) in (e := convert("--calib-chat", q)) and "no chat template" in e
    assert str(tmp_path / "none.txt") in convert("--calib-chat", tmp_path / "none.txt")
    assert "--calib-chat-tokens needs --calib-chat" in convert("--calib", TEXT, "--calib-chat-tokens", 5)
    assert "--calib-tokens needs --calib" in convert("--calib-chat", q, "--calib-tokens", 5)
    if SMOLLM2 is not None:
        blank = tmp_path / "blank.txt"
        blank.write_text("\n  \n")
        r = subprocess.run([str(BIN), "convert", SMOLLM2, tmp_path / "q", "--bits", "8", "--calib-chat", blank],
                           capture_output=True, text=True)
        assert r.returncode == 1 and str(blank) in r.stderr and "holds no question" in r.stderr
        long_q = tmp_path / "long.txt"
        long_q.write_text("first\n" + "word " * 600 + "\n")
        r = subprocess.run([str(BIN), "convert", SMOLLM2, tmp_path / "q", "--bits", "8", "--calib-chat", long_q,
                            "--calib-ctx", "256"], capture_output=True, text=True)
        assert r.returncode == 1 and f"{long_q} line 2" in r.stderr and "--calib-ctx" in r.stderr
        assert not (tmp_path / "q").exists()
