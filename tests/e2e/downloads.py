"""Helpers for the download tests: a server wired to the loopback hub, and waits on a download."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from claracore import AsyncEngine
from claracore.manage.downloads import DownloadOptions, Retry
from tests.e2e.server import running_server
from tests.hub_stub import HubStub
from tests.waiting import wait_for

FINAL = ("completed", "failed", "cancelled")


@contextmanager
def download_server(hub: HubStub, tmp_path: Path, **app: Any) -> Iterator[tuple[str, AsyncEngine, Path]]:
    """A server whose hub is `hub`, with a config file and data dir under `tmp_path`; yields
    (url, engine, data dir). Retries back off in milliseconds, so a test of them stays quick."""
    config = tmp_path / "config.yaml"
    if not config.exists():
        config.write_text("models: []\n")
    home = tmp_path / "home"
    options = DownloadOptions(hub_endpoint=hub.url, retry=Retry(attempts=3, delay=0.01, max_delay=0.05))
    app.update(config_path=config, data_dir=home, download_options=options)
    with running_server({"models": []}, **app) as (url, engine):
        yield url, engine, home


def start(url: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    r = httpx.post(url + "/api/models/download", json=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def status(url: str, download_id: str) -> dict[str, Any]:
    r = httpx.get(f"{url}/api/models/downloads/{download_id}", timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def act(url: str, download_id: str, action: str) -> httpx.Response:
    return httpx.post(f"{url}/api/models/downloads/{download_id}/{action}", timeout=30)


def wait_state(url: str, download_id: str, *states: str, timeout: float = 60) -> dict[str, Any]:
    """Wait until the download is in one of `states`; fails naming where it got stuck."""
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(status(url, download_id))
        if seen["state"] in FINAL and seen["state"] not in states:
            raise AssertionError(f"download ended {seen['state']}: {seen['error']}")
        return seen["state"] in states

    wait_for(reached, timeout=timeout, interval=0.05, what=f"{download_id} to be {'/'.join(states)}")
    return seen


def wait_bytes(url: str, download_id: str, at_least: int, timeout: float = 60) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def arrived() -> bool:
        seen.update(status(url, download_id))
        return bool(seen["bytesDone"] >= at_least)

    wait_for(arrived, timeout=timeout, interval=0.02, what=f"{at_least} bytes of {download_id}")
    return seen
