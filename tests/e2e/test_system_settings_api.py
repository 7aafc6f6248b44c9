"""System information and settings over real HTTP: shapes, round trips, and the API key's life."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from claracore import AsyncEngine
from claracore.server import create_app
from tests.e2e.server import free_port

KEY = "first-secret-key-1234"
NEW_KEY = "second-secret-key-5678"
HF = "hf_abcdefghijklmnopqrstuvwxyzWXYZ"


@contextmanager
def serve(tmp_path: Path, config: dict[str, Any] | None = None) -> Iterator[tuple[str, Any]]:
    """A real server whose app has a store in `tmp_path`; yields (url, app)."""
    app = create_app(AsyncEngine(config or {"models": []}), data_dir=tmp_path)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    with serve(tmp_path) as running:
        yield running


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_specs_and_detection_shapes(server: tuple[str, Any]) -> None:
    url = server[0]
    specs = httpx.get(url + "/api/system/specs", timeout=30).json()
    assert set(specs) == {"os", "arch", "cpu", "ramGB", "gpuInfo"}
    assert isinstance(specs["cpu"], str) and specs["cpu"] and specs["ramGB"] > 0
    det = httpx.get(url + "/api/system/detection", timeout=30).json()
    assert set(det) == {
        "os", "architecture", "hasCUDA", "hasROCm", "hasVulkan", "hasMetal", "totalRAMGB",
        "totalVRAMGB", "gpuType", "recommendedBackend", "cpuCores", "cpuThreads",
        "rpc",  # ClaraCore's: the config's RPC workers (none here)
    }  # fmt: skip
    assert det["rpc"]["workers"] == [] and isinstance(det["rpc"]["supported"], bool)
    assert det["os"] == specs["os"] and det["architecture"] == specs["arch"]
    assert all(isinstance(det[k], bool) for k in ("hasCUDA", "hasROCm", "hasVulkan", "hasMetal"))
    assert det["recommendedBackend"] in {"cuda", "rocm", "vulkan", "metal", "cpu"}
    assert det["cpuThreads"] >= det["cpuCores"] >= 1


def test_system_settings_round_trip(server: tuple[str, Any]) -> None:
    url = server[0]
    first = httpx.get(url + "/api/settings/system").json()
    assert first["requireApiKey"] is False and first["apiKeySet"] is False and first["apiKey"] == ""
    change = {"backend": "vulkan", "vramGB": 8.0, "preferredContext": 4096, "throughputFirst": True}
    assert httpx.post(url + "/api/settings/system", json=change).status_code == 200
    got = httpx.get(url + "/api/settings/system").json()
    assert {k: got[k] for k in change} == change
    assert got["enableJinja"] is True and "gpuType" in got and "ramGB" in got
    # A partial update leaves the other fields alone.
    httpx.post(url + "/api/settings/system", json={"enableJinja": False})
    got = httpx.get(url + "/api/settings/system").json()
    assert got["enableJinja"] is False and got["backend"] == "vulkan"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"vramGB": -3}, "vramGB"),
        ({"preferredContext": 10**9}, "preferredContext"),
        ({"backend": "quantum"}, "backend"),
        ({"throughputFirst": "yes"}, "throughputFirst"),
        ({"requireApiKey": True}, "apiKey"),  # on, with no key anywhere
        ({"requireApiKey": True, "apiKey": "short"}, "apiKey"),
        ({"apiKey": "has a space in it"}, "apiKey"),
        ({"requireApikey": True}, "requireApikey"),  # misspelt: refused, not ignored
    ],
)
def test_bad_values_are_400_naming_the_field(
    server: tuple[str, Any], body: dict[str, Any], field: str
) -> None:
    url, app = server
    r = httpx.post(url + "/api/settings/system", json=body)
    assert r.status_code == 400, r.text
    err = r.json()
    assert set(err) == {"error", "code", "details"} and field in err["error"]
    assert err["details"]["field"] == field  # where the web UI looks to mark the field
    assert app.state.key_digest is None  # nothing half-applied


def test_api_key_lifecycle(server: tuple[str, Any]) -> None:
    url, app = server
    r = httpx.post(url + "/api/settings/system", json={"requireApiKey": True, "apiKey": KEY})
    assert r.status_code == 200 and KEY not in r.text
    # From the very next request the key is needed, everywhere under /api and /v1.
    for path in ("/api/settings/system", "/api/system/specs", "/api/settings/hf-api-key", "/v1/models"):
        assert httpx.get(url + path).status_code == 401, path
        assert httpx.get(url + path, headers=bearer("wrong-key-123")).status_code == 401, path
        assert httpx.get(url + path, headers=bearer(KEY), timeout=30).status_code == 200, path
    got = httpx.get(url + "/api/settings/system", headers={"X-API-Key": KEY})
    assert got.json()["apiKeySet"] is True and got.json()["requireApiKey"] is True
    assert KEY not in got.text and KEY[-8:] not in got.text
    # Stored hashed: the database holds the digest, never the key.
    assert KEY.encode() not in (Path(app.state.data_dir) / "claracore.db").read_bytes()
    # Changing the key or turning auth off without the current key: 401, and nothing changes.
    for body in ({"apiKey": NEW_KEY}, {"requireApiKey": False}):
        assert httpx.post(url + "/api/settings/system", json=body).status_code == 401
        assert httpx.post(url + "/api/settings/system", json=body, headers=bearer(NEW_KEY)).status_code == 401
    # With it, the change applies at once: the old key stops working.
    r = httpx.post(url + "/api/settings/system", json={"apiKey": NEW_KEY}, headers=bearer(KEY))
    assert r.status_code == 200 and NEW_KEY not in r.text
    assert httpx.get(url + "/api/settings/system", headers=bearer(KEY)).status_code == 401
    assert httpx.get(url + "/api/settings/system", headers=bearer(NEW_KEY)).status_code == 200
    # Turning auth off needs the current key; afterwards requests need none.
    r = httpx.post(url + "/api/settings/system", json={"requireApiKey": False}, headers=bearer(NEW_KEY))
    assert r.status_code == 200 and r.json()["requireApiKey"] is False and r.json()["apiKeySet"] is True
    assert httpx.get(url + "/api/settings/system").status_code == 200
    # Turning it back on with the stored key needs proof of holding that key.
    r = httpx.post(url + "/api/settings/system", json={"requireApiKey": True})
    assert r.status_code == 400 and r.json()["details"]["field"] == "apiKey"
    r = httpx.post(url + "/api/settings/system", json={"requireApiKey": True}, headers=bearer(NEW_KEY))
    assert r.status_code == 200
    assert httpx.get(url + "/api/settings/system").status_code == 401


def test_config_file_key_guards_the_settings_route(tmp_path: Path) -> None:
    with serve(tmp_path, {"api_key": KEY, "models": []}) as (url, _):
        assert httpx.post(url + "/api/settings/system", json={"requireApiKey": False}).status_code == 401
        got = httpx.get(url + "/api/settings/system", headers=bearer(KEY)).json()
        assert got["requireApiKey"] is True and got["apiKeySet"] is True and got["apiKey"] != KEY


def test_hf_key_is_stored_usable_and_only_shown_masked(server: tuple[str, Any]) -> None:
    url, app = server
    assert httpx.get(url + "/api/settings/hf-api-key").json() == {"apiKeySet": False, "apiKey": ""}
    r = httpx.post(url + "/api/settings/hf-api-key", json={"apiKey": HF})
    assert r.status_code == 200 and HF not in r.text
    got = httpx.get(url + "/api/settings/hf-api-key").json()
    assert got == {"apiKeySet": True, "apiKey": "hf_…WXYZ"}
    assert app.state.store.get_setting("hf_api_key") == HF  # downloads can use it
    for bad in ({"apiKey": "hf short"}, {"token": HF}, {}):
        r = httpx.post(url + "/api/settings/hf-api-key", json=bad)
        assert r.status_code == 400 and set(r.json()) == {"error", "code", "details"}
    assert httpx.post(url + "/api/settings/hf-api-key", json={"apiKey": ""}).status_code == 200
    assert httpx.get(url + "/api/settings/hf-api-key").json()["apiKeySet"] is False


def test_a_key_set_through_settings_outlives_a_restart(tmp_path: Path) -> None:
    with serve(tmp_path) as (url, _):
        r = httpx.post(url + "/api/settings/system", json={"requireApiKey": True, "apiKey": KEY})
        assert r.status_code == 200
    with serve(tmp_path) as (url, _):
        assert httpx.get(url + "/api/settings/system").status_code == 401
        assert httpx.get(url + "/api/settings/system", headers=bearer(KEY)).status_code == 200
