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
from starlette.types import ASGIApp, Receive, Scope, Send

from claracore.server.errors import envelope

log = logging.getLogger("claracore.server")

_CLOSING: contextvars.ContextVar[asyncio.Event | None] = contextvars.ContextVar(
    "claracore_closing", default=None
)


def closing() -> asyncio.Event | None:
    """The Event set when the server is going away (None outside a request of a drained app)."""
    return _CLOSING.get()


class Draining:
    """The app's drain state: requests in flight, and whether the server is going away."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.draining = False
        self._closing: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def event(self) -> asyncio.Event:
        if self._closing is None:
            self._closing = asyncio.Event()
        return self._closing

    async def drain(self, timeout: float) -> int:
        """Refuse new requests, end open streams, and wait up to `timeout` seconds for the
        requests in flight; returns how many were still running at the deadline."""
        self.draining = True
        self.event().set()
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.in_flight:
            log.warning(
                "hard restart: %d request(s) still running after %.0f s are cut", self.in_flight, timeout
            )
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
        self.state.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.state.in_flight -= 1
            _CLOSING.reset(token)
