"""The event bus over Server-Sent Events: `GET /api/events` and `GET /api/logs?follow=1`.

Each event is framed with its `id:` (the bus's), its `event:` name (the type) and one `data:` line,
`{"type": T, "data": {...}}` with `data` an object. Two names are the stream's own rather than bus
types: `snapshot` (first, on a fresh connection: the state a client needs before live events make
sense) and `missed` (`{"count": N}` events this subscriber's queue had to drop because it read too
slowly). After `heartbeat` seconds of quiet a comment line is sent, so proxies and clients can
tell a quiet stream from a dead one.

A reconnect with `Last-Event-ID` gets the events after that id from the bus's ring buffer, when the
ring still holds all of them; otherwise (the ring moved on, or the server restarted and ids began
again) it gets a fresh snapshot. The subscription is taken before the snapshot or the replay is
read, and events already covered are skipped by id, so nothing falls between them.

Unlike `server.sse` (chat streams), these streams are long-lived and mostly idle; Starlette cancels
the generator as soon as the client disconnects, and its `finally` drops the subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from claracore.engine import AsyncEngine
from claracore.events import Event, EventBus, Subscription

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
HEARTBEAT = b": heartbeat\n\n"
RETRY = b"retry: 3000\n\n"  # how long a browser's EventSource waits before reconnecting
QUEUE = 1000  # events one subscriber may fall behind by before the oldest are dropped


def frame(event_type: str, data: Any, event_id: int | None = None) -> bytes:
    payload = json.dumps({"type": event_type, "data": data}, separators=(",", ":"), default=str)
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event_type}\ndata: {payload}\n\n".encode()


def replay(bus: EventBus, last_id: int, types: Iterable[str] | None) -> list[Event] | None:
    """The events after `last_id` when the ring still holds every one of them, else None."""
    newest = bus.last_id
    if last_id > newest:
        return None  # ids from an earlier run of the server
    after = bus.since(last_id)
    if after and after[0].id != last_id + 1:
        return None  # the ring has moved past some of them
    if not after and newest != last_id:
        return None
    wanted = None if types is None else set(types)
    return [e for e in after if wanted is None or e.type in wanted]


async def live(
    sub: Subscription, *, seen: int, heartbeat: float, keep: Callable[[Event], bool] | None = None
) -> AsyncIterator[bytes]:
    """The subscription's events after id `seen` (those `keep` accepts), with `missed` notices and
    heartbeats, until the subscription closes."""
    while True:
        event = await sub.next(timeout=heartbeat)
        missed = sub.take_missed()
        if missed:
            yield frame("missed", {"count": missed})
        if event is None:
            if sub.closed:
                return
            yield HEARTBEAT
        elif event.id > seen and (keep is None or keep(event)):
            yield frame(event.type, event.data, event.id)


@contextlib.contextmanager
def _subscribed(
    bus: EventBus, types: Iterable[str] | None, streams: set[Subscription]
) -> Iterator[Subscription]:
    """A subscription listed in `streams` (so a shutdown can end it) until the stream ends."""
    sub = bus.subscribe(types, maxsize=QUEUE)
    streams.add(sub)
    try:
        yield sub
    finally:
        streams.discard(sub)
        sub.close()


async def events(
    bus: EventBus,
    types: frozenset[str] | None,
    *,
    last_id: int | None,
    snapshot: Callable[[], dict[str, Any] | None],
    heartbeat: float,
    streams: set[Subscription],
) -> AsyncIterator[bytes]:
    """`GET /api/events`: a snapshot (or the replay after `last_id`), then live events."""
    with _subscribed(bus, types, streams) as sub:
        yield RETRY
        missed = None if last_id is None else replay(bus, last_id, types)
        if missed is None:
            seen = bus.last_id
            state = await asyncio.to_thread(snapshot)  # model listings may read GGUF headers
            if state is not None:
                yield frame("snapshot", state, seen)
        else:
            seen = max([last_id or 0, *(e.id for e in missed)])
            for e in missed:
                yield frame(e.type, e.data, e.id)
        async for chunk in live(sub, seen=seen, heartbeat=heartbeat):
            yield chunk


async def follow_logs(
    bus: EventBus,
    stored: Callable[[], list[dict[str, Any]]],
    keep: Callable[[dict[str, Any]], bool],
    *,
    heartbeat: float,
    streams: set[Subscription],
) -> AsyncIterator[bytes]:
    """`GET /api/logs?follow=1`: the stored lines that match, then new ones as they are logged."""
    with _subscribed(bus, ["log"], streams) as sub:
        yield RETRY
        seen = bus.last_id
        for line in await asyncio.to_thread(stored):  # every line up to `seen` is stored by then
            yield frame("log", line)
        async for chunk in live(sub, seen=seen, heartbeat=heartbeat, keep=lambda e: keep(e.data)):
            yield chunk


#: Which part of the snapshot each event type asks for.
_SNAPSHOT = {
    "model": "models",
    "log": "logs",
    "download": "downloads",
    "setup": "setup",
    "metrics": "metrics",
}
LOG_TAIL = 100  # log lines in a snapshot


def snapshot(
    engine: AsyncEngine,
    setup_progress: Callable[[], dict[str, Any]],
    downloads: Callable[[], list[dict[str, Any]]],
    types: frozenset[str] | None,
) -> dict[str, Any] | None:
    """What a new subscriber needs first, for the types it asked for (None when nothing applies):
    every model with its state (and load progress), the last log lines, the downloads not over,
    the setup's progress, the current metrics."""
    wanted = _SNAPSHOT.keys() if types is None else types
    monitor = engine.monitor

    def models() -> list[dict[str, Any]]:
        progress = monitor.load_progress()
        listed = [m.model_dump(mode="json") for m in engine.models().data]
        return [{**m, "progress": progress[m["id"]]} if m["id"] in progress else m for m in listed]

    parts: dict[str, Callable[[], Any]] = {
        "model": models,
        "log": lambda: monitor.logs.recent(LOG_TAIL),
        "download": downloads,
        "setup": setup_progress,
        "metrics": monitor.metrics,
    }
    state = {_SNAPSHOT[t]: parts[t]() for t in _SNAPSHOT if t in wanted}
    return state or None
