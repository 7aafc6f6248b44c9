"""A real uvicorn server on a free loopback port, in a thread of the test process, or
`claracore serve` in a child process (for what only a real process shows: kill -9, re-exec,
command-line overrides)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from claracore import AsyncEngine
from claracore.server import create_app
from tests.waiting import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serves any ASGI app on a free loopback port in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def running_server(config: dict[str, Any], **app_options: Any) -> Iterator[tuple[str, AsyncEngine]]:
    """Yields the base URL and the engine behind it; stops the server (and engine) afterwards.

    `app_options` go to `create_app` (config_path, data_dir).
    """
    engine = AsyncEngine(config)
    with serving(create_app(engine, **app_options)) as url:
        httpx.get(url + "/health", timeout=5).raise_for_status()
        yield url, engine


@contextmanager
def serve_child(config: Path, home: Path, port: int, *options: str) -> Iterator[subprocess.Popen[bytes]]:
    """`claracore serve --config CONFIG --port PORT [OPTIONS]` in a child process on the data
    directory `home`, started when /health answers; killed with SIGKILL at the end if still
    running. Its stderr goes to `home.parent / "serve.log"`."""
    env = {**os.environ, "CLARACORE_HOME": str(home)}
    log = home.parent / "serve.log"
    command = ["serve", "--config", str(config), "--port", str(port), *options]
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "claracore", *command], stdout=subprocess.DEVNULL, stderr=err, env=env
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(url + "/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, timeout=60, interval=0.05, what="the server to start")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
