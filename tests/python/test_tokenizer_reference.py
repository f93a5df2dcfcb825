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
import os
import random
import subprocess
from pathlib import Path

import pytest

sentencepiece = pytest.importorskip("sentencepiece")
tokenizers = pytest.importorskip("tokenizers")
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors  # noqa: E402
from tokenizers.models import BPE  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
MODELS = SHARED / "models"
CONFIGS = MODELS / "configs"
BIN = Path(os.environ.get("LOWBIT_BIN", ROOT / "build" / "lowbit"))
LINES_PER_CORPUS = 200

# Qwen2Tokenizer's pre-tokenizer regex (transformers' tokenization_qwen2.py) and Llama 3's.
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")

TRICKY = [
    "",
    " ",
    "   ",
    "multiple   spaces   between  words ",
    "  leading and trailing  ",
    "line one\nline two\n\nline four\n",
    "\n\n\n",
    "windows\r\nline\r\nends",
    "\ttabs\tand\t\tmore tabs\t",
    "emoji 😀🎉👍🏽 family 👨‍👩‍👧 flag 🇫🇷",
    "CJK 你好，世界！日本語のテキスト 한국어 텍스트",
    "accents naïve café résumé Ångström Øresund Dvořák",
    "decomposed cafe\u0301 and Hangul \u1100\u1161\u11a8",
    "digits 1234567890 3.14159 1,000,000 2024-01-01 007",
    "contractions I'm you're they've we'll she'd it's don't ISN'T Y'ALL",
    "unicode spaces\u00a0nbsp\u2003em\u3000ideographic\u200bzero-width",
    "punctuation!!! ??? ... --- (brackets) [more] {braces} <angle> \"quotes\" 'single'",
    "code: def f(x):\n    return x**2  # comment\n",
    "mixed scripts: Ελληνικά русский עברית العربية हिन्दी ไทย",
    "math ∑∫√∞ ≤ ≥ ≠ and symbols © ® ™ € £ ¥",
    "special-looking <s> </s> <unk> <|endoftext|> <|im_start|> [INST]",
    "stripping  <mask>  tokens\u3000<mask>\u00a0x <|r|>   y <|r|>\n\nz",
    "single words: cat concat cat's cat5 _cat cat_ (cat) catcat éatcat 猫cat",
    "a phrase: hello world, hello  world, Hello world",
    "normalized added tokens: x▁ab▁y ▁ab▁ Hello, Hello!Hello <tool>call</tool>",
    "a" * 300,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
]


def corpus_lines(name):
    lines = (SHARED / "corpus" / name).read_text(encoding="utf-8").split("\n")
    step = max(1, len(lines) // LINES_PER_CORPUS)
    sample = lines[::step][:LINES_PER_CORPUS]
    # A few multi-line chunks, so newlines meet text on both sides.
    sample += ["\n".join(lines[i:i + 5]) for i in range(0, len(lines) - 5, len(lines) // 10)]
    return sample


def random_mixtures(count=100, seed=1234):
    """Strings glued from pieces that stress the edges: whitespace runs, marks with no base,
    special-token look-alikes, the ▁ and Ġ markers themselves, digits next to letters."""
    pieces = [" ", "  ", "\n", "\t", "\r\n", "a", "Z", "the", " of", "é", "e\u0301", "\u0301", "1", "23",
              "456", "'s", "'", "\"", "你", "好", "😀", "👍🏽", "\u00a0", "\u3000", "\u200b", "<s>", "</s>",
              "<|endoftext|>", "<|im_start|>", "▁", "Ġ", "-", ".", "...", "ß", "İ", "ǅ", "\u1100\u1161"]
    rng = random.Random(seed)
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))) for _ in range(count)]


TEXTS = TRICKY + random_mixtures() + corpus_lines("tinystories_sample.txt") + corpus_lines("frankenstein.txt")


# ---- reference tokenizers ---------------------------------------------------------------------
class SpmReference:
    """sentencepiece, BOS added as tokenizer_config.json's add_bos_token (true for these models)."""

    def __init__(self, model_file):
        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))

    def encode(self, texts, add_special):
        return [self.sp.encode(t, add_bos=add_special) for t in texts]

    def decode(self, ids):
        return self.sp.decode(ids)


class HfReference:
    """tokenizers; its post-processor adds what the model adds (BOS for TinyLlama and Mistral)."""

    def __init__(self, tok):
        self.tok = tok

    def encode(self, texts, add_special):
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=add_special)]

    def decode(self, ids):
        return self.tok.decode(ids, skip_special_tokens=True)


def gpt2_bpe(**kwargs):
    return Tokenizer(BPE.from_file(str(CONFIGS / "gpt2" / "vocab.json"), str(CONFIGS / "gpt2" / "merges.txt"),
                                   **kwargs))


def gpt2_reference():
    tok = gpt2_bpe()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    return tok


def qwen2_reference():
    d = CONFIGS / "qwen2.5-0.5b"
    tok = Tokenizer(BPE.from_file(str(d / "vocab.json"), str(d / "merges.txt")))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    config = json.loads((d / "tokenizer_config.json").read_text())
    added = sorted(config["added_tokens_decoder"].items(), key=lambda kv: int(kv[0]))
    for token_id, t in added:
        token = AddedToken(t["content"], lstrip=t["lstrip"], rstrip=t["rstrip"], single_word=t["single_word"],
                           normalized=t["normalized"], special=t["special"])
        tok.add_tokens([token])
        assert tok.token_to_id(t["content"]) == int(token_id)
    return tok


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


# ---- the binary -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def lowbit_bin():
    if not BIN.is_file():
        pytest.skip(f"lowbit binary not found at {BIN} (build it, or set LOWBIT_BIN)")
    return BIN


def run_lowbit(binary, path, args, stdin_lines):
    """Runs `lowbit tokenize PATH ARGS` with one JSON line per input; returns the output lines."""
    proc = subprocess.run([str(binary), "tokenize", str(path), *args], input="".join(
        line + "\n" for line in stdin_lines).encode(), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    out = proc.stdout.decode("utf-8").split("\n")
    assert out[-1] == ""
    return out[:-1]


def parse_ids(line):
    return [int(x) for x in line.split()] if line else []


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
