"""Embedding and rerank requests turned into runtime calls, and results into OpenAI/Jina shapes.

Runtimes block (they own a llama context behind a lock), so calls run in a worker thread and the
event loop stays free. An embedding model asked to rerank falls back to cosine similarity
between query and documents, and says so in the response (`method`).
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import numpy as np

from claracore.errors import InvalidRequestError
from claracore.pool.pool import Lease
from claracore.protocol import openai as p


def _tokens(runtime: Any, raw: str | list[str] | list[int] | list[list[int]]) -> list[list[int]]:
    if isinstance(raw, str):
        items: list[Any] = [raw]
    elif raw and all(isinstance(x, int) for x in raw):
        items = [list(raw)]
    else:
        items = list(raw)
    if not items:
        raise InvalidRequestError("input is empty", param="input")
    out = []
    for i, item in enumerate(items):
        tokens = runtime.tokenize(item) if isinstance(item, str) else [int(t) for t in item]
        if not tokens or (isinstance(item, str) and not item):
            raise InvalidRequestError(f"input[{i}] is empty", param=f"input.{i}")
        out.append(tokens)
    return out


async def embed(lease: Lease, request: p.EmbeddingRequest) -> p.EmbeddingList:
    """Embeddings of every input, decoded together in batches by the runtime."""
    runtime: Any = lease.runtime
    tokens = _tokens(runtime, request.input)
    vectors = np.asarray(await asyncio.to_thread(runtime.embed, tokens, normalize=True), dtype=np.float32)
    if request.dimensions is not None:
        if request.dimensions > vectors.shape[1]:
            raise InvalidRequestError(
                f"dimensions is {request.dimensions}; this model's vectors have {vectors.shape[1]}",
                param="dimensions",
            )
        # Truncate and renormalise, as OpenAI does for shortened embeddings.
        vectors = vectors[:, : request.dimensions]
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    data = [
        p.Embedding(index=i, embedding=_encode(v, request.encoding_format)) for i, v in enumerate(vectors)
    ]
    n = sum(len(t) for t in tokens)
    return p.EmbeddingList(
        data=data, model=request.model, usage=p.EmbeddingUsage(prompt_tokens=n, total_tokens=n)
    )


def _encode(vector: np.ndarray, fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


async def rerank(lease: Lease, request: p.RerankRequest) -> p.RerankResponse:
    """Documents sorted by relevance to the query (cross-encoder, or cosine for embedding models)."""
    runtime: Any = lease.runtime
    texts = [d if isinstance(d, str) else d.text for d in request.documents]
    for i, text in enumerate(texts):
        if not text:
            raise InvalidRequestError(f"documents[{i}] is empty", param=f"documents.{i}")
    if runtime.kind == "reranker":
        scores = await asyncio.to_thread(runtime.score, request.query, texts)
        method = "cross-encoder"
        n_tokens = 0
    else:
        tokens = _tokens(runtime, [request.query, *texts])
        vectors = np.asarray(await asyncio.to_thread(runtime.embed, tokens, normalize=True), dtype=np.float32)
        scores = [float(x) for x in vectors[1:] @ vectors[0]]
        method = "cosine"
        n_tokens = sum(len(t) for t in tokens)
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)[: request.top_n or len(scores)]
    results = [
        p.RerankResult(
            index=i,
            relevance_score=float(scores[i]),
            document=p.RerankDocument(text=texts[i]) if request.return_documents else None,
        )
        for i in order
    ]
    return p.RerankResponse(
        id=f"rerank-{uuid.uuid4().hex}",
        model=request.model,
        results=results,
        usage=p.EmbeddingUsage(prompt_tokens=n_tokens, total_tokens=n_tokens),
        method=method,  # type: ignore[arg-type]
    )
