"""`GET /v1/models` says what each model is and how it loads (file, size, quantisation, context,
GPU layers, parallel) and the pool's budget; `GET /api/system/doctor` says what was built."""

from __future__ import annotations

from pathlib import Path

import httpx

from claracore import __version__
from claracore.hardware.doctor import diagnose
from claracore.runtime.native import backend_libraries, supports_gpu_offload
from tests.e2e.server import running_server


def test_models_carry_their_file_and_effective_settings(
    tmp_path: Path, tiny_llama: Path, tiny_bert: Path
) -> None:
    config = {
        "memory": {"ram_gb": 3, "vram_gb": 0},
        "models": [
            # context_length above what the file was trained for: the listing shows what a load uses
            {
                "name": "chat",
                "model": str(tiny_llama),
                "context_length": 100_000,
                "parallel": 2,
                "gpu_layers": -1,
            },
            {"name": "embed", "model": str(tiny_bert), "type": "embedding"},
            {"name": "gone", "model": str(tmp_path / "missing.gguf")},
        ],
    }
    with running_server(config) as (url, _):
        listing = httpx.get(url + "/v1/models").json()
        models = {m["id"]: m for m in listing["data"]}
        chat = models["chat"]
        assert chat["file"] == str(tiny_llama)
        assert chat["size_bytes"] == tiny_llama.stat().st_size
        assert chat["quantization"] == "F32"
        assert chat["context_length"] == 512  # capped at the trained context
        assert chat["parallel"] == 2
        assert chat["gpu_layers"] == (-1 if supports_gpu_offload() else 0)  # what this build really does
        embed = models["embed"]
        assert (embed["quantization"], embed["context_length"]) == ("F32", 128)
        assert embed["size_bytes"] == tiny_bert.stat().st_size
        # A model whose file is missing still lists, without facts, rather than failing the list.
        assert models["gone"]["file"] is None and models["gone"]["size_bytes"] is None
        assert listing["budget"] == {"vram_bytes": 0, "ram_bytes": 3 * 2**30}
        # The same facts once loaded (they come from the plan the load used).
        assert httpx.post(url + "/api/models/chat/load", timeout=60).status_code == 200
        loaded = httpx.get(url + "/v1/models/chat").json()
        assert loaded["state"] == "loaded"
        assert {k: loaded[k] for k in ("file", "size_bytes", "context_length", "parallel")} == {
            k: chat[k] for k in ("file", "size_bytes", "context_length", "parallel")
        }


def test_doctor_reports_the_build(tiny_llama: Path) -> None:
    with running_server({"models": [{"name": "t", "model": str(tiny_llama)}]}) as (url, _):
        r = httpx.get(url + "/api/system/doctor", timeout=120)
    assert r.status_code == 200
    body = r.json()
    here = diagnose(offload=lambda: (None, ""))
    assert body["version"] == __version__
    assert body["llamaCppPython"] == here.llama_version
    assert body["backends"] == list(backend_libraries(Path(here.lib_dir)))
    assert body["gpuOffload"] is here.gpu_offload
    assert len(body["gpus"]) == len(here.gpus)
    assert body["advice"] and all(isinstance(a, str) for a in body["advice"])
    assert body["offloadError"] is None
