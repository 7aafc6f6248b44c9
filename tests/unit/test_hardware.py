"""Memory detection (with NVML faked) and the budget arithmetic."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from claracore.hardware.memory import GPUInfo, MemoryInfo, budget_from, detect_memory
from claracore.units import GIB


def _fake_nvml(*, fail_init: bool = False, fail_query: bool = False) -> types.ModuleType:
    """Just the pynvml surface detect_memory uses."""
    nvml: Any = types.ModuleType("pynvml")
    calls: list[str] = []
    nvml.calls = calls

    class NVMLError(Exception):
        pass

    def init() -> None:
        calls.append("init")
        if fail_init:
            raise NVMLError("Driver Not Loaded")

    def count() -> int:
        if fail_query:
            raise NVMLError("Unknown Error")
        return 2

    def memory(handle: int) -> Any:
        return types.SimpleNamespace(total=(handle + 1) * 8 * GIB, free=(handle + 1) * 6 * GIB)

    nvml.nvmlInit = init
    nvml.nvmlShutdown = lambda: calls.append("shutdown")
    nvml.nvmlDeviceGetCount = count
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i
    nvml.nvmlDeviceGetMemoryInfo = memory
    nvml.nvmlDeviceGetName = lambda h: b"Fake GPU" if h == 0 else "Other GPU"
    return nvml


def test_detect_memory_reports_ram() -> None:
    info = detect_memory()
    assert info.ram_total > 0 and 0 < info.ram_available <= info.ram_total
    assert all(isinstance(g, GPUInfo) for g in info.gpus)


def test_detect_memory_without_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    assert detect_memory().gpus == ()


def test_detect_memory_with_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = _fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    info = detect_memory()
    assert info.gpus == (
        GPUInfo(index=0, name="Fake GPU", vram_total=8 * GIB, vram_free=6 * GIB),
        GPUInfo(index=1, name="Other GPU", vram_total=16 * GIB, vram_free=12 * GIB),
    )
    assert (info.vram_total, info.vram_free) == (24 * GIB, 18 * GIB)
    assert nvml.calls == ["init", "shutdown"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("failure", ["fail_init", "fail_query"])
def test_nvml_errors_mean_no_gpu(monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(**{failure: True}))
    assert detect_memory().gpus == ()


MACHINE = MemoryInfo(
    ram_total=32 * GIB,
    ram_available=20 * GIB,
    gpus=(GPUInfo(0, "a", 24 * GIB, 22 * GIB), GPUInfo(1, "b", 24 * GIB, 10 * GIB)),
)


def test_budget_auto_is_available_minus_margin() -> None:
    assert budget_from(MACHINE, "auto", "auto", 1.0) == (31 * GIB, 19 * GIB)
    assert budget_from(MACHINE, "auto", "auto", 0) == (32 * GIB, 20 * GIB)


def test_budget_numbers_are_gib() -> None:
    assert budget_from(MACHINE, 8, 2.5, 1.0) == (8 * GIB, int(2.5 * GIB))
    assert budget_from(MACHINE, 0, "auto", 4.0) == (0, 16 * GIB)


def test_budget_floors_at_zero() -> None:
    cpu_only = MemoryInfo(ram_total=4 * GIB, ram_available=GIB // 2)
    assert budget_from(cpu_only, "auto", "auto", 1.0) == (0, 0)
    assert budget_from(cpu_only, -3, "auto", 0.25) == (0, GIB // 4)
