"""The prompt cache with the real SmolLM2-135M-Instruct: real chat turns, real state blobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
import pytest

from claracore import AsyncEngine

pytestmark = pytest.mark.integration

SYSTEM = {"role": "system", "content": "You are a concise assistant. Answer in one or two sentences."}
TOPICS = ["the tides", "bread dough"]


async def conversations(smollm2: Path, cache_mb: int) -> tuple[list[str], list[tuple[int, int]], Any]:
    """Two conversations of two turns on one slot: each second turn finds its slot taken."""
    spec = {"name": "smol", "model": str(smollm2), "context_length": 1024, "parallel": 1, "threads": 2}
    engine = AsyncEngine({"models": [{**spec, "prompt_cache_mb": cache_mb}]})
    chats: list[list[dict[str, str]]] = [[SYSTEM] for _ in TOPICS]
    texts: list[str] = []
    usage: list[tuple[int, int]] = []  # (prompt tokens, cached tokens) of each second turn
    try:
        for turn in range(2):
            for chat, topic in zip(chats, TOPICS, strict=True):
                chat.append({"role": "user", "content": f"What is {topic}?" if turn == 0 else "Why?"})
                r = await engine.chat(model="smol", messages=chat, max_tokens=8, temperature=0)
                text = r.choices[0].message.content or ""
                chat.append({"role": "assistant", "content": text})
                texts.append(text)
                if turn:
                    cached = (r.usage.prompt_tokens_details or {})["cached_tokens"]
                    usage.append((r.usage.prompt_tokens, cached))
        return texts, usage, engine.model("smol").prompt_cache
    finally:
        await engine.close()


async def test_returning_conversations_are_restored_and_answer_the_same(smollm2: Path) -> None:
    plain, plain_usage, _ = await conversations(smollm2, 0)
    cached, cached_usage, stats = await conversations(smollm2, 64)
    assert cached == plain
    assert stats.hits == len(TOPICS) and stats.failures == 0
    for (prompt, hit), (_, shared) in zip(cached_usage, plain_usage, strict=True):
        # All but the new question (and the answer's last token) came from the cache; without it,
        # only what the conversations share (the system prompt) was reused.
        assert prompt - hit <= 16 < prompt - shared


async def test_shrinking_the_cache_returns_its_memory_at_once(smollm2: Path) -> None:
    engine = AsyncEngine(
        {"models": [{"name": "smol", "model": str(smollm2), "context_length": 1024, "parallel": 1}]}
    )
    try:
        for n in range(4):
            messages = [SYSTEM, {"role": "user", "content": f"Tell me {n + 2} facts about {TOPICS[n % 2]}."}]
            await engine.chat(model="smol", messages=messages, max_tokens=16)
        lease = await engine.pool.acquire("smol")
        rt: Any = lease.runtime
        lease.release()
        held = rt.prompt_cache_stats().bytes
        assert held > 2 * 2**20  # three conversations of SmolLM2's 23 KB per token
        process = psutil.Process()
        before = process.memory_info().rss
        rt.set_prompt_cache_limit(0)
        after = process.memory_info().rss
        assert before - after >= 0.9 * held
    finally:
        await engine.close()
