"""How busy the machine is right now: CPU, RAM and (through NVML, when present) the GPUs.

`GET /api/metrics` and the periodic "metrics" events read one `UsageSampler`. CPU usage is the
share of CPU time spent busy since the previous sample (psutil's own `cpu_percent` keeps that
state in a module global, which two samplers would share). NVML is opened at the first sample
(an engine that is never asked pays nothing) and stays open for the sampler's life, since it is
read every few seconds; any NVML failure means "no GPU figures".
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import psutil

from claracore.units import GIB

log = logging.getLogger(__name__)

#: A sample younger than this is answered again: a busy share over a few ms is noise.
_MIN_INTERVAL = 0.5


def _gb(n: float) -> float:
    return round(n / GIB, 2)


class UsageSampler:
    """CPU, memory and GPU use in the spec's shape (`cpu`, `memory`, `gpu`; GB as in the spec)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times = psutil.cpu_times()
        self._cpu = 0.0
        self._at = 0.0
        self._nvml: Any = None
        self._nvml_opened = False

    def _cpu_usage(self) -> float:
        now = time.monotonic()
        if now - self._at < _MIN_INTERVAL:
            return self._cpu
        times = psutil.cpu_times()
        total = sum(times) - sum(self._times)
        idle = _idle(times) - _idle(self._times)
        if total > 0:
            self._cpu = round(max(0.0, min(100.0, 100.0 * (total - idle) / total)), 1)
        self._times, self._at = times, now
        return self._cpu

    def sample(self) -> dict[str, Any]:
        """{"cpu": {usage, cores}, "memory": {used, total, percent}, "gpu": {...} or None}."""
        with self._lock:
            cpu = self._cpu_usage()
            gpu = self._gpu()
        vm = psutil.virtual_memory()
        used = vm.total - vm.available
        return {
            "cpu": {"usage": cpu, "cores": os.cpu_count() or 1},
            "memory": {
                "used": _gb(used),
                "total": _gb(vm.total),
                "percent": round(100.0 * used / vm.total, 1),
            },
            "gpu": gpu,
        }

    def _gpu(self) -> dict[str, Any] | None:
        """All NVIDIA GPUs together (usage averaged, memory summed), each also on its own."""
        if not self._nvml_opened:
            self._nvml, self._nvml_opened = _open_nvml(), True
        nvml = self._nvml
        if nvml is None:
            return None
        try:
            devices = []
            for i in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                mem = nvml.nvmlDeviceGetMemoryInfo(handle)
                rates = nvml.nvmlDeviceGetUtilizationRates(handle)
                devices.append(
                    {"index": i, "usage": float(rates.gpu), "used": int(mem.used), "total": int(mem.total)}
                )
        except Exception as exc:  # a driver that went away: report no GPU rather than fail
            log.warning("NVML query failed: %s", exc)
            return None
        if not devices:
            return None
        return {
            "usage": round(sum(d["usage"] for d in devices) / len(devices), 1),
            "memoryUsed": _gb(sum(d["used"] for d in devices)),
            "memoryTotal": _gb(sum(d["total"] for d in devices)),
            "devices": [
                {
                    "index": d["index"],
                    "usage": d["usage"],
                    "memoryUsed": _gb(d["used"]),
                    "memoryTotal": _gb(d["total"]),
                }
                for d in devices
            ],
        }

    def close(self) -> None:
        with self._lock:
            nvml, self._nvml = self._nvml, None
        if nvml is not None:
            try:
                nvml.nvmlShutdown()
            except Exception:  # shutting down changes nothing we report
                pass


def _idle(times: Any) -> float:
    return float(times.idle + getattr(times, "iowait", 0.0))


def _open_nvml() -> Any:
    """pynvml, initialised; None without the [cuda] extra or a working driver."""
    try:
        import pynvml  # the nvidia-ml-py extra
    except ImportError:
        return None
    nvml: Any = pynvml
    try:
        nvml.nvmlInit()
    except Exception as exc:
        log.debug("NVML unavailable: %s", exc)
        return None
    return nvml
