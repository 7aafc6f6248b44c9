"""The OpenAI-compatible routes: chat, completions, models."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from claracore.protocol import openai as p
from claracore.server.deps import EngineDep, require_key
from claracore.server.openapi import SSE_EVENTS, answers
from claracore.server.sse import sse_response

log = logging.getLogger("claracore.server")

router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])


def _log(route: str, model: str, started: float, usage: p.Usage | None, outcome: str = "ok") -> None:
    """One line per request: what ran, how many tokens, how fast."""
    took = time.perf_counter() - started
    if usage is None:
        log.info("%s model=%s %.2fs %s", route, model, took, outcome)
        return
    rate = usage.completion_tokens / took if took > 0 else 0.0
    log.info(
        "%s model=%s prompt=%d completion=%d %.2fs %.1f tok/s %s",
        route,
        model,
        usage.prompt_tokens,
        usage.completion_tokens,
        took,
        rate,
        outcome,
    )


def _respond(
    route: str, model: str, started: float, result: BaseModel | AsyncIterator[BaseModel]
) -> Response:
    """A whole answer as JSON, or a stream as SSE; either way one log line when it is done."""
    if isinstance(result, BaseModel):
        _log(route, model, started, getattr(result, "usage", None))
        return JSONResponse(result.model_dump(mode="json"))

    def done(last: BaseModel | None, outcome: str) -> None:
        _log(route, model, started, getattr(last, "usage", None), outcome)

    return sse_response(result, done)


@router.post("/chat/completions", responses=answers(p.ChatCompletion, **SSE_EVENTS))
async def chat_completions(request: p.ChatCompletionRequest, eng: EngineDep) -> Response:
    started = time.perf_counter()
    return _respond("chat", request.model, started, await eng.chat(request))


@router.post("/completions", responses=answers(p.Completion, **SSE_EVENTS))
async def completions(request: p.CompletionRequest, eng: EngineDep) -> Response:
    started = time.perf_counter()
    return _respond("completion", request.model, started, await eng.complete(request))


@router.get("/models")
async def list_models(eng: EngineDep) -> p.ModelList:
    return eng.models()


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, eng: EngineDep) -> p.ModelInfo:
    return eng.model(model_id)


@router.post("/embeddings", responses=answers(p.EmbeddingList))
async def embeddings(request: p.EmbeddingRequest, eng: EngineDep) -> Response:
    return JSONResponse((await eng.embed(request)).model_dump(mode="json"))


@router.post("/rerank", responses=answers(p.RerankResponse))
@router.post("/reranking", responses=answers(p.RerankResponse))
async def rerank(request: p.RerankRequest, eng: EngineDep) -> Response:
    return JSONResponse((await eng.rerank(request)).model_dump(mode="json", exclude_none=True))
