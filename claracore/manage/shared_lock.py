"""`SharedLock`: one writer at a time across the threads of this process and other processes.

Replicas behind a proxy (docs/scaling.md) share one config file, and two of them editing it at
once would each read the old file and the second save would drop the first one's change. A
thread lock covers one process only; this adds an advisory lock file beside the protected file
(`.NAME.lock`, through the `filelock` package, which works on Linux, macOS and Windows). The
lock file is created on first use and left in place: deleting it would let two processes hold
"the" lock through different files.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from claracore.errors import ConflictError

#: How long a writer waits for another process's write before the request fails.
WAIT_SECONDS = 30.0


class LockedError(ConflictError):
    """Another process held the file's lock for longer than `WAIT_SECONDS`."""

    code = "FILE_LOCKED"


class SharedLock:
    """Re-entrant in one thread; held against other threads and, when `path` is set, processes."""

    def __init__(self, path: Path | None, wait: float = WAIT_SECONDS) -> None:
        self.path = path
        self._thread = threading.RLock()
        self._wait = wait
        self._file = FileLock(lock_path(path), thread_local=False) if path is not None else None

    def __enter__(self) -> SharedLock:
        self._thread.acquire()
        if self._file is not None:
            try:
                self._file.acquire(timeout=self._wait)  # counts re-entries itself
            except Timeout:
                self._thread.release()
                raise LockedError(
                    f"{self.path} is being written by another process (waited {self._wait:g} s)",
                    details={"path": str(self.path)},
                ) from None
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            self._file.release()
        self._thread.release()


def lock_path(path: Path) -> Path:
    """The lock file of `path`: hidden, beside it (`config.yaml` -> `.config.yaml.lock`)."""
    return path.with_name(f".{path.name}.lock")
