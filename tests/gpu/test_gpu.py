"""GPU path: full and partial offload, VRAM accounting against NVML and llama.cpp, VRAM eviction.

These run only with a GPU build of llama-cpp-python on a machine with an NVIDIA GPU
(`scripts/gpu_check.sh` sets that up); elsewhere they skip.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from claracore import Engine
from claracore.config import ModelSpec
from claracore.hardware.memory import detect_memory
from claracore.pool import loaders
from claracore.runtime.native import capture_log, supports_gpu_offload
from tests.tiny_models import make_tiny_llama

GPU = supports_gpu_offload() and bool(detect_memory().gpus)
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not GPU, reason="needs a GPU build of llama.cpp and a GPU")]

MIB = 2**20
DEVICE_BUFFER = re.compile(r"(CUDA\d+|ROCm\d+|Vulkan\d+)\S* (model|KV|compute) buffer size =\s+([\d.]+) MiB")


@pytest.fixture(scope="module")
def big_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two random 8-layer models of about 400 MB each: large enough for NVML to see clearly."""
    folder = tmp_path_factory.mktemp("gpu-models")
    shape = {"n_embd": 1024, "n_layer": 8, "n_head": 16, "n_head_kv": 4, "n_ff": 2816, "n_ctx": 4096}
    return (
        make_tiny_llama(folder / "a.gguf", seed=1, **shape),
        make_tiny_llama(folder / "b.gguf", seed=2, **shape),
    )


def vram_used() -> int:
    gpu = detect_memory().gpus[0]
    return gpu.vram_total - gpu.vram_free


def device_buffers(lines: list[str]) -> int:
    return int(sum(float(m.group(3)) * MIB for line in lines if (m := DEVICE_BUFFER.search(line))))


def settle(seconds: float = 0.5) -> None:
    time.sleep(seconds)  # NVML's figure trails frees by a moment


@pytest.mark.parametrize("gpu_layers", [-1, 4])
def test_offload_matches_the_estimate(big_models: tuple[Path, Path], gpu_layers: int) -> None:
    spec = ModelSpec(
        name="a", model=str(big_models[0]), context_length=2048, parallel=4, gpu_layers=gpu_layers
    )
    recipe = loaders.recipe(spec, gpu_offload=True)
    warm = loaders.recipe(
        spec.model_copy(update={"context_length": 256, "parallel": 1}), gpu_offload=True
    ).load()
    warm.close()  # the CUDA context itself now exists and is not counted below
    settle()
    before = vram_used()
    with capture_log() as lines:
        runtime = recipe.load()
    settle()
    measured = vram_used() - before
    reported = device_buffers(lines)
    runtime.close()
    settle()
    after = vram_used()
    print(
        f"gpu_layers={gpu_layers}: estimate {recipe.estimate.vram_bytes / MIB:.0f} MiB VRAM, "
        f"llama.cpp device buffers {reported / MIB:.0f} MiB, NVML delta {measured / MIB:.0f} MiB, "
        f"left after close {(after - before) / MIB:.0f} MiB"
    )
    assert reported > 0, "llama.cpp reported no device buffers: the model was not offloaded"
    assert recipe.estimate.vram_bytes == pytest.approx(reported, rel=0.10)
    assert recipe.estimate.vram_bytes == pytest.approx(measured, rel=0.20)
    assert after - before < 0.1 * measured  # closing returned the VRAM
    if gpu_layers == 4:
        assert recipe.estimate.weights_ram > 0 and recipe.estimate.weights_vram > 0


def test_vram_budget_evicts_the_idle_model(big_models: tuple[Path, Path]) -> None:
    one = loaders.recipe(
        ModelSpec(name="x", model=str(big_models[0]), context_length=1024, parallel=2, gpu_layers=-1),
        gpu_offload=True,
    ).estimate.vram_bytes
    models = [
        {"name": n, "model": str(p), "context_length": 1024, "parallel": 2, "gpu_layers": -1}
        for n, p in zip("ab", big_models, strict=True)
    ]
    config = {"memory": {"vram_gb": one * 1.5 / 2**30, "ram_gb": 8}, "models": models}
    with Engine(config) as engine:
        user = [{"role": "user", "content": "hello"}]
        engine.chat(model="a", messages=user, max_tokens=4)
        settle()
        with_a = vram_used()
        engine.chat(model="b", messages=user, max_tokens=4)
        states = {m.id: m.state for m in engine.models().data}
        assert states == {"a": "unloaded", "b": "loaded"}
        settle()
        with_b = vram_used()
        assert abs(with_b - with_a) < 0.1 * one  # a's VRAM went back before b took its share
        # </s> (id 2) banned: a random model may pick it at any step, and this checks decoding
        r = engine.chat(model="b", messages=user, max_tokens=16, temperature=0, logit_bias={"2": -100})
        assert r.usage.completion_tokens == 16
