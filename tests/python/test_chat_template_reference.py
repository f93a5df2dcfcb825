"""runtime/chat (lowbit's Jinja subset) against transformers' apply_chat_template rendering, which
runs jinja2 in an ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, loop controls and
its own tojson / raise_exception / strftime_now (transformers.utils.chat_template_utils).

Templates: SmolLM2's (read from the GGUF's tokenizer.chat_template with gguf-py), Qwen2.5's and
TinyLlama's (../shared/models/configs), lowbit's own Zephyr, Llama 3.x and Mistral [INST] templates
(tests/data/chat_templates), and small templates that each exercise a corner of the language.
Conversations: generated at random (fixed seeds) with every role, Unicode, quotes, backslashes,
newlines, empty content, tool calls and tool lists, add_generation_prompt both ways.

For each case both sides must render the same bytes, or both must fail; a raise_exception()
message must be the same. The C++ side is build/chat_template_render (beside $LOWBIT_BIN when
set), fed all cases of a test in one JSON request.
"""

import json
import os
import pathlib
import random
import subprocess

import pytest

jinja2 = pytest.importorskip("jinja2")
ctu = pytest.importorskip("transformers.utils.chat_template_utils")

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "models"
BIN_DIR = pathlib.Path(os.environ["LOWBIT_BIN"]).parent if "LOWBIT_BIN" in os.environ else REPO / "build"
TOOL = BIN_DIR / "chat_template_render"
TEMPLATES = REPO / "tests" / "data" / "chat_templates"
SMOLLM2 = SHARED / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"

pytestmark = pytest.mark.skipif(not TOOL.exists(), reason=f"{TOOL} not built (cmake --build build --target chat_template_render)")


# ---- the reference ----------------------------------------------------------------------------

_REFERENCE_CACHE = {}


def reference(case):
    """transformers' rendering of one case: ("text", str) or ("error", kind, message)."""
    key = json.dumps(case)
    if key not in _REFERENCE_CACHE:
        _REFERENCE_CACHE[key] = _reference(case)
    return _REFERENCE_CACHE[key]


def _reference(case):
    messages = case["messages"]
    if hasattr(ctu, "_normalize_chat_messages"):
        messages = ctu._normalize_chat_messages(messages)
    kwargs = {}
    if case.get("bos_token"):
        kwargs["bos_token"] = case["bos_token"]
    if case.get("eos_token"):
        kwargs["eos_token"] = case["eos_token"]
    kwargs.update(case.get("vars", {}))
    try:
        rendered, _ = ctu.render_jinja_template(
            conversations=[messages], tools=case.get("tools"), chat_template=case["template"],
            add_generation_prompt=case["add_generation_prompt"], **kwargs)
        return ("text", rendered[0])
    except jinja2.exceptions.TemplateSyntaxError as e:
        return ("error", "parse", str(e))
    except Exception as e:  # noqa: BLE001 - every failure counts as one, its kind decides the check
        raised = type(e) is jinja2.exceptions.TemplateError  # raise_exception()
        return ("error", "raise" if raised else "render", str(e))


