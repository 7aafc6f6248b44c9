"""Work in a thread that stops when its client goes away.

Starlette cancels a streaming response when the client disconnects, but a plain handler awaiting
a worker thread (a folder scan) runs on: nothing tells the thread. `watching` polls the
connection while the work runs and sets an Event the work checks, so a scan of a huge tree ends
soon after its caller gave up instead of holding a core for minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

from starlette.requests import Request

POLL_S = 0.2


@contextlib.asynccontextmanager
async def watching(request: Request) -> AsyncIterator[threading.Event]:
    """An Event set once the client of `request` has disconnected, while the block runs."""
    gone = threading.Event()

    async def watch() -> None:
        while not await request.is_disconnected():
            await asyncio.sleep(POLL_S)
        gone.set()

    task = asyncio.create_task(watch())
    try:
        yield gone
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
