"""Moving one file's bytes: a `.part` beside the target, HTTP ranges, retries, a running sha256.

Why not `huggingface_hub`'s downloader: it blocks a thread until the file is done (no pause or
cancel but killing it), keeps its partial file in its own cache folder, reports progress only to
a tqdm bar, and speaks only to the hub. A download here must stop at once when paused, resume
from the bytes on disk after a crash, work for any URL, and be checked against the size and
sha256 the hub published before it is renamed; this is that, on httpx.

The invariant: `_Disk.have` bytes are on disk and `_Disk.hasher` has hashed exactly them. A
fetch starts by hashing what a previous run left (after a pause, a crash or a restart), asks for
the rest with `Range`, and, when the server ignores the range or the file changed (`If-Range`),
starts the file again from zero. Bytes that arrive are written within half a second (in a worker
thread, so the event loop never waits on the disk), so a kill -9 loses at most that.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit

import httpx

try:  # POSIX: a lock on the .part keeps two ClaraCore processes from writing one file
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(30.0, connect=10.0)  # a read that stalls this long is retried
FLUSH_BYTES = 1 << 20  # write once this much has arrived...
FLUSH_SECONDS = 0.5  # ...or once this long has passed since the last write, or the stream idles
_READ = 4 << 20
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_CONTENT_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$")


class TransferError(Exception):
    """Why a file could not be fetched. `retryable` errors are retried with backoff; `discard`
    means the bytes on disk are wrong and the `.part` must go."""

    def __init__(
        self,
        reason: str,
        *,
        code: str,
        retryable: bool = False,
        discard: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.retryable = retryable
        self.discard = discard
        self.retry_after = retry_after


@dataclass(frozen=True)
class Retry:
    """Backoff: `attempts` failures in a row without a new byte end the download; a failure after
    progress starts the count again, so a flaky line never runs out of retries while it moves."""

    attempts: int = 6
    delay: float = 1.0
    max_delay: float = 30.0

    def wait(self, failures: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay * 4)
        return min(self.delay * 2 ** (failures - 1), self.max_delay)


@dataclass
class FileJob:
    """One file to fetch. `size` and `sha256` are what it must be (None: unknown, so unchecked);
    `validator` is the ETag or Last-Modified of the bytes on disk, sent as If-Range."""

    url: str
    part: Path
    size: int | None
    sha256: str | None
    headers: dict[str, str]
    validator: str | None = None


class Watcher(Protocol):
    """What a fetch reports as it goes."""

    def position(self, done: int) -> None:
        """`done` bytes of the file have arrived (after a resume, starting at those on disk)."""

    def sized(self, size: int) -> None:
        """The server said how big the file is (only when it was not known)."""

    def retrying(self, delay: float, reason: str) -> None:
        """An attempt failed with `reason`; the next starts in `delay` seconds."""

    def checking(self, size: int) -> None:
        """The `size` bytes a previous run left are being hashed before the rest is asked for."""


class _Disk:
    """The `.part` open for appending, and the sha256 of exactly the bytes in it.

    Writes run in a worker thread; the lock lets a cancelled fetch wait for the one in flight
    before the file is closed (a thread writing to a closed, reused descriptor would write into
    some other file).
    """

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.have, self.hasher = file, 0, hashlib.sha256()
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        """Append all of `data`; hash each byte as it lands, so a short write keeps them agreeing."""
        with self._lock:
            view = memoryview(data)
            try:
                while view:
                    n = os.write(self.file.fileno(), view)
                    self.hasher.update(view[:n])
                    self.have += n
                    view = view[n:]
            except OSError as exc:
                raise _disk_error(exc) from None

    def reset(self) -> None:
        """Start the file again from zero (a metadata change: quick enough for the event loop)."""
        with self._lock:
            os.ftruncate(self.file.fileno(), 0)
            self.have, self.hasher = 0, hashlib.sha256()

    def settle(self) -> None:
        """Wait for a write still running in a worker thread."""
        with self._lock:
            pass


async def fetch(
    client: httpx.AsyncClient,
    job: FileJob,
    watcher: Watcher,
    retry: Retry,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> tuple[str, int]:
    """Fetch `job` into its `.part` until the server has sent it all; returns (sha256, size).

    Raises TransferError (not retryable, or out of retries); on cancellation (pause, cancel,
    shutdown) whatever arrived is written first. The caller checks the result (`check`).
    """
    job.part.parent.mkdir(parents=True, exist_ok=True)
    with job.part.open("a+b", buffering=0) as f:
        disk = _Disk(f)
        try:
            _lock(f, job.part)
            return await _fetch(client, job, disk, watcher, retry, sleep)
        finally:
            disk.settle()


async def _fetch(
    client: httpx.AsyncClient,
    job: FileJob,
    disk: _Disk,
    watcher: Watcher,
    retry: Retry,
    sleep: Callable[[float], Awaitable[Any]],
) -> tuple[str, int]:
    have = os.fstat(disk.file.fileno()).st_size
    if job.size is not None and have > job.size:
        disk.reset()  # more than the file holds: not bytes of this file
    elif have:
        watcher.checking(have)
        disk.have, disk.hasher = have, await asyncio.to_thread(_hash_prefix, job.part, have)
    watcher.position(disk.have)
    failures = 0
    while job.size is None or disk.have < job.size:
        before = disk.have
        try:
            if await _attempt(client, job, disk, watcher):
                break
            raise TransferError(
                "the connection closed before the end of the file", code="NETWORK_ERROR", retryable=True
            )
        except TransferError as exc:
            if not exc.retryable:
                raise
            failures = 1 if disk.have > before else failures + 1
            if failures > retry.attempts:
                raise TransferError(
                    f"gave up after {failures} failed attempts in a row: {exc.reason}", code=exc.code
                ) from None
            delay = retry.wait(failures, exc.retry_after)
            log.info("%s: %s; retrying in %.1f s", job.part.name, exc.reason, delay)
            watcher.retrying(delay, exc.reason)
            await sleep(delay)
            watcher.position(disk.have)
    return disk.hasher.hexdigest(), disk.have


def check(job: FileJob, digest: str, size: int) -> None:
    """Raise TransferError (discard) unless the fetched bytes are the size and sha256 expected."""
    if job.size is not None and size != job.size:
        raise TransferError(
            f"{job.part.name[:-5]}: got {size} bytes, expected {job.size}", code="SIZE_MISMATCH", discard=True
        )
    if job.sha256 is not None and digest != job.sha256:
        raise TransferError(
            f"{job.part.name[:-5]}: checksum mismatch (sha256 {digest}, expected {job.sha256})",
            code="CHECKSUM_MISMATCH",
            discard=True,
        )


def fsync(path: Path) -> None:
    """Make a finished `.part` durable before it is renamed (blocking)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _attempt(client: httpx.AsyncClient, job: FileJob, disk: _Disk, watcher: Watcher) -> bool:
    """One request for the rest of the file; True when the server sent all of it."""
    headers = {**job.headers, "Accept-Encoding": "identity"}
    if disk.have:
        headers["Range"] = f"bytes={disk.have}-"
        if job.validator:
            headers["If-Range"] = job.validator
    host = urlsplit(job.url).netloc
    try:
        async with client.stream("GET", job.url, headers=headers) as r:
            status = r.status_code
            if status == 416 and disk.have:
                total = _content_range(r.headers.get("content-range", ""))[2]
                if total == disk.have:
                    return True  # all of it was on disk already
                disk.reset()
                raise TransferError(
                    "the remote file is shorter than the bytes on disk", code="REMOTE_CHANGED", retryable=True
                )
            if status in (401, 403):
                raise TransferError(
                    f"{host} refused access ({status} {r.reason_phrase})", code="REMOTE_ACCESS_DENIED"
                )
            if status in (404, 410):
                raise TransferError(
                    f"{host} has no such file ({status} {r.reason_phrase})", code="REMOTE_NOT_FOUND"
                )
            if status == 429 or status >= 500:
                raise TransferError(
                    f"{host} answered {status} {r.reason_phrase}",
                    code="REMOTE_ERROR",
                    retryable=True,
                    retry_after=_retry_after(r.headers.get("retry-after")),
                )
            if status not in (200, 206):
                raise TransferError(f"{host} answered {status} {r.reason_phrase}", code="REMOTE_ERROR")
            total = await _position(r, job, disk)
            if total is not None and job.size is None:
                job.size = total
                watcher.sized(total)
            elif total is not None and total != job.size:
                raise TransferError(
                    f"{host} has a file of {total} bytes, expected {job.size}",
                    code="SIZE_MISMATCH",
                    discard=True,
                )
            if status == 200 or job.validator is None:
                job.validator = _validator(r.headers)
            await _stream(r, disk, watcher)
            return job.size is None or disk.have >= job.size
    except httpx.HTTPError as exc:
        raise TransferError(
            f"connection to {host} failed: {exc or type(exc).__name__}", code="NETWORK_ERROR", retryable=True
        ) from None