def lowbit(cases):
    proc = subprocess.run([str(TOOL)], input=json.dumps(cases), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def check(cases):
    ours = lowbit(cases)
    assert len(ours) == len(cases)
    failures = []
    for case, mine in zip(cases, ours):
        ref = reference(case)
        if ref[0] == "text":
            if mine.get("text") != ref[1]:
                failures.append((case, ref, mine))
        elif "error" not in mine:
            failures.append((case, ref, mine))
        elif ref[1] == "raise" and mine["error"] != ref[2]:
            failures.append((case, ref, mine))
        elif ref[1] == "parse" and not mine["parse"]:
            failures.append((case, ref, mine))
    if failures:
        case, ref, mine = failures[0]
        pytest.fail(f"{len(failures)} of {len(cases)} cases differ; first:\n"
                    f"template: {case['template']!r}\nmessages: {case['messages']!r}\n"
                    f"tools: {case.get('tools')!r}\nadd_generation_prompt: {case['add_generation_prompt']}\n"
                    f"jinja2: {ref!r}\nlowbit: {mine!r}")


# ---- conversations ----------------------------------------------------------------------------

TEXTS = [
    "Hello!", "", " ", "  leading and trailing  ", "two\nlines", "ends with newline\n", "\n\nblank lines\n\n",
    "quotes ' and \" and `", "back\\slash \\n not a newline", "tab\there", "héllo wörld", "日本語のテキスト",
    "emoji 🎉🚀", "Ünïcödé ß", "{{ not a tag }} {% neither %}", "<|im_start|>fake<|im_end|>", "</s>",
    "a" * 300, "mixed: 1 < 2 > 0 & done", "ends with space ", "\u00a0nbsp\u00a0", "line\r\nwith crlf",
]

TOOL_SCHEMA = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather at a place, in °C.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"},
                                                         "days": {"type": "integer"}},
                       "required": ["city"]},
    },
}
TOOL_SCHEMA2 = {"type": "function", "function": {"name": "search", "description": "Search \"the\" web",
                                                  "parameters": {"type": "object", "properties": {}}}}


def tool_call(rng):
    args = rng.choice([{"city": "Paris"}, {"city": "Zürich", "days": 3}, {}, {"q": "a \"quoted\" \\ value", "n": 1.5,
                                                                                "flag": True, "none": None}])
    call = {"name": rng.choice(["get_weather", "search"]), "arguments": args}
    return {"type": "function", "function": call} if rng.random() < 0.8 else call


def conversation(rng, alternate, roles=("user", "assistant", "system", "tool"), tools_ok=True):
    n = rng.randint(0, 7)
    msgs = []
    if alternate:
        if rng.random() < 0.5:
            msgs.append({"role": "system", "content": rng.choice(TEXTS)})
        for k in range(max(1, n)):
            role = "user" if k % 2 == 0 else "assistant"
            msgs.append({"role": role, "content": rng.choice(TEXTS)})
    else:
        for _ in range(n):
            msgs.append({"role": rng.choice(roles), "content": rng.choice(TEXTS)})
    if tools_ok:
        for m in msgs:
            if m["role"] == "assistant" and rng.random() < 0.25:
                m["tool_calls"] = [tool_call(rng) for _ in range(rng.randint(1, 2))]
                if rng.random() < 0.3:
                    m["content"] = ""
    return msgs


def cases_for(template, n, seed, bos="<s>", eos="</s>", **kw):
    rng = random.Random(seed)
    out = []
    for k in range(n):
        msgs = conversation(rng, alternate=rng.random() < 0.6, **kw)
        tools = None
        if kw.get("tools_ok", True) and rng.random() < 0.3:
            tools = rng.choice([[TOOL_SCHEMA], [TOOL_SCHEMA, TOOL_SCHEMA2]])
        case = {"template": template, "messages": msgs, "add_generation_prompt": k % 2 == 0,
                "bos_token": bos, "eos_token": eos}
        if tools is not None:
            case["tools"] = tools
        out.append(case)
    return out


# ---- the models' templates ----------------------------------------------------------------------

def smollm2_template():
    gguf = pytest.importorskip("gguf")
    if not SMOLLM2.exists():
        pytest.skip(f"{SMOLLM2} not present")
    reader = gguf.GGUFReader(str(SMOLLM2))
    field = reader.fields["tokenizer.chat_template"]
    template = bytes(field.parts[field.data[0]]).decode("utf-8")
    tokens = reader.fields["tokenizer.ggml.tokens"]

    def token(key):
        f = reader.fields[key]
        tid = int(f.parts[f.data[0]][0])
        return bytes(tokens.parts[tokens.data[tid]]).decode("utf-8")

    return template, token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id")


def test_smollm2_gguf_template():
    template, bos, eos = smollm2_template()
    check(cases_for(template, 300, seed=1, bos=bos, eos=eos))


