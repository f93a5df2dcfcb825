"""`lowbit tokenize FILE.gguf`: the tokenizer rebuilt from GGUF metadata alone
(convert/gguf_tokenizer.h) against independent references, on the texts of
tokenizer_references.py (tricky strings, random mixtures, corpus samples) plus chat-formatted
strings with special tokens; ids with and without special tokens, and decoded text.

The GGUF files:
- the real SmolLM2-135M-Instruct file (tokenizer.ggml.model gpt2, pre smollm);
- written here with the `gguf` package (the writer of llama.cpp's converters), filling the keys as
  llama.cpp's converter does, from the tokenizer files in ../shared/models/configs: GPT-2
  (pre gpt-2; and pre default, and no pre at all, which llama.cpp reads as default), Qwen2.5 (qwen2; its added tokens CONTROL when special, else USER_DEFINED; its chat
  template), a Llama 3 shaped one (llama-bpe; GPT-2's vocabulary and merges, since Llama 3.2's
  tokenizer.json is not in ../shared, followed by Llama 3.2's 256 special tokens), and the
  SentencePiece models of stories260K and Llama 2 (model llama: pieces, scores and types from the
  .model protobuf, add_space_prefix and remove_extra_whitespaces from its normalizer spec);
  and pre-tokenizer names whose own tokenizer files are not here (tekken, gpt-4o, qwen35, dbrx,
  refact on GPT-2's vocabulary; deepseek-r1-qwen on Qwen2.5's), against the Split pattern of
  their tokenizer.json as llama.cpp quotes it and the merge/BOS defaults llama.cpp gives them.

References, neither built from lowbit's output:
- the published rules (every text must match): sentencepiece on the original .model file; the
  `tokenizers` package set up with the model family's own pre-tokenizer, from the original
  vocab.json + merges.txt for GPT-2 and Qwen2 (as in test_tokenizer_reference.py), GPT-2's for the
  Llama 3 shape (Split on Llama 3's regex, ByteLevel, ignore_merges, BOS template), and the file's
  own vocabulary for SmolLM2 (Digits, then ByteLevel with GPT-2's regex, as SmolLM's tokenizer.json),
  and for llama.cpp's "default" its own four regexes (llama-vocab.cpp), each splitting the pieces of
  the one before, then ByteLevel;
- transformers' GGUF tokenizer loader, PreTrainedTokenizerFast.from_pretrained(dir, gguf_file=...),
  on the byte-level files. It leaves out two rules of the models' own tokenizers, which lowbit (like
  llama.cpp for SmolLM) keeps: Qwen2's NFC normalization and SmolLM's digit splitting. So it must
  agree on every text those rules leave alone: texts already in NFC (qwen2), texts without a
  numeric character (smollm2).
"""

import json
import mmap
import os
import struct
import subprocess
import sys
import types
import unicodedata
from pathlib import Path

import pytest

sentencepiece = pytest.importorskip("sentencepiece")
tokenizers = pytest.importorskip("tokenizers")
gguf = pytest.importorskip("gguf")
from tokenizers import AddedToken, Regex, Tokenizer, decoders, pre_tokenizers, processors  # noqa: E402
from tokenizers.models import BPE  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tokenizer_references import (  # noqa: E402
    CONFIGS, LLAMA3_PATTERN, MODELS, TEXTS, HfReference, SpmReference, gpt2_bpe, gpt2_reference, lowbit_bin,  # noqa: F401
    parse_ids, qwen2_reference, run_lowbit)

SMOLLM2 = MODELS / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"

# llama.cpp's token types (gguf-py TokenType), the same numbers as SentencePiece's piece types.
NORMAL, CONTROL, USER_DEFINED = 1, 3, 4

CHAT_TEXTS = [
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
    "<|im_start|>assistant\n",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "<|endoftext|>Once upon a time<|endoftext|>",
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
    "<s>[INST] a question [/INST] an answer</s>",
    "x<|im_end|>y <|im_start|> z<|reserved_special_token_3|>",
]
# Where the pre-tokenizers below part ways on GPT-2's merges: digits in threes or one by one, and
# a capital inside a word (Tekken's and GPT-4o's case-aware words). GPT-2's merges rarely cross
# the other boundaries they draw (a combining mark after a letter, Qwen 3.5's), so those rules are
# checked only where they agree with their neighbours.
PATTERN_TEXTS = ["12345 678 9", "McDonald's iPhone eBay", "DON'T STOP", "HelloWorld XMLHttpRequest", "path/to//x\n"]
GGUF_TEXTS = TEXTS + CHAT_TEXTS + PATTERN_TEXTS


