"""What every runtime offers the pool, whatever kind of model it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class Runtime(Protocol):
    """A loaded model. The pool only needs to know its kind and how to free it."""

    kind: str

    def close(self) -> None:
        """Free all native memory now; in-flight work fails with ModelUnavailableError."""
        ...


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