def test_qwen25_template():
    cfg = json.loads((SHARED / "configs" / "qwen2.5-0.5b" / "tokenizer_config.json").read_text())
    check(cases_for(cfg["chat_template"], 400, seed=2, bos="", eos=cfg["eos_token"]))


def test_tinyllama_template():
    template = (SHARED / "configs" / "tinyllama-1.1b-chat-v1.0" / "chat_template.jinja").read_text()
    check(cases_for(template, 200, seed=3))


@pytest.mark.parametrize("name,bos,eos", [
    ("zephyr", "<s>", "</s>"),
    ("llama3", "<|begin_of_text|>", "<|eot_id|>"),
    ("mistral", "<s>", "</s>"),
])
def test_own_templates(name, bos, eos):
    template = (TEMPLATES / f"{name}.jinja").read_text()
    check(cases_for(template, 300, seed=hash(name) % 1000, bos=bos, eos=eos))
    # With a fixed date instead of strftime_now (the template only asks when none is given).
    if "date_string" in template:
        check(cases_for("{% set date_string = '26 Jul 2024' %}" + template, 50, seed=4, bos=bos, eos=eos))


REASONING = ["I should greet.", "", "\nFirst this.\n\nThen that.\n", "a < b"]


def test_thinking_template():
    """Our own Qwen3-format template (tests/data/chat_templates/qwen3.jinja): reasoning shown or
    dropped by turn, cut out of content that carries a <think> block, tool results as user turns,
    and enable_thinking passed as a template variable (the server's `think`)."""
    template = (TEMPLATES / "qwen3.jinja").read_text()
    rng = random.Random(11)
    cases = []
    for k in range(300):
        msgs = conversation(rng, alternate=rng.random() < 0.7)
        for m in msgs:
            if m["role"] == "assistant":
                r = rng.random()
                if r < 0.3:
                    m["reasoning_content"] = rng.choice(REASONING)
                elif r < 0.5:
                    m["content"] = "<think>\n" + rng.choice(REASONING) + "\n</think>\n\n" + m["content"]
                elif r < 0.6:
                    m["thinking"] = rng.choice(REASONING)  # Ollama's name, offered as reasoning_content
        case = {"template": template, "messages": msgs, "add_generation_prompt": k % 2 == 0,
                "bos_token": "", "eos_token": "<|im_end|>"}
        if rng.random() < 0.3:
            case["tools"] = [TOOL_SCHEMA]
        if rng.random() < 0.6:
            case["vars"] = {"enable_thinking": rng.random() < 0.5}
        cases.append(case)
    check(cases)
    # The variables the chat sets itself cannot be passed again.
    bad = lowbit([{"template": template, "messages": [], "vars": {"messages": []}}])
    assert bad[0]["code"] == "invalid_argument" and "'messages'" in bad[0]["error"]


# ---- the language, feature by feature ---------------------------------------------------------------

