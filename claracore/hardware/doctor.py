"""`claracore doctor`: does the installed llama.cpp match this machine's GPU, and if not, the fix.

The usual trap: `pip install claracore[cuda]` installs NVML but PyPI's llama-cpp-python stays
CPU-only, and everything runs slowly with no error. The doctor reports what is compiled in,
what GPUs NVML sees, whether a tiny generated model really offloads its layers (llama.cpp's own
"offloaded N/N layers to GPU" line), and one command per mismatch. It always exits 0: it reports,
it does not gate.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claracore.hardware.memory import GPUInfo, detect_memory
from claracore.units import GIB

BUILD_CMD = "python -m claracore.native build --backend {backend}"
_OFFLOAD = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")


@dataclass(frozen=True)
class Report:
    """What the doctor found; `advice` is computed from the rest by `advise` (a pure function)."""

    llama_version: str
    lib_dir: str
    backends: tuple[str, ...]  # ggml backend libraries next to libllama: "cpu", "cuda", ...
    gpu_offload: bool  # llama_supports_gpu_offload()
    gpus: tuple[GPUInfo, ...]
    nvml_installed: bool  # the [cuda] extra
    offloaded: tuple[int, int] | None = None  # (layers on the GPU, layers) of the tiny model
    offload_error: str = ""
    platform: str = sys.platform
    amd_gpu: bool = False  # /dev/kfd: the ROCm kernel driver is loaded
    extra_buffers: bool = True  # False: the build's AMX kernels are kept off (runtime/native.py)
    advice: tuple[str, ...] = field(default=())


def write_tiny_model(path: Path, *, n_layer: int = 2, n_embd: int = 32) -> Path:
    """A random-weight llama GGUF of a few hundred KB: enough for llama.cpp to place layers."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(0)
    n_head, n_ff = 4, 64
    w = gguf.GGUFWriter(str(path), "llama")
    for add, value in ((w.add_context_length, 128), (w.add_embedding_length, n_embd),
                       (w.add_block_count, n_layer), (w.add_feed_forward_length, n_ff),
                       (w.add_head_count, n_head), (w.add_head_count_kv, n_head),
                       (w.add_rope_dimension_count, n_embd // n_head)):  # fmt: skip
        add(value)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["\u2581a", "\u2581b"]
    types = [gguf.TokenType.UNKNOWN] + [gguf.TokenType.CONTROL] * 2 + [gguf.TokenType.BYTE] * 256
    types += [gguf.TokenType.NORMAL] * 2
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    def t(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w.add_tensor("token_embd.weight", t(len(tokens), n_embd))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor("output.weight", t(len(tokens), n_embd))
    for i in range(n_layer):
        for name, shape in (("attn_q", (n_embd, n_embd)), ("attn_k", (n_embd, n_embd)),
                            ("attn_v", (n_embd, n_embd)), ("attn_output", (n_embd, n_embd)),
                            ("ffn_gate", (n_ff, n_embd)), ("ffn_up", (n_ff, n_embd)),
                            ("ffn_down", (n_embd, n_ff))):  # fmt: skip
            w.add_tensor(f"blk.{i}.{name}.weight", t(*shape))
        for norm in ("attn_norm", "ffn_norm"):
            w.add_tensor(f"blk.{i}.{norm}.weight", np.ones(n_embd, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def check_offload() -> tuple[tuple[int, int] | None, str]:
    """Load a tiny model with every layer offloaded; (on GPU, total) from llama.cpp's log.

    A CPU-only build loads the model without any offload line: that is (None, ""), while a
    failed load is (None, reason).
    """
    from claracore.runtime.native import NativeModel, capture_log

    with tempfile.TemporaryDirectory(prefix="claracore-doctor-") as tmp:
        path = write_tiny_model(Path(tmp) / "tiny.gguf")
        try:
            with capture_log() as lines:
                model = NativeModel.load(str(path), gpu_layers=-1, use_mmap=False)
                model.close()
        except ValueError as exc:
            return None, str(exc)
    for line in lines:
        if m := _OFFLOAD.search(line):
            return (int(m.group(1)), int(m.group(2))), ""
    return None, ""


def advise(r: Report) -> tuple[str, ...]:
    """One line per mismatch between the build, the GPUs and the installed extras, with its fix."""
    gpu_backends = [b for b in r.backends if b not in ("cpu", "rpc", "blas")]
    advice: list[str] = []
    if r.gpus and "cuda" not in r.backends:
        advice.append(f"an NVIDIA GPU is present but llama-cpp-python has no CUDA backend: "
                      f"run `{BUILD_CMD.format(backend='cuda')}`")  # fmt: skip
    elif r.nvml_installed and not r.gpus and "cuda" not in r.backends:
        advice.append(f"the [cuda] extra (nvidia-ml-py) is installed but llama-cpp-python has no CUDA "
                      f"backend and NVML sees no GPU: on a machine with the NVIDIA driver, run "
                      f"`{BUILD_CMD.format(backend='cuda')}`")  # fmt: skip
    if "cuda" in r.backends and not r.nvml_installed:
        advice.append("CUDA build without NVML: `pip install 'claracore[cuda]'` so the pool can see VRAM")
    if r.amd_gpu and "hip" not in r.backends:
        advice.append(f"an AMD GPU driver (/dev/kfd) is present but there is no ROCm backend: "
                      f"run `{BUILD_CMD.format(backend='rocm')}` (or `--backend vulkan`)")  # fmt: skip
    if r.platform == "darwin" and "metal" not in r.backends:
        advice.append(f"macOS without the Metal backend: run `{BUILD_CMD.format(backend='metal')}`")
    if r.gpu_offload and r.offloaded is None and not r.offload_error:
        advice.append("the build supports offload but llama.cpp placed no layers: check the GPU driver")
    if r.gpu_offload and r.offloaded is not None and r.offloaded[0] < r.offloaded[1]:
        advice.append(f"the build supports offload but only {r.offloaded[0]}/{r.offloaded[1]} layers reached "
                      f"the GPU: check the driver (nvidia-smi / rocminfo / vulkaninfo)")  # fmt: skip
    if r.offload_error:
        advice.append(f"loading a tiny model failed ({r.offload_error}): reinstall llama-cpp-python")
    if not advice and not gpu_backends and not r.gpus:
        advice.append("CPU-only build and no GPU found: nothing to fix. With a GPU, install the matching "
                      "extra (e.g. `pip install 'claracore[cuda]'`) and run "
                      f"`{BUILD_CMD.format(backend='cuda')}` (or rocm, vulkan, metal)")  # fmt: skip
    if not advice:
        advice.append("llama-cpp-python matches this machine: nothing to fix")
    if not r.extra_buffers:
        advice.append(f"this build contains ggml's AMX kernels, which crash on many machines, so weights "
                      f"load without repacking: `{BUILD_CMD.format(backend='cpu')}` builds a portable "
                      f"library that keeps it (or set CLARACORE_AMX=1 where AMX works)")  # fmt: skip
    return tuple(advice)


def diagnose(offload: Callable[[], tuple[tuple[int, int] | None, str]] = check_offload) -> Report:
    """Inspect this process's llama_cpp and this machine's GPUs."""
    from claracore.runtime.native import build_info

    build = build_info()
    offloaded, error = offload()
    report = Report(
        llama_version=build.version,
        lib_dir=str(build.lib_dir),
        backends=build.backends,
        gpu_offload=build.gpu_offload,
        gpus=detect_memory().gpus,
        nvml_installed=importlib.util.find_spec("pynvml") is not None,
        offloaded=offloaded,
        offload_error=error,
        amd_gpu=os.path.exists("/dev/kfd"),
        extra_buffers=build.extra_buffers,
    )
    return Report(**{**report.__dict__, "advice": advise(report)})


def doctor_json(r: Report | None = None) -> dict[str, Any]:
    """`GET /api/system/doctor`: the report `claracore doctor` prints, as JSON (runs `diagnose`)."""
    from claracore import __version__

    r = r or diagnose()
    return {
        "version": __version__,
        "python": platform.python_version(),
        "llamaCppPython": r.llama_version,
        "libDir": r.lib_dir,
        "backends": list(r.backends),
        "gpuOffload": r.gpu_offload,
        "weightRepacking": r.extra_buffers,
        "gpus": [
            {
                "index": g.index,
                "name": g.name,
                "vramGB": round(g.vram_total / GIB, 1),
                "vramFreeGB": round(g.vram_free / GIB, 1),
            }
            for g in r.gpus
        ],
        "offloaded": list(r.offloaded) if r.offloaded else None,
        "offloadError": r.offload_error or None,
        "advice": list(r.advice),
    }


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def render(r: Report) -> list[str]:
    """The report as the plain text lines `claracore doctor` prints."""
    lines = [
        f"llama-cpp-python: {r.llama_version} ({r.lib_dir})",
        f"backends compiled in: {', '.join(r.backends) or 'none found'}",
        f"GPU offload supported: {'yes' if r.gpu_offload else 'no (CPU-only build)'}",
        f"weight repacking: {'on' if r.extra_buffers else 'off (AMX kernels compiled in)'}",
    ]
    if r.gpus:
        lines += [
            f"GPU {g.index}: {g.name}, {_gib(g.vram_total)} VRAM, {_gib(g.vram_free)} free" for g in r.gpus
        ]
    else:
        how = "NVML" if r.nvml_installed else "NVML not installed: the [cuda] extra adds it"
        lines.append(f"GPUs: none seen ({how})")
    if r.offloaded is not None:
        on, total = r.offloaded
        lines.append(f"offload check: {on}/{total} layers of a tiny model on the GPU")
    elif r.offload_error:
        lines.append(f"offload check: failed: {r.offload_error}")
    else:
        lines.append("offload check: a tiny model loaded, all layers on the CPU (no GPU backend)")
    lines += [f"advice: {a}" for a in r.advice]
    return lines
