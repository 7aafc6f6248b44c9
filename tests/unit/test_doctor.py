"""`claracore doctor` on this CPU machine, and its advice for machines it cannot be run on here."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import llama_cpp
import pytest

from claracore.hardware.doctor import Report, advise, diagnose, render, write_tiny_model
from claracore.hardware.memory import GPUInfo
from claracore.runtime.native import NativeModel, backend_libraries, supports_gpu_offload, tokenize

REPO = Path(__file__).resolve().parents[2]
H100 = GPUInfo(index=0, name="NVIDIA H100 80GB HBM3", vram_total=80 << 30, vram_free=79 << 30)
CPU = Report(llama_version="0.3.36", lib_dir="/x", backends=("cpu",), gpu_offload=False, gpus=(),
             nvml_installed=False, platform="linux")  # fmt: skip

cpu_build = pytest.mark.skipif(supports_gpu_offload(), reason="expects the CPU-only llama-cpp-python")


@cpu_build
def test_doctor_command_on_this_cpu_machine() -> None:
    proc = subprocess.run([sys.executable, "-m", "claracore", "doctor"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "backends compiled in: cpu" in out
    assert "GPU offload supported: no (CPU-only build)" in out
    assert "GPUs: none seen" in out
    assert "offload check: a tiny model loaded, all layers on the CPU" in out
    assert "advice: CPU-only build and no GPU found: nothing to fix" in out
    assert "python -m claracore.native build --backend cuda" in out


@cpu_build
def test_diagnose_finds_the_cpu_library_next_to_libllama() -> None:
    report = diagnose()
    assert "cpu" in report.backends and "cuda" not in report.backends
    assert report.offloaded is None and report.offload_error == ""


def test_the_doctors_tiny_model_loads_as_written(tmp_path: Path) -> None:
    """The offload check's model is a real llama model with the shape asked for and a vocab that
    tokenizes, so "it loaded" in the doctor's report means llama.cpp built it."""
    path = write_tiny_model(tmp_path / "t.gguf", n_layer=3, n_embd=64)
    model = NativeModel.load(str(path), gpu_layers=-1, use_mmap=False)
    try:
        assert llama_cpp.llama_model_n_layer(model.model) == 3
        assert llama_cpp.llama_model_n_embd(model.model) == 64
        assert llama_cpp.llama_vocab_n_tokens(model.vocab) == 3 + 256 + 2
        assert tokenize(model.vocab, "a b", add_special=True, parse_special=False) == [1, 259, 260]
    finally:
        model.close()
    assert model.model is None
    model.close()  # twice is harmless


def test_backend_libraries_reads_ggml_names(tmp_path: Path) -> None:
    names = ("libggml-base.so", "libggml-cpu.so", "libggml-cuda.so", "libggml-cuda.so.0", "ggml-vulkan.dll")
    for name in (*names, "libllama.so", "libggml.so"):
        (tmp_path / name).write_bytes(b"")
    assert backend_libraries(tmp_path) == ("cpu", "cuda", "vulkan")
    assert backend_libraries(tmp_path / "missing") == ()


def test_gpu_seen_with_a_cpu_build_advises_the_cuda_build() -> None:
    advice = advise(replace(CPU, gpus=(H100,), nvml_installed=True))
    assert advice == (
        "an NVIDIA GPU is present but llama-cpp-python has no CUDA backend: "
        "run `python -m claracore.native build --backend cuda`",
    )
    lines = render(replace(CPU, gpus=(H100,), advice=advice))
    assert "GPU 0: NVIDIA H100 80GB HBM3, 80.0 GiB VRAM, 79.0 GiB free" in lines


def test_cuda_extra_without_cuda_build_names_the_fix() -> None:
    (line,) = advise(replace(CPU, nvml_installed=True))
    assert "[cuda] extra" in line and "--backend cuda" in line


def test_a_matching_cuda_build() -> None:
    good = replace(CPU, backends=("cpu", "cuda"), gpu_offload=True, gpus=(H100,), nvml_installed=True,
                   offloaded=(3, 3))  # fmt: skip
    assert advise(good) == ("llama-cpp-python matches this machine: nothing to fix",)
    assert "offload check: 3/3 layers of a tiny model on the GPU" in render(good)
    partial = advise(replace(good, offloaded=(1, 3)))
    assert "only 1/3 layers" in partial[0]
    assert "NVML" in advise(replace(good, nvml_installed=False))[0]


def test_amd_and_macos_advice() -> None:
    assert "--backend rocm" in advise(replace(CPU, amd_gpu=True))[0]
    assert "--backend metal" in advise(replace(CPU, platform="darwin"))[0]
    mac = replace(CPU, platform="darwin", backends=("cpu", "metal"), gpu_offload=True, offloaded=(3, 3))
    assert advise(mac) == ("llama-cpp-python matches this machine: nothing to fix",)


def test_a_failed_load_is_reported() -> None:
    report = replace(CPU, offload_error="llama.cpp could not load the file")
    assert "reinstall llama-cpp-python" in advise(report)[0]
    assert "offload check: failed: llama.cpp could not load the file" in render(report)


def test_a_build_with_amx_kept_off_says_so_and_names_the_portable_build() -> None:
    report = replace(CPU, extra_buffers=False)
    advice = advise(report)
    assert advice[0].startswith("CPU-only build and no GPU found")  # the GPU advice is unchanged
    assert advice[1] == (
        "this build contains ggml's AMX kernels, which crash on many machines, so weights load without "
        "repacking: `python -m claracore.native build --backend cpu` builds a portable library that keeps "
        "it (or set CLARACORE_AMX=1 where AMX works)"
    )
    assert "weight repacking: off (AMX kernels compiled in)" in render(replace(report, advice=advice))
    assert len(advise(CPU)) == 1 and "weight repacking: on" in render(CPU)
