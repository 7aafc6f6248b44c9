"""Config writes validate like start-up: what `claracore serve` could not run is never saved,
a bad config at start-up is one clear line naming the key, and edits keep the file's comments."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from claracore.config import ModelSpec, load_config
from claracore.errors import ModelLoadError
from claracore.manage.config_file import ConfigFile
from claracore.pool import loaders
from claracore.pool.pool import ModelPool
from tests.e2e.server import running_server
from tests.tiny_models import make_tiny_llama

JSON = {"Content-Type": "application/json"}
YAML = {"Content-Type": "application/yaml"}
COMMENTED = """\
# ClaraCore models (hand-written)
host: 127.0.0.1   # only this machine
models:
  # the chat model
  - name: tiny      # small and fast
    model: tiny.gguf   # next to this file
    aliases: [t]
  - name: other
    model: other.gguf
"""


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    make_tiny_llama(tmp_path / "tiny.gguf")
    make_tiny_llama(tmp_path / "other.gguf", seed=1)
    file = tmp_path / "config.yaml"
    file.write_text(COMMENTED)
    with running_server(load_config(file).model_dump(), config_path=file, data_dir=tmp_path / "d") as (
        url,
        _,
    ):
        yield url, file


@pytest.mark.parametrize(
    "fields,why",
    [
        ({"model": "/tmp/a\x00b.gguf"}, "control characters"),
        ({"model": "/etc/hostname"}, "not a GGUF"),
        ({"model": "/no/such/model.gguf"}, "not found"),
        ({"model": "/" + "m/" * 2100 + "x.gguf"}, "longer than"),
        ({"type": "stt"}, "not stt"),
        ({"mmproj": "/no/such/mmproj.gguf"}, "not found"),
        ({"name": "a\x00b"}, "control characters"),
    ],
)
def test_model_edits_refuse_what_cannot_run(
    setup: tuple[str, Path], fields: dict[str, str], why: str
) -> None:
    """Found: POST /api/config/model/:id took any path (NUL bytes, files that are not models)."""
    url, file = setup
    before = file.read_bytes()
    r = httpx.post(url + "/api/config/model/tiny", json=fields, timeout=30)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "INVALID_CONFIG" and why in body["error"]
    assert body["details"]["errors"][0]["path"].startswith("models.0.")
    assert file.read_bytes() == before


def test_a_model_whose_file_went_missing_can_still_be_edited(setup: tuple[str, Path]) -> None:
    url, file = setup
    (file.parent / "other.gguf").unlink()
    r = httpx.post(url + "/api/config/model/other", json={"temperature": 0.3}, timeout=30)
    assert r.status_code == 200, r.text
    r = httpx.post(url + "/api/config/model/tiny", json={"model": str(file.parent / "tiny.gguf")}, timeout=30)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "content,headers,key",
    [
        ('{"host": "\\ud800", "models": []}', JSON, "host"),
        ('host: "\\ud800"\nmodels: []\n', YAML, "host"),
        ('{"host": "' + "a" * 300 + '", "models": []}', JSON, "host"),
        ('{"host": "no spaces here", "models": []}', JSON, "host"),
        (
            "models:\n  - name: x\n    model: other.gguf\n    aliases: " + "[" * 5000 + "]" * 5000 + "\n",
            YAML,
            "",
        ),
        ('{"models": [{"name": "x", "model": "/tmp/\\u0000.gguf"}]}', JSON, "models.0"),
    ],
)
def test_whole_config_writes_refuse_what_start_up_would(
    setup: tuple[str, Path], content: str, headers: dict[str, str], key: str
) -> None:
    """Found: POST /api/config saved a lone surrogate in host; the next start died in a traceback."""
    url, file = setup
    before = file.read_bytes()
    # Wide: parsing the 5000-deep YAML takes ~2 s here, far longer under mutmut's tracing.
    r = httpx.post(url + "/api/config", content=content, headers=headers, timeout=180)
    assert r.status_code == 400, r.text
    assert r.json()["code"] in ("INVALID_CONFIG", "INVALID_REQUEST")
    assert key in r.json()["error"]
    assert file.read_bytes() == before


@pytest.mark.parametrize(
    "text,key",
    [
        ('host: "\\ud800"\n', "host"),
        ('host: "' + "a" * 300 + '"\n', "host"),
        ('models:\n  - name: a\n    model: "/tmp/x\\0y.gguf"\n', "models.0"),
        ("models: " + "[" * 3000 + "]" * 3000 + "\n", "nested"),
    ],
)
def test_serve_with_a_bad_config_is_one_clear_line(tmp_path: Path, text: str, key: str) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(text)
    env = {**os.environ, "CLARACORE_HOME": str(tmp_path / "home")}
    run = subprocess.run(
        [sys.executable, "-m", "claracore", "serve", "--config", str(file), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 2, run.stderr
    assert key in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_edits_keep_the_files_comments(setup: tuple[str, Path], tmp_path: Path) -> None:
    """Found: every config edit dropped the file's comments."""
    url, file = setup
    r = httpx.post(url + "/api/config/model/t", json={"temperature": 0.25, "context_length": 256}, timeout=30)
    assert r.status_code == 200, r.text
    make_tiny_llama(tmp_path / "third.gguf", seed=2)
    r = httpx.post(
        url + "/api/config/append-model", json={"filePath": str(tmp_path / "third.gguf")}, timeout=30
    )
    assert r.status_code == 200, r.text
    assert httpx.delete(url + "/api/config/models/other", timeout=30).status_code == 200
    text = file.read_text()
    for comment in (
        "# ClaraCore models (hand-written)",
        "# only this machine",
        "# the chat model",
        "# small and fast",
    ):
        assert comment in text, text
    assert "model: tiny.gguf" in text and "aliases: [t]" in text  # untouched values stay as written
    config = load_config(file)
    assert [m.name for m in config.models] == ["tiny", "third"]
    assert (config.models[0].temperature, config.models[0].context_length) == (0.25, 256)


def test_stale_temp_files_are_removed_at_start(tmp_path: Path) -> None:
    """Found: kill -9 during a config write left 0-byte `.config.yaml.*.tmp` files behind."""
    file = tmp_path / "config.yaml"
    file.write_text("models: []\n")
    stale = [tmp_path / ".config.yaml.abc123.tmp", tmp_path / ".config.yaml.x_y.tmp"]
    for tmp in stale:
        tmp.write_bytes(b"")
    other = tmp_path / ".other.yaml.abc.tmp"
    other.write_bytes(b"")
    ConfigFile(file)
    assert not any(tmp.exists() for tmp in stale) and other.exists() and file.exists()


async def test_a_load_that_fails_outside_the_file_system_still_answers(tmp_path: Path) -> None:
    """Found: a NUL in a model path made that model's requests hang forever (the failed load's
    handler raised while it recorded the file's stat). Config refuses such paths now; the pool
    answers anyway."""
    bad = ModelSpec.model_construct(name="bad", model="/tmp/a\x00b.gguf", type="llm")
    pool = ModelPool([bad], budget_vram=0, budget_ram=1 << 30, recipe_for=loaders.recipe)
    try:
        for _ in range(2):  # the first load fails, then the failure is remembered
            with pytest.raises(ModelLoadError):
                await asyncio.wait_for(pool.acquire("bad"), timeout=30)
    finally:
        pool.close()
