"""`GET /api/system/specs`, `/detection` (the spec's shapes) and `/doctor` (build facts).

The probes run subprocesses (vulkaninfo, rocm-smi, nvidia-smi) under timeouts, and the doctor
loads a tiny model, so they run in a worker thread: a slow driver must not stall requests being
served on the event loop.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from claracore.hardware import workers
from claracore.hardware.doctor import doctor_json
from claracore.hardware.probe import system_detection, system_specs
from claracore.server.deps import EngineDep, require_key

router = APIRouter(prefix="/api/system", dependencies=[Depends(require_key)])


@router.get("/specs")
async def specs() -> dict[str, Any]:
    return await run_in_threadpool(system_specs)


@router.get("/detection")
async def detection(eng: EngineDep) -> dict[str, Any]:
    """The spec's detection, plus `rpc`: the config's RPC workers, their devices and memory."""
    found = await run_in_threadpool(system_detection)
    return {**found, "rpc": await run_in_threadpool(workers.report, eng.config)}


@router.get("/doctor")
async def doctor() -> dict[str, Any]:
    """What `claracore doctor` prints, as JSON: versions, compiled backends, GPUs, advice."""
    return await run_in_threadpool(doctor_json)
