"""Prefix reuse in the LLM slots: what is served from the KV cache, and that it changes no answer.

Each test compares against a cold run (the model unloaded and loaded again, so no slot holds
anything): reuse must save decoding and never change the greedy output.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from claracore import AsyncEngine
from tests.tiny_models import NO_EOS

SYSTEM = " ".join(["you are a test and the sun is red and the sea is blue"] * 6)


def conversation(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


@pytest.fixture
async def engine(tiny_llama_4k: Path) -> Any:
    eng = AsyncEngine(
        {"models": [{"name": "m", "model": str(tiny_llama_4k), "context_length": 1024, "parallel": 2}]}
    )
    yield eng
    await eng.close()


async def answer(
    engine: AsyncEngine, messages: list[dict[str, str]], max_tokens: int = 16, n: int = 1
) -> Any:
    return await engine.chat(
        model="m", messages=messages, temperature=0, max_tokens=max_tokens, logit_bias=NO_EOS, n=n
    )


def cached(reply: Any) -> int:
    return int(reply.usage.prompt_tokens_details["cached_tokens"])


async def cold(engine: AsyncEngine, messages: list[dict[str, str]]) -> str:
    """The answer with nothing cached: the model is reloaded first."""
    await engine.unload("m")
    reply = await answer(engine, messages)
    assert cached(reply) == 0
    return str(reply.choices[0].message.content)


async def test_a_follow_up_turn_reuses_its_slot_and_answers_as_a_cold_run(engine: AsyncEngine) -> None:
    first = await answer(engine, conversation("hello world"))
    follow = [
        *conversation("hello world"),
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "yes no cat"},
    ]
    second = await answer(engine, follow)
    assert cached(second) >= first.usage.prompt_tokens  # the whole first exchange came from the cache
    assert second.choices[0].message.content == await cold(engine, follow)


async def test_a_prefix_held_by_a_busy_slot_is_shared_into_another(engine: AsyncEngine) -> None:
    """A shared system prompt cached in slot 0, which is busy, still serves a request in slot 1."""
    await answer(engine, conversation("hello world"))  # slot 0 now holds the system prompt
    busy = await engine.chat(
        model="m",
        messages=conversation("red dog"),  # takes slot 0: the longest common prefix
        temperature=0,
        max_tokens=900,
        logit_bias=NO_EOS,
        stream=True,
    )
    try:
        await anext(busy)  # admitted and decoding
        other = await answer(engine, conversation("blue sea"))  # only slot 1 is free
        assert cached(other) > 0.8 * other.usage.prompt_tokens, other.usage
    finally:
        await busy.aclose()  # type: ignore[attr-defined]
    assert other.choices[0].message.content == await cold(engine, conversation("blue sea"))


async def test_concurrent_requests_with_one_system_prompt_answer_as_cold_runs(engine: AsyncEngine) -> None:
    questions = ["hello world", "red dog", "blue sea", "the cat"]
    warm = await asyncio.gather(*(answer(engine, conversation(q)) for q in questions))
    assert sum(cached(r) for r in warm) > 0  # later ones found the system prompt in a slot
    for question, reply in zip(questions, warm, strict=True):
        assert reply.choices[0].message.content == await cold(engine, conversation(question))


async def test_n_greedy_choices_copy_the_prompt_into_slots_that_held_other_text(engine: AsyncEngine) -> None:
    """Siblings take a copy of the primary's prompt KV: whether their slots were empty or held
    other conversations, every greedy choice answers as the single cold run does. The prompt is
    short, so a copy that missed even one position would change the answer."""
    short = [{"role": "user", "content": "sun"}]
    fresh = await answer(engine, short, n=2)
    await asyncio.gather(answer(engine, conversation("red dog")), answer(engine, conversation("the cat")))
    reused = await answer(engine, short, n=2)
    expected = [await cold(engine, short)] * 2
    assert [c.message.content for c in fresh.choices] == expected
    assert [c.message.content for c in reused.choices] == expected
