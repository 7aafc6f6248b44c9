"""`AppState`: everything one app holds, typed, built once by `create_app`.

It replaces Starlette's untyped `app.state` bag (nothing in Starlette or FastAPI reads that
attribute), so a route gets its services through `server.deps` with their types, and nothing is
created lazily on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from claracore.config import Config
from claracore.engine import AsyncEngine
from claracore.events import Subscription
from claracore.hardware.probe import system_detection
from claracore.manage.activity import ActivityLog
from claracore.manage.config_file import ConfigFile
from claracore.manage.downloads import DownloadManager
from claracore.manage.folders import ScanRegistry
from claracore.manage.settings import Settings
from claracore.manage.setup import SetupRunner
from claracore.manage.store import Store
from claracore.server.auth import Auth
from claracore.server.drain import Draining


@dataclass
class AppState:
    """The engine and the management services around it, for one app."""

    engine: AsyncEngine
    store: Store
    data_dir: Path  # where the store lives
    config_file: ConfigFile
    auth: Auth
    settings: Settings
    setup: SetupRunner
    activity: ActivityLog  # stored requests and log lines (GET /api/activity, /api/logs)
    downloads: DownloadManager
    # The config file as read at start (before `serve --host/--port` overrides): a soft restart
    # compares the file with it to tell whether host, port or CORS changed since the process began.
    file_at_start: Config
    hard_restart: Callable[[], None] | None = None  # set under `claracore serve`, which can re-exec
    scans: ScanRegistry = field(default_factory=ScanRegistry)  # the folder scans running now
    draining: Draining = field(default_factory=Draining)  # requests in flight; a hard restart drains
    _detection: dict[str, Any] | None = field(default=None, repr=False)
    # The subscriptions behind open event streams (/api/events, /api/logs?follow=1).
    streams: set[Subscription] = field(default_factory=set, repr=False)

    def end_streams(self) -> None:
        """End every open event stream, so a server shutting down need not wait for its clients."""
        for sub in list(self.streams):
            sub.close()

    @property
    def key_digest(self) -> bytes | None:
        """The digest of the API key requests must present; None when none is required."""
        return self.auth.digest

    async def detection(self) -> dict[str, Any]:
        """The hardware probes' answer, run once per app (in a thread: they start subprocesses)."""
        if self._detection is None:
            self._detection = await run_in_threadpool(system_detection)
        return self._detection
