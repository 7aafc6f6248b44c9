"""The drain before a hard restart: it waits for requests in flight, but an event stream with
nothing to send does not hold it for the whole timeout, and new requests are refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from claracore.server import drain
from claracore.server.drain import Draining, DrainMiddleware


async def test_a_drain_waits_for_requests_but_not_for_an_idle_event_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(drain, "STREAM_GRACE_S", 0.05)
    order: list[str] = []
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        kind = b"text/event-stream" if scope["path"] == "/events" else b"application/json"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]})
        if scope["path"] == "/events":
            await asyncio.Event().wait()  # an idle feed: never ends by itself
        await release.wait()
        await send({"type": "http.response.body", "body": b"{}"})
        order.append("request done")

    draining = Draining()
    middleware = DrainMiddleware(app, draining)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    def request(path: str) -> asyncio.Task[None]:
        scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
        return asyncio.create_task(middleware(scope, receive, send))

    feed, plain = request("/events"), request("/plain")
    while draining.in_flight < 2 or draining.streaming < 1:
        await asyncio.sleep(0)

    async def drained() -> int:
        left = await draining.drain(timeout=60)
        order.append("drained")
        return left

    waiting = asyncio.create_task(drained())
    for _ in range(20):  # give the drain every chance to return early
        await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.wait_for(waiting, 30) == 1  # the idle feed is left to be cut
    assert order == ["request done", "drained"]
    # Once draining, a new request is refused with 503 and Retry-After.
    sent.clear()
    await request("/plain")
    assert sent[0]["status"] == 503 and (b"retry-after", b"1") in sent[0]["headers"]
    feed.cancel()
    await asyncio.gather(feed, plain, return_exceptions=True)
