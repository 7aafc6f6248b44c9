"""Live events and metrics: `GET /api/events` (SSE), `GET /api/metrics`, `GET /metrics` (Prometheus).

All three take the API key like every route, from the `Authorization` (or `X-API-Key`) header:
the UI reads the event stream with fetch, so no key ever goes into a URL.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from claracore.errors import InvalidRequestError
from claracore.events import EVENT_TYPES
from claracore.manage.downloads.records import FINAL
from claracore.monitor.prometheus import CONTENT_TYPE
from claracore.protocol.monitor import EventsQuery
from claracore.server import event_stream
from claracore.server.deps import EngineDep, StateDep, require_key
from claracore.server.openapi import SSE_EVENTS, answers
from claracore.server.state import AppState

router = APIRouter(dependencies=[Depends(require_key)])


def _last_event_id(request: Request) -> int | None:
    value = request.headers.get("last-event-id")
    if value is None or not value.strip():
        return None
    if not value.strip().isdigit():
        raise InvalidRequestError("Last-Event-ID must be an event id (a whole number)", param="Last-Event-ID")
    return int(value)


def _downloads(state: AppState) -> list[dict[str, Any]]:
    """The downloads not yet over (queued, running, verifying, paused or failed), as the API shows them."""
    return [d.view().model_dump(mode="json") for d in state.downloads.all() if d.state not in FINAL]


@router.get("/api/events", response_class=StreamingResponse, responses=answers(None, **SSE_EVENTS))
async def events(
    query: Annotated[EventsQuery, Query()], request: Request, state: StateDep
) -> StreamingResponse:
    """Server-Sent Events: a `snapshot` first (or, with `Last-Event-ID`, the events since it),
    then every event of the `types` asked for (default all), a heartbeat comment when quiet."""
    types = query.wanted()
    unknown = sorted((types or frozenset()) - set(EVENT_TYPES))
    if unknown:
        raise InvalidRequestError(
            f"unknown event type(s) {', '.join(unknown)}; valid types: {', '.join(EVENT_TYPES)}",
            param="types",
            details={"validTypes": list(EVENT_TYPES)},
        )
    engine = state.engine
    stream = event_stream.events(
        engine.events,
        types,
        last_id=_last_event_id(request),
        snapshot=functools.partial(
            event_stream.snapshot, engine, state.setup.progress, functools.partial(_downloads, state), types
        ),
        heartbeat=engine.config.monitoring.heartbeat,
        streams=state.streams,
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=event_stream.HEADERS)


@router.get("/api/metrics")
async def metrics(eng: EngineDep) -> dict[str, Any]:
    """cpu, memory, gpu and models as the spec shows them, plus every model's figures and the pool."""
    return await run_in_threadpool(eng.monitor.metrics)


@router.get(
    "/metrics",
    response_class=Response,
    responses=answers(None, **{"text/plain": {"schema": {"type": "string"}}}),
)
async def prometheus(eng: EngineDep) -> Response:
    """Prometheus's text format (scrape with a bearer token when a key is required)."""
    return Response(await run_in_threadpool(eng.monitor.prometheus.text), media_type=CONTENT_TYPE)
