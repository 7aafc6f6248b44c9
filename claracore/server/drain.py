"""Draining before a hard restart: open streams end properly, requests in flight finish.

A hard restart replaces the process image (exec), which cuts every open connection. Before that,
`Drain.drain` stops taking new requests (503 SERVER_RESTARTING with Retry-After, which clients
such as OpenAI's retry, reaching the new process on the same socket), tells every open event
stream to end (the SSE framer sends an error event and `[DONE]` at its next chunk instead of
going silent), and waits, up to a deadline, for the requests in flight to finish.

The stop signal reaches the SSE framer through a context variable that this middleware sets for
each request, so neither the routes nor the framer need the app's state.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Coroutine
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claracore.server.errors import envelope

log = logging.getLogger("claracore.server")
STREAM_GRACE_S = 2.0  # how long a drain waits for an event stream that has nothing to send

_CLOSING: contextvars.ContextVar[asyncio.Event | None] = contextvars.ContextVar(
    "claracore_closing", default=None
)


def closing() -> asyncio.Event | None:
    """The Event set when the server is going away (None outside a request of a drained app)."""
    return _CLOSING.get()


class Draining:
    """The app's drain state: requests in flight (event streams among them), and whether the
    server is going away."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.streaming = 0  # of those, responses that are event streams
        self.draining = False
        self._closing: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def event(self) -> asyncio.Event:
        if self._closing is None:
            self._closing = asyncio.Event()
        return self._closing

    async def drain(self, timeout: float) -> int:
        """Refuse new requests, end open streams, and wait up to `timeout` seconds for the
        requests in flight; returns how many were still running when it stopped waiting.

        A generating stream ends at its next chunk; an idle one (an event feed with nothing to
        say) is given STREAM_GRACE_S, not the whole timeout: its client reconnects anyway.
        """
        self.draining = True
        self.event().set()
        started = time.monotonic()
        while self.in_flight and time.monotonic() < started + timeout:
            streams_done = not self.streaming or time.monotonic() > started + STREAM_GRACE_S
            if self.in_flight == self.streaming and streams_done:
                break
            await asyncio.sleep(0.05)
        if self.in_flight:
            log.warning("hard restart: %d request(s) still open are cut", self.in_flight)
        return self.in_flight

    def keep(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task that outlives the request which started it (kept referenced)."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class DrainMiddleware:
    """Counts HTTP requests in `draining` and refuses new ones once it drains."""

    def __init__(self, app: ASGIApp, draining: Draining) -> None:
        self.app = app
        self.state = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.state.draining:
            request = Request(scope)
            response = envelope(
                request, 503, "the server is restarting; retry in a moment", "SERVER_RESTARTING"
            )
            await response(scope, receive, send)
            return
        token = _CLOSING.set(self.state.event())
        state = self.state
        stream = False

        async def sending(message: Message) -> None:
            nonlocal stream
            if message["type"] == "http.response.start":
                types = [v for k, v in message.get("headers", []) if k.lower() == b"content-type"]
                if types and types[0].startswith(b"text/event-stream"):
                    stream = True
                    state.streaming += 1
            await send(message)

        state.in_flight += 1
        try:
            await self.app(scope, receive, sending)
        finally:
            state.in_flight -= 1
            if stream:
                state.streaming -= 1
            _CLOSING.reset(token)
