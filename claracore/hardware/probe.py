"""Probes behind `GET /api/system/specs`, `GET /api/system/detection` and `claracore system`.

Every probe is optional and fails soft: a missing tool, an unreadable file, a driver that hangs
(subprocesses run under a timeout) all mean "not found", never an error, because the planner
must still produce a CPU config on a bare machine. The filesystem root, the command runner and
the NVML/llama.cpp look-ups are injected through `ProbeEnv`, so tests describe any machine with
fake command outputs and a sysfs tree in a temporary folder.
"""

from __future__ import annotations

import json
import logging
import platform as _platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil

from claracore.hardware.memory import GPUInfo, nvml_gpus
from claracore.units import GIB

log = logging.getLogger(__name__)

Vendor = Literal["nvidia", "amd", "intel", "apple", "other"]
TIMEOUT_S = 5.0
# Go's GOOS/GOARCH names, as the spec's examples ("windows", "amd64") use them.
_OS = {"win32": "windows", "cygwin": "windows", "darwin": "darwin"}
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "i386": "386", "i686": "386", "x86": "386", "armv7l": "arm", "armv6l": "arm"}  # fmt: skip
_PCI_VENDOR: dict[str, Vendor] = {"0x10de": "nvidia", "0x1002": "amd", "0x8086": "intel"}


def run_command(argv: Sequence[str], timeout: float = TIMEOUT_S) -> str | None:
    """stdout of `argv`, or None when it is not installed, fails, or outlives `timeout`."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("%s failed: %s", argv[0], exc)
        return None
    return done.stdout if done.returncode == 0 else None


def llama_build() -> tuple[tuple[str, ...], bool] | None:
    """(ggml backends next to libllama, llama_supports_gpu_offload), or None without llama_cpp.

    The same look-up the doctor uses (`runtime.native.build_info`), so both commands agree on
    what the build contains; imported here, so a broken llama-cpp-python only blanks these fields.
    """
    try:
        from claracore.runtime.native import build_info

        build = build_info()
        return build.backends, build.gpu_offload
    except Exception as exc:  # ImportError, a broken shared library: the build is unknown
        log.debug("llama.cpp build unknown: %s", exc)
        return None


@dataclass(frozen=True)
class ProbeEnv:
    """Where the probes look: injected so tests can describe a machine that is not this one."""

    root: Path = Path("/")
    run: Callable[[Sequence[str]], str | None] = run_command
    platform: str = sys.platform
    machine: str = field(default_factory=_platform.machine)
    nvml: Callable[[], tuple[GPUInfo, ...]] = nvml_gpus
    build: Callable[[], tuple[tuple[str, ...], bool] | None] = llama_build

    def read(self, path: str) -> str | None:
        try:
            return (self.root / path.lstrip("/")).read_text(errors="replace").strip()
        except OSError:
            return None


@dataclass(frozen=True)
class GPU:
    """One GPU from whichever probe saw it; `vram` in bytes (0: unknown or shared memory)."""

    vendor: Vendor
    name: str
    vram: int
    source: str


@dataclass(frozen=True)
class Detection:
    """Everything the probes found; the two JSON shapes of the spec are views of it."""

    os: str
    arch: str
    cpu: str
    cpu_cores: int
    cpu_threads: int
    ram_total: int
    gpus: tuple[GPU, ...] = ()
    has_cuda: bool = False
    has_rocm: bool = False
    has_vulkan: bool = False
    has_metal: bool = False
    vulkan_devices: tuple[str, ...] = ()
    built_backends: tuple[str, ...] | None = None  # None: llama-cpp-python not importable
    gpu_offload: bool | None = None

    @property
    def gpu_type(self) -> str:
        """The vendor of the GPU with the most memory, "none" without a GPU."""
        if not self.gpus:
            return "intel" if any("intel" in d.lower() for d in self.vulkan_devices) else "none"
        return max(self.gpus, key=lambda g: g.vram).vendor

    @property
    def total_vram(self) -> int:
        return sum(g.vram for g in self.gpus)

    @property
    def hardware_backend(self) -> str:
        """The best backend for the hardware alone, whatever llama-cpp-python was built with."""
        kind = self.gpu_type
        if kind == "nvidia" and self.has_cuda:
            return "cuda"
        if kind == "apple" and self.has_metal:
            return "metal"
        if kind == "amd" and self.has_rocm:
            return "rocm"
        return "vulkan" if self.has_vulkan else "cpu"

    @property
    def recommended_backend(self) -> str:
        """The hardware's best backend that the installed build can run, falling back to CPU.

        Offloading to a backend the build lacks does nothing, so recommending it would plan
        layers onto a GPU that never receives them; `claracore doctor` says how to rebuild.
        """
        want = self.hardware_backend
        if self.built_backends is None or want == "cpu":
            return want
        built = {"hip": "rocm"}
        have = {built.get(b, b) for b in self.built_backends}
        for candidate in (want, "vulkan"):
            if candidate in have and (candidate != "vulkan" or self.has_vulkan):
                return candidate
        return "cpu"

    def detection_json(self) -> dict[str, Any]:
        """`GET /api/system/detection`, key for key as the spec shows it."""
        return {
            "os": self.os,
            "architecture": self.arch,
            "hasCUDA": self.has_cuda,
            "hasROCm": self.has_rocm,
            "hasVulkan": self.has_vulkan,
            "hasMetal": self.has_metal,
            "totalRAMGB": round(self.ram_total / GIB, 1),
            "totalVRAMGB": round(self.total_vram / GIB, 1),
            "gpuType": self.gpu_type,
            "recommendedBackend": self.recommended_backend,
            "cpuCores": self.cpu_cores,
            "cpuThreads": self.cpu_threads,
        }

    def specs_json(self) -> dict[str, Any]:
        """`GET /api/system/specs`, key for key as the spec shows it."""
        names = [g.name for g in self.gpus] or list(self.vulkan_devices)
        return {
            "os": self.os,
            "arch": self.arch,
            "cpu": self.cpu,
            "ramGB": round(self.ram_total / GIB, 1),
            "gpuInfo": ", ".join(names) if names else "none",
        }


def os_name(env: ProbeEnv) -> str:
    return _OS.get(env.platform, "linux" if env.platform.startswith("linux") else env.platform)


def arch_name(env: ProbeEnv) -> str:
    return _ARCH.get(env.machine.lower(), env.machine.lower() or "unknown")


def cpu_model(env: ProbeEnv) -> str:
    """The CPU's marketing name: /proc/cpuinfo on Linux, sysctl on macOS, else `platform`."""
    if env.platform == "darwin":
        out = env.run(["sysctl", "-n", "machdep.cpu.brand_string"])
        if out and out.strip():
            return out.strip()
    text = env.read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Model", "cpu model", "cpu"):
        if m := re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE):
            return m.group(1).strip()
    return _platform.processor() or env.machine or "unknown"


