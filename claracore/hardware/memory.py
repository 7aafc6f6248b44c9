"""What memory this machine has, and the budget the pool may fill.

Detection is separate from the budget arithmetic so the arithmetic is a pure function, testable
with any machine described as a `MemoryInfo`. GPUs are found through NVML (the `nvidia-ml-py`
extra) when it is installed and working; any NVML failure means "no GPU", never an error,
because a CPU-only machine is a normal place to run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import psutil

from claracore.units import GIB

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GPUInfo:
    """One GPU as NVML reports it; memory in bytes."""

    index: int
    name: str
    vram_total: int
    vram_free: int


@dataclass(frozen=True)
class MemoryInfo:
    """The machine's memory in bytes; `gpus` is empty on a machine without a usable GPU."""

    ram_total: int
    ram_available: int
    gpus: tuple[GPUInfo, ...] = field(default=())

    @property
    def vram_total(self) -> int:
        return sum(g.vram_total for g in self.gpus)

    @property
    def vram_free(self) -> int:
        return sum(g.vram_free for g in self.gpus)


def nvml_gpus() -> tuple[GPUInfo, ...]:
    """NVIDIA GPUs as NVML reports them; () without the [cuda] extra, a driver, or a working NVML."""
    try:
        import pynvml  # the nvidia-ml-py extra; imported here so CPU installs never need it
    except ImportError:
        return ()
    nvml: Any = pynvml
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError and driver-library load failures alike
        log.debug("NVML unavailable: %s", exc)
        return ()
    try:
        gpus = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            name = nvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            gpus.append(GPUInfo(index=i, name=name, vram_total=int(mem.total), vram_free=int(mem.free)))
        return tuple(gpus)
    except Exception as exc:
        log.warning("NVML query failed, treating the machine as GPU-less: %s", exc)
        return ()
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # shutdown failures change nothing we report
            pass


def detect_memory() -> MemoryInfo:
    """RAM from psutil and NVIDIA GPUs from NVML when available; never raises for a missing GPU."""
    vm = psutil.virtual_memory()
    return MemoryInfo(ram_total=int(vm.total), ram_available=int(vm.available), gpus=nvml_gpus())


def _gib(value: float | str, auto: int, margin: int) -> int:
    if value == "auto":
        return max(auto - margin, 0)
    return max(int(float(value) * GIB), 0)


def budget_from(
    memory: MemoryInfo,
    vram_gb: float | Literal["auto"] | str,
    ram_gb: float | Literal["auto"] | str,
    margin_gb: float = 1.0,
) -> tuple[int, int]:
    """The (vram_bytes, ram_bytes) the pool may fill.

    "auto" is what `memory` reports available now (free VRAM over all GPUs, available RAM)
    minus `margin_gb`, floored at 0; a number is that many GiB exactly, as the user said so.
    """
    margin = int(margin_gb * GIB)
    return _gib(vram_gb, memory.vram_free, margin), _gib(ram_gb, memory.ram_available, margin)
