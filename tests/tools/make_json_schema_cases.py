"""Writes tests/data/json_schema_cases.json: JSON schemas, texts, and whether each text is one
value of its schema as the `jsonschema` package (Draft 2020-12) decides: the reference for the
schema side of runtime/json_mode.h's JsonPrefix (test: json_mode_test.cc).

Valid texts are random instances drawn from each schema and dumped with assorted separators and
indents; the rest are one-byte mutations of them and hand-picked near misses, labelled by the
validator. The validator is given lowbit's documented choices (runtime/json_schema.h) so that it
judges the same language:
- an object schema that lists properties and says nothing of additionalProperties gets
  "additionalProperties": false; without "type", properties imply an object, items an array,
  minLength/maxLength a string;
- "integer" means a number written without a fraction or exponent (the standard also counts
  2.0), and a key may appear only once;
- a key of an object that admits only its listed properties is written without \\u escapes
  (lowbit could not tell before the fourth hex digit whether one leads to a listed name);
- as in JSON mode, nothing may follow the value (not even whitespace), and no run of whitespace
  outside strings is longer than 32 bytes.
Enums hold no floats and no 0: lowbit matches an option's text, and a one-byte mutation could
spell the same number another way ("-0").

    .venv/bin/python tests/tools/make_json_schema_cases.py   # rewrites the file (seeded)
"""

import copy
import json
import math
import pathlib
import re

import jsonschema

# The JSON-mode generator's seeded stream, dumping styles and one-byte mutations.
from make_json_mode_cases import dumps, mutate, no_constants, rng

OUT = pathlib.Path(__file__).resolve().parents[1] / "data" / "json_schema_cases.json"

