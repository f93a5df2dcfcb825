"""What the tokenizer reference tests share (test_tokenizer_reference.py, test_gguf_tokenizer.py):
the texts (tricky strings, random mixtures, corpus samples), the reference tokenizers built from
the vocabularies in ../shared/models/configs as transformers' converters set them up, and running
`lowbit tokenize` on many texts at once.

The binary comes from $LOWBIT_BIN (default build/lowbit under the repository root); the
`lowbit_bin` fixture skips, saying so, when it is not there.
"""

import json
import os
import random
import subprocess
from pathlib import Path

import pytest
import sentencepiece
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE

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
