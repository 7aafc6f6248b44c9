"""Check the toolchain, build a llama-cpp-python wheel for a preset, install it, verify it.

Every step that touches the machine goes through an injected `Runner` or lookup function, so
the mapping, the cache and the messages are tested without a compiler or pip. A wheel is cached
in `<wheelhouse>/<preset>-<version>/`: the same preset and llama-cpp-python version never
compile twice (a CUDA build of llama.cpp takes minutes).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from claracore.native.presets import BACKENDS, GPU_BACKENDS, Preset, cmake_args

# (argv, env) -> (exit status, stdout). The real one is `subprocess_runner`.
Runner = Callable[[Sequence[str], Mapping[str, str]], tuple[int, str]]
Which = Callable[[str], str | None]
DEFAULT_VERSION = "0.3.36"  # the lowest llama-cpp-python ClaraCore's pin allows


class BuildError(Exception):
    """A step failed; the message says which and what to do."""


@dataclass(frozen=True)
class Missing:
    """One missing tool: what it is and how to get it."""

    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.what} not found: {self.fix}"


def _find(
    tool: str, which: Which, env: Mapping[str, str], homes: Sequence[str], exists: Callable[[str], bool]
) -> bool:
    """`tool` on PATH, or in `<home>/bin` for the first of `homes` that names a set env var/dir."""
    if which(tool):
        return True
    for home in homes:
        root = env.get(home, "") if home.isupper() else home
        if root and exists(os.path.join(root, "bin", tool)):
            return True
    return False


def check_toolchain(
    backend: str,
    *,
    which: Which = shutil.which,
    env: Mapping[str, str] = os.environ,
    platform: str = sys.platform,
    exists: Callable[[str], bool] = os.path.exists,
) -> list[Missing]:
    """What `backend` needs that this machine lacks; empty when the build can start.

    Checked before pip runs, because a missing nvcc otherwise surfaces as a CMake error deep in
    a build log the user has to dig for.
    """
    missing: list[Missing] = []
    if not any(which(cc) for cc in ("cc", "gcc", "clang", "cl")):
        missing.append(
            Missing("a C/C++ compiler", "install build-essential (Linux), Xcode tools (macOS) or MSVC")
        )
    if backend in ("cuda", "cuda-rpc"):
        if not _find("nvcc", which, env, ("CUDA_HOME", "CUDA_PATH", "/usr/local/cuda"), exists):
            missing.append(Missing(
                "nvcc (the CUDA toolkit)",
                "install the CUDA toolkit (https://developer.nvidia.com/cuda-downloads or your distro's "
                "nvidia-cuda-toolkit) and put its bin/ on PATH or set CUDA_HOME",
            ))  # fmt: skip
    elif backend == "rocm":
        if not _find("hipcc", which, env, ("ROCM_PATH", "HIP_PATH", "/opt/rocm"), exists):
            missing.append(Missing(
                "hipcc (ROCm)",
                "install ROCm (https://rocm.docs.amd.com) and put /opt/rocm/bin on PATH or set ROCM_PATH",
            ))  # fmt: skip
    elif backend == "vulkan":
        sdk = env.get("VULKAN_SDK", "")
        if not _find("glslc", which, env, ("VULKAN_SDK",), exists):
            missing.append(Missing(
                "glslc (the shader compiler)",
                "install the Vulkan SDK (https://vulkan.lunarg.com) or your distro's glslc/shaderc package",
            ))  # fmt: skip
        headers = [os.path.join(sdk, "include", "vulkan", "vulkan.h")] if sdk else []
        headers += ["/usr/include/vulkan/vulkan.h", "/usr/local/include/vulkan/vulkan.h"]
        if not any(exists(h) for h in headers):
            missing.append(Missing(
                "the Vulkan headers (vulkan/vulkan.h)",
                "install the Vulkan SDK and set VULKAN_SDK, or your distro's libvulkan-dev/vulkan-headers",
            ))  # fmt: skip
    elif backend == "metal":
        if platform != "darwin":
            missing.append(Missing("macOS", "Metal builds only on macOS; use the vulkan or cpu backend here"))
        elif not which("xcrun"):
            missing.append(Missing("xcrun (Xcode command line tools)", "run `xcode-select --install`"))
    return missing


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class BuildPlan:
    """Everything one build does, computed without side effects (what --dry-run prints).

    `source` is a local llama-cpp-python source tree or sdist to build instead of fetching one;
    `offline` builds it with what is installed (no index, no isolated build environment), for a
    machine without a package index, such as a lent GPU box.
    """

    preset: Preset
    version: str
    cache_dir: Path
    cmake_args: str
    python: str
    source: Path | None = None
    offline: bool = False
    jobs: int = os.cpu_count() or 1

    @property
    def env(self) -> dict[str, str]:
        # FORCE_CMAKE is read by older llama-cpp-python releases; harmless on newer ones.
        # CMAKE_BUILD_PARALLEL_LEVEL matters when CMake falls back to make, which builds serially.
        jobs = str(self.jobs)
        return {"CMAKE_ARGS": self.cmake_args, "FORCE_CMAKE": "1", "CMAKE_BUILD_PARALLEL_LEVEL": jobs}

    def build_command(self) -> list[str]:
        what = str(self.source) if self.source else f"llama-cpp-python=={self.version}"
        offline = ["--no-index", "--no-build-isolation"] if self.offline else []
        return [
            # --no-cache-dir: pip's own cache of wheels built from the sdist ignores CMAKE_ARGS,
            # so without it pip hands back whatever build it made last (usually the CPU one).
            self.python, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", *offline,
            "--no-binary", "llama-cpp-python", what, "-w", str(self.cache_dir),
        ]  # fmt: skip

    def install_command(self, wheel: Path) -> list[str]:
        return [self.python, "-m", "pip", "install", "--force-reinstall", "--no-deps", str(wheel)]

    def verify_command(self) -> list[str]:
        return [self.python, "-c", VERIFY_SCRIPT]


def cache_key(preset: str, version: str, overrides: Mapping[str, str] | None = None) -> str:
    """The wheelhouse sub-folder for one preset, llama-cpp-python version and set of overrides.

    Overrides (say one CUDA architecture instead of five) make a different binary, so they get
    their own folder, named by a short hash so the plain preset keeps its readable name.
    """
    if not overrides:
        return f"{preset}-{version}"
    digest = hashlib.sha256(json.dumps(sorted(overrides.items())).encode()).hexdigest()[:8]
    return f"{preset}-{version}-{digest}"


def with_overrides(preset: Preset, overrides: Mapping[str, str]) -> Preset:
    """`preset` with some cache variables replaced or added (`--set KEY=VALUE`)."""
    return Preset(name=preset.name, description=preset.description, cache={**preset.cache, **overrides})


_VERSION = re.compile(r"""__version__\s*=\s*["']([^"']+)["']""")
_SDIST = re.compile(r"llama_cpp_python-(\d[^/]*?)\.(tar\.gz|zip)$")


def source_version(source: Path) -> str:
    """The llama-cpp-python version of a source tree or sdist, read the way its build reads it.

    The version keys the wheel cache, so a wrong guess here would hand back another build.
    """
    if source.is_dir():
        init = source / "llama_cpp" / "__init__.py"
        match = _VERSION.search(init.read_text(encoding="utf-8")) if init.is_file() else None
        if match is None:
            raise BuildError(f"{source} is not a llama-cpp-python source tree (no version in {init})")
        return match.group(1)
    match = _SDIST.search(source.name)
    if match is not None:
        return match.group(1)
    if source.name.endswith((".tar.gz", ".tgz")) and tarfile.is_tarfile(source):
        with tarfile.open(source) as tar:
            for member in tar.getmembers():
                if member.name.endswith("llama_cpp/__init__.py") and (handle := tar.extractfile(member)):
                    if found := _VERSION.search(handle.read().decode("utf-8")):
                        return found.group(1)
    raise BuildError(f"cannot tell the llama-cpp-python version of {source}")


def plan_build(
    preset: Preset,
    version: str,
    wheelhouse: Path,
    python: str = sys.executable,
    *,
    overrides: Mapping[str, str] | None = None,
    source: Path | None = None,
    offline: bool = False,
) -> BuildPlan:
    overrides = dict(overrides or {})
    if source is not None:
        version = source_version(source)
    return BuildPlan(
        preset=preset,
        version=version,
        cache_dir=wheelhouse / cache_key(preset.name, version, overrides),
        cmake_args=cmake_args(with_overrides(preset, overrides)),
        python=python,
        source=source,
        offline=offline,
    )


def cached_wheel(plan: BuildPlan) -> Path | None:
    """A wheel an earlier build of the same preset and version left, if any."""
    if not plan.cache_dir.is_dir():
        return None
    wheels = sorted(plan.cache_dir.glob(f"llama_cpp_python-{plan.version}-*.whl"))
    return wheels[-1] if wheels else None


# A fresh interpreter sees the installed package, not the one this process may have loaded.
VERIFY_SCRIPT = """\
import json, os, llama_cpp
lib = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
print(json.dumps({"version": llama_cpp.__version__,
                  "offload": bool(llama_cpp.llama_supports_gpu_offload()),
                  "libs": sorted(os.listdir(lib)) if os.path.isdir(lib) else []}))