# ---- GGUF files -------------------------------------------------------------------------------
def write_gguf(path, arch, model, tokens, token_types, *, pre=None, merges=None, scores=None, **keys):
    """A GGUF holding only tokenizer metadata; keys are GGUFWriter.add_<key>(value) calls."""
    w = gguf.GGUFWriter(str(path), arch=arch)
    w.add_tokenizer_model(model)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(token_types)
    if merges is not None:
        w.add_token_merges(merges)
    if scores is not None:
        w.add_token_scores(scores)
    for key, value in keys.items():
        getattr(w, "add_" + key)(value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def vocab_and_merges(d):
    """vocab.json as a token list (index = id) and merges.txt as "a b" strings."""
    vocab = json.loads((d / "vocab.json").read_text(encoding="utf-8"))
    tokens = sorted(vocab, key=vocab.get)
    assert [vocab[t] for t in tokens] == list(range(len(tokens)))
    merges = [m for m in (d / "merges.txt").read_text(encoding="utf-8").split("\n") if m and not m.startswith("#version")]
    return tokens, merges


def added_tokens(config):
    """tokenizer_config.json's added_tokens_decoder in id order, as (id, content, special)."""
    return [(int(i), t["content"], t["special"]) for i, t in
            sorted(config["added_tokens_decoder"].items(), key=lambda kv: int(kv[0]))]


def gpt2_gguf(path, pre="gpt-2"):
    tokens, merges = vocab_and_merges(CONFIGS / "gpt2")
    types_ = [NORMAL] * len(tokens)
    eot = tokens.index("<|endoftext|>")
    types_[eot] = CONTROL
    return write_gguf(path, "gpt2", "gpt2", tokens, types_, pre=pre, merges=merges,
                      bos_token_id=eot, eos_token_id=eot, unk_token_id=eot)


def qwen2_gguf(path, pre="qwen2"):
    d = CONFIGS / "qwen2.5-0.5b"
    tokens, merges = vocab_and_merges(d)
    types_ = [NORMAL] * len(tokens)
    config = json.loads((d / "tokenizer_config.json").read_text())
    for token_id, content, special in added_tokens(config):
        assert token_id == len(tokens)
        tokens.append(content)
        types_.append(CONTROL if special else USER_DEFINED)
    eos = tokens.index(config["eos_token"])
    assert config["bos_token"] is None
    return write_gguf(path, "qwen2", "gpt2", tokens, types_, pre=pre, merges=merges, eos_token_id=eos,
                      pad_token_id=tokens.index(config["pad_token"]), add_bos_token=config["add_bos_token"],
                      chat_template=config["chat_template"])


def llama3_specials():
    config = json.loads((CONFIGS / "llama-3.2-1b" / "tokenizer_config.json").read_text())
    specials = added_tokens(config)
    assert all(special for _, _, special in specials)
    return [content for _, content, _ in specials], config


def llama3_gguf(path):
    tokens, merges = vocab_and_merges(CONFIGS / "gpt2")
    types_ = [NORMAL] * len(tokens)
    types_[tokens.index("<|endoftext|>")] = CONTROL
    specials, config = llama3_specials()
    tokens += specials
    types_ += [CONTROL] * len(specials)
    return write_gguf(path, "llama", "gpt2", tokens, types_, pre="llama-bpe", merges=merges,
                      bos_token_id=tokens.index(config["bos_token"]), eos_token_id=tokens.index(config["eos_token"]),
                      add_bos_token=True)


def spm_gguf(path, model_file, with_flags):
    """As llama.cpp's converter writes a SentencePiece vocabulary; with_flags=False leaves out the
    add_bos/add_eos keys, so llama.cpp's defaults (BOS on, EOS off) apply."""
    pytest.importorskip("google.protobuf")  # sentencepiece's ModelProto classes need it
    from sentencepiece import sentencepiece_model_pb2
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(Path(model_file).read_bytes())
    sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
    keys = dict(bos_token_id=sp.bos_id(), eos_token_id=sp.eos_id(), unk_token_id=sp.unk_id(),
                add_space_prefix=proto.normalizer_spec.add_dummy_prefix,
                remove_extra_whitespaces=proto.normalizer_spec.remove_extra_whitespaces)
    if with_flags:
        keys.update(add_bos_token=True, add_eos_token=False)
    return write_gguf(path, "llama", "llama", [p.piece for p in proto.pieces], [p.type for p in proto.pieces],
                      scores=[p.score for p in proto.pieces], **keys)


def read_gguf_metadata(path, string_arrays=()):
    """(metadata, tensor names) of a GGUF file, in the shape transformers' reader
    (integrations/gguf/reader.py read_gguf_metadata) gives them: string arrays not named in
    string_arrays as their length. A few lines of struct, because gguf.GGUFReader maps every array
    element and takes ~20 s to open Qwen2's vocabulary."""
    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        pos = 0

        def take(code, count=1):
            nonlocal pos
            values = struct.unpack_from(f"<{count}{code}", data, pos)
            pos += struct.calcsize(f"<{count}{code}")
            return values if count != 1 else values[0]

        def string():
            nonlocal pos
            n = take("Q")
            pos += n
            return data[pos - n:pos].decode("utf-8")

        def value(kind, keep):
            if kind in scalar:
                return take(scalar[kind])
            if kind == 8:
                return string()
            elem, count = take("I"), take("Q")
            if elem == 8:
                items = [string() for _ in range(count)]
                return items if keep else count
            return list(take(scalar[elem], count)) if count else []

        assert data[:4] == b"GGUF"
        pos = 8
        n_tensors, n_kv = take("Q"), take("Q")
        metadata = {}
        for _ in range(n_kv):
            key = string()
            metadata[key] = value(take("I"), key in string_arrays)
        names = []
        for _ in range(n_tensors):
            names.append(string())
            n_dims = take("I")
            pos += 8 * n_dims + 4 + 8  # dims, type, offset
        return metadata, tuple(names)


def gguf_metadata(path):
    return read_gguf_metadata(path, ("tokenizer.ggml.tokens", "tokenizer.ggml.merges"))[0]


# ---- references built from the published rules ------------------------------------------------
def llama3_reference():
    """Llama 3's tokenizer.json shape on GPT-2's vocabulary plus Llama 3.2's special tokens."""
    tok = gpt2_bpe(ignore_merges=True)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), "isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    specials, config = llama3_specials()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)] +
                           [AddedToken(s, special=True, normalized=False) for s in specials])
    assert tok.token_to_id(specials[0]) == 50257 and tok.get_vocab_size() == 50257 + len(specials)
    bos = config["bos_token"]
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))])
    return tok