SCHEMAS = [
    {  # what pydantic's model_json_schema() writes for a nested model with an enum and Optional
        "$defs": {
            "Address": {"properties": {"street": {"title": "Street", "type": "string"},
                                       "city": {"title": "City", "type": "string", "maxLength": 12}},
                        "required": ["street", "city"], "title": "Address", "type": "object"},
            "Color": {"enum": ["red", "green", "blue"], "title": "Color", "type": "string"},
        },
        "properties": {
            "name": {"title": "Name", "type": "string", "minLength": 1},
            "age": {"title": "Age", "type": "integer"},
            "email": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Email"},
            "tags": {"items": {"type": "string"}, "title": "Tags", "type": "array", "maxItems": 3},
            "address": {"$ref": "#/$defs/Address"},
            "color": {"$ref": "#/$defs/Color"},
        },
        "required": ["name", "age", "address"], "title": "Person", "type": "object",
    },
    {  # recursion through $defs
        "$defs": {"node": {"type": "object", "properties": {
            "value": {"type": "integer"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["value"]}},
        "$ref": "#/$defs/node",
    },
    {"type": "array", "items": {"type": "string", "minLength": 2, "maxLength": 4}, "minItems": 1, "maxItems": 3},
    {"anyOf": [  # two objects whose first key is the same
        {"type": "object", "properties": {"kind": {"const": "a"}, "x": {"type": "number"}}, "required": ["kind", "x"]},
        {"type": "object", "properties": {"kind": {"const": "b"}, "y": {"type": "string"}}, "required": ["kind"]},
    ]},
    {"type": ["string", "null", "boolean"]},
    {"type": "number"},
    {"type": "integer"},
    {"enum": [1, 12, -3, "a", "ab", None, True, [1, 2], {"k": "v"}]},
    {"type": "object", "additionalProperties": {"type": "integer"}},
    {"type": "object", "properties": {"a": {"type": "boolean"}, "ab": {"type": "null"}, "abc": {"type": "integer"},
                                      "quo\"te": {"type": "string"}, "\u00e9t\u00e9": {"type": "number"}}},
    {"properties": {"id": {"type": "integer"}, "extra": {"type": "string"}}, "required": ["id"],
     "additionalProperties": True},
    {"type": "object", "properties": {"list": {"type": "array", "items": False}}, "required": ["list"]},
    {"type": "object", "properties": {"n": {"type": "array", "minItems": 2, "items": {"type": "integer"}}}},
    # integer bounds (pydantic's Field(ge=, le=, gt=, lt=) on an int)
    {"type": "integer", "minimum": -5, "maximum": 37},
    {"type": "integer", "exclusiveMinimum": 100},
    {"type": "integer", "minimum": -1000, "exclusiveMaximum": -99.5},
    {"type": "integer", "minimum": 7, "maximum": 7},
    {"type": "integer", "minimum": 9223372036854775800},
    {"type": "array", "items": {"type": "integer", "minimum": 10, "maximum": 19}, "maxItems": 4},
    {"properties": {"age": {"type": "integer", "minimum": 0, "maximum": 150},
                    "count": {"type": "integer", "exclusiveMinimum": 0},
                    "delta": {"type": ["integer", "null"], "minimum": -3, "maximum": 3},
                    "level": {"type": "integer", "enum": [1, 2, 3, 40], "maximum": 3}},
     "required": ["age"]},
]

# Bounds on numbers that may have a fraction (pydantic's Field(ge=, ...) on a float). Every number
# these schemas allow is such a one: lowbit writes it with at most 15 digits and no exponent.
NUMBER_BOUND_SCHEMAS = [
    {"type": "number", "minimum": 0, "maximum": 1},
    {"type": "number", "exclusiveMinimum": -2.5, "exclusiveMaximum": 0.1},
    {"type": "number", "minimum": 0.3333333333333333},
    {"type": ["number", "null"], "maximum": -1000.125},
    {"type": "number", "minimum": 0.0001, "maximum": 0.0002},
    {"type": "number", "minimum": 123456789.5, "maximum": 123456789.75},
    {"properties": {"score": {"type": "number", "minimum": 0, "maximum": 10},
                    "price": {"type": "number", "exclusiveMinimum": 0},
                    "ratio": {"type": "number", "minimum": -1, "maximum": 1, "enum": [-1, 1, 2, "x"]}},
     "required": ["score"]},
]
SCHEMAS += NUMBER_BOUND_SCHEMAS

# Patterns (pydantic's Field(pattern=) / constr(pattern=)): anchored and not (a pattern may match
# anywhere in the string), classes, escapes, counted repetition, lengths beside a pattern, enum
# values a pattern picks among, and patterns in an anyOf.
PATTERN_SCHEMAS = [
    {"type": "string", "pattern": "^[a-z]{2,5}-\\d{3}$"},
    {"type": "string", "pattern": "ab+c"},
    {"type": "string", "pattern": "colou?r|gr[ae]y"},
    {"type": "string", "pattern": "^(?:[A-Z][a-z]*)(?: [A-Z][a-z]*)*$", "maxLength": 12},
    {"type": "string", "pattern": "^[^\\s@]+@[^\\s@]+\\.[a-z]{2,4}$"},
    {"type": "string", "pattern": "^.{3}$"},
    {"type": "string", "pattern": "^(\u00e9|\U0001F600|x)+$"},
    {"type": "string", "pattern": "^\\$\\d+(\\.\\d\\d)?$"},
    {"type": "string", "pattern": "^[\\w.-]+$", "minLength": 4},
    {"type": "string", "pattern": "\\d$"},
    {"type": "string", "pattern": "^(?:\\\\|\\\"|/|\\t|[^\\\\\"])*?!$"},
    {"properties": {"zip": {"type": "string", "pattern": "^\\d{5}(-\\d{4})?$"},
                    "code": {"type": "string", "pattern": "^[A-Z]{3}$", "minLength": 3},
                    "word": {"type": ["string", "integer"], "enum": ["alpha", "beta", "gamma", 5], "pattern": "^[ab]"}},
     "required": ["zip"]},
    {"anyOf": [{"type": "string", "pattern": "^a+$"}, {"type": "string", "pattern": "^b+$"}, {"type": "integer"}]},
    {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-f]{2}(:[0-9a-f]{2}){0,2}$"}, "maxItems": 3},
]
SCHEMAS += PATTERN_SCHEMAS

# oneOf whose alternatives cannot overlap (what lowbit accepts): a pydantic tagged union
# (Field(discriminator=), as model_json_schema() writes it), distinct types, distinct values.
ONEOF_SCHEMAS = [
    {"$defs": {"Cat": {"properties": {"pet_type": {"const": "cat", "title": "Pet Type", "type": "string"},
                                      "meows": {"title": "Meows", "type": "integer"}},
                       "required": ["pet_type", "meows"], "title": "Cat", "type": "object"},
               "Dog": {"properties": {"pet_type": {"const": "dog", "title": "Pet Type", "type": "string"},
                                      "barks": {"title": "Barks", "type": "number"}},
                       "required": ["pet_type", "barks"], "title": "Dog", "type": "object"}},
     "properties": {"name": {"title": "Name", "type": "string"},
                    "pet": {"discriminator": {"mapping": {"cat": "#/$defs/Cat", "dog": "#/$defs/Dog"},
                                              "propertyName": "pet_type"},
                            "oneOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}], "title": "Pet"}},
     "required": ["name", "pet"], "title": "Owner", "type": "object"},
    {"oneOf": [{"type": "string", "maxLength": 3}, {"type": "integer"}, {"type": "null"}]},
    {"oneOf": [{"const": "a"}, {"enum": ["b", "c", 1]}, {"type": "boolean"}]},
    {"type": "array", "items": {"oneOf": [
        {"type": "object", "properties": {"k": {"enum": ["x", "y"]}, "v": {"type": "integer"}}, "required": ["k", "v"]},
        {"type": "object", "properties": {"k": {"const": "z"}, "w": {"type": "string"}}, "required": ["k"]}]}},
]
SCHEMAS += ONEOF_SCHEMAS

# An integer's multipleOf (pydantic's Field(multiple_of=) on an int), alone, with bounds and in enums.
MULTIPLE_SCHEMAS = [
    {"type": "integer", "multipleOf": 5},
    {"type": "integer", "multipleOf": 7, "minimum": -30, "maximum": 40},
    {"type": "integer", "multipleOf": 3, "exclusiveMinimum": 100},
    {"type": ["integer", "null"], "multipleOf": 1000, "maximum": -2000},
    {"type": "array", "items": {"type": "integer", "multipleOf": 12, "enum": [12, 13, 24, -36, 40]}},
]
SCHEMAS += MULTIPLE_SCHEMAS

# Tuples (prefixItems: pydantic's Tuple[int, str]), closed or followed by items.
SCHEMAS += [
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string", "maxLength": 5}],
     "minItems": 2, "maxItems": 2},
    {"type": "array", "prefixItems": [{"const": "x"}, {"type": "boolean"}], "items": {"type": "integer"}, "maxItems": 4},
    {"type": "array", "prefixItems": [{"type": "number"}, {"type": "null"}], "items": False},
    {"properties": {"point": {"maxItems": 2, "minItems": 2, "type": "array",
                              "prefixItems": [{"type": "number"}, {"type": "number"}]}},
     "required": ["point"], "type": "object"},
]

# Ten alternatives that stay open together until a key's value differs (a forced tool call over
# ten functions has this shape): the recognizer follows up to 16 readings at once.
SCHEMAS.append({"anyOf": [{"type": "object", "properties": {"kind": {"const": f"k{i}"}, "v": {"type": "integer"}},
                           "required": ["kind", "v"]} for i in range(10)]})

WORDS = ["x", "Paris", "\u00fcn\u00efc\u00f6d\u00e9", "tab\there", "quote\"d", "back\\slash", "emoji \U0001F600", ""]


# Characters a pattern's strings are drawn from: none on which ECMA-262 and Python's re.ASCII
# disagree (Unicode spaces other than ASCII ones, \\x1c-\\x1f, \\x85).
ALPHABET = list("abcrxyzABCXYZ0189 -_.@$!:") + ["\u00e9", "\u00fc", "\u4e2d", "\U0001F600", "\t", '"', "\\", "/"]


def in_class(items, c):
    """Whether c is in a class as Python's own parser read it (re._parser), ASCII semantics."""
    hit, negate = False, False
    for op, av in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            hit |= ord(c) == av
        elif name == "RANGE":
            hit |= av[0] <= ord(c) <= av[1]
        elif name == "CATEGORY":
            escape = {"CATEGORY_DIGIT": r"\d", "CATEGORY_NOT_DIGIT": r"\D", "CATEGORY_WORD": r"\w",
                      "CATEGORY_NOT_WORD": r"\W", "CATEGORY_SPACE": r"\s", "CATEGORY_NOT_SPACE": r"\S"}[str(av)]
            hit |= re.fullmatch(escape, c, re.ASCII) is not None
    return hit != negate


def regex_instance(pattern):
    """A random string the pattern matches, drawn over Python's parse of it (re._parser): the
    reference's reading of the pattern, not lowbit's."""
    import re._parser as sre_parse

    def pick(ok):
        choices = [c for c in ALPHABET if ok(c)]
        return rng.choice(choices) if choices else "?"

    def draw(items):
        out = []
        for op, av in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(av))
            elif name == "NOT_LITERAL":
                out.append(pick(lambda c: ord(c) != av))
            elif name == "ANY":
                out.append(pick(lambda c: c not in "\n\r"))
            elif name == "IN":
                out.append(pick(lambda c: in_class(av, c)))
            elif name == "BRANCH":
                out.append(draw(rng.choice(av[1])))
            elif name == "SUBPATTERN":
                out.append(draw(av[3]))
            elif name in ("MAX_REPEAT", "MIN_REPEAT"):
                lo, hi, sub = av
                out.extend(draw(sub) for _ in range(rng.randint(lo, min(hi, lo + 3))))
        return "".join(out)

    text = draw(sre_parse.parse(pattern))
    if not pattern.startswith("^"):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 2))) + text
    if not pattern.endswith("$"):
        text += "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 2)))
    return text


