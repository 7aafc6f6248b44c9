"""Model folder management over real HTTP: track, list, untrack and scan real folders of tiny
models (split, mmproj, corrupt, Whisper, Piper), and every kind of bad input as a 400/409 in the
spec's /api error shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import running_server
from tests.unit.test_scanner import build_model_tree


@pytest.fixture
def tree(tmp_path: Path, tiny_llama: Path, tiny_bert: Path, tiny_rerank: Path) -> Path:
    return build_model_tree(tmp_path / "models", tiny_llama, tiny_bert, tiny_rerank)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[httpx.Client]:
    with (
        running_server({"models": []}, data_dir=tmp_path / "data") as (url, _),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"error", "code", "details"}
    assert body["code"] == code and body["error"]
    return body


def test_add_list_scan_and_remove_a_folder(api: httpx.Client, tree: Path, tmp_path: Path) -> None:
    assert api.get("/api/config/folders").json() == {"folders": []}
    r = api.post("/api/config/folders", json={"folderPaths": [str(tree)], "recursive": True})
    assert r.status_code == 200, r.text
    added = r.json()
    assert [f["path"] for f in added["folders"]] == [str(tree)]
    (scan,) = added["scans"]
    assert {m["name"]: m["type"] for m in scan["models"]} == {
        "big": "llm",
        "chat": "llm",
        "embed": "embedding",
        "rerank": "reranker",
        "voice": "tts",
        "whisper-tiny": "stt",
    }

    (folder,) = api.get("/api/config/folders").json()["folders"]
    assert folder["path"] == str(tree) and folder["enabled"] is True and folder["recursive"] is True
    assert folder["modelCount"] == 6 and folder["addedAt"].endswith("Z") and folder["lastScanned"]

    # The same folder again, spelled through a relative `..` path: already tracked.
    again = str(tree / "sub" / "..")
    body = _error(api.post("/api/config/folders", json={"folderPaths": [again]}), 409, "ALREADY_EXISTS")
    assert body["details"]["folderPaths"] == [str(tree)]

    r = api.post("/api/config/scan-folder", json={"folderPath": str(tree), "recursive": False})
    assert r.status_code == 200, r.text
    flat = r.json()
    assert {m["name"] for m in flat["models"]} == {"big", "chat", "embed", "rerank"}
    chat = next(m for m in flat["models"] if m["name"] == "chat")
    assert chat["mmproj"] == str(tree / "mmproj-chat-f16.gguf")
    assert chat["path"] == str(tree / "chat.gguf") and chat["contextLength"] == 512
    big = next(m for m in flat["models"] if m["name"] == "big")
    assert big["path"] == str(tree / "big-00001-of-00002.gguf")
    skipped = {Path(s["path"]).name: s["reason"] for s in flat["skipped"]}
    assert "truncated" in skipped["corrupt.gguf"]
    assert flat["addedToDatabase"] is False

    r = api.request(
        "DELETE", "/api/config/folders", json={"folderPaths": [str(tree), str(tmp_path / "gone")]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["removed"] == [str(tree)]
    assert r.json()["notTracked"] == [str(tmp_path / "gone")]
    assert api.get("/api/config/folders").json() == {"folders": []}


def test_scan_folder_can_add_to_database(api: httpx.Client, tree: Path) -> None:
    r = api.post("/api/config/scan-folder", json={"folderPath": str(tree / "sub"), "addToDatabase": True})
    assert r.status_code == 200, r.text
    assert r.json()["modelCount"] == 2 and r.json()["addedToDatabase"] is True
    skipped = {Path(s["path"]).name for s in r.json()["skipped"]}
    assert skipped == {"lonely.onnx"}
    (folder,) = api.get("/api/config/folders").json()["folders"]
    assert folder["path"] == str(tree / "sub") and folder["modelCount"] == 2


def test_folders_survive_a_restart(tmp_path: Path, tree: Path) -> None:
    data = tmp_path / "data"
    with running_server({"models": []}, data_dir=data) as (url, _):
        assert httpx.post(url + "/api/config/folders", json={"folderPaths": [str(tree)]}).status_code == 200
    with running_server({"models": []}, data_dir=data) as (url, _):
        (folder,) = httpx.get(url + "/api/config/folders").json()["folders"]
    assert folder["path"] == str(tree) and folder["modelCount"] == 6
    assert (data / "claracore.db").is_file()


@pytest.mark.parametrize(
    ("method", "route", "body", "param"),
    [
        ("POST", "/api/config/folders", {"folderPaths": ["{missing}"]}, "folderPaths.0"),
        ("POST", "/api/config/folders", {"folderPaths": ["{file}"]}, "folderPaths.0"),
        ("POST", "/api/config/folders", {"folderPaths": ["{tree}", "{file}"]}, "folderPaths.1"),
        ("POST", "/api/config/folders", {"folderPaths": [""]}, "folderPaths.0"),
        ("POST", "/api/config/folders", {"folderPaths": []}, "folderPaths"),
        ("POST", "/api/config/folders", {"recursive": True}, "folderPaths"),
        ("POST", "/api/config/folders", {"folderPaths": "{tree}"}, "folderPaths"),
        ("DELETE", "/api/config/folders", {}, "folderPaths"),
        ("POST", "/api/config/scan-folder", {"folderPath": "{missing}"}, "folderPath"),
        ("POST", "/api/config/scan-folder", {"folderPath": "{file}"}, "folderPath"),
        ("POST", "/api/config/scan-folder", {"recursive": True}, "folderPath"),
        ("POST", "/api/config/scan-folder", {"folderPath": "{tree}", "recursive": "deep"}, "recursive"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    api: httpx.Client, tree: Path, method: str, route: str, body: dict[str, Any], param: str
) -> None:
    values = {"missing": str(tree / "nope"), "file": str(tree / "notes.txt"), "tree": str(tree)}

    def fill(v: Any) -> Any:
        if isinstance(v, str):
            return v.format(**values)
        if isinstance(v, list):
            return [fill(x) for x in v]
        return v

    r = api.request(method, route, json={k: fill(v) for k, v in body.items()})
    err = _error(r, 400, "INVALID_REQUEST")
    assert err["error"].startswith(param), err
    # Nothing was half-written: a bad path next to a good one adds neither.
    assert api.get("/api/config/folders").json() == {"folders": []}


def test_invalid_json_and_auth(tmp_path: Path, tree: Path) -> None:
    with running_server({"models": [], "api_key": "k"}, data_dir=tmp_path / "d") as (url, _):
        r = httpx.get(url + "/api/config/folders")
        _error(r, 401, "UNAUTHORIZED")
        headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}
        r = httpx.post(url + "/api/config/folders", content=b"{nope", headers=headers)
        _error(r, 400, "INVALID_JSON")
        r = httpx.post(
            url + "/api/config/scan-folder", json={"folderPath": str(tree)}, headers={"X-API-Key": "k"}
        )
        assert r.status_code == 200 and r.json()["modelCount"] == 6
