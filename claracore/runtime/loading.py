"""Watching one model load: llama.cpp's progress callback and the buffers it reports allocating.

The pool loads each model in a thread of its own and llama.cpp reports on the thread that called
it, so the watch is per thread: the pool starts one around `recipe.load()`, and the libllama seam
(`runtime.native`) feeds it without the runtimes in between having to pass anything along. This
module imports nothing of llama.cpp, so the pool can use it on any install.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class LoadWatch:
    """What one load reported: `on_progress(fraction)` as it goes, the buffers once allocated."""

    on_progress: Callable[[float], None] | None = None
    buffers: list[tuple[str, str, int]] = field(default_factory=list)  # (device, kind, bytes)

    def progress(self, fraction: float) -> None:
        if self.on_progress is not None:
            self.on_progress(min(max(fraction, 0.0), 1.0))

    def buffer(self, device: str, kind: str, nbytes: int) -> None:
        self.buffers.append((device, kind, nbytes))

    def measured(self) -> tuple[int, int] | None:
        """(VRAM, RAM) bytes llama.cpp allocated, or None when it reported no buffer (a speech model).

        Host buffers (`CPU`, `CPU_Mapped`, `CUDA_Host`, ...) are RAM; a device's own are VRAM;
        an RPC worker's (`RPC0[host:port]`) are on that machine and count as neither.
        """
        if not self.buffers:
            return None
        local = [(device, n) for device, _, n in self.buffers if not device.startswith("RPC")]
        vram = sum(n for device, n in local if not _in_ram(device))
        return vram, sum(n for _, n in local) - vram


def _in_ram(device: str) -> bool:
    return device.upper().startswith("CPU") or device.endswith("_Host")


class _Current(threading.local):
    watch: LoadWatch | None = None


_current = _Current()


@contextmanager
def watching(watch: LoadWatch) -> Iterator[LoadWatch]:
    """Report this thread's loads to `watch` while the block runs."""
    previous, _current.watch = _current.watch, watch
    try:
        yield watch
    finally:
        _current.watch = previous


def current_watch() -> LoadWatch | None:
    """The watch of a load running on this thread, if any."""
    return _current.watch