def resolve(schema, root):
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        schema = root if ref == "#" else root[ref.split("/")[1]][ref.split("/")[2]]
    if isinstance(schema, dict) and "allOf" in schema:
        return resolve(schema["allOf"][0], root)
    return schema


def types_of(s):
    if "type" in s:
        return s["type"] if isinstance(s["type"], list) else [s["type"]]
    implied = []
    if any(k in s for k in ("properties", "required", "additionalProperties")):
        implied.append("object")
    if any(k in s for k in ("items", "prefixItems", "minItems", "maxItems")):
        implied.append("array")
    if any(k in s for k in ("minLength", "maxLength", "pattern")):
        implied.append("string")
    return implied or ["object", "array", "string", "number", "integer", "boolean", "null"]


def instance(s, root, depth=0):
    s = resolve(s, root)
    if s is True or s == {}:
        s = {"type": rng.choice(["string", "integer", "boolean", "null"])}
    if "anyOf" in s or "oneOf" in s:
        return instance(rng.choice(s.get("anyOf") or s["oneOf"]), root, depth)
    if "const" in s:
        return copy.deepcopy(s["const"])
    if "enum" in s:
        return copy.deepcopy(rng.choice(s["enum"]))
    t = rng.choice(types_of(s))
    if t == "string" and "pattern" in s:
        return regex_instance(s["pattern"])
    if t == "object":
        props = s.get("properties", {})
        required = set(s.get("required", []))
        out = {}
        names = list(props)
        rng.shuffle(names)
        for name in names:
            if name in required or (depth < 3 and rng.random() < 0.6):
                out[name] = instance(props[name], root, depth + 1)
        extra = s.get("additionalProperties", not props)
        if extra is not False and depth < 3:
            for i in range(rng.randint(0, 2)):
                out[rng.choice(WORDS) + str(i)] = instance(extra, root, depth + 1)
        return out
    if t == "array" and "prefixItems" in s:
        prefix = s["prefixItems"]
        n = rng.randint(s.get("minItems", 0), min(s.get("maxItems", len(prefix) + 2), len(prefix) + 2))
        if s.get("items", True) is False:
            n = min(n, len(prefix))
        rest = s.get("items", True)
        return [instance(prefix[i] if i < len(prefix) else rest, root, depth + 1) for i in range(n)]
    if t == "array":
        items = s.get("items", True)
        lo = s.get("minItems", 0)
        hi = min(s.get("maxItems", 4), 4 if depth < 3 else lo)
        n = 0 if items is False else rng.randint(lo, max(lo, hi))
        return [instance(items, root, depth + 1) for _ in range(n)]
    if t == "string":
        lo, hi = s.get("minLength", 0), s.get("maxLength", 10)
        text = "".join(rng.choice(WORDS) for _ in range(3))
        while len(text) < lo:
            text += "y"
        return text[:rng.randint(lo, hi)]
    if t == "integer" and "multipleOf" in s:
        m = s["multipleOf"]
        lo = s.get("minimum", s.get("exclusiveMinimum", -10**6))
        hi = s.get("maximum", s.get("exclusiveMaximum", 10**6))
        lo, hi = math.ceil(lo / m) + ("exclusiveMinimum" in s), math.floor(hi / m) - ("exclusiveMaximum" in s)
        return m * rng.choice([lo, hi, rng.randint(lo, hi), rng.randint(lo, hi)])
    if t == "integer":
        lo = s.get("minimum", s.get("exclusiveMinimum", None))
        hi = s.get("maximum", s.get("exclusiveMaximum", None))
        if lo is None and hi is None:
            return rng.randint(-10**6, 10**6)
        lo = -10**6 if lo is None else math.ceil(lo) + (1 if "exclusiveMinimum" in s and lo == math.ceil(lo) else 0)
        hi = lo + 10**6 if hi is None else math.floor(hi) - (1 if "exclusiveMaximum" in s and hi == math.floor(hi) else 0)
        return rng.choice([lo, hi, rng.randint(lo, hi), rng.randint(lo, hi)])
    if t == "number":
        lo = s.get("minimum", s.get("exclusiveMinimum", None))
        hi = s.get("maximum", s.get("exclusiveMaximum", None))
        if lo is None and hi is None:
            return rng.choice([0.5, -2.5e-3, 3.25e12, 17, -4, 123.456])
        lo = -1e6 if lo is None else lo
        hi = lo + 1e6 if hi is None else hi
        x = rng.choice([lo, hi, rng.uniform(lo, hi), rng.uniform(lo, hi), rng.uniform(lo, hi)])
        return x if x in (lo, hi) else round(x, rng.randint(0, 8))
    if t == "boolean":
        return rng.choice([True, False])
    return None


