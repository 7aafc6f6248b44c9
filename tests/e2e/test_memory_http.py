"""A model that cannot fit the memory budget, over real HTTP: a 503 with the figures, never a 500.

A 500 says "our bug"; a 503 with INSUFFICIENT_MEMORY and the needed/available bytes says "this
model does not fit this budget", which a client or a person can act on. The model that does fit
keeps serving.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from claracore.config import ModelSpec
from claracore.pool import loaders
from tests.e2e.server import running_server

USER = [{"role": "user", "content": "hello"}]
GIB = 2**30


@pytest.fixture(scope="module")
def server(tiny_llama: Path, tiny_llama_4k: Path) -> Iterator[tuple[str, Any]]:
    small = {"name": "small", "model": str(tiny_llama), "context_length": 128}
    big = {"name": "big", "model": str(tiny_llama_4k), "context_length": 4096, "parallel": 4}
    costs = [loaders.recipe(ModelSpec(**m), gpu_offload=False).estimate.ram_bytes for m in (small, big)]
    assert costs[0] < costs[1]
    budget = (costs[0] + costs[1]) / 2  # the small one fits, the big one never does
    config = {"memory": {"ram_gb": budget / GIB, "vram_gb": 0}, "models": [small, big]}
    with running_server(config) as running:
        yield running


def test_chat_with_a_model_too_big_for_the_budget_is_a_503_with_figures(server: tuple[str, Any]) -> None:
    with openai.OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0) as client:
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="big", messages=USER, max_tokens=2)  # type: ignore[arg-type]
        assert info.value.status_code == 503
        body = info.value.body
        assert isinstance(body, dict) and body["code"] == "INSUFFICIENT_MEMORY", body
        assert body["type"] == "service_unavailable_error"
        assert "does not fit" in body["message"] and "big" in body["message"]
        assert body["details"]["needed"]["ram"] > body["details"]["available"]["ram"] > 0
        # the model that fits is untouched
        r = client.chat.completions.create(model="small", messages=USER, max_tokens=2, temperature=0)  # type: ignore[arg-type]
        assert r.choices[0].message.content is not None


def test_loading_it_through_the_management_api_is_a_503_too(server: tuple[str, Any]) -> None:
    r = httpx.post(server[0] + "/api/models/big/load", timeout=30)
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["code"] == "INSUFFICIENT_MEMORY" and body["details"]["modelId"] == "big"
    assert "does not fit" in body["error"]
    listing = {m["id"]: m["state"] for m in httpx.get(server[0] + "/v1/models").json()["data"]}
    assert listing["big"] == "unloaded"  # not "failed": a bigger budget or a smaller config fixes it
