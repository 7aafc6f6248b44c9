"""The real SmolLM2 behind the HTTP server, driven by the official async openai client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.server import running_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def url(smollm2: Path) -> Iterator[str]:
    config = {
        "models": [
            {
                "name": "smollm2",
                "model": str(smollm2),
                "aliases": ["default"],
                "context_length": 2048,
                "parallel": 4,
            }
        ]
    }
    with running_server(config) as (base, _engine):
        yield base + "/v1"


async def test_answers_and_streams_concurrently(url: str) -> None:
    async with openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0) as client:
        r = await client.chat.completions.create(
            model="default",
            temperature=0,
            max_tokens=30,
            messages=[
                {"role": "user", "content": "What is the capital city of France? Answer in one sentence."}
            ],
        )
        assert "Paris" in (r.choices[0].message.content or "")

        order: list[str] = []

        async def stream(tag: str) -> None:
            s = await client.chat.completions.create(
                model="smollm2",
                max_tokens=40,
                temperature=0.7,
                seed=2,
                stream=True,
                messages=[{"role": "user", "content": f"Write about {tag}."}],
            )
            async for chunk in s:
                if chunk.choices and chunk.choices[0].delta.content:
                    order.append(tag)

        await asyncio.gather(stream("rivers"), stream("forests"))
        switches = sum(1 for a, b in zip(order, order[1:], strict=False) if a != b)
        assert switches > 10, order  # both streams advanced together, token by token


def test_prompt_too_long_is_400(url: str) -> None:
    with openai.OpenAI(base_url=url, api_key="x", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(
                model="smollm2", messages=[{"role": "user", "content": "word " * 3000}]
            )
        body: Any = info.value.body
        assert body["code"] == "CONTEXT_LENGTH_EXCEEDED" and body["param"] == "messages"
