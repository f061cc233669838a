"""Writes the golden renderings the Swift Templating tests compare against, byte for byte.

Run from this directory with the project's venv (transformers 5, jinja2 3.1):
    /work/venv/bin/python generate_golden.py

chat_golden.json   every template in templates/ x every conversation x add_generation_prompt both ways, and
                   three templates rendered with tools and tool calls (tool_templates/ holds a Hermes-style one),
                   rendered by transformers' `apply_chat_template(tokenize=False)` (its sandboxed Jinja
                   environment), with the clock fixed at 2024-07-26 12:00 for `strftime_now`.
jinja_cases.json   small templates exercising one construct each, rendered by the same environment
                   (`_compile_jinja_template`), with the error text where Jinja2 refuses.
"""
import datetime as real_datetime
import json
import os

from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast
from transformers.utils import chat_template_utils

HERE = os.path.dirname(os.path.abspath(__file__))
FIXED_NOW = real_datetime.datetime(2024, 7, 26, 12, 0, 0)


class FixedDatetime(real_datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_NOW


chat_template_utils.datetime = FixedDatetime

SPECIAL_TOKENS = {
    "llama3_1": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama3_2": ("<|begin_of_text|>", "<|eot_id|>"),
    "mistral": ("<s>", "</s>"),
    "gemma": ("<bos>", "<eos>"),
    "phi3": (None, "<|endoftext|>"),
    "phi4": (None, "<|im_end|>"),
    "chatml": (None, "<|im_end|>"),
    "qwen2_5": (None, "<|im_end|>"),
    "qwen3": (None, "<|im_end|>"),
    "smollm2": (None, "<|im_end|>"),
    "hermes_tools": ("<s>", "<|im_end|>"),
}

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": " The city. "},
        "days": {"type": "integer", "description": "How many days"},
        "units": {"type": ["string", "null"], "description": "c or f"},
        "hours": {"type": "array", "items": {"type": "number"}, "description": "Hours"},
        "extra": {"type": "object", "additionalProperties": {"type": "boolean"}, "description": "Extra"}},
        "required": ["city"]}}}]

TOOL_MESSAGES = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
    {"role": "tool", "content": "{\"temp\": 21}"},
    {"role": "tool", "content": "sunny"},
    {"role": "assistant", "content": "It is 21°C and sunny."},
]

# (template file, directory): templates rendered with tools and tool calls in the messages.
TOOL_TEMPLATES = [("qwen2_5.jinja", "templates"), ("llama3_1.jinja", "templates"), ("hermes_tools.jinja", "tool_templates")]

CONVERSATIONS = {
    "single": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"}],
    "system": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"},
               {"role": "assistant", "content": "4"}],
    "multi_turn": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},
                   {"role": "user", "content": "Another?"}, {"role": "assistant", "content": "Red."}],
    "system_multi_turn": [{"role": "system", "content": "  Be kind.\n"}, {"role": "user", "content": "Hello"},
                          {"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "Bye"},
                          {"role": "assistant", "content": "Goodbye."}],
    "unicode": [{"role": "user", "content": "Grüße 👋 — 日本語\ttab\r\nline ‘quoted’ \"double\" 'single'"},
                {"role": "assistant", "content": "  Ça va ? ñ 🙂 \n\n"}],
    "prompt_only": [{"role": "user", "content": "Only a question"}],
    "thinking": [{"role": "user", "content": "Think first."},
                 {"role": "assistant", "content": "<think>\nstep one\nstep two\n</think>\n\nThe answer."}],
    "thinking_multi_turn": [{"role": "user", "content": "Q1"},
                            {"role": "assistant", "content": "<think>\nold reasoning\n</think>\n\nA1"},
                            {"role": "user", "content": "Q2"},
                            {"role": "assistant", "content": "<think>new reasoning</think>A2"}],
    "bad_alternation": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
}


def tokenizer_for(bos, eos):
    backend = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    kwargs = {}
    if bos is not None:
        kwargs["bos_token"] = bos
    if eos is not None:
        kwargs["eos_token"] = eos
    return PreTrainedTokenizerFast(tokenizer_object=backend, **kwargs)


