"""Hardware probes against machines described by fake command outputs and sysfs trees."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from claracore.hardware.memory import GPUInfo
from claracore.hardware.probe import (
    Detection,
    ProbeEnv,
    amd_gpus,
    cpu_model,
    detect,
    render,
    run_command,
    system_detection,
    system_specs,
    vulkan_devices,
)
from claracore.units import GIB

VULKAN = """\
Devices:
========
GPU0:
\tapiVersion         = 1.3.260
\tdeviceType         = PHYSICAL_DEVICE_TYPE_DISCRETE_GPU
\tdeviceName         = AMD Radeon RX 7900 XTX (RADV NAVI31)
GPU1:
\tdeviceType         = PHYSICAL_DEVICE_TYPE_CPU
\tdeviceName         = llvmpipe (LLVM 17.0.6, 256 bits)
"""


def fake_run(outputs: dict[str, str]) -> object:
    """A command runner answering from `outputs` by program name; None for any other program."""

    def run(argv: Sequence[str]) -> str | None:
        return outputs.get(argv[0])

    return run


def env(tmp_path: Path, outputs: dict[str, str] | None = None, **kw: object) -> ProbeEnv:
    defaults: dict[str, object] = {
        "root": tmp_path,
        "run": fake_run(outputs or {}),
        "platform": "linux",
        "machine": "x86_64",
        "nvml": lambda: (),
        "build": lambda: (("cpu",), False),
    }
    return ProbeEnv(**{**defaults, **kw})  # type: ignore[arg-type]


def amd_card(root: Path, n: int, vram: int, vendor: str = "0x1002") -> None:
    dev = root / f"sys/class/drm/card{n}/device"
    dev.mkdir(parents=True)
    (dev / "vendor").write_text(vendor + "\n")
    (dev / "mem_info_vram_total").write_text(f"{vram}\n")
    (dev / "product_name").write_text("Radeon RX 7900 XTX\n")
    (root / f"sys/class/drm/card{n}-DP-1").mkdir()  # connectors are not cards


def test_cpu_only_machine(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nmodel name\t: Intel(R) Core(TM) i7-10700K\n")
    d = detect(env(tmp_path))
    det = d.detection_json()
    assert det["os"] == "linux" and det["architecture"] == "amd64"
    assert not any(det[k] for k in ("hasCUDA", "hasROCm", "hasVulkan", "hasMetal"))
    assert det["gpuType"] == "none" and det["recommendedBackend"] == "cpu" and det["totalVRAMGB"] == 0.0
    assert d.specs_json()["cpu"] == "Intel(R) Core(TM) i7-10700K"
    assert d.specs_json()["gpuInfo"] == "none"


def test_nvidia_from_nvml_and_cuda_build(tmp_path: Path) -> None:
    gpu = GPUInfo(index=0, name="NVIDIA RTX 3080", vram_total=10 * GIB, vram_free=9 * GIB)
    d = detect(env(tmp_path, nvml=lambda: (gpu,), build=lambda: (("cpu", "cuda"), True)))
    det = d.detection_json()
    assert det["hasCUDA"] and det["gpuType"] == "nvidia" and det["totalVRAMGB"] == 10.0
    assert det["recommendedBackend"] == "cuda"
    assert d.specs_json()["gpuInfo"] == "NVIDIA RTX 3080"


def test_nvidia_smi_fallback_and_cpu_only_build(tmp_path: Path) -> None:
    smi = "NVIDIA GeForce RTX 4090, 24564\nNVIDIA GeForce RTX 3060, 12288\n"
    d = detect(env(tmp_path, {"nvidia-smi": smi}))
    assert [g.name for g in d.gpus] == ["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3060"]
    assert d.total_vram == (24564 + 12288) << 20
    # The GPU suits CUDA, but a CPU-only build cannot offload to it: plan for the CPU.
    assert d.hardware_backend == "cuda" and d.recommended_backend == "cpu"
    assert any("claracore doctor" in line for line in render(d))


def test_amd_sysfs_reports_real_vram(tmp_path: Path) -> None:
    amd_card(tmp_path, 0, 25753026560)
    amd_card(tmp_path, 1, 1 << 30, vendor="0x8086")  # an Intel iGPU is not counted as AMD
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/kfd").write_text("")
    d = detect(env(tmp_path, {"vulkaninfo": VULKAN}, build=lambda: (("cpu", "hip", "vulkan"), True)))
    det = d.detection_json()
    assert det["gpuType"] == "amd" and det["hasROCm"] and det["hasVulkan"]
    assert det["totalVRAMGB"] == round(25753026560 / GIB, 1)
    assert det["recommendedBackend"] == "rocm"
    assert d.vulkan_devices == ("AMD Radeon RX 7900 XTX (RADV NAVI31)",)  # llvmpipe excluded


def test_amd_without_rocm_build_falls_back_to_vulkan(tmp_path: Path) -> None:
    amd_card(tmp_path, 0, 8 * GIB)
    d = detect(env(tmp_path, {"vulkaninfo": VULKAN}, build=lambda: (("cpu", "vulkan"), True)))
    assert not d.has_rocm and d.recommended_backend == "vulkan"


def test_rocm_smi_and_amd_smi_json(tmp_path: Path) -> None:
    card = {"Card Series": "Radeon PRO W7900", "VRAM Total Memory (B)": "48301604864"}
    rocm = {"card0": card, "system": {}}
    gpus = amd_gpus(env(tmp_path, {"rocm-smi": json.dumps(rocm)}))
    assert [(g.name, g.vram, g.source) for g in gpus] == [("Radeon PRO W7900", 48301604864, "rocm-smi")]
    amd = [{"gpu": 0, "asic": {"market_name": "MI300X"}, "vram": {"size": {"value": 196592, "unit": "MB"}}}]
    gpus = amd_gpus(env(tmp_path, {"amd-smi": json.dumps(amd)}))
    assert [(g.name, g.vram) for g in gpus] == [("MI300X", 196592 << 20)]
    assert amd_gpus(env(tmp_path, {"rocm-smi": "not json", "amd-smi": "[]"})) == ()


def test_macos_metal_unified_memory(tmp_path: Path) -> None:
    outputs = {"sysctl": "Apple M2 Max\n"}

    def run(argv: Sequence[str]) -> str | None:
        return {"hw.memsize": str(64 * GIB), "iogpu.wired_limit_mb": "0"}.get(argv[-1], outputs["sysctl"])

    d = detect(env(tmp_path, run=run, platform="darwin", machine="arm64", build=lambda: (("metal",), True)))
    det = d.detection_json()
    assert det["os"] == "darwin" and det["architecture"] == "arm64" and det["hasMetal"]
    assert det["totalRAMGB"] == 64.0 and det["totalVRAMGB"] == 48.0
    assert det["gpuType"] == "apple" and det["recommendedBackend"] == "metal"
    assert d.cpu == "Apple M2 Max"


def test_broken_tools_and_unknown_build_fail_soft(tmp_path: Path) -> None:
    d = detect(env(tmp_path, {"vulkaninfo": "garbage", "nvidia-smi": "oops"}, build=lambda: None))
    assert d.gpus == () and d.built_backends is None and d.recommended_backend == "cpu"
    assert cpu_model(env(tmp_path, machine="riscv64")) != ""
    assert vulkan_devices(env(tmp_path)) == ()
    assert "build unknown" in "\n".join(render(d))


def test_run_command_times_out_and_tolerates_missing_programs() -> None:
    assert run_command(["claracore-no-such-program"]) is None
    assert run_command([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2) is None
    assert run_command([sys.executable, "-c", "import sys; sys.exit(3)"]) is None
    assert run_command([sys.executable, "-c", "print('ok')"]) == "ok\n"


def test_this_machine_in_the_spec_shapes() -> None:
    assert set(system_specs()) == {"os", "arch", "cpu", "ramGB", "gpuInfo"}
    det = system_detection()
    assert set(det) == {
        "os", "architecture", "hasCUDA", "hasROCm", "hasVulkan", "hasMetal", "totalRAMGB",
        "totalVRAMGB", "gpuType", "recommendedBackend", "cpuCores", "cpuThreads",
    }  # fmt: skip
    assert det["totalRAMGB"] > 0 and det["cpuThreads"] >= det["cpuCores"] >= 1


@pytest.mark.parametrize("machine,expected", [("AMD64", "amd64"), ("aarch64", "arm64"), ("i686", "386")])
def test_arch_names_follow_the_spec(tmp_path: Path, machine: str, expected: str) -> None:
    assert detect(env(tmp_path, machine=machine)).arch == expected


def test_detection_dataclass_is_usable_directly() -> None:
    d = Detection(os="linux", arch="amd64", cpu="x", cpu_cores=1, cpu_threads=2, ram_total=GIB)
    assert d.detection_json()["totalRAMGB"] == 1.0


def test_cli_system_prints_the_detection(capsys: pytest.CaptureFixture[str]) -> None:
    from claracore.cli import main

    assert main(["system"]) == 0
    out = capsys.readouterr().out
    assert "CPU:" in out and "RAM:" in out and "recommended backend:" in out
    assert main(["system", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["detection"]["recommendedBackend"] == system_detection()["recommendedBackend"]
    assert set(data["specs"]) == set(system_specs())
