"""Embeddings, reranking and speech over real HTTP, with the official openai client and httpx."""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from tests.e2e.server import running_server


@pytest.fixture(scope="module")
def server(tiny_bert: Path, tiny_rerank: Path) -> Iterator[tuple[str, Any]]:
    config = {
        "max_upload_mb": 0.01,  # 10 KB: small enough to test the upload limit
        "models": [
            {"name": "embed", "model": str(tiny_bert)},
            {"name": "rank", "model": str(tiny_rerank)},
        ],
    }
    with running_server(config) as running:
        yield running


@pytest.fixture
def client(server: tuple[str, Any]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server[0] + "/v1", api_key="x", max_retries=0) as c:
        yield c


def test_types_are_inferred_from_the_files(client: openai.OpenAI) -> None:
    kinds = {m.id: m.model_dump()["type"] for m in client.models.list().data}
    assert kinds == {"embed": "embedding", "rank": "reranker"}


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    texts = ["the cat", "a dog is red", "hello world"]
    floats = client.embeddings.create(model="embed", input=texts)
    assert [d.index for d in floats.data] == [0, 1, 2]
    vectors = np.array([d.embedding for d in floats.data])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert floats.usage.prompt_tokens > 3
    b64 = client.embeddings.create(model="embed", input=texts, encoding_format="base64")
    decoded = np.array([np.frombuffer(base64.b64decode(d.embedding), "<f4") for d in b64.data])  # type: ignore[arg-type]
    assert np.allclose(decoded, vectors, atol=1e-6)


def test_embedding_dimensions_and_token_input(client: openai.OpenAI) -> None:
    short = client.embeddings.create(model="embed", input="the cat", dimensions=8)
    assert len(short.data[0].embedding) == 8
    assert np.linalg.norm(short.data[0].embedding) == pytest.approx(1.0, abs=1e-5)
    tokens = client.embeddings.create(model="embed", input=[[2, 10, 11, 3]])
    assert len(tokens.data) == 1
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="embed", input="the cat", dimensions=100000)
    assert info.value.body["param"] == "dimensions"  # type: ignore[index]


def test_embedding_input_longer_than_context_names_the_index(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="embed", input=["the cat", "cat " * 500])
    assert info.value.body["param"] == "input.1"  # type: ignore[index]


@pytest.mark.parametrize("route", ["/v1/rerank", "/v1/reranking"])
def test_rerank_sorts_by_score(server: tuple[str, Any], route: str) -> None:
    docs = ["the cat", {"text": "a red dog"}, "hello world yes", "blue sea"]
    r = httpx.post(
        server[0] + route,
        json={"model": "rank", "query": "cat", "documents": docs, "return_documents": True},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert sorted(x["index"] for x in results) == [0, 1, 2, 3]
    scores = [x["relevance_score"] for x in results]
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == 4  # distinct, so the order below is the only right one
    # Each document scored on its own gives the score reported for its index.
    alone = {
        i: httpx.post(
            server[0] + route, json={"model": "rank", "query": "cat", "documents": [doc]}, timeout=30
        ).json()["results"][0]["relevance_score"]
        for i, doc in enumerate(docs)
    }
    for x in results:
        assert x["relevance_score"] == pytest.approx(alone[x["index"]], rel=1e-4, abs=1e-6)
    expected_order = sorted(alone, key=lambda i: -alone[i])
    assert [x["index"] for x in results] == expected_order
    texts = ["the cat", "a red dog", "hello world yes", "blue sea"]
    assert [x["document"]["text"] for x in results] == [texts[i] for i in expected_order]
    top = httpx.post(server[0] + route, json={"model": "rank", "query": "cat", "documents": docs, "top_n": 2})
    assert [x["index"] for x in top.json()["results"]] == [x["index"] for x in results[:2]]
    assert "document" not in top.json()["results"][0]


def test_rerank_with_an_embedding_model_uses_cosine(server: tuple[str, Any]) -> None:
    r = httpx.post(
        server[0] + "/v1/rerank",
        json={"model": "embed", "query": "the cat", "documents": ["the cat", "blue sea"]},
        timeout=30,
    )
    body = r.json()
    assert body["method"] == "cosine"
    assert body["results"][0]["index"] == 0 and body["results"][0]["relevance_score"] == pytest.approx(
        1.0, abs=1e-4
    )


def test_wrong_kinds_are_400(client: openai.OpenAI, server: tuple[str, Any]) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="embed", messages=[{"role": "user", "content": "x"}])
    r = httpx.post(server[0] + "/v1/rerank", json={"model": "rank", "query": "x", "documents": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "documents"


def _wav_bytes(seconds: float = 0.5, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.zeros(int(seconds * rate), np.int16).tobytes())
    return buf.getvalue()


def test_speech_routes_without_models_explain(server: tuple[str, Any]) -> None:
    r = httpx.post(server[0] + "/v1/audio/speech", json={"model": "tts-1", "input": "hi", "voice": "alloy"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "voice"
    files = {"file": ("a.wav", _wav_bytes(0.1), "audio/wav")}
    r = httpx.post(server[0] + "/v1/audio/transcriptions", files=files, data={"model": "embed"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    big = {"file": ("a.wav", _wav_bytes(1.0), "audio/wav")}  # 32 KB, over the 10 KB limit
    r = httpx.post(server[0] + "/v1/audio/transcriptions", files=big, data={"model": "embed"})
    assert (
        r.status_code == 413
        and r.json()["error"]["param"] == "file"
        and "limit" in r.json()["error"]["message"]
    )
    r = httpx.post(server[0] + "/v1/audio/transcriptions", files={"model": (None, "embed")})
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"