# llama.cpp's pre-tokenizer regexes for "default" (llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_DEFAULT).
LLAMA_CPP_DEFAULT_SPLITS = [
    r"[\p{P}\$\+<=>\^~\|]+",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
    r"\p{N}+",
    r"[0-9][0-9][0-9]",
]


def default_reference():
    """GPT-2's vocabulary split by llama.cpp's default regexes, each in turn, then ByteLevel."""
    tok = gpt2_bpe()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r), "isolated") for r in LLAMA_CPP_DEFAULT_SPLITS] +
        [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    return tok


def smollm_reference(path):
    """SmolLM's own pre-tokenizer (Digits, then ByteLevel with GPT-2's regex) on the file's
    vocabulary and merges; the tokens the file marks CONTROL as special tokens."""
    md = gguf_metadata(path)
    assert md["tokenizer.ggml.pre"] == "smollm" and md["tokenizer.ggml.add_bos_token"] is False
    tokens = md["tokenizer.ggml.tokens"]
    merges = [tuple(m.split(" ")) for m in md["tokenizer.ggml.merges"]]
    tok = Tokenizer(BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, kind in zip(tokens, md["tokenizer.ggml.token_type"]) if kind == CONTROL])
    return tok


# The Split patterns of these families' tokenizer.json files, as llama.cpp's llama-vocab.cpp quotes
# them ("original regex from tokenizer.json"): Tekken (Mistral NeMo), GPT-4o's o200k (Phi-4-mini)
# and Qwen 3.5's.
TEKKEN_PATTERN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
                  r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|"
                  r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT4O_PATTERN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
                 r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
                 r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN35_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")


