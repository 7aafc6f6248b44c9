"""Auto-setup over real HTTP: track a real folder of tiny models, generate a config in the
background while polling its progress, keep hand edits on regeneration, reject bad options."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from claracore.config import load_config
from tests.e2e.server import running_server
from tests.unit.test_scanner import build_model_tree

OPTIONS = {"forceBackend": "cpu", "forceRAM": 8.0, "minContext": 128, "preferredContext": 256}


@pytest.fixture
def tree(tmp_path: Path, tiny_llama: Path, tiny_bert: Path, tiny_rerank: Path) -> Path:
    return build_model_tree(tmp_path / "models", tiny_llama, tiny_bert, tiny_rerank)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("port: 5999\nmodels: []\n")
    return path


@pytest.fixture
def api(tmp_path: Path, config_path: Path) -> Iterator[httpx.Client]:
    with (
        running_server({"models": []}, config_path=config_path, data_dir=tmp_path / "data") as (url, _),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client


def _wait(api: httpx.Client) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = api.get("/api/setup/progress").json()
        seen.append(state)
        if state["status"] in ("completed", "error"):
            return state, seen
        time.sleep(0.02)
    raise AssertionError(f"setup did not finish: {seen[-1]}")


def _error(r: httpx.Response, param: str) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"error", "code", "details"} and body["code"] == "INVALID_REQUEST"
    assert param in body["error"]


def test_regenerate_from_db_writes_a_valid_config_and_applies_it(
    api: httpx.Client, tree: Path, config_path: Path
) -> None:
    assert api.get("/api/setup/progress").json()["status"] == "idle"
    assert api.post("/api/config/folders", json={"folderPaths": [str(tree)]}).status_code == 200
    r = api.post("/api/config/regenerate-from-db", json={"options": {**OPTIONS, "throughputFirst": True}})
    assert r.status_code == 200, r.text
    assert r.json()["progressUrl"] == "/api/setup/progress"
    state, seen = _wait(api)
    assert state["status"] == "completed", state
    assert state["progress"] == 100 and state["running"] is False
    assert state["filesRead"] == state["filesTotal"] == 6  # chat, big, embed, rerank, whisper, voice
    assert all(s["totalSteps"] == 100 for s in seen)

    config = load_config(config_path)  # the written file validates
    assert config.port == 5999  # server settings survive
    specs = {s.name: s for s in config.models}
    assert set(specs) == {"big", "chat", "embed", "rerank", "voice", "whisper-tiny"}
    chat = specs["chat"]
    assert chat.gpu_layers == 0 and chat.backend == "cpu" and chat.parallel >= 4
    assert (
        chat.context_length == 256
        and chat.mmproj is not None
        and chat.mmproj.endswith("mmproj-chat-f16.gguf")
    )
    assert specs["embed"].type == "embedding" and specs["embed"].parallel == 1
    assert config.memory.ram_gb == 8.0
    planned = {m["name"]: m for m in state["result"]["models"]}
    assert planned["chat"]["ramBytes"] > 0 and planned["chat"]["vramBytes"] == 0
    assert api.get("/api/config/validate").json()["valid"] is True
    # Regeneration soft-restarts: the new models are served at once.
    served = {m["id"] for m in api.get("/v1/models").json()["data"]}
    assert {"chat", "embed"} <= served


def test_generate_all_rescans_and_regeneration_keeps_hand_edits(
    api: httpx.Client, tree: Path, config_path: Path
) -> None:
    assert api.post("/api/config/folders", json={"folderPaths": [str(tree)]}).status_code == 200
    r = api.post("/api/config/generate-all", json=OPTIONS)
    assert r.status_code == 200 and r.json()["needsRestart"] is True
    state, _ = _wait(api)
    assert state["status"] == "completed", state
    assert load_config(config_path).find_model("chat") is not None

    edit = {"temperature": 0.3, "parallel": 3, "aliases": ["mine"]}
    assert api.post("/api/config/model/chat", json=edit).status_code == 200
    r = api.post("/api/config/regenerate-from-db", json={"options": {**OPTIONS, "preferredContext": 512}})
    assert r.status_code == 200, r.text
    state, _ = _wait(api)
    assert state["status"] == "completed", state
    specs = {s.name: s for s in load_config(config_path).models}
    chat = specs["chat"]
    assert (chat.temperature, chat.parallel, chat.aliases) == (0.3, 3, ["mine"])
    assert chat.context_length == 512  # not edited by hand: replanned for the new preferredContext
    planned = {m["name"]: m for m in state["result"]["models"]}
    assert "kept hand-edited parallel" in planned["chat"]["notes"][0]


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"forceVRAM": -3}, "forceVRAM"),
        ({"preferredContext": 10**9}, "preferredContext"),
        ({"minContext": 4096, "preferredContext": 1024}, "preferredContext"),
        ({"enableJinja": False}, "enableJinja"),
        ({"forceBackend": "quantum"}, "forceBackend"),
        ({"forceVram": 8}, "forceVram"),
    ],
)
def test_bad_options_are_400_and_write_nothing(
    api: httpx.Client, config_path: Path, options: dict[str, Any], param: str
) -> None:
    before = config_path.read_text()
    _error(api.post("/api/config/regenerate-from-db", json={"options": options}), param)
    _error(api.post("/api/config/generate-all", json=options), param)
    assert config_path.read_text() == before
    assert api.get("/api/setup/progress").json()["status"] == "idle"


def test_saved_system_settings_are_the_default_options(
    api: httpx.Client, tree: Path, config_path: Path
) -> None:
    """POST /api/settings/system's preferences apply when a generation request leaves them out."""
    assert api.post("/api/config/folders", json={"folderPaths": [str(tree)]}).status_code == 200
    saved = {"backend": "cpu", "ramGB": 8.0, "preferredContext": 256}
    assert api.post("/api/settings/system", json=saved).status_code == 200
    assert api.post("/api/config/generate-all", json={"minContext": 128}).status_code == 200
    state, _ = _wait(api)
    assert state["status"] == "completed", state
    chat = load_config(config_path).find_model("chat")
    assert chat is not None and chat.context_length == 256 and chat.gpu_layers == 0
    # an explicit option still wins over the saved one
    assert (
        api.post("/api/config/generate-all", json={"minContext": 128, "preferredContext": 128}).status_code
        == 200
    )
    _wait(api)
    chat = load_config(config_path).find_model("chat")
    assert chat is not None and chat.context_length == 128