def as_lowbit_reads(s):
    """The schema with lowbit's documented choices written out for the standard validator."""
    if isinstance(s, list):
        return [as_lowbit_reads(x) for x in s]
    if not isinstance(s, dict):
        return s
    out = {k: as_lowbit_reads(v) if k != "const" and k != "enum" else v for k, v in s.items()}
    validates = [k for k in s if k not in ("$ref", "anyOf", "allOf", "title", "description", "default", "$defs")]
    if validates and "type" not in s and "enum" not in s and "const" not in s:
        implied = types_of(s)
        if len(implied) < 7:
            out["type"] = implied
    if "properties" in s and "additionalProperties" not in s:
        out["additionalProperties"] = False
    return out


def integer_without_fraction(checker, value):
    return isinstance(value, int) and not isinstance(value, bool)


def ecma_pattern(validator, pattern, instance, schema):
    """JSON Schema's pattern is ECMA-262's: \\d, \\w, \\s are ASCII classes (re.ASCII; ECMA's \\s
    also has Unicode spaces, which no drawn text holds) and $ is the end, where Python's $ also
    matches before a final newline (\\Z is ECMA's $)."""
    if not validator.is_type(instance, "string"):
        return
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    if not re.search(pattern, instance, re.ASCII):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    validators={"pattern": ecma_pattern},
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", integer_without_fraction))