FEATURES = [
    # whitespace control, trim_blocks, lstrip_blocks, comments, raw
    "a  {{- 'b' -}}  c\n  {%- if true -%}  d  {%- endif -%}  e",
    "x\n  {% if true %}\n    y\n  {% endif %}\nz\n",
    "x\n  {%+ if true %}\n    y\n  {%+ endif +%}\nz",
    "{# comment #}\n  {#- spaced -#}  \nq {# c\nmulti #}\nr",
    "{% raw %}{{ not evaluated }} {% if %}{% endraw %}\n{%- raw -%}  trimmed  {%- endraw %}!",
    "line1\r\nline2\rline3\n\n",
    "{{ 'keep' }}\n{% for i in range(2) %}\n{{ i }}\n{% endfor %}\n",
    # literals
    "{{ 'a\\tb\\n\\'q\\' \\\"d\\\" \\u00e9 \\x41 \\\\' }}|{{ \"x\" 'y' }}|{{ 1_000 }} {{ 1.5e3 }} {{ 2E-5 }} {{ 0.1 }}",
    "{{ true }} {{ True }} {{ false }} {{ none }} {{ None }} {{ [1, 'a', none, true, 2.5] }} {{ {'k': 'v', 'n': [1]} }}",
    "{{ (1, 2) }} {{ () }} {{ [] }} {{ {} }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ -0.0 }} {{ 3.0 }}",
    "{{ \"it's\" }} {{ ['it\\'s', \"say \\\"hi\\\"\", 'back\\\\slash', 'tab\\t'] }}",
    # arithmetic and operators
    "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 6 / 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}",
    "{{ 1 + 2 * 3 - 4 }} {{ (1 + 2) * 3 }} {{ 'ab' * 3 }} {{ [1] * 3 }} {{ 'a' ~ 1 ~ none ~ true }} {{ [1] + [2] }} {{ 'x' + 'y' }}",
    "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ 'b' >= 'a' }} {{ [1, 2] < [1, 3] }} {{ true == 1 }}",
    "{{ 'a' in 'cat' }} {{ 'z' not in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ not 1 }} {{ not not 'x' }}",
    "{{ 1 and 'x' }} {{ 0 or 'y' }} {{ none or [] }} {{ '' and 1 }} {{ 'a' if 1 else 'b' }} {{ 'a' if 0 else 'b' }} [{{ 'a' if 0 }}]",
    "{{ -(3) }} {{ +4 }} {{ - 2 ** 2 }} {{ -1 | abs }} {{ 10 - 2 - 3 }} {{ 2 ** 3 ** 2 }}",
    # attribute, item, slicing
    "{% set d = {'a': {'b': [10, 20, 30]}} %}{{ d.a.b[1] }} {{ d['a']['b'][-1] }} {{ d.a.b.0 }} [{{ d.x }}] [{{ d.a.b[5] }}]",
    "{% set s = 'héllo wörld' %}{{ s[0] }} {{ s[-1] }} {{ s[1:4] }} {{ s[::-1] }} {{ s[::2] }} {{ s[-3:] }} {{ s[:-3] }} {{ s[10:2:-2] }}",
    "{% set l = [1, 2, 3, 4, 5] %}{{ l[1:] }} {{ l[:2] }} {{ l[::-1] }} {{ l[-2:] }} {{ l[1:-1:2] }} {{ l[5:] }} {{ l[-99:99] }}",
    # loops
    "{% for x in [1, 2, 3] %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }};{% endfor %}",
    "{% for x in [] %}no{% else %}empty{% endfor %} {% for x in [1] %}one{% else %}no{% endfor %}",
    "{% for k, v in {'b': 1, 'a': 2}.items() %}{{ k }}={{ v }},{% endfor %} {% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}",
    "{% for c in 'héllo' %}[{{ c }}]{% endfor %} {% for x in undefined_var %}never{% endfor %}",
    "{% for x in range(10) if x % 3 == 0 %}{{ x }}{{ ',' if not loop.last }}{% endfor %} {% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}",
    "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}",
    "{% for x in [1, 2] %}{% for y in 'ab' %}{{ loop.index }}{{ x }}{{ y }} {% endfor %}{{ loop.index }}|{% endfor %}",
    "{% for x in [1, 2, 3] %}{{ loop.previtem }}-{{ loop.nextitem }} {% endfor %}",
    "{{ range(3) | list }} {{ range(1, 10, 3) | list }} {{ range(5, 0, -2) | list }} {{ range(0) | list }}",
    # set, scoping, namespace, macros
    "{% set x = 1 %}{% for i in range(3) %}{% set x = i %}{% endfor %}{{ x }} {% if true %}{% set y = 5 %}{% endif %}{{ y }}",
    "{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set t = (3, 4) %}{{ t[0] }} {% set blk %}in {{ a }} block{% endset %}[{{ blk }}]",
    "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(punct='.', name='C') }}",
    "{% set top = 't' %}{% macro m() %}{{ top }}{{ messages | length }}{% endmacro %}{{ m() }}",
    "{% set d = dict(a=1, b='x') %}{{ d }} {{ dict({'z': 1}, y=2) }}",
    # tests
    "{{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 1 is number }} {{ 1.5 is float }} {{ 1 is integer }} {{ true is boolean }}",
    "{{ 'a' is string }} {{ {} is mapping }} {{ [] is iterable }} {{ 'a' is sequence }} {{ true is true }} {{ 0 is false }} {{ 1 is not none }}",
    "{{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 'abc' is lower }} {{ 'AB' is upper }} {{ 1 is eq 1 }} {{ 2 is gt 1 }} {{ 2 is in [1, 2] }}",
    "{{ messages is defined and messages is sequence }} {{ tools is none }} {{ tools is defined }} {{ bos_token is string }}",
    # filters
    "{{ '  x  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ [1, 2] | length }} {{ 'héllo' | length }} {{ {'a': 1} | count }} {{ undefined_var | length }}",
    "{{ [3, 1, 2] | first }} {{ [3, 1, 2] | last }} {{ 'abc' | first }} {{ 'abc' | last }} [{{ [] | first }}] {{ [1, 2] | join(', ') }} {{ ['a', 'b'] | join }}",
    "{{ undefined_var | default('dflt') }} {{ '' | default('e', true) }} {{ 0 | d('z') }} {{ none | default('n') }}",
    "{{ 'hello WORLD' | upper }} {{ 'Hello' | lower }} {{ 'hello world' | capitalize }} {{ 'hello-world foo(bar)' | title }}",
    "{{ 'a-b-c' | replace('-', '+') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 'ab' | replace('', '.') }} {{ 12 | string }} {{ [1] | string }}",
    "{{ '42' | int }} {{ '3.7' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 3.9 | int }} {{ '2.5' | float }} {{ 'y' | float }} {{ 2 | float }} {{ ' 12 ' | int }}",
    "{{ 'abc' | list }} {{ {'a': 1} | list }} {{ {'a': 1, 'b': [2]} | items | list }} {{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ [1, 2] | reverse | list }} {{ 'abc' | reverse }}",
    "{% set l = [{'n': 'a', 'k': 1}, {'n': 'b'}, {'n': 'c', 'k': 0}] %}{{ l | selectattr('k') | map(attribute='n') | list }} {{ l | rejectattr('k', 'defined') | map(attribute='n') | join }} {{ l | selectattr('n', 'equalto', 'b') | list | length }}",
    "{{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('divisibleby', 2) | list }} {{ ['a', 'B'] | map('upper') | list }} {{ [1, 1, 2, 'a', 'A'] | unique | list }}",
    "{{ 3.14159 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} {{ 5 | round }} {{ 1.21 | round(1, 'ceil') }} {{ -1.5 | abs }} {{ -3 | abs }}",
    "{{ 'a\nb\n\nc' | indent }}|{{ 'a\nb' | indent(2, true) }}|{{ 'a\n\nb' | indent(width='> ', blank=true) }}",
    "{{ [1, 5, 3] | max }} {{ [1, 5, 3] | min }} {{ [1, 2, 3] | sum }} {{ {'b': 1, 'a': 2} | dictsort }} {{ 'a b  c' | wordcount }} {{ '<a href=\"x\">&' | e }} {{ 'x' | safe }}",
    # tojson, as transformers defines it
    "{{ {'b': 1, 'a': [1, 2.5, none, true, 'é\"\\n']} | tojson }}",
    "{{ {'b': 1, 'a': {'c': [], 'd': {}}} | tojson(indent=2) }}",
    "{{ {'b': 1, 'a': [1, {'c': 2}]} | tojson(indent=4, sort_keys=true) }} {{ 'é🎉' | tojson(true) }} {{ [1, 2] | tojson(separators=(',', ':')) }}",
    "{{ messages | tojson }}{% if tools %}{{ tools | tojson(indent=2) }}{% endif %}",
    # string and dict methods
    "{{ '  x  '.strip() }}|{{ 'xxyxx'.strip('x') }}|{{ '  x'.lstrip() }}|{{ 'x  '.rstrip() }}|{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a,b,c'.rsplit(',', 1) }}",
    "{{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('x', 'lo')) }} {{ 'Hi'.upper() }} {{ 'Hi'.lower() }} {{ 'hello world'.title() }} {{ 'x-y'.replace('-', '') }} {{ 'abcabc'.find('c') }} {{ 'abc'.count('b') }}",
    "{{ ', '.join(['a', 'b']) }} {{ '{} and {}'.format(1, 'two') }} {{ '{0}{0}{name}'.format('r', name='n') }} {{ 'a\\nb'.splitlines() }} {{ '12'.isdigit() }} {{ 'ab'.isalpha() }}",
    "{% set d = {'a': 1, 'b': none} %}{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 'dv') }} {{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }} {{ d.b is none }}",
    # messages and globals
    "{% for m in messages %}{{ loop.index0 }}:{{ m.role }}:{{ m.content | length }};{% endfor %}{{ add_generation_prompt }}{{ bos_token }}{{ eos_token }}",
    "{% if messages | length > 0 and messages[0].role == 'system' %}S{% endif %}{{ messages[-1].content if messages else 'none' }}",
    "{% for m in messages %}{% if m.tool_calls is defined %}{% for c in m.tool_calls %}{{ (c.function or c).name }}{{ (c.function or c).arguments | tojson }}{% endfor %}{% endif %}{% endfor %}",
    "{% for m in messages if m.role != 'system' %}{{ m.role[0] | upper }}{% endfor %}",
    "{{ strftime_now('%Y') | length }}",
    # scoping, undefined, printing corners
    "{% for i in range(3) %}{% if i == 1 %}{% set x = 'set' %}{% endif %}[{{ x }}]{% endfor %}[{{ x }}]",
    "{% macro inner(v) %}<{{ v }}>{% endmacro %}{% macro outer(l) %}{% for v in l %}{{ inner(v) }}{% endfor %}{% endmacro %}{{ outer([1, 2]) }}",
    "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n }}*{{ fact(n - 1) }}{% endif %}{% endmacro %}{{ fact(5) }}",
    "{% filter upper %}shout {{ 'this' }}{% endfilter %} {% generation %}gen {{ 1 }}{% endgeneration %}",
    "{{ undefined_var == none }} {{ undefined_var in [1] }} [{{ undefined_var | trim }}] {{ undefined_var ~ 'x' }} [{{ undefined_var | first }}] {{ undefined_var is not defined }} [{{ undefined_var }}]",
    "{{ namespace(a=1, b='x') }} {{ messages[0] if messages else {'role': 'x', 'content': 'é\'\"'} }}",
    "{{ ['\x00', '\x7f', '\u00a0', '\u2028', 'ok\u00e9', '\U0001F600'] }}",
    "{% set users = messages | selectattr('role', 'equalto', 'user') | list %}{{ users | length }} {{ (messages | map(attribute='role') | unique | list | sort) }}",
    "{{ messages | map(attribute='missing', default='d') | list }} {{ messages | map(attribute='role') | join('/') }}",
    "{% for m in messages %}{{ m.content[:5] }}|{{ m.content[-3:] | lower }}|{{ m.content.split('\n') | length }};{% endfor %}",
    "{% for m in messages %}{{ m.content | replace('\n', '\\n') | trim | tojson }}{% endfor %}",
    "{% set x = none %}{{ x.attr is defined }} {{ x['k'] is defined }} {{ 'str'.missing is defined }} {{ [1].missing is defined }}",
    "{{ 1 == '1' }} {{ [] == [] }} {{ {'a': 1} == {'a': 1} }} {{ (1, 2) == [1, 2] }} {{ none == false }} {{ 0 == false }}",
    "{%- for m in messages -%}\n  {{- m.role -}}\n  {%- if not loop.last %}, {% endif -%}\n{%- endfor %}",
    "  {% if true %}a{% endif %}  {% if true %}\n  b\n  {% endif %}\n\t{% if true %}c{% endif %}\n",
    "{{ 9007199254740993 }} {{ 123456789012 * 1000 }} {{ 2 ** 62 }} {{ 10 / 4 }} {{ 1 / 3 }} {{ 2 / 3 * 3 }} {{ 1e300 * 1e300 }}",
    # errors that both sides must raise
    "{{ raise_exception('custom: ' ~ messages | length) }}",
    "{% if messages | length > 2 %}{{ raise_exception('too long') }}{% endif %}ok",
    "{{ undefined_var.attr }}",
    "{{ 1 + 'a' }}",
    "{{ 1 / 0 }}",
    "{{ none | length }}",
    "{% for x in 5 %}{% endfor %}",
    "{{ range(200000) | length }}",
    "{{ undefined_var + 1 }}",
    "{{ messages[0].content.nonexistent_method() }}",
    # syntax errors
    "{% if true %}unclosed",
    "{{ 1 + }}",
    "{% endfor %}",
    "{% for x in %}{% endfor %}",
    "{{ 'unterminated }}",
    "{% unknown_tag %}",
    "{{ x | no_such_filter }}",
    "{{ x is no_such_test }}",
    "{# unclosed comment",
    "{% set %}",
]


