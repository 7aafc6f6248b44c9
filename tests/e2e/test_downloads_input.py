"""Downloads given bad input, refused by the remote, short of disk, or from a plain URL: clear 4xx
answers in the spec's shape (or a failed download carrying the remote's reason), nothing written
outside the target folder, and the HF token never in a response, an event or a log line."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.downloads import act, download_server, start, wait_state
from tests.hub_stub import TOKEN, HubStub, StubFile

REPO = "org/tiny-GGUF"
FILE = "tiny-Q4_K_M.gguf"
DATA = b"GGUF" + bytes(range(256)) * 40


@pytest.fixture
def hub() -> Iterator[HubStub]:
    with HubStub() as stub:
        stub.add(REPO, {FILE: DATA, "sub/other.gguf": DATA})
        yield stub


def _files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"url": "ftp://example.org/model.gguf"}, "url"),
    ({"url": "file:///etc/passwd"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"repo": REPO, "filename": "../../etc/passwd"}, "filename"),
    ({"repo": REPO, "filename": "/etc/passwd"}, "filename"),
    ({"repo": REPO, "filename": "a/./b.gguf"}, "filename"),
    ({"repo": REPO, "filename": "model\x00.gguf"}, "filename"),
    ({"url": "http://127.0.0.1:1/x.gguf", "filename": "..\\..\\x.gguf"}, "filename"),
    ({"repo": REPO, "filename": FILE, "mmproj": "../mmproj.gguf"}, "mmproj"),
    ({"repo": REPO, "filename": FILE, "modelId": "../../etc"}, "modelId"),
    ({"repo": REPO, "filename": FILE, "modelId": "a/b"}, "modelId"),
    ({"repo": "../etc", "filename": FILE}, "repo"),
    ({"repo": "org/../x", "filename": FILE}, "repo"),
    ({"repo": REPO, "filename": FILE, "revision": "../main"}, "revision"),
    ({"repo": REPO, "filename": FILE, "sha256": "abc"}, "sha256"),
    ({"repo": REPO, "filename": FILE, "targetDir": "relative/dir"}, "targetDir"),
    ({"repo": REPO, "filename": FILE, "autoConfigure": "yes"}, "autoConfigure"),
    ({"repo": REPO, "filename": FILE, "hfApiKey": "has space"}, "hfApiKey"),
    ({"repo": REPO, "filename": FILE, "revison": "main"}, "revison"),  # a misspelt field
    ({"repo": REPO}, "filename"),
    ({"url": "http://127.0.0.1:1/", "repo": REPO}, "url"),
    ({}, "repo"),
]


def test_bad_requests_are_400s_naming_the_field_and_write_nothing(hub: HubStub, tmp_path: Path) -> None:
    with download_server(hub, tmp_path) as (url, _, home):
        before = _files_under(tmp_path)
        for body, field in BAD_BODIES:
            r = httpx.post(url + "/api/models/download", json=body)
            assert r.status_code == 400, (body, r.text)
            err = r.json()
            assert set(err) == {"error", "code", "details"} and err["code"] == "INVALID_REQUEST", err
            assert err["error"].startswith(field), (body, err)
        for raw, why in [(b"[1, 2]", "JSON object"), (b"{not json", "not valid JSON")]:
            r = httpx.post(
                url + "/api/models/download", content=raw, headers={"Content-Type": "application/json"}
            )
            assert r.status_code == 400 and why in r.json()["error"]
        assert _files_under(tmp_path) == before  # not a byte written anywhere
        assert not (home / "models").exists()
        assert httpx.get(url + "/api/models/downloads").json() == {"downloads": []}
        for params in ({"q": "x" * 201}, {"limit": 0}, {"limit": "many"}):
            r = httpx.get(url + "/api/models/search", params=params)
            assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST", r.text
        r = httpx.get(url + f"/api/models/search/{REPO}/files", params={"revision": "../x"})
        assert r.status_code == 400 and r.json()["error"].startswith("revision")
        r = httpx.get(url + "/api/models/search/a..b/c/files")
        assert r.status_code == 400 and r.json()["error"].startswith("repo")


def test_unknown_ids_missing_repos_files_and_revisions_are_404s(hub: HubStub, tmp_path: Path) -> None:
    with download_server(hub, tmp_path) as (url, _, _home):
        for method, path in [
            ("GET", "/api/models/downloads/dl-nope"),
            ("POST", "/api/models/downloads/dl-nope/pause"),
            ("POST", "/api/models/downloads/dl-nope/resume"),
            ("POST", "/api/models/downloads/dl-nope/cancel"),
            ("DELETE", "/api/models/downloads/dl-nope"),
        ]:
            r = httpx.request(method, url + path)
            assert r.status_code == 404 and r.json()["code"] == "DOWNLOAD_NOT_FOUND", (method, path, r.text)
        cases = [
            ({"repo": "org/missing", "filename": FILE}, "REPO_NOT_FOUND"),
            ({"repo": REPO, "filename": "missing.gguf"}, "FILE_NOT_FOUND"),
            ({"repo": REPO, "filename": FILE, "mmproj": "mmproj-missing.gguf"}, "FILE_NOT_FOUND"),
            ({"repo": REPO, "filename": FILE, "revision": "v9"}, "REVISION_NOT_FOUND"),
            ({"url": f"{hub.url}/org/missing/resolve/main/{FILE}"}, "REPO_NOT_FOUND"),
        ]
        for body, code in cases:
            r = httpx.post(url + "/api/models/download", json=body)
            assert r.status_code == 404 and r.json()["code"] == code, (body, r.text)
        assert httpx.get(url + "/api/models/search/org/missing/files").json()["code"] == "REPO_NOT_FOUND"
        assert httpx.get(url + "/api/models/downloads").json() == {"downloads": []}


def test_the_same_file_twice_is_a_conflict_naming_the_download(hub: HubStub, tmp_path: Path) -> None:
    hub.hold_after = 1000
    with download_server(hub, tmp_path) as (url, _, _home):
        first = start(url, {"repo": REPO, "filename": FILE})
        r = httpx.post(url + "/api/models/download", json={"repo": REPO, "filename": FILE})
        assert r.status_code == 409 and r.json()["code"] == "DOWNLOAD_EXISTS"
        assert r.json()["details"]["id"] == first["id"]
        hub.release()
        wait_state(url, first["id"], "completed")
        r = httpx.post(url + "/api/models/download", json={"repo": REPO, "filename": FILE})
        assert r.status_code == 409 and r.json()["details"]["path"] == first["destination"]


def test_a_gated_repository_needs_the_token_which_never_leaks(
    hub: HubStub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with HubStub() as mirror, download_server(hub, tmp_path) as (url, engine, home):
        mirror.plain["x.gguf"] = DATA
        cdn = StubFile(DATA, redirect=f"{mirror.url}/files/x.gguf")  # the hub sends it to its CDN
        hub.add("org/gated-GGUF", {FILE: DATA, "cdn.gguf": cdn}, gated=True)
        caplog.set_level(logging.DEBUG)
        r = httpx.post(url + "/api/models/download", json={"repo": "org/gated-GGUF", "filename": FILE})
        assert r.status_code == 403 and r.json()["code"] == "REMOTE_ACCESS_DENIED", r.text
        assert "HF token" in r.json()["error"]
        r = httpx.get(url + "/api/models/search/org/gated-GGUF/files")
        assert r.status_code == 403
        # a token given with the request, then the stored one
        d1 = start(
            url,
            {"repo": "org/gated-GGUF", "filename": FILE, "hfApiKey": TOKEN, "targetDir": str(tmp_path / "a")},
        )
        assert httpx.post(url + "/api/settings/hf-api-key", json={"apiKey": TOKEN}).status_code == 200
        d2 = start(url, {"repo": "org/gated-GGUF", "filename": FILE, "targetDir": str(tmp_path / "b")})
        # a plain URL elsewhere, and the hub's redirect to elsewhere, must not get the hub's token
        d3 = start(url, {"url": f"{mirror.url}/files/x.gguf", "sha256": hashlib.sha256(DATA).hexdigest()})
        d4 = start(url, {"repo": "org/gated-GGUF", "filename": "cdn.gguf"})
        answers = [wait_state(url, d["id"], "completed") for d in (d1, d2, d3, d4)]
        assert Path(answers[2]["destination"]) == home / "models" / "x.gguf"
        assert len(mirror.requests("/files/x.gguf", "GET")) == 2
        hub_files = hub.requests("/resolve/", "GET")
        assert hub_files and all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub_files)
        assert mirror.requests("/files/") and not any("authorization" in r.headers for r in mirror.requests())
        everything = [
            httpx.get(url + "/api/models/downloads").text,
            httpx.get(url + "/api/settings/hf-api-key").text,
            json.dumps([e.as_json() for e in engine.events.since(0)]),
            caplog.text,
        ]
        assert all(TOKEN not in text for text in everything)
        assert engine.events.since(0, ["download"])  # the events were there to look at


def test_remote_refusals_fail_the_download_with_the_remotes_reason(hub: HubStub, tmp_path: Path) -> None:
    with download_server(hub, tmp_path) as (url, _, _home):
        d = start(url, {"url": f"{hub.url}/files/missing.gguf"})
        failed = wait_state(url, d["id"], "failed")
        assert failed["errorCode"] == "REMOTE_NOT_FOUND" and "404" in failed["error"]
        hub.plain["flaky.gguf"] = DATA
        hub.statuses = [503, 503, 503, 503]  # more than the three tries the test server allows
        d = start(url, {"url": f"{hub.url}/files/flaky.gguf"})
        failed = wait_state(url, d["id"], "failed")
        assert failed["errorCode"] == "REMOTE_ERROR" and "503" in failed["error"] and failed["retries"] == 3
        assert act(url, d["id"], "resume").json()["state"] in ("queued", "downloading")  # a retry
        assert Path(wait_state(url, d["id"], "completed")["destination"]).read_bytes() == DATA


def test_the_spec_form_a_hub_url_with_model_id_and_filename(hub: HubStub, tmp_path: Path) -> None:
    with download_server(hub, tmp_path) as (url, _, home):
        body = {
            "url": f"{hub.url}/{REPO}/resolve/main/sub/other.gguf",
            "modelId": "mine",
            "filename": "m.gguf",
        }
        d = start(url, body)
        assert d["source"] == "hub" and d["repo"] == REPO and d["commit"] == hub.repos[REPO].commit
        assert d["files"][0]["sha256"] == hashlib.sha256(DATA).hexdigest()  # from the hub, not given
        done = wait_state(url, d["id"], "completed")
        assert done["destination"] == str(home / "models" / REPO / "m.gguf")
        assert done["model"]["note"].startswith("downloaded, but not a model")  # random bytes, no GGUF


def test_a_plain_url_is_checked_against_the_sha256_given(hub: HubStub, tmp_path: Path) -> None:
    hub.plain["x.gguf"] = DATA
    with download_server(hub, tmp_path) as (url, _, _home):
        d = start(
            url, {"url": f"{hub.url}/files/x.gguf", "sha256": "ab" * 32, "targetDir": str(tmp_path / "t")}
        )
        failed = wait_state(url, d["id"], "failed")
        assert failed["errorCode"] == "CHECKSUM_MISMATCH" and failed["totalBytes"] == len(DATA)
        assert list((tmp_path / "t").iterdir()) == []


def test_not_enough_disk_space_fails_before_a_byte_is_written(hub: HubStub, tmp_path: Path) -> None:
    hub.add("org/huge-GGUF", {FILE: StubFile(DATA, size=1 << 50)})  # a pebibyte, says the hub
    with download_server(hub, tmp_path) as (url, _, _home):
        d = start(url, {"repo": "org/huge-GGUF", "filename": FILE})
        failed = wait_state(url, d["id"], "failed")
        assert failed["errorCode"] == "DISK_FULL" and "not enough disk space" in failed["error"]
        assert not Path(d["destination"]).parent.exists() or not any(Path(d["destination"]).parent.iterdir())
        assert not hub.requests("/resolve/")
