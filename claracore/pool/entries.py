"""What the pool keeps per configured model, the lease a request holds, and listing snapshots."""

from __future__ import annotations

import concurrent.futures
import os
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from claracore.config import ModelSpec
from claracore.modelfile.estimate import MemoryEstimate
from claracore.pool.loaders import ModelFacts, model_type
from claracore.runtime.base import Occupancy, PromptCacheStats, Runtime

if TYPE_CHECKING:
    from claracore.pool.pool import ModelPool


@dataclass(frozen=True)
class ModelStatus:
    """A snapshot of one configured model, for listings."""

    name: str
    kind: str
    aliases: tuple[str, ...]
    state: str  # unloaded | loading | loaded | failed
    error: str | None
    estimate: MemoryEstimate | None
    in_flight: int
    pinned: bool
    prompt_cache: PromptCacheStats | None = None
    facts: ModelFacts | None = None
    measured: tuple[int, int] | None = None  # (VRAM, RAM) llama.cpp allocated, while loaded
    occupancy: Occupancy | None = None  # slots of a loaded LLM


class Entry:
    """One configured model's state in the pool; every field is read and written under its lock."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.kind = model_type(spec)
        self.state = "unloaded"
        self.error: str | None = None
        self.failed_stat: tuple[float, int] | None = None
        self.runtime: Runtime | None = None
        self.estimate: MemoryEstimate | None = None  # reserved in the budget while loading or loaded
        self.spare = 0  # the part of estimate.ram_bytes granted to an "auto" prompt cache
        self.expected: MemoryEstimate | None = None  # what a load would reserve, for listings
        self.facts: ModelFacts | None = None  # file and effective settings, for listings
        self.measured: tuple[int, int] | None = None  # (VRAM, RAM) the loaded runtime allocated
        self.loading: concurrent.futures.Future[Runtime] | None = None
        self.in_flight = 0
        self.last_used = 0.0  # the pool clock at the last release: LRU order and TTL idle time
        self.retired = False  # replaced by a reconfigure: closes when its last request ends


class Lease:
    """A model held for one request; release it (or use `ModelPool.lease`) when done."""

    def __init__(self, pool: ModelPool, entry: Entry, runtime: Runtime) -> None:
        self._pool = pool
        self._entry = entry
        self.runtime = runtime
        self.spec = entry.spec
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._pool._release(self._entry)


def memory_figures(estimate: MemoryEstimate, measured: tuple[int, int] | None) -> dict[str, object]:
    return {
        "estimate": {"vramBytes": estimate.vram_bytes, "ramBytes": estimate.ram_bytes},
        "measured": None if measured is None else {"vramBytes": measured[0], "ramBytes": measured[1]},
    }


def file_stat(path: str) -> tuple[float, int] | None:
    """A failed model is retried once its file changes (None: no such file, or no usable path).

    Never raises: it runs in the failed load's handler, which must still answer the waiters.
    """
    with suppress(OSError, ValueError):  # ValueError: a NUL byte in the path
        st = os.stat(path)
        return (st.st_mtime, st.st_size)
    return None
