"""`GET /api/system/specs` and `GET /api/system/detection`, in the spec's shapes.

The probes run subprocesses (vulkaninfo, rocm-smi, nvidia-smi) under timeouts, so they run in a
worker thread: a slow driver must not stall requests being served on the event loop.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from claracore.hardware.probe import system_detection, system_specs
from claracore.server.deps import require_key

router = APIRouter(prefix="/api/system", dependencies=[Depends(require_key)])


@router.get("/specs")
async def specs() -> dict[str, Any]:
    return await run_in_threadpool(system_specs)


@router.get("/detection")
async def detection() -> dict[str, Any]:
    return await run_in_threadpool(system_detection)