def lone_surrogate(value):
    """A string holding half a surrogate pair (JSON can spell one as an escape): under a pattern,
    lowbit takes characters, and half a pair is none."""
    if isinstance(value, str):
        return any(0xD800 <= ord(c) < 0xE000 for c in value)
    if isinstance(value, dict):
        return any(lone_surrogate(k) or lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(lone_surrogate(v) for v in value)
    return False


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)




def longest_whitespace_run(text):
    """Outside strings."""
    run = best = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            in_string = escaped or c != '"'
            escaped = not escaped and c == "\\"
            continue
        if c == '"':
            in_string = True
        run = run + 1 if c in " \t\n\r" else 0
        best = max(best, run)
    return best


def closed_names(s):
    """Property names of the object schemas in s that admit only them."""
    names = set()
    if isinstance(s, dict):
        if "properties" in s and s.get("additionalProperties", False) is False:
            names |= set(s["properties"])
        for v in s.values():
            names |= closed_names(v)
    elif isinstance(s, list):
        for v in s:
            names |= closed_names(v)
    return names


KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')


def escaped_closed_key(text, names):
    for m in KEY.finditer(text):
        if "\\u" in m.group(1):
            try:
                if json.loads('"' + m.group(1) + '"') in names:
                    return True
            except ValueError:
                pass
    return False


