"""Reasoning split from answers, whole and streamed in any cut, per family, and tool calls after it."""

from __future__ import annotations

import json

import pytest

from claracore.errors import InvalidRequestError
from claracore.serving.reasoning import HARMONY, THINK, ReasoningSplit, opened_by, split, template_variables
from claracore.serving.tool_calls import declared_names, parse

QWEN = "<think>\nThe user greets me.\n</think>\n\nHello!"
HARMONY_TEXT = (
    "<|channel|>analysis<|message|>Greet back.<|end|><|start|>assistant<|channel|>final<|message|>Hi there"
)


@pytest.mark.parametrize(
    ("text", "opened", "reasoning", "answer"),
    [
        (QWEN, None, "\nThe user greets me.\n", "Hello!"),
        ("  <think>a</think>b", None, "a", "b"),
        ("[THINK]plan[/THINK]done", None, "plan", "done"),
        (HARMONY_TEXT, None, "Greet back.", "Hi there"),
        # the template opened the block: only the close appears
        ("pondering</think>\n\nAnswer.", THINK, "pondering", "Answer."),
        # cut off while thinking: it is all reasoning
        ("still thinking", THINK, "still thinking", ""),
        ("<think>unfinished", None, "unfinished", ""),
        # no block, or one that is not at the start: the text stays as it was
        ("Plain answer.", None, None, "Plain answer."),
        ("I write <think> tags.", None, None, "I write <think> tags."),
        ("<thin", None, None, "<thin"),
        ("", None, None, ""),
    ],
)
def test_split_whole(text: str, opened: object, reasoning: str | None, answer: str) -> None:
    assert split(text, opened) == (reasoning, answer)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", [QWEN, HARMONY_TEXT, "<think>x</think>y", "Plain <think>", "<th"])
@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_streamed_in_any_cut_equals_whole(text: str, step: int) -> None:
    """However tokens cut a marker, no part of it leaks, and the pieces add up to the whole split."""
    s = ReasoningSplit()
    reasoning = answer = ""
    for i in range(0, len(text), step):
        r, a = s.feed(text[i : i + step])
        reasoning, answer = reasoning + r, answer + a
        for marker in ("<think>", "</think>", "<|end|>", "<|channel|>"):
            assert marker not in reasoning
            if text is not QWEN and "Plain" not in text:
                assert marker not in answer
    r, a = s.finish()
    whole_reasoning, whole_answer = split(text)
    assert (reasoning + r, answer + a) == (whole_reasoning or "", whole_answer)


def test_reasoning_streams_before_the_block_closes() -> None:
    s = ReasoningSplit()
    assert s.feed("<think>first ") == ("first ", "")
    assert s.feed("second</") == ("second", "")  # "</" may begin the close: held
    assert s.feed("think>ans") == ("", "ans")


def test_opened_by_the_prompt() -> None:
    assert opened_by("<|im_start|>assistant\n<think>\n") is THINK
    assert opened_by("<|start|>assistant<|channel|>analysis<|message|>") is HARMONY
    assert opened_by("<|im_start|>assistant\n<think>\n\n</think>\n\n") is None  # thinking turned off
    assert opened_by("<|assistant|>\n") is None


def test_tool_call_after_reasoning_is_parsed() -> None:
    names = declared_names([{"type": "function", "function": {"name": "get_weather"}}])
    call = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    text = f"<think>I should call the tool.</think>\n<tool_call>\n{call}\n</tool_call>"
    reasoning, answer = split(text)
    content, calls = parse(answer, names)
    assert reasoning == "I should call the tool."
    assert content is None
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
    # a bare JSON call after the block is found too (the split drops the whitespace between)
    content, calls = parse(split('<think>x</think>\n{"name": "get_weather", "arguments": {}}')[1], names)
    assert content is None and [c.name for c in calls] == ["get_weather"]


def test_template_variables() -> None:
    assert template_variables({"enable_thinking": True, "a": 1}, {"enable_thinking": False}, None) == {
        "enable_thinking": False,
        "a": 1,
    }
    assert template_variables({}, None, "high") == {"reasoning_effort": "high"}
    assert template_variables({}, {"reasoning_effort": "low"}, "high") == {"reasoning_effort": "low"}
    for bad in ({"messages": []}, {"tools": []}, {"not a name": 1}):
        with pytest.raises(InvalidRequestError) as err:
            template_variables({}, bad, None)
        assert err.value.param == "chat_template_kwargs"