def split_reference(pattern, *, ignore_merges=False, bos=False):
    """GPT-2's vocabulary and merges under one Split pattern, then ByteLevel; with bos, its
    <|endoftext|> (the file's bos_token_id) before every text."""
    tok = gpt2_bpe(ignore_merges=ignore_merges)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), "isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<|endoftext|> $A",
                                                           special_tokens=[("<|endoftext|>", 50256)])
    return tok


def digits_reference():
    """StarCoder's and Refact's rule in llama.cpp (its "\\p{N}", then GPT-2's regex): SmolLM's."""
    tok = gpt2_bpe()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    return tok


def qwen2_no_nfc_reference():
    tok = qwen2_reference()
    tok.normalizer = None
    return tok


# name -> (make the GGUF in a folder (None: the real file), make the published-rules reference)
CASES = {
    "smollm2": (None, lambda path: HfReference(smollm_reference(path))),
    "gpt2": (gpt2_gguf, lambda path: HfReference(gpt2_reference())),
    "gpt2_default": (lambda p: gpt2_gguf(p, pre="default"), lambda path: HfReference(default_reference())),
    "gpt2_no_pre": (lambda p: gpt2_gguf(p, pre=None), lambda path: HfReference(default_reference())),
    "qwen2": (qwen2_gguf, lambda path: HfReference(qwen2_reference())),
    "llama3": (llama3_gguf, lambda path: HfReference(llama3_reference())),
    # Pre-tokenizer names llama.cpp reads with other models' rules (llama-vocab.cpp), on GPT-2's
    # vocabulary (Qwen2.5's for deepseek-r1-qwen) since their own tokenizer files are not here.
    "tekken": (lambda p: gpt2_gguf(p, pre="tekken"), lambda path: HfReference(split_reference(TEKKEN_PATTERN, ignore_merges=True, bos=True))),
    "gpt-4o": (lambda p: gpt2_gguf(p, pre="gpt-4o"), lambda path: HfReference(split_reference(GPT4O_PATTERN))),
    "qwen35": (lambda p: gpt2_gguf(p, pre="qwen35"), lambda path: HfReference(split_reference(QWEN35_PATTERN))),
    "dbrx": (lambda p: gpt2_gguf(p, pre="dbrx"), lambda path: HfReference(split_reference(LLAMA3_PATTERN))),
    "refact": (lambda p: gpt2_gguf(p, pre="refact"), lambda path: HfReference(digits_reference())),
    "deepseek-r1-qwen": (lambda p: qwen2_gguf(p, pre="deepseek-r1-qwen"), lambda path: HfReference(qwen2_no_nfc_reference())),
    "stories260K_spm": (lambda p: spm_gguf(p, MODELS / "stories260K" / "tokenizer.model", True),
                        lambda path: SpmReference(MODELS / "stories260K" / "tokenizer.model")),
    "llama2_spm": (lambda p: spm_gguf(p, CONFIGS / "llama-2-7b-hf" / "tokenizer.model", False),
                   lambda path: SpmReference(CONFIGS / "llama-2-7b-hf" / "tokenizer.model")),
}
BYTE_LEVEL = ["gpt2", "llama3", "qwen2", "smollm2"]

# Texts on which transformers' GGUF loader is expected to differ (see the docstring).
TRANSFORMERS_LEAVES_OUT = {
    "qwen2": lambda text: unicodedata.normalize("NFC", text) != text,
    "smollm2": lambda text: any(unicodedata.category(c).startswith("N") for c in text),
}


@pytest.fixture(scope="module")
def gguf_files(tmp_path_factory):
    """name -> path of its GGUF, written once per module."""
    made = {}

    def get(name):
        if name not in made:
            make = CASES[name][0]
            if make is None:
                if not SMOLLM2.is_file():
                    pytest.skip(f"{SMOLLM2} not present")
                made[name] = SMOLLM2
            else:
                made[name] = make(tmp_path_factory.mktemp(name) / f"{name}.gguf")
        return made[name]
    return get


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, gguf_files):
    name = request.param
    path = gguf_files(name)
    return name, path, CASES[name][1](path)


def lowbit_encode(binary, path, texts, add_special):
    args = ["--lines", "--json"] + ([] if add_special else ["--no-bos"])
    return [parse_ids(line) for line in run_lowbit(binary, path, args, [json.dumps(t) for t in texts])]