def nvidia_gpus(env: ProbeEnv) -> tuple[GPU, ...]:
    """NVML when the [cuda] extra is installed, else nvidia-smi's CSV (same driver, no extra)."""
    gpus = tuple(GPU("nvidia", g.name, g.vram_total, "nvml") for g in env.nvml())
    if gpus:
        return gpus
    out = env.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"])
    found = []
    for line in (out or "").splitlines():
        name, _, mib = line.rpartition(",")
        if name.strip() and mib.strip().isdigit():
            found.append(GPU("nvidia", name.strip(), int(mib.strip()) << 20, "nvidia-smi"))
    return tuple(found)


def sysfs_gpus(env: ProbeEnv, vendors: Sequence[str] = ("amd",)) -> tuple[GPU, ...]:
    """GPUs under /sys/class/drm with their real VRAM (amdgpu's mem_info_vram_total)."""
    drm = env.root / "sys/class/drm"
    try:
        cards = sorted(p for p in drm.iterdir() if re.fullmatch(r"card\d+", p.name))
    except OSError:
        return ()
    found = []
    for card in cards:
        dev = f"/sys/class/drm/{card.name}/device"
        vendor = _PCI_VENDOR.get((env.read(f"{dev}/vendor") or "").lower(), "other")
        if vendor not in vendors:
            continue
        vram = env.read(f"{dev}/mem_info_vram_total") or ""
        name = env.read(f"{dev}/product_name") or f"{vendor.upper()} GPU {env.read(f'{dev}/device') or ''}"
        found.append(GPU(vendor, name.strip(), int(vram) if vram.isdigit() else 0, "sysfs"))
    return tuple(found)


def _rocm_smi(out: str) -> tuple[GPU, ...]:
    data = json.loads(out)
    found = []
    for card, info in sorted(data.items()) if isinstance(data, dict) else ():
        if not (card.startswith("card") and isinstance(info, dict)):
            continue
        vram = str(info.get("VRAM Total Memory (B)", "0"))
        name = info.get("Card Series") or info.get("Card series") or info.get("Card model") or card
        found.append(GPU("amd", str(name), int(vram) if vram.isdigit() else 0, "rocm-smi"))
    return tuple(found)


def _amd_smi(out: str) -> tuple[GPU, ...]:
    data = json.loads(out)
    found = []
    for info in data if isinstance(data, list) else []:
        asic, size = info.get("asic") or {}, (info.get("vram") or {}).get("size") or {}
        value, unit = size.get("value", 0), str(size.get("unit", "MB")).upper()
        scale = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}.get(unit, 1 << 20)
        vram = int(float(value) * scale) if isinstance(value, int | float) else 0
        name = str(asic.get("market_name") or f"AMD GPU {info.get('gpu', '')}")
        found.append(GPU("amd", name, vram, "amd-smi"))
    return tuple(found)


def amd_gpus(env: ProbeEnv) -> tuple[GPU, ...]:
    """sysfs first (no subprocess), then rocm-smi's and amd-smi's JSON where sysfs is absent."""
    if gpus := sysfs_gpus(env, ("amd",)):
        return gpus
    for argv, parse in ((["rocm-smi", "--showproductname", "--showmeminfo", "vram", "--json"], _rocm_smi),
                        (["amd-smi", "static", "--asic", "--vram", "--json"], _amd_smi)):  # fmt: skip
        out = env.run(argv)
        if not out:
            continue
        try:
            if gpus := parse(out):
                return gpus
        except (ValueError, TypeError, AttributeError) as exc:
            log.debug("%s output not understood: %s", argv[0], exc)
    return ()