async def _position(r: httpx.Response, job: FileJob, disk: _Disk) -> int | None:
    """Where the body starts: from zero on a 200 (a server that ignores ranges, or a changed file),
    else at the range asked for. Returns the file's total size when the server says it."""
    if r.status_code == 200:
        if disk.have:
            log.info(
                "%s: the server sent the whole file (no range support, or it changed): starting again",
                job.part.name,
            )
            disk.reset()
        length = r.headers.get("content-length")
        return int(length) if length and length.isdigit() else None
    start, _, total = _content_range(r.headers.get("content-range", ""))
    if start != disk.have:
        why = f"asked for bytes from {disk.have}, got them from {start}: starting again"
        disk.reset()
        raise TransferError(why, code="BAD_RANGE", retryable=True)
    return total


async def _stream(r: httpx.Response, disk: _Disk, watcher: Watcher) -> None:
    """Append the body: written once a megabyte has arrived, half a second has passed, or the
    stream idles that long, and whatever is left when the stream ends or is cancelled."""
    chunks = r.aiter_raw().__aiter__()
    buffer = bytearray()
    last = time.monotonic()
    pending: asyncio.Future[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(chunks.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=FLUSH_SECONDS)
            if not done or time.monotonic() - last >= FLUSH_SECONDS or len(buffer) >= FLUSH_BYTES:
                if buffer:
                    data, buffer = bytes(buffer), bytearray()
                    await asyncio.to_thread(disk.write, data)
                last = time.monotonic()
            if not done:
                continue
            finished, pending = pending, None
            try:
                chunk = finished.result()
            except StopAsyncIteration:
                break
            buffer += chunk
            watcher.position(disk.have + len(buffer))
    finally:
        if pending is not None:
            pending.cancel()
        if buffer:
            disk.write(bytes(buffer))  # at most a megabyte: a pause must keep every byte that came


def _hash_prefix(path: Path, length: int) -> Any:
    hasher = hashlib.sha256()
    with path.open("rb") as f:
        left = length
        while left:
            block = f.read(min(_READ, left))
            if not block:
                break
            hasher.update(block)
            left -= len(block)
    return hasher


def _lock(f: BinaryIO, part: Path) -> None:
    if fcntl is None:  # pragma: no cover
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise TransferError(f"another process is writing {part}", code="PART_LOCKED") from None


def _disk_error(exc: OSError) -> TransferError:
    if exc.errno in _NO_SPACE:
        return TransferError(f"disk full: {exc.strerror or exc}", code="DISK_FULL")
    return TransferError(f"cannot write the file: {exc.strerror or exc}", code="WRITE_ERROR")


def _content_range(value: str) -> tuple[int | None, int | None, int | None]:
    """(first, last, total) of `bytes a-b/n` (or `bytes */n`, a 416's); None for each `*`."""
    m = _CONTENT_RANGE.match(value.strip())
    if m is None:
        raise TransferError(
            f"the server sent a bad Content-Range ({value!r})", code="BAD_RANGE", retryable=True
        )
    first, last, total = m.groups()
    return (
        None if first is None else int(first),
        None if last is None else int(last),
        None if total == "*" else int(total),
    )


def _validator(headers: httpx.Headers) -> str | None:
    """A strong ETag, else Last-Modified: what If-Range may carry (a weak ETag may not)."""
    etag = headers.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("last-modified")


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
