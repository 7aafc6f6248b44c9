"""The in-process event bus: model states, logs, requests, metrics, downloads, setup, config.

Anything may publish, from any thread (the LLM worker, a loader thread, the asyncio loop), and
publishing never blocks and never waits on a subscriber: each subscriber has a bounded queue,
and one that falls behind loses its oldest events and is told how many (`Subscription.missed`).
A ring buffer keeps the last events so a client that reconnects with `Last-Event-ID` can catch
up on what it missed. Observers (`observe`) are the one synchronous hook: they run in the
publisher's thread for every event, so what must not miss one (counters behind the metrics)
never depends on a queue; they must be O(1) and never block.

Events are `{"type": T, "data": {...}}` with `data` a JSON-ready dict (ids and timestamps are the
bus's). This module is layer 0: it imports nothing of ClaraCore, so every layer can publish.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: Every event type, in the order the API documents them.
EVENT_TYPES = ("model", "log", "request", "metrics", "download", "setup", "config")


@dataclass(frozen=True)
class Event:
    """One published event; `id` increases by one per event on a bus, from 1."""

    type: str
    data: dict[str, Any]
    id: int = 0
    time: float = 0.0  # Unix seconds

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "data": self.data}


@dataclass(eq=False)  # identity: two subscriptions are never the same one
class Subscription:
    """A subscriber's bounded queue. Iterate it (async) or call `get` (threads); close it when done.

    `missed` counts events dropped because the queue was full; `take_missed()` reads and resets
    it, so a consumer can tell its client "missed N".
    """

    bus: EventBus
    types: frozenset[str] | None
    maxsize: int
    missed: int = 0
    closed: bool = False
    _queue: deque[Event] = field(default_factory=deque)
    _waker: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def wants(self, event_type: str) -> bool:
        return self.types is None or event_type in self.types

    def _offer(self, event: Event) -> None:
        """Called by the bus with its lock held: never blocks."""
        if len(self._queue) >= self.maxsize:
            self._queue.popleft()
            self.missed += 1
        self._queue.append(event)
        if self._waker is not None:
            loop, ready = self._waker
            try:
                loop.call_soon_threadsafe(ready.set)
            except RuntimeError:  # that loop has closed: nobody waits there any more
                self._waker = None

    def take_missed(self) -> int:
        with self.bus._lock:
            missed, self.missed = self.missed, 0
            return missed

    def get_nowait(self) -> Event | None:
        with self.bus._lock:
            return self._queue.popleft() if self._queue else None

    def get(self, timeout: float | None = None) -> Event | None:
        """Wait (in a thread) for the next event; None on timeout or once closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.bus._lock:
            while not self._queue and not self.closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self.bus._lock.wait(remaining)
            return self._queue.popleft() if self._queue else None

    async def next(self, timeout: float | None = None) -> Event | None:
        """Wait (in the event loop) for the next event; None on timeout or once closed."""
        ready = asyncio.Event()
        with self.bus._lock:
            self._waker = (asyncio.get_running_loop(), ready)
        try:
            while True:
                with self.bus._lock:
                    if self._queue:
                        return self._queue.popleft()
                    if self.closed:
                        return None
                    ready.clear()
                # Not wait_for: on Python 3.11 a cancel that lands as the event arrives is swallowed
                # (it returns the result), and a caller's loop would never see its cancellation.
                woken = asyncio.ensure_future(ready.wait())
                try:
                    done, _ = await asyncio.wait({woken}, timeout=timeout)
                finally:
                    woken.cancel()
                if not done:
                    return None
        finally:
            with self.bus._lock:
                self._waker = None

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while (event := await self.next()) is not None:
            yield event

    def close(self) -> None:
        """Stop receiving; the queue is dropped at once (a disconnected client holds nothing)."""
        self.bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class EventBus:
    """Publish from anywhere; subscribers each get every event of the types they asked for."""

    def __init__(self, *, history: int = 1000, clock: Any = time.time) -> None:
        self._lock = threading.Condition()
        self._subs: list[Subscription] = []
        self._observers: tuple[Callable[[Event], None], ...] = ()
        self._history: deque[Event] = deque(maxlen=history)
        self._ids = itertools.count(1)
        self._last_id = 0
        self._clock = clock
        self.observer_errors = 0  # observer calls that raised (never raised to a publisher)

    def publish(self, event_type: str, data: dict[str, Any]) -> Event:
        """Deliver to every subscriber that wants `event_type`; never blocks on a subscriber.

        Observers then see the event in this thread, outside the bus's lock; one that raises
        is skipped for this event (the publisher never fails because of an observer).
        """
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}; known: {', '.join(EVENT_TYPES)}")
        with self._lock:
            self._last_id = next(self._ids)
            event = Event(event_type, data, self._last_id, self._clock())
            self._history.append(event)
            for sub in self._subs:
                if sub.wants(event_type):
                    sub._offer(event)
            self._lock.notify_all()
            observers = self._observers
        for observe in observers:
            try:
                observe(event)
            except Exception:
                # Logging here could publish again and fail the same way; the observer's own
                # tests are where its bugs show.
                self.observer_errors += 1
        return event

    def observe(self, observer: Callable[[Event], None]) -> Callable[[], None]:
        """Call `observer(event)` for every event from now on; returns the function that stops it."""
        with self._lock:
            self._observers = (*self._observers, observer)

        def stop() -> None:
            with self._lock:
                self._observers = tuple(o for o in self._observers if o is not observer)

        return stop

    @property
    def last_id(self) -> int:
        """The id of the newest event (0 before the first): where a snapshot stands in the stream."""
        with self._lock:
            return self._last_id

    def subscribe(self, types: Iterable[str] | None = None, *, maxsize: int = 1000) -> Subscription:
        """A new subscription to `types` (all when None); raises ValueError naming unknown types."""
        wanted = None if types is None else frozenset(types)
        unknown = sorted((wanted or frozenset()) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}")
        sub = Subscription(self, wanted, max(1, maxsize))
        with self._lock:
            self._subs.append(sub)
        return sub

    def since(self, last_id: int, types: Iterable[str] | None = None) -> list[Event]:
        """Events after `last_id` still in the ring buffer (for `Last-Event-ID` replays)."""
        wanted = None if types is None else frozenset(types)
        with self._lock:
            return [e for e in self._history if e.id > last_id and (wanted is None or e.type in wanted)]

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
            sub.closed = True
            sub._queue.clear()
            if sub._waker is not None:
                loop, ready = sub._waker
                try:
                    loop.call_soon_threadsafe(ready.set)
                except RuntimeError:
                    pass
            self._lock.notify_all()
