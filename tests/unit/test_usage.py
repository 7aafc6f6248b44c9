"""Machine usage for /api/metrics: CPU and RAM from psutil, GPUs through NVML when it is there."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from claracore.hardware.usage import UsageSampler
from claracore.units import GIB


def test_cpu_and_memory_in_the_specs_shape() -> None:
    sampler = UsageSampler()
    try:
        sum(i * i for i in range(200_000))  # some CPU time to measure
        got = sampler.sample()
    finally:
        sampler.close()
    assert set(got) == {"cpu", "memory", "gpu"}
    assert 0.0 <= got["cpu"]["usage"] <= 100.0 and got["cpu"]["cores"] >= 1
    memory = got["memory"]
    assert 0 < memory["used"] <= memory["total"] and memory["percent"] == pytest.approx(
        100 * memory["used"] / memory["total"], abs=0.5
    )


def _fake_nvml(devices: list[tuple[int, int, int]], shutdowns: list[int]) -> types.ModuleType:
    """A stand-in pynvml: (utilisation %, used bytes, total bytes) per GPU."""
    nvml: Any = types.ModuleType("pynvml")
    nvml.nvmlInit = lambda: None
    nvml.nvmlShutdown = lambda: shutdowns.append(1)
    nvml.nvmlDeviceGetCount = lambda: len(devices)
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i
    nvml.nvmlDeviceGetMemoryInfo = lambda i: types.SimpleNamespace(used=devices[i][1], total=devices[i][2])
    nvml.nvmlDeviceGetUtilizationRates = lambda i: types.SimpleNamespace(gpu=devices[i][0])
    return nvml


def test_gpus_are_summed_and_each_one_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    shutdowns: list[int] = []
    monkeypatch.setitem(
        sys.modules, "pynvml", _fake_nvml([(80, 6 * GIB, 8 * GIB), (20, 2 * GIB, 8 * GIB)], shutdowns)
    )
    sampler = UsageSampler()
    gpu = sampler.sample()["gpu"]
    sampler.close()
    assert (gpu["usage"], gpu["memoryUsed"], gpu["memoryTotal"]) == (50.0, 8.0, 16.0)
    assert [d["usage"] for d in gpu["devices"]] == [80.0, 20.0] and gpu["devices"][1]["memoryUsed"] == 2.0
    assert shutdowns == [1]  # NVML stays open for the sampler's life, and is closed with it


def test_no_gpu_figures_without_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails: the [cuda] extra is not installed
    sampler = UsageSampler()
    assert sampler.sample()["gpu"] is None
    sampler.close()
