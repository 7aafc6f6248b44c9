"""`DownloadManager`: the downloads of one data directory, run in the event loop, remembered in SQLite.

Each running download is an asyncio task, so a pause or cancel stops it at once, even on a
stalled connection (a thread blocked in a read could not be stopped). At most
`maxConcurrentDownloads` (a stored setting, default 2) run; the rest wait `queued`, oldest first.
Every state change and a progress tick every quarter second go on the engine's event bus as
`download` events carrying the same view the routes answer with, so the events stream, the UI
and `claracore pull` all see one truth. Records are saved on every state change and every two
seconds while bytes flow; a restart resumes what was queued or running (and leaves paused
downloads paused), from the bytes on disk.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from claracore.errors import ClaraCoreError, ConflictError, NotFoundError
from claracore.events import EventBus
from claracore.manage.config_file import ConfigFile
from claracore.manage.downloads import disk, finish, transfer
from claracore.manage.downloads.catalog import Catalog
from claracore.manage.downloads.hub import Hub
from claracore.manage.downloads.records import ACTIVE, Download, DownloadFile, DownloadTable
from claracore.manage.downloads.sources import new_download
from claracore.manage.downloads.transfer import Retry, TransferError
from claracore.manage.planner import Hardware, PlanOptions
from claracore.manage.settings import Settings
from claracore.manage.setup import detect_hardware
from claracore.manage.store import Store, utc_now
from claracore.protocol.downloads import DownloadRequest, RepoFiles

log = logging.getLogger(__name__)

PUBLISH_EVERY = 0.25  # seconds between progress events of one download
SAVE_EVERY = 2.0  # seconds between saves of its progress while bytes flow


@dataclass(frozen=True)
class DownloadOptions:
    """How downloads reach the hub and where they land by default."""

    hub_endpoint: str | None = None  # None: huggingface_hub's (HF_ENDPOINT, else the public hub)
    models_dir: Path | None = None  # None: <data dir>/models
    retry: Retry = field(default_factory=Retry)


class DownloadStateError(ConflictError):
    """The download is in a state that does not allow this (pausing a completed one)."""

    code = "INVALID_STATE"


class NotLeaderError(ConflictError):
    """Downloads run on the leader replica only; this process was started as a follower."""

    code = "NOT_LEADER"

    def __init__(self) -> None:
        super().__init__(
            "downloads run on the leader replica; this server was started with `--role follower`, "
            "so send /api/models/download and /api/models/downloads/* to the leader (docs/scaling.md)"
        )


class DownloadExistsError(ConflictError):
    """The same file is already being downloaded (`details.id` says by which download)."""

    code = "DOWNLOAD_EXISTS"


class DownloadManager:
    """Create, pause, resume, cancel and list downloads; search the hub. Call from the event loop."""

    def __init__(
        self,
        store: Store,
        events: EventBus,
        settings: Settings,
        config_file: ConfigFile,
        *,
        data_dir: Path,
        options: DownloadOptions | None = None,
        leader: bool = True,
    ) -> None:
        options = options or DownloadOptions()
        # Replicas share the data directory: only the leader resumes and runs downloads, or two
        # processes would write the same .part files (docs/scaling.md).
        self.leader = leader
        self.hub = Hub(options.hub_endpoint)
        self.models_dir = options.models_dir or data_dir / "models"
        self.catalog = Catalog(self.hub, self.hardware)
        self._store = store
        self._table = DownloadTable(store)
        self._events = events
        self._settings = settings
        self._config_file = config_file
        self._retry = options.retry
        self._downloads: dict[str, Download] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ticks: dict[str, tuple[float, float]] = {}  # id -> (last publish, last save)
        self._trailing: dict[str, asyncio.TimerHandle] = {}  # id -> the held-back progress event
        self._client: httpx.AsyncClient | None = None
        self._hardware: Hardware | None = None
        self._finishing = asyncio.Lock()  # one registration at a time: they track and scan folders
        self._running = False

    # ------------------------------------------------------------ lifecycle

    async def start(self, *, resume: bool = True) -> None:
        """Load the remembered downloads. With `resume` those that were queued or running go on;
        without (`claracore pull`, which runs only its own), they show as paused until resumed."""
        self._client = httpx.AsyncClient(timeout=transfer.TIMEOUT, follow_redirects=True)
        if not self.leader:
            return  # the leader's records are not this process's to resume or show
        for d in await asyncio.to_thread(self._table.load):
            if d.state in ACTIVE:
                d.state = "queued" if resume else "paused"
                d.message = "resumed after a restart" if resume else "interrupted"
            self._downloads[d.id] = d
        self._running = True
        self._schedule()

    async def close(self) -> None:
        """Stop every transfer, keeping its state, so the next start resumes it."""
        self._running = False
        for held in self._trailing.values():
            held.cancel()
        self._trailing.clear()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------ reading

    def all(self) -> list[Download]:
        """Every download, oldest first."""
        self._lead()
        return list(self._downloads.values())

    def get(self, download_id: str) -> Download:
        self._lead()
        try:
            return self._downloads[download_id]
        except KeyError:
            raise NotFoundError(
                f"no download with id {download_id!r}", code="DOWNLOAD_NOT_FOUND", details={"id": download_id}
            ) from None

    def hardware(self) -> Hardware:
        """This machine as the planner sees it, detected once."""
        if self._hardware is None:
            self._hardware = detect_hardware()
        return self._hardware

    def plan_options(self) -> PlanOptions:
        """The saved preferences (context, forced VRAM/RAM/backend) as the planner's options."""
        return PlanOptions.from_api(None, self._settings.planner_defaults())

    def token(self, given: str | None = None) -> str | None:
        return self.hub.token(given, self._settings.hf_token())

    async def search(self, query: str, limit: int) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.hub.search, query, limit=limit, token=self.token())

    async def repo_files(self, repo: str, revision: str) -> RepoFiles:
        options = self.plan_options()
        return await asyncio.to_thread(self.catalog.listing, repo, revision, self.token(), options)

    # ------------------------------------------------------------ commands

    async def create(self, request: DownloadRequest) -> Download:
        """Resolve and queue a download (4xx for a bad request, a missing file, a refused token)."""
        self._lead()
        token = self.token(request.hfApiKey)
        d = await asyncio.to_thread(new_download, request, self.hub, self.models_dir, token)
        for other in self._downloads.values():
            if other.state not in ("completed", "cancelled") and other.destination == d.destination:
                raise DownloadExistsError(
                    f"{d.destination} is already being downloaded ({other.id}, {other.state})",
                    details={"id": other.id, "state": other.state, "path": str(d.destination)},
                )
        for f in d.files:
            if (path := f.path(d.target)).exists():
                raise ConflictError(f"{path} already exists", details={"path": str(path)})
        self._downloads[d.id] = d
        self._changed(d, "created")
        self._schedule()
        return d

    async def pause(self, download_id: str) -> Download:
        """Stop a download, keeping its bytes; `resume` goes on from them."""
        d = self.get(download_id)
        if d.state != "paused":
            self._allow(d, "pause", ("queued", "downloading"))
            await self._stop(d, "paused")
            self._changed(d, "state")
        return d

    async def resume(self, download_id: str) -> Download:
        """Queue a paused or failed download again; it goes on from the bytes on disk."""
        d = self.get(download_id)
        if d.state in ACTIVE:
            return d
        self._allow(d, "resume", ("paused", "failed"))
        d.state, d.error, d.error_code, d.message = "queued", None, None, None
        self._changed(d, "state")
        self._schedule()
        return d

    async def cancel(self, download_id: str) -> Download:
        """Stop a download for good and delete its partial files."""
        d = self.get(download_id)
        if d.state != "cancelled":
            self._allow(d, "cancel", ("queued", "downloading", "paused", "failed"))
            await self._stop(d, "cancelled")
            await asyncio.to_thread(disk.remove_parts, d)
            for f in d.files:
                f.done, f.verified = 0, False
            self._changed(d, "state")
        return d

    async def cancel_all(self) -> list[Download]:
        """Cancel every download that is queued, running or paused."""
        self._lead()
        doomed = [d for d in self._downloads.values() if d.state in ("queued", "downloading", "paused")]
        return [await self.cancel(d.id) for d in doomed]

    async def remove(self, download_id: str) -> Download:
        """Forget a download (cancelling it first if it is still going); model files stay."""
        d = self.get(download_id)
        if d.state != "completed":
            await self.cancel(download_id)
        del self._downloads[d.id]
        self._ticks.pop(d.id, None)
        await asyncio.to_thread(self._table.delete, d.id)
        self._events.publish("download", d.event("removed"))
        return d

    # ------------------------------------------------------------ running

    def _schedule(self) -> None:
        if not self._running:
            return
        room = self._settings.max_downloads() - len(self._tasks)
        for d in self._downloads.values():
            if room <= 0:
                break
            if d.state == "queued" and d.id not in self._tasks:
                task = asyncio.get_running_loop().create_task(self._run(d), name=f"claracore-{d.id}")
                # A callback, not a `finally` in _run: a task cancelled before its first step never
                # enters _run's body, and its slot must still come back.
                task.add_done_callback(functools.partial(self._ended, d.id))
                self._tasks[d.id] = task
                room -= 1

    def _ended(self, download_id: str, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(download_id, None)
        self._schedule()

    async def _stop(self, d: Download, state: str) -> None:
        """Set the state first (the task then knows it was stopped on purpose), then stop the task."""
        d.state, d.message = state, None
        task = self._tasks.get(d.id)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})

    async def _run(self, d: Download) -> None:
        try:
            self._set(d, "downloading")
            await asyncio.to_thread(disk.prepare, d)
            for f in d.files:
                await self._fetch(d, f)
            self._set(d, "verifying")
            await asyncio.to_thread(disk.place, d)
            async with self._finishing:
                d.model = await asyncio.to_thread(self._register, d)
            d.completed_at, d.message = utc_now(), None
            self._set(d, "completed")
        except asyncio.CancelledError:
            self._save(d)  # the bytes so far; the state is whoever stopped it's to say
            raise
        except TransferError as exc:
            self._fail(d, exc.reason, exc.code)
        except ClaraCoreError as exc:
            self._fail(d, exc.message, exc.code)
        except Exception as exc:  # a bug: fail this download, keep the others going
            log.exception("download %s failed", d.id)
            self._fail(d, f"internal error: {type(exc).__name__}: {exc}", "INTERNAL_ERROR")

    def _stopped(self, d: Download) -> bool:
        """Stopped on purpose (a pause, a cancel, a shutdown), whatever the task ended with: a
        write that failed while it was being stopped must not turn it into a failure."""
        return not self._running or d.state in ("paused", "cancelled")

    async def _fetch(self, d: Download, f: DownloadFile) -> None:
        part = f.part(d.target)
        if f.verified and (disk.has(part, f.size) or disk.has(f.path(d.target), f.size)):
            return  # checked in an earlier run (stopped during a later file, or while renaming)
        assert self._client is not None, "start() first"
        job = transfer.FileJob(
            url=f.url,
            part=part,
            size=f.size,
            sha256=f.sha256,
            headers=self.hub.auth_headers(f.url, self.token(d.token)),
            validator=f.validator,
        )
        try:
            digest, size = await transfer.fetch(self._client, job, _Watcher(self, d, f), self._retry)
            transfer.check(job, digest, size)
        except TransferError as exc:
            if exc.discard:
                part.unlink(missing_ok=True)
                f.done = 0
            raise
        finally:
            f.validator = job.validator
        f.size, f.done, f.verified = size, size, True
        self._save(d)

    def _register(self, d: Download) -> dict[str, Any]:
        mmproj = next((f.path(d.target) for f in d.files if f.role == "mmproj"), None)
        return finish.register(
            self._store,
            self._config_file,
            model=d.destination,
            mmproj=mmproj,
            root=Path(d.track_dir or d.target_dir),
            name=d.model_id,
            configure=d.auto_configure,
            hardware=self.hardware(),
            options=self.plan_options(),
        )

    # ------------------------------------------------------------ state and events

    def _lead(self) -> None:
        if not self.leader:
            raise NotLeaderError()

    def _allow(self, d: Download, action: str, states: tuple[str, ...]) -> None:
        if d.state not in states:
            raise DownloadStateError(
                f"cannot {action} download {d.id}: it is {d.state}",
                details={"id": d.id, "state": d.state},
            )

    def _set(self, d: Download, state: str) -> None:
        d.state = state
        d.meter.reset()  # a speed spans one run only, never the pause before it
        self._changed(d, "state")

    def _fail(self, d: Download, reason: str, code: str) -> None:
        if self._stopped(d):
            self._save(d)
            return
        log.warning("download %s failed: %s", d.id, reason)
        d.error, d.error_code, d.message = reason, code, None
        self._set(d, "failed")

    def _changed(self, d: Download, kind: str) -> None:
        self._save(d)
        self._events.publish("download", d.event(kind))

    def _save(self, d: Download) -> None:
        self._table.save(d)
        now = time.monotonic()
        self._ticks[d.id] = (now, now)

    def _tick(self, d: Download) -> None:
        """Progress: an event at most every PUBLISH_EVERY, a save at most every SAVE_EVERY.

        A tick that comes too soon is not dropped but sent when the interval is up: bytes that
        arrive in a burst and then stall (a slow mirror, a held connection) must not leave every
        listener on the count from before the burst.
        """
        now = time.monotonic()
        published, saved = self._ticks.get(d.id, (0.0, 0.0))
        if now - saved >= SAVE_EVERY:
            self._table.save(d)
            saved = now
        if now - published >= PUBLISH_EVERY:
            self._events.publish("download", d.event("progress"))
            published = now
        elif d.id not in self._trailing:
            self._hold(d, PUBLISH_EVERY - (now - published))
        self._ticks[d.id] = (published, saved)

    def _hold(self, d: Download, wait: float) -> None:
        self._trailing[d.id] = asyncio.get_running_loop().call_later(wait, self._trail, d)

    def _trail(self, d: Download) -> None:
        """The progress a throttled tick held back, once the interval is up.

        A timer may fire a hair early (the loop's clock resolution), and a state event may have
        gone out meanwhile with bytes still arriving after it: either way the count is held again
        for what is left of the interval, never dropped. A download no longer moving needs none.
        """
        self._trailing.pop(d.id, None)
        if d.state != "downloading":
            return
        published, saved = self._ticks.get(d.id, (0.0, 0.0))
        left = PUBLISH_EVERY - (time.monotonic() - published)
        if left > 0:
            self._hold(d, left)
            return
        self._events.publish("download", d.event("progress"))
        self._ticks[d.id] = (time.monotonic(), saved)


class _Watcher:
    """One file's progress, reported into its download."""

    def __init__(self, manager: DownloadManager, d: Download, f: DownloadFile) -> None:
        self._manager, self._d, self._f = manager, d, f
        self._noted_at: int | None = None  # a message holds until bytes move past this

    def position(self, done: int) -> None:
        self._f.done = done
        self._d.meter.add(self._d.done)
        if self._noted_at is not None and done > self._noted_at:
            self._noted_at, self._d.message = None, None
        self._manager._tick(self._d)

    def sized(self, size: int) -> None:
        self._f.size = size

    def retrying(self, delay: float, reason: str) -> None:
        self._d.retries += 1
        self._d.meter.reset()
        self._note(f"retrying in {delay:.0f} s: {reason}")

    def checking(self, size: int) -> None:
        self._f.done = size
        self._note(f"checking the {size} bytes already on disk")

    def _note(self, message: str) -> None:
        self._noted_at, self._d.message = self._f.done, message
        self._manager._changed(self._d, "progress")
