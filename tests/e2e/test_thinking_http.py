"""Thinking output over HTTP: a template that opens a reasoning block puts the model's text in
`reasoning_content`; `reasoning_format: none` keeps it inline; `chat_template_kwargs` (per request
and per model) reach the template. Real inference on a tiny model, greedy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.server import running_server
from tests.tiny_models import NO_EOS, make_tiny_llama

# Qwen3's shape: thinking is on unless `enable_thinking` is false, and then the block is empty.
THINKING_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n"
    "{% if m['reasoning_content'] is defined %}<think>{{ m['reasoning_content'] }}</think>{% endif %}"
    "{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n"
    "{% else %}<think>\n{% endif %}{% endif %}"
)
USER = [{"role": "user", "content": "hello world"}]
GREEDY: dict[str, Any] = {"max_tokens": 8, "temperature": 0, "logit_bias": NO_EOS}


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[str]:
    path = make_tiny_llama(model_dir / "tiny-thinking.gguf", chat_template=THINKING_TEMPLATE)
    models = [
        {"name": "thinker", "model": str(path), "context_length": 256, "parallel": 2},
        {
            "name": "quiet",
            "model": str(path),
            "context_length": 256,
            "parallel": 1,
            "chat_template_kwargs": {"enable_thinking": False},
        },
        {
            "name": "inline",
            "model": str(path),
            "context_length": 256,
            "parallel": 1,
            "reasoning_format": "none",
        },
    ]
    with running_server({"models": models}) as (url, _):
        yield url


@pytest.fixture
def client(server: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0) as c:
        yield c


def chat(client: openai.OpenAI, model: str = "thinker", **extra: Any) -> Any:
    return client.chat.completions.create(model=model, messages=USER, extra_body=extra, **GREEDY)  # type: ignore[arg-type]


def test_open_block_goes_to_reasoning_content(client: openai.OpenAI) -> None:
    r = chat(client)
    message = r.choices[0].message.model_dump()
    assert message["reasoning_content"], "the template opened <think>: the text is reasoning"
    assert message["content"] == ""
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 8
    # "none" keeps the same text inline, with no reasoning field
    inline = chat(client, reasoning_format="none").choices[0].message.model_dump()
    assert inline["content"] == message["reasoning_content"]
    assert inline.get("reasoning_content") is None
    assert chat(client, "inline").choices[0].message.model_dump()["content"] == message["reasoning_content"]


def test_chat_template_kwargs_turn_thinking_off(client: openai.OpenAI) -> None:
    thinking = chat(client)
    off = chat(client, chat_template_kwargs={"enable_thinking": False})
    message = off.choices[0].message.model_dump()
    assert message["content"] and message.get("reasoning_content") is None
    # the template wrote the empty block: the prompt is longer by it
    assert off.usage.prompt_tokens > thinking.usage.prompt_tokens
    # the per-model default does the same, and a request can turn it back on
    assert chat(client, "quiet").choices[0].message.model_dump() == message
    back_on = chat(client, "quiet", chat_template_kwargs={"enable_thinking": True})
    assert (
        back_on.choices[0].message.model_dump()["reasoning_content"]
        == thinking.choices[0].message.model_dump()["reasoning_content"]
    )


def test_streamed_reasoning_matches_whole(client: openai.OpenAI) -> None:
    whole = chat(client).choices[0].message.model_dump()
    stream = client.chat.completions.create(model="thinker", messages=USER, stream=True, **GREEDY)  # type: ignore[arg-type]
    reasoning = content = ""
    for c in stream:
        if c.choices:
            delta = c.choices[0].delta.model_dump()
            reasoning += delta.get("reasoning_content") or ""
            content += delta.get("content") or ""
    assert (reasoning, content) == (whole["reasoning_content"], whole["content"])


def test_reasoning_sent_back_in_history_reaches_the_template(client: openai.OpenAI) -> None:
    """A client that sends an earlier turn's reasoning_content back gives it to the template."""
    turn = {"role": "assistant", "content": "yes", "reasoning_content": "the sun is red"}
    history = [*USER, turn, {"role": "user", "content": "ok"}]
    with_it = client.chat.completions.create(model="thinker", messages=history, **GREEDY)  # type: ignore[arg-type]
    without = client.chat.completions.create(
        model="thinker",
        messages=[*USER, {"role": "assistant", "content": "yes"}, history[2]],
        **GREEDY,  # type: ignore[arg-type]
    )
    assert with_it.usage.prompt_tokens > without.usage.prompt_tokens  # equal if it were dropped


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"chat_template_kwargs": {"messages": []}}, "chat_template_kwargs"),
        ({"chat_template_kwargs": "yes"}, "chat_template_kwargs"),
        ({"reasoning_format": "loud"}, "reasoning_format"),
    ],
)
def test_bad_thinking_fields_are_400(server: str, extra: dict[str, Any], param: str) -> None:
    r = httpx.post(server + "/v1/chat/completions", json={"model": "thinker", "messages": USER, **extra})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
