"""The part of a model that lives on llama.cpp RPC workers, outside this machine's budget.

llama.cpp splits a model's offloaded layers over the devices it is given, in proportion to each
device's free memory. On a machine without a GPU of its own every offloaded layer therefore
goes to the workers: that part of the estimate leaves the local VRAM budget and is checked
against the workers' own free memory (each worker reports it) just before the load. Beside
local GPUs the split depends on free memory at load time, so the pool keeps charging the whole
offloaded part locally, which can only over-count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import cast

from claracore.modelfile.estimate import MemoryEstimate
from claracore.runtime.base import Runtime


def offload(gpu_offload: bool, endpoints: Sequence[str] | None) -> bool:
    """Whether a model's `gpu_layers` leave this CPU: a build with RPC says it supports offload
    even on a machine without a GPU, where a model without workers keeps every layer here."""
    if not gpu_offload or endpoints:
        return gpu_offload
    from claracore.runtime import rpc

    return not rpc.supported() or rpc.local_gpus() > 0


def on_workers(estimate: MemoryEstimate, endpoints: Sequence[str]) -> MemoryEstimate:
    """`estimate` with what goes to `endpoints` moved from `vram_bytes` to `remote_bytes`."""
    if not endpoints or not estimate.vram_bytes:
        return estimate
    from claracore.runtime import rpc

    if rpc.local_gpus():
        return estimate
    return dataclasses.replace(
        estimate, vram_bytes=0, weights_vram=0, kv_vram=0, compute_vram=0, remote_bytes=estimate.vram_bytes
    )


def checked(
    load: Callable[[], Runtime], model: str, endpoints: Sequence[str], estimate: MemoryEstimate
) -> Callable[[], Runtime]:
    """`load`, after checking that the workers have room for the model's remote part; a worker
    lost while it runs makes it a WorkerUnavailableError instead of a load that never returns."""
    if not endpoints:
        return load

    def run() -> Runtime:
        from claracore.runtime import rpc

        if estimate.remote_bytes:
            rpc.check_room(model, list(endpoints), estimate.remote_bytes)
        return cast(Runtime, rpc.guarded(endpoints, load))

    return run
