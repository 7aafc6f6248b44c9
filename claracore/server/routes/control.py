"""Server control and model management: soft and hard restart, load and unload."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends

from claracore.errors import InvalidRequestError
from claracore.server.deps import EngineDep, StateDep, require_key

log = logging.getLogger("claracore.server")

router = APIRouter(prefix="/api", dependencies=[Depends(require_key)])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@router.post("/server/restart")
async def soft_restart(state: StateDep) -> dict[str, Any]:
    """Reload the config file and apply it while serving; only changed models unload."""
    eng = state.engine
    config = await asyncio.to_thread(state.config_file.current)
    before = eng.config
    report = await eng.reconfigure(config)
    if config.api_key and config.api_key != before.api_key:
        state.auth.config_key_changed(config.api_key)
    needs_hard = (config.host, config.port, config.cors) != (before.host, before.port, before.cors)
    log.info("soft restart: %s", {k: v for k, v in report.items() if v})
    return {
        "message": "Server restarted successfully",
        "reloadedAt": _now(),
        "models": report,
        "needsHardRestart": needs_hard,
    }


@router.post("/server/restart/hard")
async def hard_restart(state: StateDep, background: BackgroundTasks) -> dict[str, str]:
    """Answer, then replace the process with a fresh one (only under `claracore serve`)."""
    restart = state.hard_restart
    if restart is None:
        raise InvalidRequestError(
            "a hard restart needs the process to be `claracore serve`; this server is embedded", param=None
        )

    async def later() -> None:
        await asyncio.sleep(0.2)  # let the answer reach the client first
        restart()

    background.add_task(later)
    return {"message": "Hard restart scheduled", "restartingAt": _now()}


@router.post("/models/unload")
async def unload_all(eng: EngineDep) -> dict[str, Any]:
    names = await eng.unload_all()
    return {"message": "All models unloaded successfully", "unloadedCount": len(names), "models": names}


@router.post("/models/{model_id:path}/load")
async def load_model(model_id: str, eng: EngineDep) -> dict[str, Any]:
    await eng.load(model_id)
    info = eng.model(model_id)
    return {"message": f"Model {info.id} loaded", "model": info.id, "state": info.state}


@router.post("/models/{model_id:path}/unload")
async def unload_model(model_id: str, eng: EngineDep) -> dict[str, Any]:
    unloaded = await eng.unload(model_id)
    info = eng.model(model_id)
    message = f"Model {info.id} unloaded" if unloaded else f"Model {info.id} was not loaded"
    return {"message": message, "model": info.id, "unloaded": unloaded}
