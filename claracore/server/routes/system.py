"""`GET /api/system/specs`, `/detection` (the spec's shapes) and `/doctor` (build facts).

The probes run subprocesses (vulkaninfo, rocm-smi, nvidia-smi) under timeouts, and the doctor
loads a tiny model, so they run in a worker thread: a slow driver must not stall requests being
served on the event loop.
"""

from __future__ import annotations

import platform
from typing import Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from claracore import __version__
from claracore.hardware import system_detection, system_specs
from claracore.server.deps import require_key

router = APIRouter(prefix="/api/system", dependencies=[Depends(require_key)])


@router.get("/specs")
async def specs() -> dict[str, Any]:
    return await run_in_threadpool(system_specs)


@router.get("/detection")
async def detection() -> dict[str, Any]:
    return await run_in_threadpool(system_detection)


def _doctor() -> dict[str, Any]:
    from claracore.doctor import diagnose

    r = diagnose()
    gib = 2**30
    return {
        "version": __version__,
        "python": platform.python_version(),
        "llamaCppPython": r.llama_version,
        "libDir": r.lib_dir,
        "backends": list(r.backends),
        "gpuOffload": r.gpu_offload,
        "gpus": [
            {
                "index": g.index,
                "name": g.name,
                "vramGB": round(g.vram_total / gib, 1),
                "vramFreeGB": round(g.vram_free / gib, 1),
            }
            for g in r.gpus
        ],
        "offloaded": list(r.offloaded) if r.offloaded else None,
        "offloadError": r.offload_error or None,
        "advice": list(r.advice),
    }


@router.get("/doctor")
async def doctor() -> dict[str, Any]:
    """What `claracore doctor` prints, as JSON: versions, compiled backends, GPUs, advice."""
    return await run_in_threadpool(_doctor)
