"""Writes the gguf_fuzz seed corpus (tests/fuzz/corpus_gguf) with gguf-py: small valid files."""
from pathlib import Path

import gguf
import numpy as np

OUT = Path(__file__).resolve().parent / "corpus_gguf"


def write(name, build, alignment=None):
    path = OUT / name
    w = gguf.GGUFWriter(str(path), "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    build(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def metadata(w):
    w.add_block_count(2)
    w.add_context_length(64)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["a", "b", "ab", "<s>"])
    w.add_token_merges(["a b"])
    w.add_token_types([1, 1, 1, 3])
    w.add_token_scores([0.0, -1.0, -2.0, 0.0])
    w.add_bool("test.flag", True)
    w.add_int8("test.i8", -3)
    w.add_uint16("test.u16", 7)
    w.add_int64("test.i64", -1)
    w.add_float64("test.f64", 0.5)
    w.add_array("test.u8s", [1, 2, 3])


def tensors(w):
    rng = np.random.default_rng(0)
    w.add_tensor("norm.weight", rng.standard_normal(64).astype(np.float32))
    w.add_tensor("f16.weight", rng.standard_normal((2, 64)).astype(np.float16))
    for qt in (gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0, gguf.GGMLQuantizationType.Q4_1):
        data = gguf.quants.quantize(rng.standard_normal((2, 64)).astype(np.float32), qt)
        w.add_tensor(f"{qt.name.lower()}.weight", data, raw_dtype=qt)


def main():
    OUT.mkdir(exist_ok=True)
    write("meta_only.gguf", metadata)
    write("tensors.gguf", lambda w: (metadata(w), tensors(w)))
    write("align64.gguf", tensors, alignment=64)


if __name__ == "__main__":
    main()
