"""A Python caller's requests are published as "request" events by the engine itself: one per
request, with the model's configured name, the tokens the answer reported, and how it ended."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from claracore.engine import AsyncEngine
from claracore.errors import ModelNotFoundError
from claracore.events import Subscription
from tests.tiny_models import NO_EOS

USER = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def engine(tiny_llama_4k: Path, tiny_bert: Path) -> AsyncIterator[AsyncEngine]:
    config = {
        "models": [
            {"name": "chat", "model": str(tiny_llama_4k), "aliases": ["c"], "context_length": 4096},
            {"name": "embed", "model": str(tiny_bert), "type": "embedding"},
        ],
        "monitoring": {"metrics_interval": 0},
    }
    async with AsyncEngine(config) as eng:
        yield eng


def requests(sub: Subscription) -> list[dict[str, Any]]:
    return [e.data for e in iter(sub.get_nowait, None)]


async def test_a_whole_answer_is_one_event_with_its_usage(engine: AsyncEngine) -> None:
    sub = engine.events.subscribe(["request"])
    answer = await engine.chat(model="c", messages=USER, max_tokens=5, temperature=0, logit_bias=NO_EOS)
    (event,) = requests(sub)
    assert answer.usage is not None
    assert (event["route"], event["model"], event["stream"], event["status"]) == ("chat", "chat", False, None)
    assert (event["promptTokens"], event["completionTokens"]) == (answer.usage.prompt_tokens, 5)
    assert event["errorCode"] is None and 0 < event["ttft"] <= event["duration"]
    assert event["tokensPerSecond"] > 0 and event["client"] is None


async def test_n_choices_count_their_prompt_once(engine: AsyncEngine) -> None:
    sub = engine.events.subscribe(["request"])
    answer = await engine.chat(model="chat", messages=USER, max_tokens=3, n=2, logit_bias=NO_EOS, seed=1)
    (event,) = requests(sub)
    assert answer.usage is not None and answer.usage.completion_tokens == 6
    assert (event["promptTokens"], event["completionTokens"]) == (answer.usage.prompt_tokens, 6)


async def test_a_stream_is_published_when_it_ends(engine: AsyncEngine) -> None:
    sub = engine.events.subscribe(["request"])
    stream = await engine.chat(model="chat", messages=USER, max_tokens=4, temperature=0, stream=True)
    chunks = [c async for c in stream]
    (event,) = requests(sub)
    assert chunks and (event["stream"], event["completionTokens"], event["errorCode"]) == (True, 4, None)


@pytest.mark.parametrize("route", ["chat", "completions"])
async def test_a_stream_left_early_is_published_at_once_as_cancelled(engine: AsyncEngine, route: str) -> None:
    sub = engine.events.subscribe(["request"])
    common: dict[str, Any] = {"model": "chat", "max_tokens": 3000, "logit_bias": NO_EOS, "stream": True}
    if route == "chat":
        long: Any = await engine.chat(messages=USER, **common)
    else:
        long = await engine.complete(prompt="count", **common)
    for _ in range(3):  # (a chat stream's first chunk only says who speaks)
        await long.__anext__()
    assert requests(sub) == []  # still running: nothing to say yet
    await long.aclose()
    (event,) = requests(sub)  # at once: closing the stream closes the generation
    assert (event["route"], event["stream"], event["errorCode"]) == (route, True, "CANCELLED")
    assert 1 <= event["completionTokens"] < 3000  # what it had generated when it stopped


async def test_refused_requests_say_why(engine: AsyncEngine) -> None:
    sub = engine.events.subscribe(["request"])
    with pytest.raises(ModelNotFoundError):
        await engine.chat(model="nope", messages=USER)
    with pytest.raises(Exception, match="not a chat"):
        await engine.chat(model="embed", messages=USER)
    got = requests(sub)
    assert [(e["model"], e["errorCode"]) for e in got] == [
        ("nope", "MODEL_NOT_FOUND"),
        ("embed", "INVALID_REQUEST"),
    ]
    assert all(e["ttft"] is None and e["completionTokens"] == 0 for e in got)


async def test_embeddings_count_their_prompt_tokens(engine: AsyncEngine) -> None:
    sub = engine.events.subscribe(["request"])
    result = await engine.embed(model="embed", input=["one two three", "four"])
    (event,) = requests(sub)
    assert (event["route"], event["model"], event["promptTokens"]) == (
        "embeddings",
        "embed",
        result.usage.prompt_tokens,
    )
    assert event["completionTokens"] == 0 and event["errorCode"] is None
