"""The HTTP guard (server/guard.py) over real sockets: the key before the body, cross-site
requests, media types, size limits and the text rules, on every route family."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import running_server

KEY = "guard-key-123456"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"Content-Type": "application/json", **AUTH}


@pytest.fixture(scope="module")
def server(tiny_llama: Path, tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("guard")
    cfg = folder / "config.yaml"
    models = [
        {"name": "tiny", "model": str(tiny_llama), "context_length": 256},
        {"name": "embed", "model": str(tiny_bert)},
    ]
    config: dict[str, Any] = {"api_key": KEY, "max_body_mb": 0.05, "max_upload_mb": 0.05, "models": models}
    cfg.write_text("api_key: " + KEY + "\n")
    with running_server(config, config_path=cfg, data_dir=folder / "data") as (url, _):
        yield url


def raw_request(url: str, head: str, body: bytes = b"", timeout: float = 10) -> tuple[int, bytes]:
    """Send `head` (request line and headers) and `body`, then read the answer; (status, bytes).

    Used to prove an answer comes without the server waiting for a body the client never sends.
    """
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while not _whole_answer(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def _whole_answer(data: bytes) -> bool:
    """The headers and as much body as their Content-Length says (they may come in two reads)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


def test_the_key_is_checked_before_a_large_body_is_read(server: str) -> None:
    """Found: a 50 MB upload was read in full before the 401. Here only 10 bytes of the declared
    50 MB are ever sent: the answer can only come from the headers."""
    for path in ("/v1/audio/transcriptions", "/api/config", "/v1/chat/completions"):
        head = (
            f"POST {path} HTTP/1.1\nHost: x\nContent-Type: application/json\n"
            f"Content-Length: {50 * 1024 * 1024}\nAuthorization: Bearer wrong-key-0000\n"
        )
        status, _ = raw_request(server, head, b"0123456789")
        assert status == 401, path


def test_bodies_over_the_limit_are_a_413_before_they_are_read(server: str) -> None:
    head = "POST /v1/chat/completions HTTP/1.1\nHost: x\nContent-Type: application/json\n"
    head += f"Content-Length: {10**7}\n"
    status, data = raw_request(server, head + f"Authorization: Bearer {KEY}\n", b"{")
    assert status == 413 and b"max_body_mb" in data
    # Without a Content-Length (chunked), counted as it arrives.
    big = {"model": "tiny", "messages": [{"role": "user", "content": "x" * 60_000}]}
    r = httpx.post(server + "/v1/chat/completions", json=big, headers=AUTH, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "tiny", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}]}'

    r = httpx.post(server + "/v1/chat/completions", content=chunks(), headers=JSON, timeout=30)
    assert r.status_code == 413
    # Uploads have their own limit: max_upload_mb plus the form's overhead.
    files = {"file": ("a.wav", b"\0" * 200_000, "audio/wav")}
    r = httpx.post(
        server + "/v1/audio/transcriptions", files=files, data={"model": "x"}, headers=AUTH, timeout=30
    )
    assert r.status_code == 413 and "max_upload_mb" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "/api/settings/system", {"enableJinja": True}),
        ("POST", "/api/config/model/tiny", {"temperature": 0.5}),
        ("POST", "/api/server/restart", None),
        ("POST", "/api/models/unload", None),
        ("DELETE", "/api/config/models/tiny", None),
        ("POST", "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "x"}]}),
    ],
)
def test_cross_site_requests_are_refused(server: str, method: str, path: str, body: Any) -> None:
    """Found: with no key, any web page could edit the config or restart the server."""
    for origin in ("http://evil.example", "null", "http://127.0.0.1:1"):
        r = httpx.request(method, server + path, json=body, headers={**AUTH, "Origin": origin}, timeout=30)
        assert r.status_code == 403, (origin, r.text)
        code = r.json()["error"]["code"] if path.startswith("/v1") else r.json()["code"]
        assert code == "FORBIDDEN_ORIGIN"


def test_same_origin_and_non_browser_requests_pass(server: str) -> None:
    body = {"preferredContext": 4096}
    for headers in ({}, {"Origin": server}, {"Origin": server + "/"}):
        r = httpx.post(server + "/api/settings/system", json=body, headers={**AUTH, **headers}, timeout=30)
        assert r.status_code == 200, (headers, r.text)
    # Reads are not state-changing: the key (and CORS in the browser) guards them.
    r = httpx.get(
        server + "/api/settings/system", headers={**AUTH, "Origin": "http://evil.example"}, timeout=30
    )
    assert r.status_code == 200


