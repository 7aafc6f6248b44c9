"""What the configuration editor asks before it saves: the config schema (every key's type, range,
default and meaning) and a dry run of a save, which validates exactly as a save does and writes
nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from claracore.config import Config, ModelSpec
from claracore.manage.config_schema import undocumented
from tests.e2e.server import running_server
from tests.tiny_models import make_tiny_llama

KEY = "schema-test-key"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[httpx.Client, Path]]:
    make_tiny_llama(tmp_path / "tiny.gguf")
    file = tmp_path / "config.yaml"
    file.write_text(f"# kept\napi_key: {KEY}\nmodels:\n  - name: tiny\n    model: tiny.gguf\n")
    config = {"api_key": KEY, "models": [{"name": "tiny", "model": str(tmp_path / "tiny.gguf")}]}
    with (
        running_server(config, config_path=file) as (url, _),
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client,
    ):
        yield client, file


def test_every_key_has_a_meaning() -> None:
    assert undocumented() == []


def test_the_schema_says_type_range_default_and_meaning(server: tuple[httpx.Client, Path]) -> None:
    client, _ = server
    assert client.get("/api/config/schema", headers={"Authorization": ""}).status_code == 401
    r = client.get("/api/config/schema")
    assert r.status_code == 200, r.text
    schema: dict[str, Any] = r.json()
    assert set(schema["properties"]) == set(Config.model_fields)
    model = schema["$defs"]["ModelSpec"]["properties"]
    assert set(model) == set(ModelSpec.model_fields)
    assert all(p.get("description") for p in model.values())
    # Ranges and defaults are the validator's own.
    assert model["temperature"]["anyOf"][0] == {"maximum": 2, "minimum": 0, "type": "number"}
    assert model["gpu_layers"] == {**model["gpu_layers"], "minimum": -1, "default": 0}
    assert model["cache_type_k"]["enum"][:2] == ["f32", "f16"]
    # Keys validated by a plain function get their shapes written out.
    assert {"const": "auto"} in model["flash_attn"]["anyOf"]
    assert {"const": "auto"} in schema["$defs"]["MemoryBudget"]["properties"]["ram_gb"]["anyOf"]


def test_a_dry_run_validates_like_a_save_and_writes_nothing(server: tuple[httpx.Client, Path]) -> None:
    client, file = server
    before = file.read_bytes()
    shown = client.get("/api/config").text
    good = shown.replace("model: tiny.gguf", "model: tiny.gguf\n    temperature: 0.5")
    r = client.post("/api/config?dryRun=1", content=good, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 200, r.text
    assert r.json()["valid"] is True and r.json()["needsRestart"] is False and r.json()["warnings"] == []
    missing = shown.replace("model: tiny.gguf", "model: gone.gguf")
    r = client.post("/api/config?dryRun=true", content=missing, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 200 and "gone.gguf" in r.json()["warnings"][0]

    bad = shown.replace("model: tiny.gguf", "model: tiny.gguf\n    temperature: 5\n    paralel: 2")
    r = client.post("/api/config?dryRun=1", content=bad, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 400 and r.json()["code"] == "INVALID_CONFIG"
    errors = {e["path"]: e["message"] for e in r.json()["details"]["errors"]}
    assert set(errors) == {"models.0.temperature", "models.0.paralel"}
    assert "less than or equal to 2" in errors["models.0.temperature"]
    assert "did you mean 'parallel'" in errors["models.0.paralel"]
    r = client.post("/api/config?dryRun=maybe", content=good, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 400 and "dryRun" in r.text, r.text

    assert file.read_bytes() == before and not (file.parent / ".backups").exists()
