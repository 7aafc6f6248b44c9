"""A download as ClaraCore remembers it: its files, where they go, how far it got, and its row.

The manager changes these records in the event loop and saves them in the store's `downloads`
table (migration 2) on every state change and every few seconds while bytes flow; a restart
reads them back. The token a request gave is kept in its own column, because a download resumed
after a restart needs it again, and `view()` never shows it.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from claracore.manage.store import Store, utc_now
from claracore.protocol.downloads import DownloadFile as FileView
from claracore.protocol.downloads import DownloadModel, DownloadStatus

#: States a download leaves by itself; the others wait for the user (failed can be resumed).
ACTIVE = ("queued", "downloading", "verifying")
FINAL = ("completed", "cancelled")


@dataclass
class DownloadFile:
    """One file: `name` is its path below the target folder; `done` counts bytes that arrived."""

    name: str
    url: str
    size: int | None
    sha256: str | None
    role: str = "model"
    done: int = 0
    verified: bool = False
    validator: str | None = None  # the ETag / Last-Modified the bytes on disk came with

    def path(self, target: Path) -> Path:
        return target / self.name

    def part(self, target: Path) -> Path:
        return target / (self.name + ".part")


class Meter:
    """Bytes per second over the last few seconds (what a progress bar shows as speed)."""

    WINDOW = 5.0

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, total: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.WINDOW:
            self._samples.popleft()

    def reset(self) -> None:
        self._samples.clear()

    @property
    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return max(b1 - b0, 0) / (t1 - t0) if t1 > t0 else 0.0


@dataclass
class Download:
    """One download request and everything that happened to it."""

    id: str
    source: str  # "hub" or "url"
    target_dir: str
    files: list[DownloadFile]
    state: str = "queued"
    repo: str | None = None
    revision: str | None = None
    commit: str | None = None
    url: str | None = None
    model_id: str | None = None
    track_dir: str | None = None  # the folder tracked for it once done (the models root by default)
    auto_configure: bool = True
    retries: int = 0
    message: str | None = None
    error: str | None = None
    error_code: str | None = None
    model: dict[str, Any] | None = None
    created_at: str = field(default_factory=utc_now)
    updated_at: str = field(default_factory=utc_now)
    completed_at: str | None = None
    token: str | None = field(default=None, repr=False)
    meter: Meter = field(default_factory=Meter, repr=False, compare=False)

    @property
    def target(self) -> Path:
        return Path(self.target_dir)

    @property
    def destination(self) -> Path:
        return self.files[0].path(self.target)

    @property
    def total(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)

    @property
    def done(self) -> int:
        return sum(f.done for f in self.files)

    def view(self) -> DownloadStatus:
        """The API's shape (routes and events alike)."""
        total, done = self.total, self.done
        speed = self.meter.rate if self.state == "downloading" else 0.0
        eta = (total - done) / speed if total is not None and speed > 0 else None
        return DownloadStatus(
            id=self.id,
            state=self.state,  # type: ignore[arg-type]  # one of DownloadState, set by the manager
            source=self.source,  # type: ignore[arg-type]
            repo=self.repo,
            revision=self.revision,
            commit=self.commit,
            url=self.url,
            modelId=self.model_id,
            filename=self.files[0].name,
            targetDir=self.target_dir,
            destination=str(self.destination),
            files=[
                FileView(
                    name=f.name,
                    path=str(f.path(self.target)),
                    role=f.role,  # type: ignore[arg-type]
                    size=f.size,
                    bytesDone=f.done,
                    sha256=f.sha256,
                    verified=f.verified,
                )
                for f in self.files
            ],
            totalBytes=total,
            bytesDone=done,
            progress=min(done / total, 1.0) if total else (1.0 if self.state == "completed" else None),
            speed=round(speed, 1),
            eta=round(eta, 1) if eta is not None else None,
            retries=self.retries,
            message=self.message,
            error=self.error,
            errorCode=self.error_code,
            autoConfigure=self.auto_configure,
            model=DownloadModel(**self.model) if self.model else None,
            needsRestart=bool(self.model and self.model.get("configured")),
            createdAt=self.created_at,
            updatedAt=self.updated_at,
            completedAt=self.completed_at,
        )

    def event(self, kind: str) -> dict[str, Any]:
        """What the event bus carries: the view, and what happened (`created`, `state`, `progress`…)."""
        return {"event": kind, **self.view().model_dump(mode="json")}


_SAVED = (
    "source",
    "target_dir",
    "repo",
    "revision",
    "commit",
    "url",
    "model_id",
    "track_dir",
    "auto_configure",
    "retries",
    "message",
    "error",
    "error_code",
    "model",
    "completed_at",
)


class DownloadTable:
    """The `downloads` table: one row per download, its details as JSON."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def save(self, d: Download) -> None:
        d.updated_at = utc_now()
        data = {k: getattr(d, k) for k in _SAVED}
        data["files"] = [asdict(f) for f in d.files]
        self._store._write(
            "INSERT OR REPLACE INTO downloads (id, state, created_at, updated_at, token, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (d.id, d.state, d.created_at, d.updated_at, d.token, json.dumps(data)),
        )

    def delete(self, download_id: str) -> None:
        self._store._write("DELETE FROM downloads WHERE id = ?", (download_id,))

    def load(self) -> list[Download]:
        """Every download, oldest first."""
        rows = self._store._read(
            "SELECT id, state, created_at, updated_at, token, data FROM downloads ORDER BY created_at, id"
        )
        found = []
        for download_id, state, created, updated, token, text in rows:
            data = json.loads(text)
            files = [DownloadFile(**f) for f in data.pop("files")]
            found.append(
                Download(
                    id=download_id,
                    files=files,
                    state=state,
                    created_at=created,
                    updated_at=updated,
                    token=token,
                    **{k: v for k, v in data.items() if k in _SAVED},
                )
            )
        return found