@pytest.mark.parametrize("index", range(len(FEATURES)))
def test_feature(index):
    rng = random.Random(index)
    cases = []
    for k in range(6):
        msgs = conversation(rng, alternate=k % 2 == 0)
        case = {"template": FEATURES[index], "messages": msgs, "add_generation_prompt": k % 2 == 1,
                "bos_token": "<s>" if k != 3 else "", "eos_token": "</s>"}
        if k == 4:
            case["tools"] = [TOOL_SCHEMA]
        cases.append(case)
    check(cases)


# ---- random expressions -------------------------------------------------------------------------

# Operands come from a variable, not literals: jinja2 folds constant expressions at compile time
# and then skips some run-time errors (a slice of a constant int), which real templates never meet.
ATOMS = ["V.one", "V.zero", "V.neg", "V.half", "V.tenth", "V.ab", "V.empty", "V.uni", "V.none", "V.t", "V.f",
         "V.l12", "V.el", "V.d", "V.tup", "V.und", "V.title", "V.pad", "V.l312", "V.lba",
         "messages", "messages[0]", "messages[0].content", "messages | length", "x"]
VALUES = ("{% set V = {'one': 1, 'zero': 0, 'neg': -3, 'half': 2.5, 'tenth': 0.1, 'ab': 'ab', 'empty': '', "
          "'uni': 'é x', 'none': none, 't': true, 'f': false, 'l12': [1, 2], 'el': [], 'd': {'a': 1}, "
          "'tup': (1, 'x'), 'title': 'A b-c', 'pad': ' s ', 'l312': [3, 1, 2], 'lba': ['b', 'a']} %}")
