"""What every runtime offers the pool, whatever kind of model it runs."""

from __future__ import annotations

from typing import Protocol


class Runtime(Protocol):
    """A loaded model. The pool only needs to know its kind and how to free it."""

    kind: str

    def close(self) -> None:
        """Free all native memory now; in-flight work fails with ModelUnavailableError."""
        ...
