"""The GPU builder without a compiler or pip: preset mapping, toolchain checks, cache, dry run."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from claracore.native.__main__ import main
from claracore.native.build import (
    BuildError,
    cache_key,
    check_toolchain,
    check_verify,
    dry_run_lines,
    plan_build,
    run_build,
    source_version,
)
from claracore.native.presets import BACKENDS, GPU_BACKENDS, PRESETS_FILE, load_presets

REPO = Path(__file__).resolve().parents[2]
PRESETS = load_presets()


def _args(backend: str) -> dict[str, str]:
    """CMAKE_ARGS split the way scikit-build-core splits it, as {name: value}."""
    from claracore.native.presets import cmake_args

    out = {}
    for arg in shlex.split(cmake_args(PRESETS[backend])):
        assert arg.startswith("-D")
        key, _, value = arg[2:].partition("=")
        out[key] = value
    return out


EXPECTED = {
    "cpu": {"GGML_NATIVE": "OFF"},
    "cuda": {"GGML_NATIVE": "OFF", "GGML_CUDA": "ON", "CMAKE_CUDA_ARCHITECTURES": "75;80;86;89;90"},
    "rocm": {"GGML_NATIVE": "OFF", "GGML_HIP": "ON", "GPU_TARGETS": "gfx1030;gfx1100;gfx90a;gfx942"},
    "vulkan": {"GGML_NATIVE": "OFF", "GGML_VULKAN": "ON"},
    "metal": {"GGML_NATIVE": "OFF", "GGML_METAL": "ON", "GGML_METAL_EMBED_LIBRARY": "ON"},
    "rpc": {"GGML_NATIVE": "OFF", "GGML_RPC": "ON"},
    "cuda-rpc": {"GGML_NATIVE": "OFF", "GGML_CUDA": "ON", "CMAKE_CUDA_ARCHITECTURES": "75;80;86;89;90",
                 "GGML_RPC": "ON"},
}  # fmt: skip


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_backend_maps_to_its_cmake_args(backend: str) -> None:
    assert _args(backend) == EXPECTED[backend]


def test_presets_cover_the_backends_and_the_top_level_file_includes_them() -> None:
    assert set(PRESETS) == set(BACKENDS) == set(EXPECTED)
    top = json.loads((REPO / "CMakePresets.json").read_text())
    assert (REPO / top["include"][0]).resolve() == PRESETS_FILE.resolve()


def test_build_type_stays_in_the_preset_but_not_in_cmake_args() -> None:
    assert PRESETS["cuda"].cache["CMAKE_BUILD_TYPE"] == "Release"
    assert "CMAKE_BUILD_TYPE" not in _args("cuda")


def test_cmake_reads_the_presets_file(tmp_path: Path) -> None:
    """The schema is CMake's own: `cmake --list-presets` accepts the top-level include."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake not installed")
    out = subprocess.run([cmake, "--list-presets"], cwd=REPO, capture_output=True, text=True)
    if "Unrecognized" in out.stderr or "version" in out.stderr.lower():
        pytest.skip(f"this cmake cannot read presets version 4: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    for name in BACKENDS:
        assert f'"{name}"' in out.stdout


# ------------------------------------------------------------------ toolchain


def _which(*present: str) -> Callable[[str], str | None]:
    return lambda tool: f"/usr/bin/{tool}" if tool in present else None


def _nothing(_path: str) -> bool:
    return False


def test_cuda_without_nvcc_names_the_toolkit() -> None:
    missing = check_toolchain("cuda", which=_which("cc"), env={}, exists=_nothing)
    assert len(missing) == 1 and "nvcc" in str(missing[0]) and "CUDA_HOME" in str(missing[0])


def test_cuda_finds_nvcc_through_cuda_home() -> None:
    def exists(path: str) -> bool:
        return path == "/opt/cuda-12/bin/nvcc"

    assert check_toolchain("cuda", which=_which("cc"), env={"CUDA_HOME": "/opt/cuda-12"}, exists=exists) == []
    assert check_toolchain("cuda-rpc", which=_which("cc", "nvcc"), env={}, exists=_nothing) == []


def test_rocm_without_hipcc() -> None:
    missing = check_toolchain("rocm", which=_which("cc"), env={}, exists=_nothing)
    assert [m.what for m in missing] == ["hipcc (ROCm)"]
    assert check_toolchain("rocm", which=_which("cc", "hipcc"), env={}, exists=_nothing) == []


def test_vulkan_needs_glslc_and_headers() -> None:
    missing = check_toolchain("vulkan", which=_which("cc"), env={}, exists=_nothing)
    assert any("glslc" in m.what for m in missing) and any("vulkan.h" in m.what for m in missing)
    sdk = {"VULKAN_SDK": "/sdk"}
    have = {"/sdk/bin/glslc", "/sdk/include/vulkan/vulkan.h"}
    assert check_toolchain("vulkan", which=_which("cc"), env=sdk, exists=have.__contains__) == []


def test_metal_only_on_macos_with_xcode() -> None:
    assert [m.what for m in check_toolchain("metal", which=_which("cc"), platform="linux")] == ["macOS"]
    missing = check_toolchain("metal", which=_which("clang"), platform="darwin")
    assert "xcode-select --install" in str(missing[0])
    assert check_toolchain("metal", which=_which("clang", "xcrun"), platform="darwin") == []


def test_no_compiler_is_reported_for_every_backend() -> None:
    for backend in ("cpu", "rpc"):
        missing = check_toolchain(backend, which=_which(), env={}, exists=_nothing)
        assert [m.what for m in missing] == ["a C/C++ compiler"]


# ------------------------------------------------------------------ build, cache, verify


class FakeRunner:
    """Records commands; `pip wheel` drops a fake wheel where pip would, verify reports `libs`."""

    def __init__(self, libs: list[str], offload: bool) -> None:
        self.calls: list[tuple[list[str], dict[str, str]]] = []
        self.libs, self.offload = libs, offload

    def __call__(self, argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str]:
        argv = list(argv)
        self.calls.append((argv, dict(env)))
        if argv[1:4] == ["-m", "pip", "wheel"]:
            out = Path(argv[argv.index("-w") + 1])
            pinned = [a.split("==")[1] for a in argv if a.startswith("llama-cpp-python==")]
            version = pinned[0] if pinned else "0.3.36"  # a --source build
            out.mkdir(parents=True, exist_ok=True)
            (out / f"llama_cpp_python-{version}-cp311-cp311-linux_x86_64.whl").write_bytes(b"wheel")
            return 0, "built"
        if argv[1] == "-c":
            return 0, json.dumps({"version": "0.3.36", "offload": self.offload, "libs": self.libs})
        return 0, "installed"


def _quiet(_text: str) -> None:
    pass


def test_build_installs_verifies_then_reuses_the_cached_wheel(tmp_path: Path) -> None:
    plan = plan_build(PRESETS["cuda"], "0.3.36", tmp_path, python="py")
    assert plan.cache_dir == tmp_path / cache_key("cuda", "0.3.36") == tmp_path / "cuda-0.3.36"
    runner = FakeRunner(["libggml-cuda.so", "libllama.so"], offload=True)
    env = {"PATH": "/bin", "LLAMA_CPP_LIB_PATH": "/elsewhere"}
    wheel = run_build(plan, runner, say=_quiet, base_env=env)
    kinds = [argv[3] if argv[1] == "-m" else "verify" for argv, _ in runner.calls]
    assert kinds == ["wheel", "install", "verify"]
    build_argv, build_env = runner.calls[0]
    assert "--no-cache-dir" in build_argv and "--no-binary" in build_argv
    assert build_env["CMAKE_ARGS"] == plan.cmake_args and build_env["PATH"] == "/bin"
    assert runner.calls[1][0][-1] == str(wheel) and "--force-reinstall" in runner.calls[1][0]
    assert "LLAMA_CPP_LIB_PATH" not in runner.calls[2][1]

    again = FakeRunner(["libggml-cuda.so"], offload=True)
    assert run_build(plan, again, say=_quiet, base_env=env) == wheel
    assert [argv[3] if argv[1] == "-m" else "verify" for argv, _ in again.calls] == ["install", "verify"]


def test_the_cache_is_per_preset_and_version(tmp_path: Path) -> None:
    run_build(plan_build(PRESETS["cuda"], "0.3.36", tmp_path, "py"), FakeRunner(["ggml-cuda.dll"], True),
              say=_quiet)  # fmt: skip
    for preset, version in (("vulkan", "0.3.36"), ("cuda", "0.3.37")):
        runner = FakeRunner([f"libggml-{BACKENDS[preset][5:]}.so"], offload=True)
        run_build(plan_build(PRESETS[preset], version, tmp_path, "py"), runner, say=_quiet)
        assert runner.calls[0][0][3] == "wheel"


def test_a_cpu_only_result_fails_and_drops_the_wheel(tmp_path: Path) -> None:
    plan = plan_build(PRESETS["cuda"], "0.3.36", tmp_path, "py")
    with pytest.raises(BuildError, match="CPU-only") as err:
        run_build(plan, FakeRunner(["libggml-cpu.so"], offload=False), say=_quiet)
    assert "ggml-cuda is not among" in str(err.value)
    assert not list(plan.cache_dir.glob("*.whl"))  # the next run builds again


def test_failed_pip_wheel_reports_its_output(tmp_path: Path) -> None:
    def runner(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str]:
        return 1, "CMake Error: CUDA compiler not found"

    with pytest.raises(BuildError, match="CUDA compiler not found"):
        run_build(plan_build(PRESETS["cuda"], "0.3.36", tmp_path, "py"), runner, say=_quiet)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_verify_accepts_the_right_library(backend: str) -> None:
    lib = f"lib{BACKENDS[backend]}.so"
    report = json.dumps({"offload": backend in GPU_BACKENDS, "libs": [lib, "libllama.so"]})
    assert check_verify(backend, "noise\n" + report) == []
    assert check_verify(backend, "not json")


def test_dry_run_prints_cmake_args_and_commands_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def runner(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str]:
        raise AssertionError("a dry run ran a command")

    argv = ["build", "--backend", "cuda", "--dry-run", "--wheelhouse", str(tmp_path),
            "--llama-cpp-python", "0.3.36"]  # fmt: skip
    assert main(argv, runner=runner) == 0
    out = capsys.readouterr().out.splitlines()
    args = ["-DGGML_NATIVE=OFF", "-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=75;80;86;89;90"]
    assert shlex.split(out[0]) == ["CMAKE_ARGS=" + " ".join(shlex.quote(a) for a in args)]
    assert (
        "pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python llama-cpp-python==0.3.36" in out[1]
    )
    assert str(tmp_path / "cuda-0.3.36") in out[1]
    assert "pip install --force-reinstall --no-deps" in out[2]
    assert not tmp_path.joinpath("cuda-0.3.36").exists()


def test_dry_run_shows_a_cached_wheel(tmp_path: Path) -> None:
    plan = plan_build(PRESETS["vulkan"], "0.3.36", tmp_path, "py")
    plan.cache_dir.mkdir(parents=True)
    (plan.cache_dir / "llama_cpp_python-0.3.36-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    lines = dry_run_lines(plan)
    assert any(line.startswith("# reusing cached wheel") for line in lines)
    assert not any("pip wheel" in line for line in lines)


def test_missing_toolchain_exits_2_before_running_anything(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no compiler, no hipcc
    monkeypatch.delenv("ROCM_PATH", raising=False)
    monkeypatch.delenv("HIP_PATH", raising=False)
    if Path("/opt/rocm/bin/hipcc").exists():
        pytest.skip("ROCm is installed here")

    def runner(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str]:
        raise AssertionError("ran a command despite a missing toolchain")

    assert main(["build", "--backend", "rocm", "--wheelhouse", str(tmp_path)], runner=runner) == 2
    err = capsys.readouterr().err
    assert "cannot build the rocm backend" in err and "hipcc" in err


def test_module_entry_point_lists_presets() -> None:
    out = subprocess.run([sys.executable, "-m", "claracore.native", "presets"], capture_output=True,
                         text=True, cwd=REPO, check=True).stdout  # fmt: skip
    assert "cuda" in out and "-DGGML_CUDA=ON" in out


# ------------------------------------------------------------------ local source, offline, overrides


def _source_tree(root: Path, version: str = "0.3.36") -> Path:
    tree = root / f"llama_cpp_python-{version}"
    (tree / "llama_cpp").mkdir(parents=True)
    (tree / "llama_cpp" / "__init__.py").write_text(f'from .llama_cpp import *\n__version__ = "{version}"\n')
    return tree


def test_source_version_reads_a_tree_an_sdist_name_or_a_tarball(tmp_path: Path) -> None:
    import tarfile

    tree = _source_tree(tmp_path, "0.3.40")
    assert source_version(tree) == "0.3.40"
    assert source_version(tmp_path / "llama_cpp_python-0.3.41.tar.gz") == "0.3.41"
    trimmed = tmp_path / "trimmed.tar.gz"
    with tarfile.open(trimmed, "w:gz") as tar:
        tar.add(tree, arcname=tree.name)
    assert source_version(trimmed) == "0.3.40"
    with pytest.raises(BuildError, match="not a llama-cpp-python source tree"):
        source_version(tmp_path)


def test_an_offline_build_of_a_local_source_uses_no_index(tmp_path: Path) -> None:
    tree = _source_tree(tmp_path / "src")
    plan = plan_build(PRESETS["cuda"], "9.9.9", tmp_path / "wh", "py", source=tree, offline=True)
    assert plan.version == "0.3.36"  # the source's own, not the installed one
    runner = FakeRunner(["libggml-cuda.so"], offload=True)
    run_build(plan, runner, say=_quiet)
    argv, env = runner.calls[0]
    assert argv[-3:] == [str(tree), "-w", str(plan.cache_dir)]
    assert "--no-index" in argv and "--no-build-isolation" in argv
    assert not any(a.startswith("llama-cpp-python==") for a in argv)
    assert int(env["CMAKE_BUILD_PARALLEL_LEVEL"]) >= 1
    online = plan_build(PRESETS["cuda"], "0.3.36", tmp_path / "wh", "py", source=tree)
    assert "--no-index" not in online.build_command()


def test_overrides_change_cmake_args_and_get_their_own_cache(tmp_path: Path) -> None:
    one_arch = {"CMAKE_CUDA_ARCHITECTURES": "90"}
    plan = plan_build(PRESETS["cuda"], "0.3.36", tmp_path, "py", overrides=one_arch)
    assert shlex.split(plan.cmake_args) == [
        "-DGGML_NATIVE=OFF",
        "-DGGML_CUDA=ON",
        "-DCMAKE_CUDA_ARCHITECTURES=90",
    ]
    assert plan.cache_dir.name.startswith("cuda-0.3.36-")
    assert plan.cache_dir != plan_build(PRESETS["cuda"], "0.3.36", tmp_path, "py").cache_dir
    assert (
        plan.cache_dir == plan_build(PRESETS["cuda"], "0.3.36", tmp_path, "py", overrides=one_arch).cache_dir
    )
    assert cache_key("cuda", "0.3.36", {}) == "cuda-0.3.36"
    added = plan_build(PRESETS["cpu"], "0.3.36", tmp_path, "py", overrides={"GGML_AVX512": "ON"})
    assert "-DGGML_AVX512=ON" in shlex.split(added.cmake_args)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--offline"], "--offline needs --source"),
        (["--set", "CMAKE_CUDA_ARCHITECTURES"], "--set wants KEY=VALUE"),
        (["--set", "bad key=1"], "--set wants KEY=VALUE"),
        (["--source", "/nonexistent/llama"], "does not exist"),
    ],
)
def test_bad_build_options_exit_2_with_the_reason(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def runner(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str]:
        raise AssertionError("ran a command despite bad options")

    with pytest.raises(SystemExit) as exit_:
        main(["build", "--backend", "cuda", "--wheelhouse", str(tmp_path), *argv], runner=runner)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_the_builder_imports_without_the_engine() -> None:
    """It must run before any llama-cpp-python is installed, so it may not pull in the engine."""
    code = "import sys, claracore.native.__main__; print(sorted(m for m in sys.modules if 'claracore' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert "claracore.engine" not in out.stdout and "claracore.native.build" in out.stdout