# No %: on a string it is Python's printf formatting, which the subset leaves out.
BINOPS = ["+", "-", "*", "/", "//", "~", "==", "!=", "<", ">=", "and", "or", "in", "not in"]
FILTERS = ["length", "first", "last", "trim", "upper", "lower", "string", "list", "int", "float", "tojson", "sort",
           "default('d')", "join(',')", "abs", "round", "title", "capitalize", "count", "sum", "min", "max",
           "wordcount", "e", "select('odd') | list", "map('string') | list", "indent(2)", "replace('a', 'b')"]
TESTS = ["defined", "none", "string", "number", "mapping", "iterable", "sequence", "integer", "true", "false",
         "odd", "even", "lower", "upper", "divisibleby 2", "in V.l12"]


def random_expression(rng, depth=0):
    r = rng.random()
    if depth > 3 or r < 0.3:
        return rng.choice(ATOMS)
    sub = lambda: random_expression(rng, depth + 1)  # noqa: E731
    if r < 0.55:
        return f"({sub()} {rng.choice(BINOPS)} {sub()})"
    if r < 0.75:
        return f"{sub()} | {rng.choice(FILTERS)}"
    if r < 0.85:
        return f"({sub()} is {rng.choice(['', 'not '])}{rng.choice(TESTS)})"
    if r < 0.92:
        return f"({sub()} if {sub()} else {sub()})"
    index = rng.choice(["0", "-1", "1:", "::-1", "'a'", ":2"])
    return f"({sub()})[{index}]"


