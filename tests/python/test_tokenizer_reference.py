"""`lowbit tokenize` against the reference Python tokenizers, on real text.

For every tokenizer in ../shared/models (and a few tokenizer.json variants built here from those
vocabularies, to cover the byte-level and Metaspace paths of the tokenizer.json reader), encodes a
bounded sample of ../shared/corpus plus tricky strings with the built binary and with the
reference package, and asserts equal ids (with and without BOS/special tokens) and equal decoded
text. References: sentencepiece.SentencePieceProcessor for .model files, tokenizers.Tokenizer for
tokenizer.json, and for vocab.json + merges.txt a tokenizers.Tokenizer(BPE.from_file(...)) set up
as transformers' fast converters set up GPT-2 and Qwen2.

The binary comes from $LOWBIT_BIN (default build/lowbit under the repository root); the tests
skip, saying so, when it is not there.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

sentencepiece = pytest.importorskip("sentencepiece")
tokenizers = pytest.importorskip("tokenizers")
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tokenizer_references import (  # noqa: E402
    CONFIGS, LLAMA3_PATTERN, MODELS, TEXTS, HfReference, SpmReference, gpt2_bpe, gpt2_reference, lowbit_bin,  # noqa: F401
    parse_ids, qwen2_reference, run_lowbit)


# ---- tokenizer.json variants built here -------------------------------------------------------
def llama3_style():
    """A Llama 3 shaped tokenizer.json (Split + ByteLevel, ignore_merges, BOS template) on GPT-2's vocabulary."""
    tok = gpt2_bpe(ignore_merges=True)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), "isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>", "<|begin_of_text|>"])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    return tok


def smollm_style():
    """SmolLM's shape: Digits(individual) then ByteLevel with GPT-2's regex, on GPT-2's vocabulary."""
    tok = gpt2_bpe()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>", AddedToken("<mask>", lstrip=True), AddedToken("<|r|>", rstrip=True)])
    tok.add_tokens([AddedToken("cat", single_word=True, normalized=False),
                    AddedToken("hello world", normalized=False)])  # not special: decode keeps them
    return tok


def metaspace_style(prepend_scheme, split):
    """The newer SentencePiece-style tokenizer.json: a Metaspace pre-tokenizer instead of the
    Prepend/Replace normalizer (TinyLlama's vocabulary and merges)."""
    tok = Tokenizer.from_file(str(CONFIGS / "tinyllama-1.1b-chat-v1.0" / "tokenizer.json"))
    tok.normalizer = normalizers.Sequence([])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=prepend_scheme, split=split)
    if split:
        tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement="▁",
                                                                                     prepend_scheme=prepend_scheme)])
    return tok


def with_added_tokens():
    """TinyLlama's tokenizer.json plus added tokens matched after normalization (normalized=True:
    the token text goes through the Prepend/Replace normalizer too) and one matched before it."""
    tok = Tokenizer.from_file(str(CONFIGS / "tinyllama-1.1b-chat-v1.0" / "tokenizer.json"))
    tok.add_tokens([AddedToken("▁ab▁", normalized=True), AddedToken("Hello", normalized=True),
                    AddedToken("<tool>", normalized=False)])
    return tok


# name -> (path given to lowbit, reference factory, built tokenizer.json to write first or None)
TOKENIZERS = {
    "stories260K": (MODELS / "stories260K", lambda: SpmReference(MODELS / "stories260K" / "tokenizer.model")),
    "llama2_model": (CONFIGS / "llama-2-7b-hf",
                     lambda: SpmReference(CONFIGS / "llama-2-7b-hf" / "tokenizer.model")),
    "tinyllama_json": (CONFIGS / "tinyllama-1.1b-chat-v1.0", lambda: HfReference(Tokenizer.from_file(
        str(CONFIGS / "tinyllama-1.1b-chat-v1.0" / "tokenizer.json")))),
    "mistral_json": (CONFIGS / "mistral-7b-v0.1", lambda: HfReference(Tokenizer.from_file(
        str(CONFIGS / "mistral-7b-v0.1" / "tokenizer.json")))),
    "qwen2_vocab_merges": (CONFIGS / "qwen2.5-0.5b", lambda: HfReference(qwen2_reference())),
    "gpt2_vocab_merges": (CONFIGS / "gpt2", lambda: HfReference(gpt2_reference())),
    "qwen2_json": (None, qwen2_reference),
    "llama3_style_json": (None, llama3_style),
    "smollm_style_json": (None, smollm_style),
    "metaspace_first_json": (None, lambda: metaspace_style("first", False)),
    "tinyllama_added_json": (None, with_added_tokens),
    "metaspace_always_split_json": (None, lambda: metaspace_style("always", True)),
}


@pytest.fixture(scope="module", params=sorted(TOKENIZERS))
def case(request, tmp_path_factory):
    name = request.param
    path, make = TOKENIZERS[name]
    ref = make()
    if path is None:  # a tokenizer.json written here by the reference package
        path = tmp_path_factory.mktemp(name) / "tokenizer.json"
        ref.save(str(path))
    if isinstance(ref, Tokenizer):
        ref = HfReference(ref)
    return name, path, ref


@pytest.mark.parametrize("add_special", [True, False], ids=["special", "no_special"])
def test_encode_matches_reference(lowbit_bin, case, add_special):
    name, path, ref = case
    args = ["--lines", "--json"] + ([] if add_special else ["--no-bos"])
    got = [parse_ids(line) for line in run_lowbit(lowbit_bin, path, args, [json.dumps(t) for t in TEXTS])]
    want = ref.encode(TEXTS, add_special)
    assert len(got) == len(want)
    bad = [(t, g, w) for t, g, w in zip(TEXTS, got, want) if g != w]
    assert not bad, f"{name}: {len(bad)} of {len(TEXTS)} texts differ; first: {bad[0]!r}"


def test_decode_matches_reference(lowbit_bin, case):
    name, path, ref = case
    ids = ref.encode(TEXTS, True)
    got = [json.loads(line) for line in
           run_lowbit(lowbit_bin, path, ["--decode", "--lines", "--json"], [" ".join(map(str, i)) for i in ids])]
    want = [ref.decode(i) for i in ids]
    bad = [(i, g, w) for i, g, w in zip(ids, got, want) if g != w]
    assert not bad, f"{name}: {len(bad)} of {len(ids)} decodes differ; first: {bad[0]!r}"


def test_command_line_forms(lowbit_bin):
    llama = CONFIGS / "llama-2-7b-hf"
    run = lambda *a: subprocess.run([str(lowbit_bin), "tokenize", *map(str, a)], capture_output=True, text=True)
    assert run(llama, "Hello world").stdout == "1 15043 3186\n"
    dash = sentencepiece.SentencePieceProcessor(model_file=str(llama / "tokenizer.model")).encode("-Hello")
    assert run(llama, "--no-bos", "--", "-Hello").stdout == " ".join(map(str, dash)) + "\n"
    assert run(llama, "--decode", "1 15043", "3186").stdout == "Hello world\n"
    help_text = run("--help")
    assert help_text.returncode == 0 and "--lines" in help_text.stdout
    for bad in [(llama, "--decode", "12x"), (llama, "--decode", "999999"), (llama / "missing", "hi"),
                (llama,), (llama, "--bogus", "hi")]:
        r = run(*bad)
        assert r.returncode != 0 and r.stdout == ""
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
