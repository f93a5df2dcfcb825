"""Writes the jinja_fuzz seed corpus (tests/fuzz/corpus_jinja): the chat templates the tests use
(SmolLM2's from its GGUF, Qwen2.5's and TinyLlama's from ../shared/models/configs, lowbit's own in
tests/data/chat_templates) and the feature templates of tests/python/test_chat_template_reference.py,
each followed by a NUL byte and a small messages array."""
import hashlib
import json
import sys
from pathlib import Path

import gguf

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "models"
OUT = REPO / "tests" / "fuzz" / "corpus_jinja"
sys.path.insert(0, str(REPO / "tests" / "python"))
from test_chat_template_reference import FEATURES  # noqa: E402

MESSAGES = json.dumps([{"role": "system", "content": "s"}, {"role": "user", "content": "Hi é"},
                       {"role": "assistant", "content": "", "tool_calls": [
                           {"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]},
                       {"role": "tool", "content": "42"}])


def main():
    OUT.mkdir(exist_ok=True)
    templates = []
    reader = gguf.GGUFReader(str(SHARED / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    field = reader.fields["tokenizer.chat_template"]
    templates.append(bytes(field.parts[field.data[0]]).decode())
    templates.append(json.loads((SHARED / "configs" / "qwen2.5-0.5b" / "tokenizer_config.json").read_text())["chat_template"])
    templates.append((SHARED / "configs" / "tinyllama-1.1b-chat-v1.0" / "chat_template.jinja").read_text())
    templates += [p.read_text() for p in sorted((REPO / "tests" / "data" / "chat_templates").glob("*.jinja"))]
    templates += FEATURES
    for t in templates:
        data = t.encode() + b"\0" + MESSAGES.encode()
        (OUT / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


if __name__ == "__main__":
    main()