@pytest.mark.parametrize("seed", range(3))
def test_random_expressions(seed):
    rng = random.Random(1000 + seed)
    cases = []
    for _ in range(1000):
        template = VALUES + "{% for x in [1, 'x'] %}{{ " + random_expression(rng) + " }}|{% endfor %}"
        cases.append({"template": template, "messages": [{"role": "user", "content": "Hi there"}],
                      "add_generation_prompt": False, "bos_token": "<s>", "eos_token": "</s>"})
    # Filters that jinja2 implements as generators (unique, items, reverse) print as
    # "<generator object ...>"; such renderings say nothing and are left out.
    check([c for c in cases if " object at 0x" not in str(reference(c))])


# ---- random whitespace layouts --------------------------------------------------------------------

def random_layout(rng, depth=0):
    """Text, tags with random -/+ signs, newlines and indentation: trim_blocks, lstrip_blocks and
    whitespace control in every combination."""
    texts = [" ", "  ", "\n", "\n  ", "  \n", "\t", "x", " y ", "\n\n", "z\n", "  \t "]
    sign = lambda: rng.choice(["", "", "-", "+"])  # noqa: E731
    out = []
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        if r < 0.4:
            out.append(rng.choice(texts))
        elif r < 0.55:
            out.append("{{" + rng.choice(["", "-"]) + " 'v' " + rng.choice(["", "-"]) + "}}")
        elif r < 0.65:
            out.append("{#" + sign() + " c " + sign() + "#}")
        elif r < 0.72:
            out.append("{%" + sign() + " set q = 1 " + sign() + "%}")
        elif depth < 3:
            head = rng.choice(["if true", "if false", "for i in [1, 2]"])
            end = "endif" if head.startswith("if") else "endfor"
            out.append("{%" + sign() + f" {head} " + sign() + "%}" + random_layout(rng, depth + 1) +
                       "{%" + sign() + f" {end} " + sign() + "%}")
    return "".join(out)