def chat_golden():
    cases = []
    for file in sorted(os.listdir(os.path.join(HERE, "templates"))):
        name = file[: -len(".jinja")]
        with open(os.path.join(HERE, "templates", file), encoding="utf-8") as handle:
            source = handle.read()
        bos, eos = SPECIAL_TOKENS[name]
        tokenizer = tokenizer_for(bos, eos)
        for conversation, messages in CONVERSATIONS.items():
            for add_generation_prompt in (False, True):
                case = {"template": "templates/" + file, "conversation": conversation, "messages": messages,
                        "add_generation_prompt": add_generation_prompt, "bos_token": bos, "eos_token": eos}
                try:
                    case["expected"] = tokenizer.apply_chat_template(
                        messages, chat_template=source, tokenize=False, add_generation_prompt=add_generation_prompt)
                except Exception as error:  # the template's raise_exception, with its message
                    case["error"] = str(error)
                cases.append(case)
    for file, directory in TOOL_TEMPLATES:
        with open(os.path.join(HERE, directory, file), encoding="utf-8") as handle:
            source = handle.read()
        bos, eos = SPECIAL_TOKENS[file[: -len(".jinja")]]
        tokenizer = tokenizer_for(bos, eos)
        for add_generation_prompt in (False, True):
            case = {"template": directory + "/" + file, "conversation": "tools", "messages": TOOL_MESSAGES, "tools": TOOLS,
                    "add_generation_prompt": add_generation_prompt, "bos_token": bos, "eos_token": eos}
            case["expected"] = tokenizer.apply_chat_template(
                TOOL_MESSAGES, tools=TOOLS, chat_template=source, tokenize=False, add_generation_prompt=add_generation_prompt)
            cases.append(case)
    return cases