"""


def check_verify(backend: str, output: str) -> list[str]:
    """Problems in VERIFY_SCRIPT's output for `backend`; empty when the build is what was asked."""
    try:
        report = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return [f"the verification printed no report: {output.strip()[-300:]!r}"]
    problems = []
    want = BACKENDS[backend]
    if not any(want in name for name in report.get("libs", [])):
        problems.append(f"{want} is not among the installed llama_cpp libraries {report.get('libs')}")
    if backend in GPU_BACKENDS and not report.get("offload"):
        problems.append("llama_supports_gpu_offload() is False: the installed build is CPU-only")
    return problems


def run_build(
    plan: BuildPlan,
    runner: Runner,
    *,
    say: Callable[[str], None],
    base_env: Mapping[str, str] = os.environ,
) -> Path:
    """Build (or reuse) the wheel, install it and verify it; returns the wheel's path."""
    env = {**base_env, **plan.env}
    wheel = cached_wheel(plan)
    if wheel is not None:
        say(f"reusing {wheel} (cached for preset {plan.preset.name}, llama-cpp-python {plan.version})")
    else:
        say(f"building llama-cpp-python {plan.version} with CMAKE_ARGS={plan.cmake_args} (takes minutes)")
        status, out = runner(plan.build_command(), env)
        wheel = cached_wheel(plan)
        if status != 0 or wheel is None:
            raise BuildError(f"pip wheel failed (exit {status}); the end of its output:\n{out[-3000:]}")
    status, out = runner(plan.install_command(wheel), env)
    if status != 0:
        raise BuildError(f"installing {wheel} failed (exit {status}):\n{out[-3000:]}")
    # LLAMA_CPP_LIB_PATH would point llama_cpp at other libraries than the ones just installed.
    verify_env = {k: v for k, v in base_env.items() if k != "LLAMA_CPP_LIB_PATH"}
    status, out = runner(plan.verify_command(), verify_env)
    problems = [f"importing llama_cpp failed (exit {status}):\n{out[-2000:]}"] if status else []
    problems = problems or check_verify(plan.preset.name, out)
    if problems:
        wheel.unlink(missing_ok=True)  # a wrong wheel must not be "reused" by the next run
        raise BuildError(f"the installed build is not right (removed {wheel.name}): " + "; ".join(problems))
    say(f"installed and verified: {wheel.name} ({BACKENDS[plan.preset.name]} present)")
    return wheel


def dry_run_lines(plan: BuildPlan) -> list[str]:
    """What a build would do, as shell lines a person could paste."""
    import shlex

    wheel = cached_wheel(plan)
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in plan.env.items())
    lines = [f"CMAKE_ARGS={shlex.quote(plan.cmake_args)}"]
    if wheel is not None:
        lines.append(f"# reusing cached wheel {wheel}")
    else:
        lines.append(f"{env} {shlex.join(plan.build_command())}")
    target = wheel or plan.cache_dir / f"llama_cpp_python-{plan.version}-*.whl"
    lines.append(shlex.join(plan.install_command(target)))
    lines.append(
        f"{shlex.quote(plan.python)} -c <verify: llama_supports_gpu_offload, {BACKENDS[plan.preset.name]}>"
    )
    return lines


def subprocess_runner(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str]:
    """Run `argv`, streaming nothing; returns (exit status, stdout+stderr)."""
    import subprocess

    proc = subprocess.run(
        list(argv), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return proc.returncode, proc.stdout
