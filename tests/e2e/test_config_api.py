"""The /api/config routes over real HTTP, editing real config files in temporary folders."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from claracore.config import load_config
from tests.e2e.server import running_server
from tests.tiny_models import make_tiny_bert, make_tiny_llama

YAML = {"Content-Type": "application/yaml"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """A server over a config file with one tiny LLM; yields (url, config file, model folder)."""
    models = tmp_path / "models"
    models.mkdir()
    make_tiny_llama(models / "tiny.gguf")
    file = tmp_path / "conf" / "config.yaml"
    file.parent.mkdir()
    file.write_text(
        "# my models\napi_key: sekret-key\nmodels:\n  - name: tiny\n    model: ../models/tiny.gguf\n"
        "    aliases: [t]\n"
    )
    config = load_config(file)
    with running_server(config.model_dump(), config_path=file) as (url, _):
        yield url, file, models


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": "Bearer sekret-key"}, timeout=30)


def _backups(file: Path) -> list[Path]:
    folder = file.parent / ".backups"
    return sorted(folder.iterdir()) if folder.exists() else []


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "code", "details"} and body["code"] == code, body
    return body


def test_get_masks_the_key_and_keeps_the_text(setup: tuple[str, Path, Path]) -> None:
    url, file, _ = setup
    with _client(url) as c:
        assert c.get("/api/config", headers={"Authorization": ""}).status_code == 401
        r = c.get("/api/config")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/yaml")
    assert "sekret-key" not in r.text and "# my models" in r.text
    assert yaml.safe_load(r.text)["api_key"] == "********"


def test_post_replaces_the_file_with_a_backup(setup: tuple[str, Path, Path]) -> None:
    url, file, models = setup
    with _client(url) as c:
        shown = c.get("/api/config").text  # masked key: posting it back keeps the real one
        r = c.post("/api/config", content=shown.replace("aliases: [t]", "aliases: [t2]"), headers=YAML)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "message": "Configuration updated successfully",
            "needsRestart": True,
            "restartMessage": "Configuration updated! A soft restart is recommended to apply changes.",
        }
        assert load_config(file).api_key == "sekret-key"
        assert load_config(file).models[0].aliases == ["t2"]
        assert len(_backups(file)) == 1
        text = f"# hand-written\napi_key: sekret-key\nmodels:\n  - name: n\n    model: {models}/tiny.gguf\n"
        r = c.post("/api/config", content=text, headers={"Content-Type": "application/yaml"})
        assert r.status_code == 200 and file.read_text() == text  # YAML is kept as sent
        r = c.post(
            "/api/config",
            json={"api_key": "sekret-key", "models": [{"name": "j", "model": "../models/tiny.gguf"}]},
        )
        assert r.status_code == 200, r.text
        assert load_config(file).models[0].model == str(models / "tiny.gguf")
        assert len(_backups(file)) == 3
        # The running engine is unchanged until a restart.
        assert "tiny" in c.get("/v1/models").text


@pytest.mark.parametrize(
    ("body", "content_type", "path"),
    [
        (
            "models:\n  - name: a\n    model: a.gguf\n    temprature: 0.5\n",
            "application/yaml",
            "models.0.temprature",
        ),
        (
            "models:\n  - name: a\n    model: a.gguf\n    temperature: -1\n",
            "application/yaml",
            "models.0.temperature",
        ),
        (
            "models:\n  - name: a\n    model: a.gguf\n    context_length: 1000000000\n",
            "text/yaml",
            "models.0.context_length",
        ),
        ("models: [a: 1\n", "application/yaml", ""),
        ("- just a list\n", "application/yaml", ""),
        ('{"models": [{"name": "a"}]}', "application/json", "models.0.model"),
    ],
)
def test_rejected_post_writes_nothing(
    setup: tuple[str, Path, Path], body: str, content_type: str, path: str
) -> None:
    url, file, _ = setup
    before = file.read_bytes()
    with _client(url) as c:
        r = c.post("/api/config", content=body, headers={"Content-Type": content_type})
    details = _error(r, 400, "INVALID_CONFIG")["details"]
    assert path in [e["path"] for e in details["errors"]]
    assert file.read_bytes() == before and _backups(file) == []


def test_post_bad_bodies(setup: tuple[str, Path, Path]) -> None:
    url, file, _ = setup
    with _client(url) as c:
        _error(c.post("/api/config", content=""), 400, "INVALID_REQUEST")
        _error(c.post("/api/config", content=b"\xff\xfe", headers=YAML), 400, "INVALID_REQUEST")
        # A cross-site form can send text/plain without a preflight: never taken for YAML.
        _error(c.post("/api/config", content="models: []\n"), 415, "UNSUPPORTED_MEDIA_TYPE")
        r = c.post("/api/config", content="models: []\n", headers={"Content-Type": "text/plain"})
        _error(r, 415, "UNSUPPORTED_MEDIA_TYPE")
        _error(
            c.post("/api/config", content="[1]", headers={"Content-Type": "application/json"}),
            400,
            "INVALID_REQUEST",
        )
        _error(
            c.post("/api/config", content="{", headers={"Content-Type": "application/json"}),
            400,
            "INVALID_JSON",
        )
    assert _backups(file) == []


def test_update_model(setup: tuple[str, Path, Path]) -> None:
    url, file, _ = setup
    with _client(url) as c:
        r = c.post("/api/config/model/t", json={"temperature": 0.8, "context_length": 256, "max_tokens": 64})
        assert r.status_code == 200 and r.json()["needsRestart"] is True
        assert r.json()["restartMessage"].startswith("Model configuration updated!")
        spec = load_config(file).models[0]
        assert (spec.temperature, spec.context_length, spec.max_tokens, spec.aliases) == (0.8, 256, 64, ["t"])
        assert load_config(file).api_key == "sekret-key"
        assert len(_backups(file)) == 1
        before = file.read_bytes()
        body = _error(c.post("/api/config/model/tiny", json={"tempurature": 1}), 400, "INVALID_CONFIG")
        assert body["details"]["errors"][0]["path"] == "models.0.tempurature"
        assert "did you mean 'temperature'" in body["error"]
        body = _error(c.post("/api/config/model/tiny", json={"context_length": 10**9}), 400, "INVALID_CONFIG")
        assert body["details"]["errors"][0]["path"] == "models.0.context_length"
        _error(c.post("/api/config/model/tiny", json={"temperature": -0.5}), 400, "INVALID_CONFIG")
        _error(c.post("/api/config/model/tiny", json={}), 400, "INVALID_REQUEST")
        _error(c.post("/api/config/model/tiny", content="nope", headers=JSON), 400, "INVALID_JSON")
        body = _error(c.post("/api/config/model/ghost", json={"temperature": 1}), 404, "MODEL_NOT_FOUND")
        assert body["details"]["modelId"] == "ghost"
        assert file.read_bytes() == before and len(_backups(file)) == 1


def test_delete_model(setup: tuple[str, Path, Path]) -> None:
    url, file, _ = setup
    with _client(url) as c:
        _error(c.delete("/api/config/models/ghost"), 404, "MODEL_NOT_FOUND")
        r = c.delete("/api/config/models/tiny")
        assert r.status_code == 200 and r.json()["needsRestart"] is True and r.json()["modelId"] == "tiny"
        assert load_config(file).models == [] and len(_backups(file)) == 1
        _error(c.delete("/api/config/models/tiny"), 404, "MODEL_NOT_FOUND")
        # The engine still serves it until a soft restart.
        assert "tiny" in c.get("/v1/models").text


def test_add_and_append_model(setup: tuple[str, Path, Path]) -> None:
    url, file, models = setup
    bert = make_tiny_bert(models / "Mini-Embed.gguf")
    other = make_tiny_llama(models / "other.gguf", seed=4)
    with _client(url) as c:
        r = c.post("/api/config/add-model", json={"modelPath": str(bert), "modelName": "embed"})
        assert r.status_code == 200, r.text
        assert r.json()["model"] == {"name": "embed", "model": str(bert), "type": "embedding"}
        r = c.post(
            "/api/config/append-model", json={"filePath": str(other), "options": {"throughputFirst": True}}
        )
        assert r.status_code == 200, r.text
        config = load_config(file)
        assert config.names() == ["tiny", "embed", "other"] and config.models[2].parallel == 8
        assert len(_backups(file)) == 2
        before = file.read_bytes()
        _error(
            c.post("/api/config/add-model", json={"modelPath": str(other), "modelName": "embed"}),
            409,
            "ALREADY_EXISTS",
        )
        _error(
            c.post("/api/config/append-model", json={"filePath": str(models / "tiny.gguf")}),
            409,
            "ALREADY_EXISTS",
        )
        body = _error(
            c.post("/api/config/add-model", json={"modelPath": str(models / "no.gguf")}),
            400,
            "INVALID_REQUEST",
        )
        assert "not found" in body["error"]
        (models / "junk.gguf").write_text("junk")
        _error(
            c.post("/api/config/add-model", json={"modelPath": str(models / "junk.gguf")}),
            400,
            "INVALID_REQUEST",
        )
        _error(
            c.post("/api/config/append-model", json={"filePath": str(bert), "options": {"x": 1}}),
            400,
            "INVALID_REQUEST",
        )
        _error(c.post("/api/config/add-model", json={}), 400, "INVALID_REQUEST")
        assert file.read_bytes() == before


def test_validate_and_validate_models(setup: tuple[str, Path, Path]) -> None:
    url, file, models = setup
    broken = models / "broken.gguf"
    broken.write_bytes((models / "tiny.gguf").read_bytes()[:100])
    with _client(url) as c:
        assert c.get("/api/config/validate").json() == {"valid": True, "errors": [], "warnings": []}
        file.write_text(
            f"models:\n  - name: tiny\n    model: {models}/tiny.gguf\n    context_length: 8192\n"
            f"  - name: gone\n    model: {models}/gone.gguf\n  - name: broken\n    model: {broken}\n"
        )
        report = c.get("/api/config/validate").json()
        assert report["valid"] is True and report["errors"] == []
        assert [w.split(":")[0] for w in report["warnings"]] == [
            "models.0 ('tiny').context_length",
            "models.1 ('gone').model",
            "models.2 ('broken').model",
        ]
        r = c.post("/api/config/validate-models").json()
        assert (r["valid"], r["total"], r["validCount"], r["missing"], r["unreadable"]) == (
            False, 3, 1, ["gone"], ["broken"]
        )  # fmt: skip
        assert r["models"][0]["type"] == "llm" and r["models"][2]["error"]
        file.write_text("models:\n  - name: a\n    model: a.gguf\n    top_p: 5\n")
        report = c.get("/api/config/validate").json()
        assert report["valid"] is False and report["errors"][0].startswith("models.0.top_p:")


def test_cleanup_duplicates(setup: tuple[str, Path, Path]) -> None:
    url, file, models = setup
    with _client(url) as c:
        r = c.post("/api/config/cleanup-duplicates").json()
        assert r["removedCount"] == 0 and r["needsRestart"] is False and _backups(file) == []
        file.write_text(
            "api_key: sekret-key\nmodels:\n"
            "  - name: tiny\n    model: ../models/tiny.gguf\n"
            f"  - name: tiny\n    model: {models}/other.gguf\n"  # same name: the file does not validate
            f"  - name: again\n    model: {models}/tiny.gguf\n"  # same file
        )
        assert c.get("/api/config/validate").json()["valid"] is False
        r = c.post("/api/config/cleanup-duplicates")
        assert r.status_code == 200, r.text
        assert r.json()["removedCount"] == 2 and r.json()["needsRestart"] is True
        assert [d["index"] for d in r.json()["removed"]] == [1, 2]
        assert load_config(file).names() == ["tiny"] and len(_backups(file)) == 1


def test_concurrent_edits_are_serialised(setup: tuple[str, Path, Path]) -> None:
    url, file, models = setup
    files = [make_tiny_llama(models / f"m{i}.gguf", seed=10 + i) for i in range(6)]

    async def go() -> list[int]:
        headers = {"Authorization": "Bearer sekret-key"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as c:
            rs = await asyncio.gather(
                *(c.post("/api/config/append-model", json={"filePath": str(f)}) for f in files)
            )
        return [r.status_code for r in rs]

    assert asyncio.run(go()) == [200] * 6
    assert sorted(load_config(file).names()) == sorted(["tiny", *(f"m{i}" for i in range(6))])


def test_without_a_config_file(tmp_path: Path) -> None:
    llama = make_tiny_llama(tmp_path / "tiny.gguf")
    with running_server({"models": [{"name": "tiny", "model": str(llama)}]}) as (url, _):
        with httpx.Client(base_url=url, timeout=30) as c:
            r = c.get("/api/config")
            assert r.status_code == 200 and yaml.safe_load(r.text)["models"][0]["name"] == "tiny"
            assert c.get("/api/config/validate").json()["valid"] is True
            assert c.post("/api/config/validate-models").json()["valid"] is True
            for r in (
                c.post("/api/config", content="models: []\n", headers=YAML),
                c.post("/api/config/model/tiny", json={"temperature": 1}),
                c.delete("/api/config/models/tiny"),
                c.post("/api/config/append-model", json={"filePath": str(llama)}),
                c.post("/api/config/cleanup-duplicates"),
            ):
                assert "without a config file" in _error(r, 409, "NO_CONFIG_FILE")["error"]
    assert os.listdir(tmp_path) == ["tiny.gguf"]


def test_missing_file_starts_from_the_running_config(tmp_path: Path) -> None:
    """The bundled default's case: the first edit writes the file the next start will find."""
    llama = make_tiny_llama(tmp_path / "tiny.gguf")
    file = tmp_path / "home" / "config.yaml"
    config = {"api_key": "k", "models": [{"name": "tiny", "model": str(llama)}]}
    with running_server(config, config_path=file) as (url, _):
        with httpx.Client(base_url=url, headers={"X-API-Key": "k"}, timeout=30) as c:
            shown = c.get("/api/config").text
            assert "tiny" in shown and yaml.safe_load(shown)["api_key"] == "********"
            r = c.post("/api/config/model/tiny", json={"temperature": 0.3})
            assert r.status_code == 200, r.text
    saved = load_config(file)
    assert saved.api_key == "k" and saved.models[0].temperature == 0.3