# (template, variables) pairs; each exercises one construct of Jinja2 as transformers configures it.
JINJA_CASES = [
    ("plain text", {}),
    ("trailing newline is dropped\n", {}),
    ("two trailing newlines\n\n", {}),
    ("{{ 'a' }}\n{{ 'b' }}", {}),
    ("{% if true %}\nyes\n{% endif %}\nafter", {}),
    ("  {% if true %}\n  indented\n  {% endif %}\n  {{ 'expr keeps indent' }}\n  {# comment #}\nend", {}),
    ("a  {%- if true -%}  b  {%- endif -%}  c", {}),
    ("a  {{- 'x' -}}  c", {}),
    ("x {%+ if true %}y{% endif +%}\nz", {}),
    ("{# a comment -#}   kept? {#- another #}", {}),
    ("{% raw %}{{ not evaluated }}{% endraw %}", {}),
    ("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }}", {}),
    ("{{ 1.5 + 1 }} {{ 0.1 + 0.2 }} {{ 1e3 }} {{ 10 / 5 }} {{ 3 - 5 }} {{ -(2) }}", {}),
    ("{{ 'a' ~ 1 ~ none ~ true ~ x }}", {}),
    ("{{ 'ab' * 3 }} {{ [1] * 2 }} {{ [1, 2] + [3] }}", {}),
    ("{{ [1, 'two', none, true, 2.5, {'k': 'v'}] }}", {}),
    ("{{ {'a': 1, 'b': [1, 2]} }} {{ none }} {{ true }} {{ false }}", {}),
    ("{{ \"it's\" }} {{ ['it\\'s', 'say \"hi\"', 'both \\' \"'] }}", {}),
    ("{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ 'abc' < 'abd' }} {{ [1, 2] < [1, 3] }}", {}),
    ("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ 1 in [] }}", {}),
    ("{{ not true }} {{ true and false }} {{ 0 or 'x' }} {{ '' and 'y' }} {{ none or [] }}", {}),
    ("{{ 'yes' if x else 'no' }} {{ 'yes' if 1 else 'no' }} [{{ 'only' if false }}]", {}),
    ("{{ messages[0]['role'] }} {{ messages[0].role }} {{ messages[-1].content }} {{ messages|length }}",
     {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}),
    ("{{ items[1:] }} {{ items[:-1] }} {{ items[::-1] }} {{ items[::2] }} {{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ items[5:] }}",
     {"items": [1, 2, 3, 4]}),
    ("{{ 'héllo'[1] }} {{ 'naïve'|length }} {{ '日本語'[-1] }}", {}),
    ("{% for x in items %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }}/{{ loop.revindex }} {% endfor %}",
     {"items": ["a", "b", "c"]}),
    ("{% for x in items if x > 1 %}{{ x }}:{{ loop.index }}:{{ loop.last }} {% endfor %}", {"items": [1, 2, 3]}),
    ("{% for x in [] %}body{% else %}empty{% endfor %}", {}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("{% for x in [1, 2, 3, 4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("{% for row in [[1, 2], [3]] %}{% for c in row %}{{ loop.index }}{{ c }}{% endfor %}|{{ loop.index }} {% endfor %}", {}),
    ("{% for x in items %}{{ loop.previtem }}-{{ loop.nextitem }} {{ loop.cycle('odd', 'even') }};{% endfor %}", {"items": [1, 2, 3]}),
    ("{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + 10 %}{{ x }} {% endfor %}{{ x }}", {}),
    ("{% set ns = namespace(count=0, found=false) %}{% for i in [1, 2, 3] %}{% set ns.count = ns.count + i %}{% endfor %}{{ ns.count }} {{ ns.found }}", {}),
    ("{% if true %}{% set y = 'set in if' %}{% endif %}{{ y }}", {}),
    ("{% set a, b = [1, 2] %}{{ a }}{{ b }} {% set t = 1, 2 %}{{ t }}", {}),
    ("{% set block %}  inner {{ 1 + 1 }}  {% endset %}[{{ block }}]", {}),
    ("{% set block | upper | trim %}  inner  {% endset %}[{{ block }}]", {}),
    ("{% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', punct='?') }} {{ greet(name='Cy') }}", {}),
    ("{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold {{ 1 }}{% endcall %}", {}),
    ("{% macro rows(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(item) rows([1, 2]) %}[{{ item }}]{% endcall %}", {}),
    ("{% filter upper %}shout {{ 'this' }}{% endfilter %}", {}),
    ("{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is number }} {{ 1.5 is number }} {{ true is number }}",
     {"x": 1}),
    ("{{ {} is mapping }} {{ [] is mapping }} {{ [] is iterable }} {{ 'a' is iterable }} {{ 1 is iterable }} {{ y is iterable }} {{ 'a' is sequence }} {{ y is sequence }}", {}),
    ("{{ true is true }} {{ 1 is true }} {{ false is false }} {{ 0 is false }} {{ 1 is integer }} {{ 1.0 is float }} {{ true is boolean }}", {}),
    ("{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 'abc' is lower }} {{ 'ABC' is upper }}", {}),
    ("{{ 1 is eq 1 }} {{ 1 is equalto 2 }} {{ 2 is gt 1 }} {{ 'a' is in 'cat' }} {{ none is sameas none }} {{ x is not none }}", {"x": 0}),
    ("{{ '  padded  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ 'Hello'|upper }}|{{ 'Hello'|lower }}|{{ 'hello world'|capitalize }}|{{ 'hello big-world (x)'|title }}", {}),
    ("{{ 'a-b-c'|replace('-', '+') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ [1, 2, 3]|join(', ') }} {{ ['a', 'b']|join }}", {}),
    ("{{ [3, 1, 2]|first }} {{ [3, 1, 2]|last }} {{ 'abc'|first }} {{ [3, 1, 2]|length }} {{ 'abc'|count }} {{ {'a': 1}|length }} {{ y|length }}", {}),
    ("{{ y|default('fallback') }} {{ ''|default('empty') }} {{ ''|default('empty', true) }} {{ none|default('n') }} {{ y|d('d') }}", {}),
    ("{{ d|items|list }} {% for k, v in d|items %}{{ k }}{{ v }}{% endfor %}", {"d": {"x": 1, "y": 2}}),
    ("{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(',') }} {{ messages|rejectattr('role', 'eq', 'user')|list|length }} {{ messages|selectattr('tool_calls')|list }}",
     {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "tool_calls": [1]}, {"role": "user", "content": "c"}]}),
    ("{{ ['a', 'B']|map('upper')|list }} {{ [1, 0, 2]|select|list }} {{ [1, 2, 3, 4]|select('odd')|list }} {{ [1, 2]|reject('even')|list }}", {}),
    ("{{ 42|string }} {{ '42'|int + 1 }} {{ '3.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '2.5'|float }} {{ 'abc'|list }}", {}),
    ("{{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ [3, 1, 2]|sort }} {{ ['b', 'A', 'c']|sort }} {{ [1, 2, 2, 1]|unique|list }} {{ [1, 2]|reverse|list }} {{ [1, 2, 3]|sum }}", {}),
    ("{{ [3, 1, 2]|max }} {{ [3, 1, 2]|min }} {{ {'b': 1, 'a': 2}|dictsort }} {{ 'one two  three'|wordcount }} {{ '<a href=\"x\">'|e }}", {}),
    ("{{ 'line1\nline2\n\nline4'|indent }}|{{ 'line1\nline2'|indent(2, true) }}|{{ 'a\n\nb'|indent(2, blank=true) }}", {}),
    ("{{ data|tojson }}", {"data": {"name": "f", "args": [1, 2.5, True, None, "é\n\"q\"\u0001"], "nested": {"z": 1, "a": {}}, "empty": []}}),
    ("{{ data|tojson(indent=2) }}", {"data": {"name": "f", "args": [1, {"k": [True]}], "empty": {}}}),
    ("{{ data|tojson(sort_keys=true) }} {{ data|tojson(separators=(',', ':')) }} {{ 'x<y>&'|tojson }} {{ data|tojson(ensure_ascii=true) }}",
     {"data": {"b": "ü😀", "a": 1}}),
    ("{{ '  x  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '  x  '.lstrip() }}|{{ '  x  '.rstrip() }}|{{ '\n\nx\n'.lstrip('\n') }}", {}),
    ("{{ 'hello'.startswith('he') }} {{ 'hello'.endswith('lo') }} {{ 'hello'.startswith(('x', 'h')) }} {{ 'hello'.upper() }} {{ 'HeLLo'.lower() }} {{ 'hello world'.title() }}", {}),
    ("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a<think>b</think>c'.split('</think>')[-1] }} {{ 'a-b-c'.rsplit('-', 1) }}", {}),
    ("{{ 'hello'.replace('l', 'L') }} {{ 'hello'.find('l') }} {{ 'hello'.count('l') }} {{ ', '.join(['a', 'b']) }} {{ 'x'.capitalize() }} {{ '123'.isdigit() }}", {}),
    ("{{ d.get('a') }} {{ d.get('z', 'dflt') }} {{ d.get('z') }} {{ d.keys()|list }} {{ d.values()|list }} {{ d['a'] }}", {"d": {"a": 1, "b": 2}}),
    ("{{ message.content }}|{{ message.missing }}|{{ message['missing'] }}|{{ message.missing is defined }}", {"message": {"content": "c"}}),
    ("{{ range(3)|list }} {{ range(1, 7, 2)|list }} {% for i in range(2) %}{{ i }}{% endfor %} {{ dict(a=1, b=2) }}", {}),
    ("{{ raise_exception('custom failure: ' ~ 42) }}", {}),
    ("{{ strftime_now('%Y-%m-%d %H:%M %A %B %j') }} {{ strftime_now('%d %b %Y') }}", {}),
    ("{{ undefined_thing.attribute }}", {}),
    ("{{ message.missing.deeper }}", {"message": {"content": "c"}}),
    ("{{ 1 + 'a' }}", {}),
    ("{{ 1 / 0 }}", {}),
    ("{% include 'other.jinja' %}", {}),
    ("{{ x|nosuchfilter }}", {}),
    ("{% if true %}unclosed", {}),
    ("{{ tools is none }} {{ tools is defined }} {% if tools %}has tools{% else %}no tools{% endif %}", {"tools": None}),
    ("{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}", {"bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": True}),
]


def jinja_cases():
    cases = []
    for template, variables in JINJA_CASES:
        case = {"template": template, "variables": variables}
        try:
            compiled = chat_template_utils._compile_jinja_template(template)
            case["expected"] = compiled.render(**variables)
        except Exception as error:
            case["error"] = type(error).__name__ + ": " + str(error)
        cases.append(case)
    return cases


def write(name, data):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=1)
        handle.write("\n")


if __name__ == "__main__":
    write("chat_golden.json", chat_golden())
    write("jinja_cases.json", jinja_cases())
    print("wrote chat_golden.json and jinja_cases.json")
