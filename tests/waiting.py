"""Bounded waits on conditions: a test waits for what it needs and FAILS when it never comes.

Never a bare sleep, and never a loop that quietly gives up and lets the assertions after it pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def wait_for(
    condition: Callable[[], bool], *, timeout: float = 30, interval: float = 0.01, what: str = ""
) -> None:
    """Poll `condition` until it holds; raise AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


async def wait_until(
    condition: Callable[[], bool], *, timeout: float = 30, interval: float = 0.01, what: str = ""
) -> None:
    """`wait_for` for async tests: yields to the event loop between polls."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(interval)
