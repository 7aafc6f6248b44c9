"""Auto-setup routes: plan a config for this machine from the tracked folders, in the background.

`generate-all` rescans the tracked folders first; `regenerate-from-db` plans from what the
database already knows and then applies the result with a soft restart (as the spec says). Both
keep hand edits of models that still exist (the planner's last choices are stored, so an edit is
told apart from a planned value) and answer at once: the work reads every model's header, so it
runs as a task whose progress `GET /api/setup/progress` reports. One runs at a time (409).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from claracore.config import save_config
from claracore.engine import AsyncEngine
from claracore.errors import ClaraCoreError, ConflictError, InvalidRequestError
from claracore.hardware.probe import system_detection
from claracore.manage import config_edit as edit
from claracore.manage.planner import GENERATED, Hardware, PlanOptions, plan
from claracore.manage.scanner import scan_folder
from claracore.manage.store import Store, utc_now
from claracore.server.deps import engine, require_key, store
from claracore.server.routes import config as config_routes
from claracore.server.routes.settings import SYSTEM

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", dependencies=[Depends(require_key)])
Db = Annotated[Store, Depends(store)]
Engine = Annotated[AsyncEngine, Depends(engine)]
# Percent of the whole job at the start of each phase; a phase fills its span as files go by.
_SPAN = {
    "detecting": (0, 5),
    "scanning": (5, 40),
    "planning": (40, 90),
    "writing": (90, 95),
    "restarting": (95, 100),
}
_IDLE = {
    "status": "idle",
    "step": "",
    "progress": 0,
    "totalSteps": 100,
    "currentOperation": "",
    "running": False,
}


class _Job:
    """The progress record one job updates (from worker threads too: plain assignments only)."""

    def __init__(self, operation: str) -> None:
        self.state: dict[str, Any] = {
            **_IDLE,
            "status": "detecting",
            "currentOperation": operation,
            "running": True,
            "startedAt": utc_now(),
            "filesRead": 0,
            "filesTotal": 0,
        }

    def phase(self, name: str, step: str) -> None:
        self.state.update(status=name, phase=name, step=step, progress=_SPAN[name][0])

    def files(self, done: int, total: int, path: str) -> None:
        lo, hi = _SPAN[self.state["status"]]
        self.state.update(
            filesRead=done,
            filesTotal=total,
            progress=lo + (hi - lo) * done // max(total, 1),
            step=f"{self.state['phase']}: {done}/{total} files" + (f" ({path})" if path else ""),
        )


def _progress(request: Request) -> dict[str, Any]:
    job: _Job | None = getattr(request.app.state, "setup_job", None)
    return dict(job.state) if job is not None else dict(_IDLE)


async def _options(request: Request, nested: bool) -> PlanOptions:
    body = await config_routes._json(request)
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    return PlanOptions.from_api(body.get("options") if nested else body, _saved_preferences(request))


#: POST /api/settings/system's preferences, as the planner's options: what a request leaves out.
_FROM_SETTINGS = {
    "backend": "forceBackend",
    "vramGB": "forceVRAM",
    "ramGB": "forceRAM",
    "preferredContext": "preferredContext",
    "throughputFirst": "throughputFirst",
    "enableJinja": "enableJinja",
}


def _saved_preferences(request: Request) -> dict[str, Any]:
    saved = request.app.state.store.get_setting(SYSTEM, {}) or {}
    prefs = {option: saved[key] for key, option in _FROM_SETTINGS.items() if saved.get(key) is not None}
    if prefs.get("forceBackend") == "auto":
        del prefs["forceBackend"]  # "auto" means detect, which is what no option does
    return prefs


async def _start(
    request: Request, db: Store, eng: AsyncEngine, options: PlanOptions, *, rescan: bool
) -> dict[str, Any]:
    path = config_routes._writable(request)
    running: asyncio.Task[None] | None = getattr(request.app.state, "setup_task", None)
    if running is not None and not running.done():
        raise ConflictError("a setup is already running; poll /api/setup/progress")
    await asyncio.to_thread(config_routes._current, path, eng)  # a broken file is a 400 now, not later
    job = _Job("Generating configuration" if rescan else "Regenerating configuration from the database")
    request.app.state.setup_job = job
    lock = config_routes._lock(request)
    request.app.state.setup_task = asyncio.create_task(
        _run(job, lock, path, db, eng, options, rescan=rescan), name="claracore-setup"
    )
    return {
        "message": f"{job.state['currentOperation']} started",
        "status": "started",
        "progressUrl": "/api/setup/progress",
        "needsRestart": rescan,
        "restartMessage": "Poll /api/setup/progress; a soft restart applies the new configuration."
        if rescan
        else "The new configuration is applied with a soft restart when it is written.",
    }


async def _run(
    job: _Job,
    lock: asyncio.Lock,
    path: Path,
    db: Store,
    eng: AsyncEngine,
    options: PlanOptions,
    *,
    rescan: bool,
) -> None:
    try:
        job.phase("detecting", "Detecting hardware")
        hardware = Hardware.from_detection(await asyncio.to_thread(system_detection))
        if rescan:
            job.phase("scanning", "Scanning tracked folders")
            for folder in [f for f in db.folders() if f.enabled]:
                if not os.path.isdir(folder.path):
                    continue  # a tracked folder that was deleted: its models are gone
                result = await asyncio.to_thread(
                    scan_folder, folder.path, recursive=folder.recursive, store=db, progress=job.files
                )
                db.set_folder_scan(folder.path, len(result.models), utc_now())
        files = [f for f in db.files() if os.path.exists(f.path)]
        async with lock:
            job.phase("planning", f"Planning {len(files)} model(s)")

            def run_plan() -> Any:
                existing = config_routes._current(path, eng)
                generated = db.get_setting(GENERATED, {}) or {}
                return plan(
                    files, hardware, options, existing=existing, generated=generated, progress=job.files
                )

            result_plan = await asyncio.to_thread(run_plan)
            job.phase("writing", f"Writing {path}")
            base_dir = path.absolute().parent

            def write() -> Any:
                config = edit.validated(edit.as_data(result_plan.config), source=str(path), base_dir=base_dir)
                save_config(config, path)
                db.set_setting(GENERATED, result_plan.record())
                return config

            config = await asyncio.to_thread(write)
        report: dict[str, Any] = {}
        if not rescan:
            job.phase("restarting", "Applying the configuration (soft restart)")
            report = await eng.reconfigure(config)
        job.state.update(
            status="completed",
            step="Done",
            progress=100,
            running=False,
            finishedAt=utc_now(),
            result={
                **result_plan.to_api(),
                "configPath": str(path),
                "restart": report,
                "needsRestart": rescan,
            },
        )
    except ClaraCoreError as exc:
        job.state.update(
            status="error", running=False, finishedAt=utc_now(), error=exc.message, code=exc.code
        )
    except Exception as exc:  # a bug: report it rather than leave the poller waiting forever
        log.exception("setup failed")
        job.state.update(
            status="error", running=False, finishedAt=utc_now(), error=str(exc), code="INTERNAL_ERROR"
        )


@router.post("/config/generate-all")
async def generate_all(request: Request, db: Db, eng: Engine) -> dict[str, Any]:
    """Rescan the tracked folders and write a config planned for this machine (options at top level)."""
    return await _start(request, db, eng, await _options(request, nested=False), rescan=True)


@router.post("/config/regenerate-from-db")
async def regenerate_from_db(request: Request, db: Db, eng: Engine) -> dict[str, Any]:
    """Plan from the scanned files in the database (`{"options": {...}}`), write, soft-restart."""
    return await _start(request, db, eng, await _options(request, nested=True), rescan=False)


@router.get("/setup/progress")
async def progress(request: Request) -> dict[str, Any]:
    """The running (or last) job: status/phase, percent, files read of total, and its result."""
    return _progress(request)
