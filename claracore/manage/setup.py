"""The one setup workflow: detect the hardware, scan the tracked folders, plan, validate, save, record.

`claracore setup` and the server's `generate-all` / `regenerate-from-db` all run `run_setup`;
each shows its progress its own way through a `SetupProgress` (lines on stderr, or the record
`GET /api/setup/progress` answers). In the server it runs in the background through
`SetupRunner`, one at a time, and a regeneration then applies the new config with a soft restart.

Hand edits survive: the planner's last choices are stored (`GENERATED`), so a value that differs
from them was set by hand and is kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from claracore.config import Config
from claracore.errors import ClaraCoreError, ConflictError
from claracore.events import EventBus
from claracore.hardware import probe
from claracore.manage import config_edit as edit
from claracore.manage.config_file import ConfigFile
from claracore.manage.planner import GENERATED, Hardware, Plan, PlanOptions, plan
from claracore.manage.scanner import scan_folder
from claracore.manage.store import Store, utc_now

log = logging.getLogger(__name__)


class SetupProgress(Protocol):
    """What a setup reports as it goes; each caller shows it its own way.

    `phase` is one of detecting, scanning, planning, writing (and restarting, in the server).
    """

    def phase(self, name: str, step: str) -> None:
        """A new phase begins; `step` says what it does, in words."""

    def folder(self, path: str) -> None:
        """The scan of one tracked folder begins."""

    def files(self, done: int, total: int, path: str) -> None:
        """`done` of `total` files scanned or planned (`path` is the one at hand, "" at the end)."""

    def skipped(self, folder: str, why: str) -> None:
        """A tracked folder was not scanned."""


class _Quiet:
    def phase(self, name: str, step: str) -> None:
        pass

    def folder(self, path: str) -> None:
        pass

    def files(self, done: int, total: int, path: str) -> None:
        pass

    def skipped(self, folder: str, why: str) -> None:
        pass


@dataclass(frozen=True)
class SetupResult:
    """What a setup wrote: the plan behind it, the validated config, and where."""

    plan: Plan
    config: Config
    path: Path


def detect_hardware() -> Hardware:
    """The machine as the planner sees it, from the probes (`claracore system` shows the same)."""
    return Hardware.from_detection(probe.detect())


def run_setup(
    store: Store,
    config_file: ConfigFile,
    options: PlanOptions,
    *,
    rescan: bool = True,
    progress: SetupProgress | None = None,
) -> SetupResult:
    """Plan a config for this machine from the store's model files and save it (blocking).

    With `rescan`, the tracked folders are scanned first (a folder that no longer exists is
    skipped: its models are gone). The read of the existing config, the plan and the write
    happen under the config file's lock, so no hand edit made meanwhile is lost. Raises
    ConfigError when the existing file is invalid and NoConfigFileError when there is no file.
    """
    report = progress or _Quiet()
    path = config_file.writable()
    report.phase("detecting", "Detecting hardware")
    hardware = detect_hardware()
    if rescan:
        report.phase("scanning", "Scanning tracked folders")
        for folder in [f for f in store.folders() if f.enabled]:
            if not os.path.isdir(folder.path):
                report.skipped(folder.path, "it no longer exists")
                continue
            report.folder(folder.path)
            found = scan_folder(folder.path, recursive=folder.recursive, store=store, progress=report.files)
            store.set_folder_scan(folder.path, len(found.models), utc_now())
    files = [f for f in store.files() if os.path.exists(f.path)]
    with config_file.locked():
        report.phase("planning", f"Planning {len(files)} model(s)")
        generated = store.get_setting(GENERATED, {}) or {}
        result = plan(
            files,
            hardware,
            options,
            existing=config_file.current(),
            generated=generated,
            progress=report.files,
        )
        report.phase("writing", f"Writing {path}")
        config = config_file.validated(edit.as_data(result.config))
        config_file.save(config, "setup")
        store.set_setting(GENERATED, result.record())
    return SetupResult(plan=result, config=config, path=path)


# ---------------------------------------------------------------- in the server's background

# Percent of the whole job at the start of each phase; a phase fills its span as files go by.
_SPAN = {
    "detecting": (0, 5),
    "scanning": (5, 40),
    "planning": (40, 90),
    "writing": (90, 95),
    "restarting": (95, 100),
}
IDLE: dict[str, Any] = {
    "status": "idle",
    "step": "",
    "progress": 0,
    "totalSteps": 100,
    "currentOperation": "",
    "running": False,
}


class SetupJob(_Quiet):
    """The progress record of one background setup, as `GET /api/setup/progress` answers it.

    Updated from the worker thread with plain assignments only, and read from the event loop.
    With `events`, each change that moves the percent (or the phase) is published as a "setup"
    event carrying the whole record; a file that does not move the percent is not.
    """

    def __init__(self, operation: str, events: EventBus | None = None) -> None:
        self._events = events
        self._published: tuple[object, object] | None = None
        self.state: dict[str, Any] = {
            **IDLE,
            "status": "detecting",
            "currentOperation": operation,
            "running": True,
            "startedAt": utc_now(),
            "filesRead": 0,
            "filesTotal": 0,
        }

    def _publish(self) -> None:
        moved = (self.state["status"], self.state["progress"])
        if self._events is not None and moved != self._published:
            self._published = moved
            self._events.publish("setup", dict(self.state))

    def phase(self, name: str, step: str) -> None:
        self.state.update(status=name, phase=name, step=step, progress=_SPAN[name][0])
        self._publish()

    def files(self, done: int, total: int, path: str) -> None:
        lo, hi = _SPAN[self.state["status"]]
        self.state.update(
            filesRead=done,
            filesTotal=total,
            progress=lo + (hi - lo) * done // max(total, 1),
            step=f"{self.state['phase']}: {done}/{total} files" + (f" ({path})" if path else ""),
        )
        self._publish()

    def finish(self, result: dict[str, Any]) -> None:
        self.state.update(
            status="completed", step="Done", progress=100, running=False, finishedAt=utc_now(), result=result
        )
        self._publish()

    def fail(self, message: str, code: str) -> None:
        self.state.update(status="error", running=False, finishedAt=utc_now(), error=message, code=code)
        self._publish()


#: Applies a written config to the running server (the engine's soft restart); returns its report.
Apply = Callable[[Config], Awaitable[dict[str, list[str]]]]


class SetupRunner:
    """Runs one setup at a time in the background and keeps the last one's progress."""

    def __init__(self, store: Store, config_file: ConfigFile, events: EventBus | None = None) -> None:
        self._store = store
        self._config_file = config_file
        self._events = events
        self.job: SetupJob | None = None
        self._task: asyncio.Task[None] | None = None

    def progress(self) -> dict[str, Any]:
        """The running (or last) job's record, or the idle one."""
        return dict(self.job.state) if self.job is not None else dict(IDLE)

    async def start(self, options: PlanOptions, *, rescan: bool, apply: Apply | None) -> SetupJob:
        """Start a setup and return its job at once; `apply` (if given) runs on the written config.

        Refused before anything starts when one is running (ConflictError, 409), when there is
        no config file (409), or when the existing file is invalid (ConfigError, 400).
        """
        self._config_file.writable()
        if self._task is not None and not self._task.done():
            raise ConflictError("a setup is already running; poll /api/setup/progress")
        await asyncio.to_thread(self._config_file.current)  # a broken file is a 400 now, not later
        job = SetupJob(
            "Generating configuration" if rescan else "Regenerating configuration from the database",
            self._events,
        )
        self.job = job
        self._task = asyncio.create_task(
            self._run(job, options, rescan=rescan, apply=apply), name="claracore-setup"
        )
        return job

    async def _run(self, job: SetupJob, options: PlanOptions, *, rescan: bool, apply: Apply | None) -> None:
        try:
            done = await asyncio.to_thread(
                run_setup, self._store, self._config_file, options, rescan=rescan, progress=job
            )
            report: dict[str, list[str]] = {}
            if apply is not None:
                job.phase("restarting", "Applying the configuration (soft restart)")
                report = await apply(done.config)
            job.finish(
                {
                    **done.plan.to_api(),
                    "configPath": str(done.path),
                    "restart": report,
                    "needsRestart": rescan,
                }
            )
        except ClaraCoreError as exc:
            job.fail(exc.message, exc.code)
        except Exception as exc:  # a bug: report it rather than leave the poller waiting forever
            log.exception("setup failed")
            job.fail(str(exc), "INTERNAL_ERROR")
