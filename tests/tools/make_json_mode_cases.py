"""Writes tests/data/json_mode_cases.json: texts and whether each is one JSON object, as Python's
json module decides (the reference for runtime/json_mode.h's JsonPrefix; test: json_mode_test.cc).

Valid texts are random objects dumped with assorted separators and indents (strings with escapes,
\\u sequences and non-ASCII, numbers with fractions and exponents, literals, nesting); the rest are
hand-picked near misses and one-byte mutations of valid texts. A text counts as valid only when
json.loads accepts it (without Python's NaN and Infinity), its value is a dict, nothing follows
the closing brace, and no run of whitespace outside strings is longer than
JsonPrefix::kMaxWhitespace (32 bytes; the generator keeps to that).

    python3 tests/tools/make_json_mode_cases.py   # rewrites the file (seeded: same output)
"""

import json
import pathlib
import random

OUT = pathlib.Path(__file__).resolve().parents[1] / "data" / "json_mode_cases.json"
rng = random.Random(20261205)

WORDS = ["name", "age", "color", "Paris", "ünïcödé", "tab\there", "quote\"d", "back\\slash", "line\nbreak",
         "\u0001ctl", "emoji \U0001F600", "slash/", "", "日本"]


def value(depth):
    r = rng.random()
    if depth < 4 and r < 0.2:
        return obj(depth + 1)
    if depth < 4 and r < 0.35:
        return [value(depth + 1) for _ in range(rng.randint(0, 4))]
    if r < 0.55:
        return rng.choice(WORDS)
    if r < 0.7:
        return rng.randint(-10**6, 10**6)
    if r < 0.85:
        return rng.choice([0.5, -0.0, 1e-7, 3.25e12, -2.5e-3, 123.456])
    return rng.choice([True, False, None])


def obj(depth=0):
    return {rng.choice(WORDS) + str(i): value(depth) for i in range(rng.randint(0, 4))}


def dumps(o):
    style = rng.randrange(4)
    if style == 0:
        return json.dumps(o)
    if style == 1:
        return json.dumps(o, separators=(",", ":"), ensure_ascii=False)
    if style == 2:
        return json.dumps(o, indent=2, ensure_ascii=False)
    return json.dumps(o, indent="\t")


def no_constants(name):
    raise ValueError(f"{name} is not JSON")  # Python accepts NaN and Infinity; RFC 8259 does not


def is_object(text):
    """One JSON object, and nothing after its closing brace (JSON mode ends there: not even
    whitespace may follow)."""
    if text[-1:].isspace():
        return False
    try:
        return isinstance(json.loads(text, parse_constant=no_constants), dict)
    except ValueError:
        return False


NEAR_MISSES = [
    '{}', '{ }', ' {"a": 1} ', '{"a":01}', '{"a":-}', '{"a":1.}', '{"a":.5}', '{"a":1e}', '{"a":1e+}', '{"a":-0}',
    '{"a":0.0e-0}', '{"a":[1,2,]}', '{"a":1,}', '{,}', '{"a"}', '{"a":}', '{"a" 1}', '{a:1}', "{'a':1}",
    '{"a":"\\x"}', '{"a":"\\u12"}', '{"a":"\\u12G4"}', '{"a":"\\u00e9"}', '{"a":"\t"}', '{"a":tru}', '{"a":nul}',
    '{"a":True}', '{"a":NaN}', '{"a":Infinity}', '{"a":-Infinity}', '{"a":1} ', ' {"a":1}', '[1,2]', '"text"', '1', 'null', '{"a":1}}', '{"a":[}', '{"a":{]}',
    '{"a":[1}', '{"a":{"b":[]}}', '{"":""}', '{"a":[[[[]]]]}', '{"a":1}{"b":2}', '{"a":"x" "b"}', '',
]


def mutate(text):
    i = rng.randrange(len(text))
    kind = rng.randrange(3)
    if kind == 0:
        return text[:i] + text[i + 1:]
    c = rng.choice('{}[]:,"\\ 0-1e.tfnx\n')
    return text[:i] + c + text[i + (kind == 2):]


def main():
    cases = {}
    for t in NEAR_MISSES:
        cases[t] = is_object(t)
    for _ in range(300):
        t = dumps(obj())
        assert is_object(t)
        cases[t] = True
        for _ in range(3):
            m = mutate(t)
            cases[m] = is_object(m)
    rows = [{"text": t, "object": v} for t, v in cases.items()]
    OUT.write_text(json.dumps(rows, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(rows)} texts, {sum(r['object'] for r in rows)} objects")


if __name__ == "__main__":
    main()