def bounded_number_text(text):
    """How lowbit writes a number with bounds that may have a fraction: at most 15 digits, no
    exponent."""
    return "e" not in text.lower() and sum(c.isdigit() for c in text) <= 15


def valid(text, validator, names=frozenset(), bounded_numbers=False, patterns=False):
    if not text or text[-1:].isspace() or longest_whitespace_run(text) > 32:
        return False
    if escaped_closed_key(text, names):
        return False
    numbers = []

    def number(kind):
        def parse(t):
            numbers.append(t)
            return kind(t)
        return parse

    try:
        value = json.loads(text, parse_constant=no_constants, object_pairs_hook=no_duplicates,
                           parse_float=number(float), parse_int=number(int))
    except ValueError:
        return False
    if bounded_numbers and not all(bounded_number_text(t) for t in numbers):
        return False
    if patterns and lone_surrogate(value):
        return False
    return validator.is_valid(value)






NEAR_MISSES = ['', ' ', '{}', '[]', '""', '1', '1.5', '-', 'null', 'true', '"a"', '{"name": "x"}', '[1, 2]', '12 ']


def main():
    rows = []
    for index, schema in enumerate(SCHEMAS):
        validator = Validator(as_lowbit_reads(schema))
        names = closed_names(schema)
        bounded = any(schema is b for b in NUMBER_BOUND_SCHEMAS)
        patterns = any(schema is p for p in PATTERN_SCHEMAS)
        cases = {t: valid(t, validator, names, bounded, patterns) for t in NEAR_MISSES}
        drawn = 0
        while drawn < 60:
            text = dumps(instance(schema, schema))
            if not valid(text, validator, names, bounded, patterns):  # a listed name with \\u escapes, a draw past a bound
                continue
            drawn += 1
            cases[text] = True
            for _ in range(3):
                m = mutate(text)
                cases[m] = valid(m, validator, names, bounded, patterns)
        rows.append({"schema": schema, "cases": [{"text": t, "valid": v} for t, v in cases.items()]})
    OUT.write_text(json.dumps(rows, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    total = sum(len(r["cases"]) for r in rows)
    good = sum(c["valid"] for r in rows for c in r["cases"])
    print(f"wrote {OUT}: {len(rows)} schemas, {total} texts, {good} valid")


if __name__ == "__main__":
    main()
