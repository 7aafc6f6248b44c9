"""What the server did: `GET /api/activity` (stored requests) and `GET /api/logs` (`?follow=1`: SSE)."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from claracore.manage.activity import matches
from claracore.protocol.monitor import ActivityQuery, LogsQuery
from claracore.server import event_stream
from claracore.server.deps import StateDep, require_key
from claracore.server.openapi import SSE_EVENTS, answers

router = APIRouter(prefix="/api", dependencies=[Depends(require_key)])


@router.get("/activity")
async def activity(query: Annotated[ActivityQuery, Query()], state: StateDep) -> dict[str, Any]:
    """The stored requests, newest first: `items`, `page`, `pageSize`, `total`, `pages`."""
    return await run_in_threadpool(state.activity.requests, query)


@router.get("/logs", response_model=None, responses=answers(None, **{"application/json": {}}, **SSE_EVENTS))
async def logs(query: Annotated[LogsQuery, Query()], state: StateDep) -> dict[str, Any] | StreamingResponse:
    """The newest `limit` stored lines (level at least `level`, from `source`, containing `q`),
    oldest first; with `follow=1` as Server-Sent Events that go on with new lines."""
    if not query.follow:
        return {"items": await run_in_threadpool(state.activity.lines, query)}
    stream = event_stream.follow_logs(
        state.engine.events,
        functools.partial(state.activity.lines, query),
        functools.partial(matches, query),
        heartbeat=state.engine.config.monitoring.heartbeat,
        streams=state.streams,
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=event_stream.HEADERS)