def test_random_whitespace_layouts():
    rng = random.Random(7)
    cases = [{"template": random_layout(rng) + rng.choice(["", "\n", "\n\n", " \n"]), "messages": [],
              "add_generation_prompt": False, "bos_token": "", "eos_token": ""} for _ in range(3000)]
    check(cases)


# ---- end to end: the tokenizer's own template, BOS and EOS -------------------------------------------

@pytest.mark.parametrize("model", ["qwen2.5-0.5b", "tinyllama-1.1b-chat-v1.0"])
def test_tokenizer_apply_chat_template(model):
    """chat_template_of(load_tokenizer(dir)) against AutoTokenizer.from_pretrained(dir).apply_chat_template:
    the template found, and the bos_token / eos_token strings passed to it."""
    transformers = pytest.importorskip("transformers")
    path = SHARED / "configs" / model
    if not path.exists():
        pytest.skip(f"{path} not present")
    tok = transformers.AutoTokenizer.from_pretrained(str(path))
    rng = random.Random(11)
    cases = []
    for k in range(60):
        cases.append({"model": str(path), "messages": conversation(rng, alternate=True, tools_ok=False),
                      "add_generation_prompt": k % 2 == 0})
    ours = lowbit(cases)
    for case, mine in zip(cases, ours):
        try:
            ref = tok.apply_chat_template(case["messages"], tokenize=False,
                                          add_generation_prompt=case["add_generation_prompt"])
        except Exception as e:  # noqa: BLE001
            assert "error" in mine, (case, e)
            continue
        assert mine.get("text") == ref, (case, ref, mine)
