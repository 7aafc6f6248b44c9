"""What every runtime offers the pool, whatever kind of model it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from claracore.errors import ClaraCoreError


class Runtime(Protocol):
    """A loaded model. The pool only needs to know its kind and how to free it."""

    kind: str

    def close(self) -> None:
        """Free all native memory now; in-flight work fails with ModelUnavailableError."""
        ...


@dataclass(frozen=True)
class PromptCacheStats:
    """What an LLM's prompt cache holds and how often it helped, for listings and benchmarks."""

    limit_bytes: int
    bytes: int
    entries: int
    lookups: int  # jobs placed while the cache was on
    hits: int  # jobs that had an entry restored into their slot
    restored_tokens: int  # prompt tokens those jobs did not decode
    saves: int
    failures: int  # states llama.cpp refused to take back (the job decoded its prompt instead)


@runtime_checkable
class PromptCaching(Protocol):
    """A runtime with a prompt cache in host memory, which the pool sizes and may shrink."""

    def set_prompt_cache_limit(self, nbytes: int) -> None:
        """Hold at most `nbytes` from now on, freeing any excess at once; any thread."""
        ...

    def prompt_cache_stats(self) -> PromptCacheStats: ...


@dataclass(frozen=True)
class Occupancy:
    """How busy a batching runtime is: its slots, those decoding now, and jobs waiting for one."""

    slots: int
    busy: int
    queued: int


@runtime_checkable
class Batching(Protocol):
    """A runtime that decodes requests in slots (the LLM loop); the metrics show its occupancy."""

    def occupancy(self) -> Occupancy: ...


@runtime_checkable
class Failing(Protocol):
    """A runtime that can stop serving on its own (an LLM whose RPC worker was lost mid-request)."""

    def on_failure(self, listener: Callable[[ClaraCoreError], None]) -> None:
        """Have `listener(why)` called once, from any thread, if that happens."""
        ...