def vulkan_devices(env: ProbeEnv) -> tuple[str, ...]:
    """Hardware Vulkan devices from `vulkaninfo --summary` (software rasterisers excluded)."""
    out = env.run(["vulkaninfo", "--summary"])
    names, kind = [], ""
    for line in (out or "").splitlines():
        if m := re.match(r"\s*deviceType\s*=\s*(\S+)", line):
            kind = m.group(1)
        elif m := re.match(r"\s*deviceName\s*=\s*(.+)", line):
            if kind != "PHYSICAL_DEVICE_TYPE_CPU" and "llvmpipe" not in m.group(1).lower():
                names.append(m.group(1).strip())
            kind = ""
    return tuple(names)


def apple_gpu(env: ProbeEnv, ram_total: int) -> GPU | None:
    """Apple silicon: Metal on unified memory, of which macOS lets the GPU wire about 3/4."""
    if env.platform != "darwin" or arch_name(env) != "arm64":
        return None
    limit = (env.run(["sysctl", "-n", "iogpu.wired_limit_mb"]) or "").strip()
    vram = int(limit) << 20 if limit.isdigit() and int(limit) > 0 else ram_total * 3 // 4
    name = (env.run(["sysctl", "-n", "machdep.cpu.brand_string"]) or "Apple GPU").strip()
    return GPU("apple", f"{name} GPU (unified memory)", vram, "sysctl")


def _ram(env: ProbeEnv) -> int:
    if env.platform == "darwin":
        out = (env.run(["sysctl", "-n", "hw.memsize"]) or "").strip()
        if out.isdigit():
            return int(out)
    return int(psutil.virtual_memory().total)


def detect(env: ProbeEnv | None = None) -> Detection:
    """Run every probe; each one that fails only leaves its fields empty."""
    env = env or ProbeEnv()
    ram = _ram(env)
    nvidia, amd = nvidia_gpus(env), amd_gpus(env)
    apple = apple_gpu(env, ram)
    vulkan = vulkan_devices(env)
    # /dev/kfd is the ROCm kernel driver (never read: it is a device); rocminfo, its user space.
    rocm = bool(amd) and ((env.root / "dev/kfd").exists() or env.run(["rocminfo"]) is not None)
    build = env.build()
    return Detection(
        os=os_name(env),
        arch=arch_name(env),
        cpu=cpu_model(env),
        cpu_cores=psutil.cpu_count(logical=False) or psutil.cpu_count() or 1,
        cpu_threads=psutil.cpu_count() or 1,
        ram_total=ram,
        gpus=nvidia + amd + ((apple,) if apple else ()),
        has_cuda=bool(nvidia),
        has_rocm=rocm,
        has_vulkan=bool(vulkan),
        has_metal=apple is not None,
        vulkan_devices=vulkan,
        built_backends=build[0] if build else None,
        gpu_offload=build[1] if build else None,
    )


def render(d: Detection) -> list[str]:
    """The detection as the plain lines `claracore system` prints."""
    lines = [
        f"OS: {d.os}/{d.arch}",
        f"CPU: {d.cpu} ({d.cpu_cores} cores, {d.cpu_threads} threads)",
        f"RAM: {d.ram_total / GIB:.1f} GiB",
    ]
    lines += [f"GPU: {g.name} ({g.vendor}, {g.vram / GIB:.1f} GiB, via {g.source})" for g in d.gpus]
    if not d.gpus:
        lines.append("GPU: none found")
    lines.append(f"Vulkan devices: {', '.join(d.vulkan_devices) or 'none (vulkaninfo absent or no device)'}")
    flags = {"CUDA": d.has_cuda, "ROCm": d.has_rocm, "Vulkan": d.has_vulkan, "Metal": d.has_metal}
    lines.append("available: " + (", ".join(k for k, v in flags.items() if v) or "CPU only"))
    if d.built_backends is None:
        lines.append("llama-cpp-python: not importable, build unknown")
    else:
        built, offload = ", ".join(d.built_backends) or "none found", "yes" if d.gpu_offload else "no"
        lines.append(f"llama-cpp-python backends: {built} (GPU offload: {offload})")
    lines.append(f"recommended backend: {d.recommended_backend}")
    if d.recommended_backend != d.hardware_backend:
        lines.append(f"note: this hardware suits {d.hardware_backend}, which the installed build lacks: "
                     "see `claracore doctor`")  # fmt: skip
    return lines


def system_specs() -> dict[str, Any]:
    """`GET /api/system/specs`: os, arch, cpu, ramGB, gpuInfo."""
    return detect().specs_json()


def system_detection() -> dict[str, Any]:
    """`GET /api/system/detection`: what the planner needs, including `recommendedBackend`."""
    return detect().detection_json()
