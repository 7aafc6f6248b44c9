"""Every route the app serves refuses a request without the key or with a wrong one, and keeps
refusing after any sequence of settings writes (and restarts on the same data directory).

The routes are listed from the app itself, however its routers nest, so a route added later
(downloads, events, the UI's API) is checked without touching this file; only the public ones
(the health check, the UI's static files) answer without a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Mount

from tests.e2e.test_system_settings_api import serve

CONFIG_KEY = "config-key-0123456789"
STORED_KEY = "stored-key-0123456789"
OTHER_KEYS = ("wrong-key-0123456789", "another-key-98765432")
PUBLIC = ("/", "/health", "/ui")  # and everything under /ui/: the UI's pages ask for the key


def app_routes(app: Any) -> list[tuple[str, str]]:
    """(method, concrete path) of every route of `app`, path parameters filled in."""
    found: list[tuple[str, str]] = []

    def walk(routes: list[Any]) -> None:
        for route in routes:
            contexts = getattr(route, "effective_route_contexts", None)
            if callable(contexts):  # FastAPI's included routers
                walk(list(contexts()))
            elif isinstance(route, Mount):
                found.append(("GET", route.path + "/index.html"))
            else:
                for method in sorted(getattr(route, "methods", None) or {"GET"}):
                    if method != "HEAD":
                        found.append((method, re.sub(r"\{[^}]+\}", "tiny", route.path)))

    walk(list(app.routes))
    return sorted(set(found))


def public(path: str) -> bool:
    return path in PUBLIC or path.startswith("/ui/")


def check_every_route(url: str, app: Any, key: str, refused: tuple[str, ...]) -> int:
    """Each protected route: 401 without a key and with each of `refused`, not 401 with `key`."""
    checked = 0
    with httpx.Client(base_url=url, timeout=30) as http:
        for method, path in app_routes(app):
            if public(path):
                assert http.request(method, path).status_code != 401, path
                continue
            for headers in (
                {},
                *({"Authorization": f"Bearer {k}"} for k in refused),
                {"X-API-Key": refused[0]},
            ):
                r = http.request(method, path, headers=headers, json={})
                assert r.status_code == 401, (method, path, headers, r.text)
                if path.startswith("/api"):
                    assert r.json()["code"] == "UNAUTHORIZED"
                else:
                    assert r.json()["error"]["type"] == "authentication_error"
                checked += 1
    with httpx.Client(base_url=url, timeout=30) as http:  # the key itself opens a read
        assert http.get("/api/config/folders", headers={"X-API-Key": key}).status_code == 200
    return checked


def test_the_route_listing_sees_every_family(tmp_path: Path) -> None:
    with serve(tmp_path) as (_, app):
        paths = {p for _, p in app_routes(app)}
    assert {
        "/v1/chat/completions",
        "/v1/audio/speech",
        "/api/config",
        "/api/settings/system",
        "/health",
    } <= paths
    assert len(paths) >= 30


def test_every_route_refuses_without_the_configured_key(tmp_path: Path) -> None:
    with serve(tmp_path, {"api_key": CONFIG_KEY, "models": []}) as (url, app):
        assert check_every_route(url, app, CONFIG_KEY, OTHER_KEYS) > 90


# A settings write: who sends it (no key, a wrong key, a stored key, the config's key) and what.
WRITER = st.sampled_from([None, *OTHER_KEYS, STORED_KEY, CONFIG_KEY])
BODY = st.fixed_dictionaries(
    {},
    optional={
        "requireApiKey": st.booleans(),
        "apiKey": st.sampled_from(["", STORED_KEY, *OTHER_KEYS]),
        "preferredContext": st.sampled_from([2048, 8192]),
    },
)
# Few examples, each a real server per write: the first writes per app run the hardware probes.
RUNS: dict[str, Any] = {
    "max_examples": 8,
    "deadline": None,
    "derandomize": True,  # the same sequences on every run
    "database": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture],
}
WRITES = st.lists(
    st.tuples(WRITER, BODY, st.booleans()), min_size=1, max_size=5
)  # (who, body, restart after)


def write(url: str, who: str | None, body: dict[str, Any]) -> int:
    headers = {"Authorization": f"Bearer {who}"} if who else {}
    return httpx.post(url + "/api/settings/system", json=body, headers=headers, timeout=30).status_code


@pytest.fixture
def data_dirs(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


@settings(**RUNS)
@given(writes=WRITES)
def test_no_sequence_of_settings_writes_weakens_the_config_key(data_dirs: Path, writes: list[Any]) -> None:
    """Found: a stored settings record (requireApiKey false, or another key) overrode the config
    file's api_key after a restart."""
    folder = data_dirs / f"run{len(list(data_dirs.iterdir()))}"
    config = {"api_key": CONFIG_KEY, "models": []}
    for who, body, restart in writes:
        with serve(folder, {"models": []} if restart else config) as (url, _):
            write(url, who, body)  # anything at all, by anyone, while no key is configured too
    with serve(folder, config) as (url, app):
        check_every_route(url, app, CONFIG_KEY, (*OTHER_KEYS, STORED_KEY))


@settings(**RUNS)
@given(
    writes=st.lists(
        st.tuples(st.sampled_from([None, *OTHER_KEYS]), BODY, st.booleans()), min_size=1, max_size=5
    )
)
def test_no_sequence_of_writes_without_the_key_weakens_a_stored_key(
    data_dirs: Path, writes: list[Any]
) -> None:
    """A key set through the settings route (no key in the config) can only be changed or turned
    off by its holder: writes without it, across restarts, change nothing."""
    folder = data_dirs / f"run{len(list(data_dirs.iterdir()))}"
    with serve(folder) as (url, _):
        assert write(url, None, {"requireApiKey": True, "apiKey": STORED_KEY}) == 200
    for who, body, _restart in writes:
        with serve(folder) as (url, _):
            assert write(url, who, body) == 401
    with serve(folder) as (url, app):
        check_every_route(url, app, STORED_KEY, OTHER_KEYS)
