"""One inference request's record: who asked what, how many tokens, how fast, how it ended.

Two layers fill it without knowing each other. The HTTP server opens a record per request (route,
client address, status) and binds it to the request's context; the engine and the serving layer
find it there and fill in the model, the tokens and the time to first token. A Python caller has
no HTTP layer, so the engine opens the record itself and publishes it when the work ends.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone

from claracore.protocol.events import RequestEvent


def iso_time(unix: float) -> str:
    """`2025-01-01T12:00:00.123Z`: the spec's timestamps, with milliseconds, sortable as text."""
    moment = datetime.fromtimestamp(unix, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class RequestRecord:
    """Filled in as the request goes; `event()` is the "request" event (and the activity row)."""

    route: str
    client: str | None = None
    owned: bool = False  # opened by the engine (a Python caller): the engine publishes it
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    started_at: float = field(default_factory=time.time)  # Unix time
    started: float = field(default_factory=time.perf_counter)
    model: str = ""
    stream: bool = False
    # perf_counter() when the worker emitted the first token and the last choice's end: stamped
    # where the tokens are made, since the event loop may read several at once.
    first_token: float | None = None
    last_token: float | None = None
    ended: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    streamed: int = 0  # pieces of text emitted: the token count of a generation cancelled midway
    cached_tokens: int = 0
    status: int | None = None
    error_code: str | None = None
    published: bool = False

    def end(self) -> None:
        if self.ended is None:
            self.ended = time.perf_counter()

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.started

    @property
    def duration(self) -> float:
        return (self.ended if self.ended is not None else time.perf_counter()) - self.started

    @property
    def tokens_per_second(self) -> float | None:
        """Generation speed: the tokens after the first over the time from the first to the end."""
        if self.first_token is None or self.last_token is None or self.completion_tokens < 2:
            return None
        span = self.last_token - self.first_token
        return (self.completion_tokens - 1) / span if span > 0 else None

    @property
    def ok(self) -> bool:
        return self.error_code is None and (self.status is None or self.status < 400)

    def event(self) -> RequestEvent:
        ttft, tps = self.ttft, self.tokens_per_second
        return {
            "id": self.id,
            "time": iso_time(self.started_at),
            "route": self.route,
            "model": self.model,
            "client": self.client,
            "stream": self.stream,
            "promptTokens": self.prompt_tokens,
            "completionTokens": self.completion_tokens,
            "cachedTokens": self.cached_tokens,
            "ttft": None if ttft is None else round(ttft, 4),
            "duration": round(self.duration, 4),
            "tokensPerSecond": None if tps is None else round(tps, 2),
            "status": self.status,
            "errorCode": self.error_code,
        }


_current: ContextVar[RequestRecord | None] = ContextVar("claracore_request", default=None)


def current() -> RequestRecord | None:
    """The record the HTTP layer opened for the request this code runs for, if any."""
    return _current.get()


@contextmanager
def bound(record: RequestRecord | None) -> Iterator[RequestRecord | None]:
    """Make `record` the current one while the block runs (the HTTP layer, per request)."""
    token = _current.set(record)
    try:
        yield record
    finally:
        _current.reset(token)
