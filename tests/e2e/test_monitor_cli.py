"""`claracore top` and `claracore logs [-f]` as a user runs them, against a real server."""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.e2e.server import free_port, running_server
from tests.e2e.sse_reader import SseReader
from tests.unit.test_cli import REPO, _cli
from tests.waiting import wait_for

USER = [{"role": "user", "content": "hello"}]


def test_top_shows_each_models_state_slots_and_figures(tmp_path: Path, tiny_llama: Path) -> None:
    a = {"name": "a", "model": str(tiny_llama), "context_length": 128, "parallel": 2}
    b = {"name": "b", "model": str(tiny_llama), "context_length": 128}
    with running_server({"models": [a, b]}) as (url, _engine):
        body = {"model": "a", "messages": USER, "max_tokens": 3}
        assert httpx.post(url + "/v1/chat/completions", json=body, timeout=30).status_code == 200
        result = _cli("top", "--once", "--url", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"ClaraCore at {url}   cpu ") and "models 1 loaded of 2" in lines[1]
    header = lines[3].split()
    assert header[:7] == ["MODEL", "TYPE", "STATE", "SLOTS", "QUEUE", "REQS", "ERRS"]
    assert lines[4].split()[:7] == ["a", "llm", "loaded", "0/2", "0", "1", "0"]
    assert lines[5].split() == ["b", "llm", "unloaded", "-", "-", "0", "0", "-", "-", "-"]


def test_logs_prints_the_last_lines_and_follows_new_ones(tmp_path: Path) -> None:
    with running_server({"models": [], "monitoring": {"heartbeat": 0.2}}) as (url, _engine):
        log = logging.getLogger("claracore.test")
        log.warning("before the command")
        log.info("below the default level, never stored")
        result = _cli("logs", "-n", "5", "--url", url, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1].endswith("WARNING  claracore: before the command")

        env = {k: v for k, v in os.environ.items() if not k.startswith("CLARACORE_")}
        env["PYTHONPATH"] = str(REPO)
        with subprocess.Popen(
            [sys.executable, "-m", "claracore", "logs", "-f", "--url", url, "--grep", "command"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ) as follow:  # fmt: skip
            lines: queue.Queue[str] = queue.Queue()
            out = follow.stdout
            assert out is not None and follow.stderr is not None
            threading.Thread(target=lambda: [lines.put(x) for x in out], daemon=True).start()
            try:
                assert lines.get(timeout=60).rstrip().endswith("claracore: before the command")
                log.warning("another line")  # filtered out by --grep
                log.error("after the command")
                assert lines.get(timeout=30).rstrip().endswith("ERROR    claracore: after the command")
            finally:
                follow.send_signal(signal.SIGINT)
                code = follow.wait(timeout=30)
            errors = follow.stderr.read()
    assert code == 0 and "Traceback" not in errors


def test_a_missing_key_or_server_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with running_server({"models": [], "api_key": "sekrit-key-123"}) as (url, _engine):
        refused = _cli("top", "--once", "--url", url, cwd=tmp_path)
        allowed = _cli("top", "--once", "--url", url, "--api-key", "sekrit-key-123", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.strip() == (
        f"claracore: error: {url} needs an API key: pass --api-key KEY (or set api_key in the config)"
    )
    assert allowed.returncode == 0 and "models 0 loaded of 0" in allowed.stdout
    nowhere = f"http://127.0.0.1:{free_port()}"
    gone = _cli("logs", "--url", nowhere, cwd=tmp_path)
    assert gone.returncode == 2 and gone.stderr.startswith(
        f"claracore: error: cannot reach ClaraCore at {nowhere}"
    )


def test_serve_ends_open_event_streams_when_it_stops(tmp_path: Path) -> None:
    """Ctrl+C with the UI open: the event stream ends at once instead of holding the shutdown."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARACORE_")}
    env["PYTHONPATH"] = str(REPO)
    (tmp_path / "config.yaml").write_text("models: []\n")
    log = tmp_path / "serve.log"
    with log.open("w") as out, subprocess.Popen(
        [sys.executable, "-m", "claracore", "serve", "--config", "config.yaml", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
    ) as proc:  # fmt: skip
        try:
            wait_for(lambda: _answers(f"http://127.0.0.1:{port}/health"), timeout=60, what="the server")
            with SseReader(f"http://127.0.0.1:{port}/api/events") as events:
                events.wait(lambda f: f.event == "snapshot")
                proc.send_signal(signal.SIGINT)
                events.wait_end()
                code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert code == 0, text
    assert "timeout graceful shutdown exceeded" not in text and "Traceback" not in text


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False