def test_allowed_cors_origins_may_change_state(tiny_llama: Path) -> None:
    config = {"cors": ["http://ui.example:3000"], "models": [{"name": "t", "model": str(tiny_llama)}]}
    with running_server(config) as (url, _):
        r = httpx.post(url + "/api/models/unload", headers={"Origin": "http://ui.example:3000"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://ui.example:3000"
        r = httpx.post(url + "/api/models/unload", headers={"Origin": "http://other.example"})
        assert r.status_code == 403


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_state_changing_bodies_must_be_json(server: str, content_type: str | None) -> None:
    """Found: management routes took text/plain bodies, which a cross-site form sends freely."""
    headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
    for path in ("/api/settings/system", "/api/config/model/tiny", "/api/config/folders", "/v1/embeddings"):
        r = httpx.post(server + path, content=b'{"enableJinja": true}', headers=headers, timeout=30)
        assert r.status_code == 415, (path, content_type, r.text)
    # A POST without a body needs no type.
    assert httpx.post(server + "/api/models/unload", headers=AUTH, timeout=30).status_code == 200


@pytest.mark.parametrize(
    "path,body,field",
    [
        (
            "/v1/chat/completions",
            '{"model":"tiny","messages":[{"role":"user","content":"\\ud800"}]}',
            "messages.0.content",
        ),
        ("/v1/chat/completions", '{"model":"\\udfff","messages":[{"role":"user","content":"x"}]}', "model"),
        ("/v1/completions", '{"model":"tiny","prompt":"a\\ud800"}', "prompt"),
        ("/v1/embeddings", '{"model":"embed","input":["ok","\\ud800"]}', "input.1"),
        ("/v1/audio/speech", '{"model":"tts","voice":"\\ud800","input":"x"}', "voice"),
        ("/api/settings/hf-api-key", '{"apiKey":"abcdefgh\\ud800"}', "apiKey"),
        ("/api/config/folders", '{"folderPaths":["/tmp/\\ud800"]}', "folderPaths.0"),
        ("/api/config/model/tiny", '{"\\ud800": 1}', ""),
    ],
)
def test_lone_surrogates_are_a_400_naming_the_field(server: str, path: str, body: str, field: str) -> None:
    """Found: a lone surrogate in any string field was a 500, or a reset connection when the
    error message quoted it."""
    r = httpx.post(server + path, content=body, headers=JSON, timeout=30)
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"] if path.startswith("/v1") else r.json()["error"]
    assert "surrogate" in message and message.startswith(field or "the request body")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/config/model/tiny", "/api/settings/system"])
def test_deeply_nested_json_is_a_400(server: str, path: str) -> None:
    """Found: a deeply nested body was a RecursionError (500) on the /api config routes."""
    for depth in (100, 20_000):  # past MAX_DEPTH; past Python's recursion limit
        body = '{"a":' + "[" * depth + "]" * depth + "}"
        r = httpx.post(server + path, content=body, headers=JSON, timeout=30)
        assert r.status_code == 400 and "nested" in r.text, r.text


def test_openapi_needs_the_key_when_one_is_set(server: str, tiny_llama: Path) -> None:
    """Found: /openapi.json was public with a key set. Unknown paths need the key too."""
    assert httpx.get(server + "/openapi.json").status_code == 401
    assert httpx.get(server + "/no/such/route").status_code == 401
    assert httpx.get(server + "/openapi.json", headers=AUTH).status_code == 200
    assert httpx.get(server + "/health").status_code == 200
    with running_server({"models": [{"name": "t", "model": str(tiny_llama)}]}) as (url, _):
        assert httpx.get(url + "/openapi.json").status_code == 200


def test_the_openapi_document_tells_the_truth(server: str) -> None:
    """Found: every operation declared a 422 (never sent) and no 400/401/404/409/503; /v1 had no
    response schemas; the config routes' bodies were undocumented."""
    doc = httpx.get(server + "/openapi.json", headers=AUTH).json()
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            codes = set(op["responses"])
            assert "422" not in codes and {"200", "400", "401", "404", "503"} <= codes, (method, path)
            if method in ("post", "delete"):
                assert {"403", "413", "415"} <= codes
            family = "OpenAIError" if path.startswith("/v1") else "ManagementError"
            assert op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith(family)
            if path.startswith("/v1"):
                assert op["responses"]["200"]["content"], (method, path)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    body = doc["paths"]["/api/config"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/yaml"} <= set(body)
    assert "requestBody" in doc["paths"]["/api/config/model/{model_id}"]["post"]
    chat = doc["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert {"application/json", "text/event-stream"} <= set(chat)