def lowbit_decode(binary, path, ids):
    return [json.loads(line) for line in
            run_lowbit(binary, path, ["--decode", "--lines", "--json"], [" ".join(map(str, i)) for i in ids])]


def first_difference(name, texts, got, want):
    bad = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
    return f"{name}: {len(bad)} of {len(texts)} differ; first: {bad[0]!r}" if bad else ""


@pytest.mark.parametrize("add_special", [True, False], ids=["special", "no_special"])
def test_encode_matches_reference(lowbit_bin, case, add_special):
    name, path, ref = case
    got = lowbit_encode(lowbit_bin, path, GGUF_TEXTS, add_special)
    want = ref.encode(GGUF_TEXTS, add_special)
    assert len(got) == len(want)
    assert got == want, first_difference(name, GGUF_TEXTS, got, want)


def test_decode_matches_reference(lowbit_bin, case):
    name, path, ref = case
    ids = ref.encode(GGUF_TEXTS, True)
    got = lowbit_decode(lowbit_bin, path, ids)
    want = [ref.decode(i) for i in ids]
    assert got == want, first_difference(name, [str(i) for i in ids], got, want)


# ---- transformers' GGUF loader ----------------------------------------------------------------
@pytest.fixture(scope="module")
def transformers_loader():
    """PreTrainedTokenizerFast.from_pretrained(dir, gguf_file=name), offline. (AutoTokenizer first
    builds the model config, which for a 'llama' GGUF needs torch; this is the generic tokenizer
    class it reads GGUF tokenizers into.) transformers 5 reads GGUF metadata in
    integrations/gguf/reader.py, which imports torch at its top for tensors that a tokenizer never
    reads; without torch, that module is stood in for by read_gguf_metadata above."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers = pytest.importorskip("transformers")
    try:
        import torch  # noqa: F401
    except ImportError:
        reader = "transformers.integrations.gguf.reader"
        import importlib.util
        if importlib.util.find_spec("transformers.integrations.gguf") is None:
            pytest.skip(f"transformers {transformers.__version__} has no integrations.gguf package, and no torch")
        module = types.ModuleType(reader)
        module.read_gguf_metadata = read_gguf_metadata
        sys.modules.setdefault(reader, module)

    def load(path):
        return transformers.PreTrainedTokenizerFast.from_pretrained(str(Path(path).parent), gguf_file=Path(path).name)
    return load


@pytest.mark.parametrize("name", BYTE_LEVEL)
def test_matches_transformers_gguf_loader(lowbit_bin, gguf_files, transformers_loader, name):
    path = gguf_files(name)
    tf = transformers_loader(path)
    leaves_out = TRANSFORMERS_LEAVES_OUT.get(name, lambda text: False)
    texts = [t for t in GGUF_TEXTS if not leaves_out(t)]
    assert len(texts) >= len(GGUF_TEXTS) // 2, f"{name}: too few texts left to compare"
    for add_special in (True, False):
        got = lowbit_encode(lowbit_bin, path, texts, add_special)
        want = [tf(t, add_special_tokens=add_special)["input_ids"] for t in texts]
        assert got == want, first_difference(f"{name} add_special={add_special}", texts, got, want)
    ids = lowbit_encode(lowbit_bin, path, GGUF_TEXTS, True)
    got = lowbit_decode(lowbit_bin, path, ids)
    want = [tf.decode(i, skip_special_tokens=True, clean_up_tokenization_spaces=False) for i in ids]
    assert got == want, first_difference(f"{name} decode", GGUF_TEXTS, got, want)


# ---- special ids ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_special_ids_from_metadata(lowbit_bin, gguf_files, name):
    """BOS and EOS that `lowbit tokenize --info` reports are the file's bos/eos_token_id."""
    path = gguf_files(name)
    md = gguf_metadata(path)
    info = subprocess.run([str(lowbit_bin), "tokenize", str(path), "--info", "x"], capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    want_bos = md.get("tokenizer.ggml.bos_token_id", -1)
    want_eos = md["tokenizer.ggml.eos_token_id"]
    vocab = len(md["tokenizer.ggml.tokens"])
    assert f"vocab size {vocab}, bos {want_bos}, eos {want_eos}\n" in info.stderr, info.stderr
