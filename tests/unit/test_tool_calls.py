"""Tool calls found in model text, whole and streamed: each family's format, and non-calls left alone."""

from __future__ import annotations

import json

import pytest

from claracore.serving.tool_calls import CallWatch, declared_names, parse

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}},
]
NAMES = declared_names(TOOLS)
PARIS = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
ADD = '{"name": "add", "arguments": {"a": 1}}'


def calls_of(text: str) -> tuple[str | None, list[tuple[str, dict[str, object]]]]:
    content, calls = parse(text, NAMES)
    return content, [(c.name, json.loads(c.arguments)) for c in calls]


def test_declared_names_ignore_malformed_tools() -> None:
    assert NAMES == {"get_weather", "add"}
    assert declared_names([{"type": "function"}, "x", {"function": {"name": 3}}]) == frozenset()  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("text", "content", "calls"),
    [
        # Hermes / Qwen: blocks, after some prose, several at once
        (f"<tool_call>\n{PARIS}\n</tool_call>", None, [("get_weather", {"city": "Paris"})]),
        (
            f"Let me check. <tool_call>{PARIS}</tool_call>\n<tool_call>{ADD}</tool_call>",
            "Let me check.",
            [("get_weather", {"city": "Paris"}), ("add", {"a": 1})],
        ),
        # Mistral: a list after the marker
        (f"[TOOL_CALLS] [{PARIS}]", None, [("get_weather", {"city": "Paris"})]),
        # Llama 3.1+: python_tag, or bare JSON with "parameters"
        (f"<|python_tag|>{PARIS}", None, [("get_weather", {"city": "Paris"})]),
        ('{"name": "add", "parameters": {"a": 2, "b": 3}}', None, [("add", {"a": 2, "b": 3})]),
        (f"[{PARIS}, {PARIS}]", None, [("get_weather", {"city": "Paris"})] * 2),
        (f"{PARIS}; {PARIS}", None, [("get_weather", {"city": "Paris"})] * 2),
        # arguments already a JSON string stay as sent
        ('{"name": "add", "arguments": "{\\"a\\": 1}"}', None, [("add", {"a": 1})]),
    ],
)
def test_each_family_format(text: str, content: str | None, calls: list[tuple[str, object]]) -> None:
    assert calls_of(text) == (content, calls)


@pytest.mark.parametrize(
    "text",
    [
        "The weather in Paris is sunny.",
        '{"answer": 42}',  # JSON, but no call
        '{"name": "rm_rf", "arguments": {}}',  # a tool nobody declared
        "<tool_call>not json</tool_call>",
        f'{PARIS} and {{"name": "nope"}}',  # one bad call voids the lot
        "",
    ],
)
def test_non_calls_stay_content(text: str) -> None:
    assert parse(text, NAMES) == (text, [])


def test_without_declared_tools_nothing_is_parsed() -> None:
    assert parse(PARIS, frozenset()) == (PARIS, [])


def stream(text: str, piece: int) -> tuple[str, str, list[str]]:
    """Feed `text` in pieces of `piece` characters: (sent while streaming, sent at the end, calls)."""
    watch = CallWatch(NAMES)
    sent = "".join(watch.feed(text[i : i + piece]) for i in range(0, len(text), piece))
    rest, calls = watch.finish()
    return sent, rest, [c.name for c in calls]


@pytest.mark.parametrize("piece", [1, 3, 100])
def test_streamed_prose_flows_and_a_call_is_held(piece: int) -> None:
    assert stream("Hello <tool there>, all fine.", piece) == ("Hello <tool there>, all fine.", "", [])
    sent, rest, calls = stream(f"Checking.<tool_call>{PARIS}</tool_call>", piece)
    assert (sent, rest, calls) == ("Checking.", "", ["get_weather"])
    assert stream(f"  {PARIS}", piece) == ("", "", ["get_weather"])  # bare JSON: held from the start
    assert stream('  {"answer": 1}', piece) == ("", '  {"answer": 1}', [])  # not a call: sent at the end
    assert stream("Text then <tool_call>broken", piece) == ("Text then ", "<tool_call>broken", [])


def test_a_returned_call_renders_as_the_template_writes_calls() -> None:
    """OpenAI sends arguments as JSON text; a Qwen-style template must not quote them again."""
    from claracore.runtime.chat_template import ChatTemplate
    from claracore.serving.generation import _template_call

    template = ChatTemplate(
        "{% for m in messages %}{% for c in m.tool_calls or [] %}"
        '{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}'
        "{% endfor %}{% endfor %}"
    )
    call = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
    rendered = template.render([{"role": "assistant", "content": "", "tool_calls": [_template_call(call)]}])
    assert json.loads(rendered) == {"name": "add", "arguments": {"a": 1}}
    broken = {"function": {"name": "add", "arguments": "not json"}}
    assert _template_call(broken) is broken
    listed = {"function": {"name": "add", "arguments": "[1, 2]"}}  # JSON, but not an object: left as text
    assert _template_call(listed) is listed


def test_a_template_without_tools_gets_them_as_a_system_message() -> None:
    from claracore.runtime.chat_template import ChatTemplate
    from tests.tiny_models import CHAT_TEMPLATE

    template = ChatTemplate(CHAT_TEMPLATE)  # never reads `tools`
    assert not template.knows_tools
    user = [{"role": "user", "content": "weather?"}]
    rendered = template.render(user, tools=TOOLS)
    assert (
        rendered.startswith("<|system|>\nYou can call these tools:") and '"name": "get_weather"' in rendered
    )
    assert template.render(user) == "<|user|>\nweather?</s>\n<|assistant|>\n"
    with_system = template.render([{"role": "system", "content": "Be brief."}, *user], tools=TOOLS)
    assert with_system.startswith("<|system|>\nBe brief.\n\nYou can call these tools:")
    assert with_system.count("<|system|>") == 1
    # an earlier call is written the way the model is asked to write one
    call = {"id": "c", "type": "function", "function": {"name": "add", "arguments": {"a": 1}}}
    history = [*user, {"role": "assistant", "content": "", "tool_calls": [call]}]
    assert '<|assistant|>\n{"name": "add", "arguments": {"a": 1}}</s>' in template.render(
        history, tools=TOOLS
    )


def test_a_template_that_reads_tools_renders_them_itself() -> None:
    from claracore.runtime.chat_template import ChatTemplate

    template = ChatTemplate("{{ tools | length }} tools{% for m in messages %}|{{ m.content }}{% endfor %}")
    assert template.knows_tools
    assert template.render([{"role": "user", "content": "hi"}], tools=TOOLS) == "2 tools|hi"
