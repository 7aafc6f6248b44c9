"""Helpers for tests that drive an AsyncEngine in-process."""

from __future__ import annotations

from typing import Any

from claracore import AsyncEngine


async def runtime_of(engine: AsyncEngine, name: str) -> Any:
    """`name`'s loaded runtime (loading it first), to read its counters or call it directly."""
    lease = await engine.pool.acquire(name)
    lease.release()
    return lease.runtime
