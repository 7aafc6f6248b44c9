"""The real SmolLM2-135M-Instruct from PyPI: concurrency, structured output, memory release."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path
from typing import Any

import jsonschema
import psutil
import pytest

from claracore import AsyncEngine, Engine

pytestmark = pytest.mark.integration

QUESTION = [{"role": "user", "content": "What is the capital city of France? Answer in one sentence."}]


@pytest.fixture(scope="module")
def engine(smollm2: Path) -> Any:
    """One engine for the module, used from each test's own event loop (the engine is loop-agnostic)."""
    eng = AsyncEngine(
        {"models": [{"name": "smol", "model": str(smollm2), "context_length": 2048, "parallel": 4}]}
    )
    yield eng
    eng.pool.close()


async def test_answers_a_simple_question(engine: AsyncEngine) -> None:
    r = await engine.chat(model="smol", messages=QUESTION, temperature=0, max_tokens=30)
    assert "Paris" in (r.choices[0].message.content or "")
    assert r.choices[0].finish_reason == "stop"


async def test_concurrent_streams_interleave(engine: AsyncEngine) -> None:
    """Two streams both make progress before either ends: they share decode steps."""
    log: list[tuple[str, str]] = []

    async def consume(tag: str, topic: str) -> None:
        stream = await engine.chat(
            model="smol",
            messages=[{"role": "user", "content": f"Write about {topic}."}],
            max_tokens=48,
            temperature=0.7,
            seed=1,
            stream=True,
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].finish_reason:
                log.append((tag, "end"))
            elif chunk.choices and chunk.choices[0].delta.content:
                log.append((tag, "token"))

    await asyncio.gather(consume("a", "the sea"), consume("b", "mountains"))
    first_end = next(i for i, (_, kind) in enumerate(log) if kind == "end")
    before = {tag for tag, kind in log[:first_end] if kind == "token"}
    assert before == {"a", "b"}
    # and they really alternate rather than one finishing its run first
    switches = sum(1 for x, y in zip(log, log[1:], strict=False) if x[0] != y[0])
    assert switches > 10


async def test_json_schema_output_parses_and_validates(engine: AsyncEngine) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "country": {"type": "string", "maxLength": 40},
            "population_millions": {"type": "number"},
        },
        "required": ["city", "country", "population_millions"],
        "additionalProperties": False,
    }
    r = await engine.chat(
        model="smol",
        messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        temperature=0,
        max_tokens=120,
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
    )
    value = json.loads(r.choices[0].message.content or "")
    jsonschema.validate(value, schema)


async def test_same_seed_same_text(engine: AsyncEngine) -> None:
    kw: dict[str, Any] = {"model": "smol", "messages": QUESTION, "temperature": 0.9, "max_tokens": 24}
    a = await engine.chat(**kw, seed=7)
    b = await engine.chat(**kw, seed=7)
    assert a.choices[0].message.content == b.choices[0].message.content
    others = {(await engine.chat(**kw, seed=s)).choices[0].message.content for s in (1, 2, 3)}
    assert len(others | {a.choices[0].message.content}) > 1


async def test_multi_turn_decodes_only_the_new_turn(engine: AsyncEngine) -> None:
    first = await engine.chat(model="smol", messages=QUESTION, temperature=0, max_tokens=30)
    follow = QUESTION + [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "And of Italy?"},
    ]
    second = await engine.chat(model="smol", messages=follow, temperature=0, max_tokens=20)
    cached = (second.usage.prompt_tokens_details or {})["cached_tokens"]
    assert cached >= first.usage.prompt_tokens  # the whole first exchange came from the cache
    await engine.unload("smol")  # nothing cached now: the same turn read from scratch
    cold = await engine.chat(model="smol", messages=follow, temperature=0, max_tokens=20)
    assert (cold.usage.prompt_tokens_details or {})["cached_tokens"] == 0
    assert cold.choices[0].message.content == second.choices[0].message.content


async def test_n_greedy_choices_each_answer_as_one_does(engine: AsyncEngine) -> None:
    """The second choice decodes on a copy of the first's prompt KV: a real model (whose first
    token is an attention sink) answers differently if even one position were missing."""
    one = await engine.chat(model="smol", messages=QUESTION, temperature=0, max_tokens=20)
    await engine.unload("smol")  # empty slots for the siblings
    two = await engine.chat(model="smol", messages=QUESTION, temperature=0, max_tokens=20, n=2)
    assert [c.message.content for c in two.choices] == [one.choices[0].message.content] * 2
    # Slots that held plain completions (another first token) are cleared before the copy.
    openings = ["Paris is", "Rome was", "Snow falls", "Bread and"]
    await asyncio.gather(*(engine.complete(model="smol", prompt=p, max_tokens=4) for p in openings))
    two = await engine.chat(model="smol", messages=QUESTION, temperature=0, max_tokens=20, n=2)
    assert [c.message.content for c in two.choices] == [one.choices[0].message.content] * 2


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def test_unloading_returns_native_memory(smollm2: Path) -> None:
    """Loaded without mmap, the weights live in anonymous memory: unloading must give it back."""
    with Engine(
        {
            "models": [
                {
                    "name": "smol",
                    "model": str(smollm2),
                    "use_mmap": False,
                    "context_length": 2048,
                    "parallel": 2,
                }
            ]
        }
    ) as engine:
        engine.chat(model="smol", messages=QUESTION, max_tokens=2)  # warm up allocator and libraries
        engine.unload("smol")
        baseline = _rss()
        engine.load("smol")
        engine.chat(model="smol", messages=QUESTION, max_tokens=2)
        loaded = _rss()
        assert loaded - baseline > 60 * 2**20  # the model really is resident
        engine.unload("smol")
        after = _rss()
    assert after - baseline < 0.15 * (loaded - baseline), (baseline, loaded, after)


def test_sync_engine_streams_and_lists(smollm2: Path) -> None:
    with Engine(
        {"models": [{"name": "smol", "model": str(smollm2), "aliases": ["default"], "context_length": 1024}]}
    ) as engine:
        assert engine.models().data[0].state == "unloaded"
        chunks = list(
            engine.chat(model="default", messages=QUESTION, temperature=0, max_tokens=20, stream=True)
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert "Paris" in text
        info = engine.models().data[0]
        assert info.state == "loaded" and info.memory is not None and info.memory.ram_bytes > 90 * 2**20
        assert engine.unload_all() == ["smol"]
