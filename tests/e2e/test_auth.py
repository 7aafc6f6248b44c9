"""With an API key configured, the openai client and both headers; every route is checked in
test_auth_routes.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.server import running_server
from tests.tiny_models import NO_EOS

KEY = "s3cret-key"
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server(tiny_llama: Path) -> Iterator[tuple[str, Any]]:
    config = {"api_key": KEY, "models": [{"name": "tiny", "model": str(tiny_llama), "context_length": 256}]}
    with running_server(config) as running:
        yield running


def test_openai_client_without_and_with_the_key(server: tuple[str, Any]) -> None:
    with openai.OpenAI(base_url=server[0] + "/v1", api_key="wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
    with openai.OpenAI(base_url=server[0] + "/v1", api_key=KEY, max_retries=0) as good:
        r = good.chat.completions.create(
            model="tiny",
            messages=USER,
            max_tokens=2,
            temperature=0,
            logit_bias=NO_EOS,  # type: ignore[arg-type]
        )
        assert r.usage is not None and r.usage.completion_tokens == 2


def test_x_api_key_header_and_public_health(server: tuple[str, Any]) -> None:
    assert httpx.get(server[0] + "/v1/models", headers={"X-API-Key": KEY}).status_code == 200
    assert httpx.get(server[0] + "/health").status_code == 200
