"""A Server-Sent Events client for tests: reads a stream in a thread, parses each frame, and lets a
test wait (with a deadline that fails) for the frame it needs while it does other things."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Frame:
    """One SSE frame: an event (`event`, `id`, `data` parsed from JSON) or a comment line."""

    event: str | None = None
    id: int | None = None
    data: Any = None
    comment: str | None = None

    @property
    def payload(self) -> Any:
        """The event's `data` object (the frame's data is `{"type": ..., "data": {...}}`)."""
        assert isinstance(self.data, dict) and self.data.get("type") == self.event, self.data
        return self.data["data"]


def parse_frames(lines: list[str]) -> Frame:
    event, ident, data, comment = None, None, [], None
    for line in lines:
        if line.startswith(":"):
            comment = line[1:].strip()
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "id":
            ident = int(value)
        elif field == "data":
            data.append(value)
    return Frame(event, ident, json.loads("\n".join(data)) if data else None, comment)


class SseReader:
    """GET `url` as a stream in a thread. `frames` fills as frames arrive; `status` is set first."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None, params: Any = None) -> None:
        self.frames: list[Frame] = []
        self.status: int | None = None
        self.body = b""
        self._cv = threading.Condition()
        self._response: httpx.Response | None = None
        self._done = False
        self._thread = threading.Thread(target=self._read, args=(url, headers, params), daemon=True)
        self._thread.start()

    def _read(self, url: str, headers: dict[str, str] | None, params: Any) -> None:
        try:
            with httpx.stream(
                "GET", url, headers=headers, params=params, timeout=httpx.Timeout(60, read=None)
            ) as r:
                with self._cv:
                    self._response, self.status = r, r.status_code
                    self._cv.notify_all()
                if r.status_code != 200:
                    self.body = r.read()
                    return
                pending: list[str] = []
                for line in r.iter_lines():
                    if line:
                        pending.append(line)
                        continue
                    if pending:
                        frame = parse_frames(pending)
                        pending = []
                        with self._cv:
                            self.frames.append(frame)
                            self._cv.notify_all()
        except (httpx.HTTPError, RuntimeError):  # closed from the test's side
            pass
        finally:
            with self._cv:
                self._done = True
                self._cv.notify_all()

    def wait_status(self, timeout: float = 30) -> int:
        with self._cv:
            if not self._cv.wait_for(lambda: self.status is not None or self._done, timeout):
                raise AssertionError(f"no answer within {timeout}s")
        assert self.status is not None
        return self.status

    def wait(self, match: Callable[[Frame], bool], *, timeout: float = 30, after: int = 0) -> Frame:
        """The first frame from index `after` on that `match`es; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for frame in self.frames[after:]:
                    if match(frame):
                        return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._done:
                    seen = [(f.event, f.comment) for f in self.frames]
                    raise AssertionError(f"no matching frame within {timeout}s; got {seen}")
                self._cv.wait(remaining)

    def wait_end(self, timeout: float = 30) -> None:
        """Wait until the server ends the stream; fails after `timeout` seconds."""
        with self._cv:
            if not self._cv.wait_for(lambda: self._done, timeout):
                raise AssertionError(f"the stream was still open after {timeout}s")

    def events(self, kind: str | None = None) -> list[Frame]:
        with self._cv:
            return [f for f in self.frames if f.event is not None and (kind is None or f.event == kind)]

    def close(self) -> None:
        """Disconnect: shut the socket down, which wakes the reading thread at once."""
        with self._cv:
            response = self._response
        if response is not None:
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the stream did not close"

    def __enter__(self) -> SseReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
