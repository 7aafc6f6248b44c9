"""Server control and model management: soft and hard restart, load and unload."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends

from claracore.config import Config
from claracore.errors import InvalidRequestError
from claracore.server.deps import EngineDep, StateDep, require_key

log = logging.getLogger("claracore.server")

router = APIRouter(prefix="/api", dependencies=[Depends(require_key)])
DRAIN_TIMEOUT_S = 30.0  # how long a hard restart waits for requests in flight


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _listening(config: Config) -> dict[str, Any]:
    """The settings a soft restart cannot apply: the socket, the CORS middleware and the event
    loop's priority are set once."""
    return {"host": config.host, "port": config.port, "cors": config.cors, "loop_nice": config.loop_nice}


@router.post("/server/restart")
async def soft_restart(state: StateDep) -> dict[str, Any]:
    """Reload the config file and apply it while serving; only changed models unload.

    Host, port and CORS take effect only at a hard restart: the running ones stay (they may be
    `serve --host/--port` overrides), and `needsHardRestart` says whether the file's differ from
    the file as it was read at start (comparing with the running config would report an override
    as a change the file never made)."""
    eng = state.engine
    config = await asyncio.to_thread(state.config_file.current)
    running = eng.config
    report = await eng.reconfigure(config.model_copy(update=_listening(running)))
    state.auth.use_config_key(config.api_key)  # the file's key, when present, always wins
    needs_hard = _listening(config) != _listening(state.file_at_start)
    log.info("soft restart: %s", {k: v for k, v in report.items() if v})
    return {
        "message": "Server restarted successfully",
        "reloadedAt": _now(),
        "models": report,
        "needsHardRestart": needs_hard,
    }


@router.post("/server/restart/hard")
async def hard_restart(state: StateDep) -> dict[str, str]:
    """Answer, drain (open streams end with an error event, requests in flight finish, new ones
    get 503 + Retry-After), then replace the process with a fresh one (only under `claracore
    serve`, which hands the listening socket over, so retries reach the new process)."""
    restart = state.hard_restart
    if restart is None:
        raise InvalidRequestError(
            "a hard restart needs the process to be `claracore serve`; this server is embedded", param=None
        )

    async def later() -> None:
        await asyncio.sleep(0.2)  # let the answer reach the client first
        await state.draining.drain(DRAIN_TIMEOUT_S)
        restart()

    state.draining.keep(later())
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
