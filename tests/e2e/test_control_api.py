"""Soft and hard restart, and model load/unload, over real HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from tests.e2e.server import free_port, running_server, serve_child
from tests.tiny_models import NO_EOS
from tests.waiting import wait_for

USER = [{"role": "user", "content": "hello"}]


def write_config(path: Path, models: list[dict[str, Any]]) -> None:
    path.write_text(yaml.safe_dump({"models": models}))


def states(url: str) -> dict[str, str]:
    # Wide: across a hard restart the request waits in the inherited socket's backlog while the
    # new process starts.
    return {m["id"]: m["state"] for m in httpx.get(url + "/v1/models", timeout=60).json()["data"]}


def chat(url: str, model: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        json={"model": model, "messages": USER, "max_tokens": 3, **extra},
        timeout=30,
    )


def background_stream(url: str, body: dict[str, Any]) -> tuple[threading.Thread, list[str]]:
    """A chat stream read in a thread into a list of lines; returns once its first line came."""
    lines: list[str] = []
    started = threading.Event()

    def stream() -> None:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as r:
            for line in r.iter_lines():
                lines.append(line)
                started.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert started.wait(30)
    return reader, lines


def test_soft_restart_only_unloads_what_changed(
    tmp_path: Path, tiny_llama: Path, tiny_llama_gqa: Path
) -> None:
    cfg = tmp_path / "config.yaml"
    a = {"name": "a", "model": str(tiny_llama), "context_length": 256}
    b = {"name": "b", "model": str(tiny_llama_gqa), "context_length": 256}
    write_config(cfg, [a, b])
    with running_server({"models": [a, b]}, config_path=cfg) as (url, engine):
        assert chat(url, "a").status_code == 200 and chat(url, "b").status_code == 200
        assert states(url) == {"a": "loaded", "b": "loaded"}
        c = {"name": "c", "model": str(tiny_llama), "context_length": 128}
        write_config(cfg, [a, {**b, "temperature": 0.1}, c])
        r = httpx.post(url + "/api/server/restart", timeout=60).json()
        assert r["message"] == "Server restarted successfully" and r["reloadedAt"].endswith("Z")
        assert r["models"] == {"added": ["c"], "changed": ["b"], "removed": [], "kept": ["a"]}
        assert states(url) == {"a": "loaded", "b": "unloaded", "c": "unloaded"}
        assert engine.config.models[1].temperature == 0.1
        assert chat(url, "b").status_code == 200 and chat(url, "c").status_code == 200


def test_a_stream_on_a_changed_model_finishes_on_the_old_definition(tmp_path: Path, tiny_llama: Path) -> None:
    cfg = tmp_path / "config.yaml"
    a = {"name": "a", "model": str(tiny_llama), "context_length": 512, "parallel": 1}
    write_config(cfg, [a])
    with running_server({"models": [a]}, config_path=cfg) as (url, engine):
        body = {"model": "a", "messages": USER, "max_tokens": 300, "stream": True, "temperature": 0}
        reader, lines = background_stream(url, body)
        write_config(cfg, [{**a, "top_k": 5}])
        assert httpx.post(url + "/api/server/restart", timeout=60).json()["models"]["changed"] == ["a"]
        reader.join(120)
        assert not reader.is_alive(), "the stream on the old definition never ended"
        lines = [x for x in lines if x]
        assert lines[-1] == "data: [DONE]" and not any('"error"' in x for x in lines), lines[-3:]
        assert engine.pool._retiring == []  # the old definition closed after its last request
        assert chat(url, "a").status_code == 200


def test_bad_config_on_restart_changes_nothing(tmp_path: Path, tiny_llama: Path) -> None:
    cfg = tmp_path / "config.yaml"
    a = {"name": "a", "model": str(tiny_llama)}
    write_config(cfg, [a])
    with running_server({"models": [a]}, config_path=cfg) as (url, engine):
        cfg.write_text("models:\n  - name: a\n    model: x\n    temperature: 9\n")
        r = httpx.post(url + "/api/server/restart", timeout=60)
        assert r.status_code == 400 and r.json()["code"] == "INVALID_CONFIG"
        assert "models.0" in str(r.json()["details"])
        assert engine.config.models[0].model == str(tiny_llama)


def test_needs_hard_restart_compares_the_file_with_the_file_at_start(tmp_path: Path) -> None:
    """Found: under `serve --port`, every soft restart said needsHardRestart, because it compared
    the file's port with the overridden one the process listens on."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text("# hand-written\nhost: 127.0.0.1\nport: 5800\nmodels: []\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def soft_restart() -> bool:
        r = httpx.post(url + "/api/server/restart", timeout=60)
        assert r.status_code == 200, r.text
        return bool(r.json()["needsHardRestart"])

    with serve_child(cfg, tmp_path / "home", port, "--host", "127.0.0.1") as proc:
        if sys.platform.startswith("linux"):  # loop_nice is 0 unless set: the loop is not lowered
            assert os.getpriority(os.PRIO_PROCESS, proc.pid) == os.getpriority(os.PRIO_PROCESS, 0)
        assert soft_restart() is False  # the file is as it was at start
        cfg.write_text("host: 127.0.0.1\nport: 5801\nmodels: []\n")
        assert soft_restart() is True  # the file's port changed: only a new process listens there
        assert soft_restart() is True  # still: the process still listens where it started
        cfg.write_text("host: 127.0.0.1\nport: 5800\ncors: true\nmodels: []\n")
        assert soft_restart() is True  # CORS is built into the app once
        # A soft restart keeps the running listener's settings: an Origin the file's new CORS
        # would allow is still refused until the hard restart, as CORSMiddleware would.
        other = {"origin": "http://elsewhere.example"}
        assert httpx.post(url + "/api/models/unload", headers=other, timeout=60).status_code == 403
        cfg.write_text("host: 127.0.0.1\nport: 5800\nloop_nice: 3\nmodels: []\n")
        assert soft_restart() is True  # the event loop's priority is set once, at start
        cfg.write_text("host: 127.0.0.1\nport: 5800\nmodels: []\n")
        assert soft_restart() is False  # back to the file as it was
        assert httpx.get(url + "/health").status_code == 200


def test_load_unload_routes(tiny_llama: Path) -> None:
    with running_server({"models": [{"name": "a", "model": str(tiny_llama), "aliases": ["x"]}]}) as (url, _):
        r = httpx.post(url + "/api/models/x/load", timeout=60).json()
        assert r == {"message": "Model a loaded", "model": "a", "state": "loaded"}
        assert httpx.post(url + "/api/models/a/unload", timeout=60).json()["unloaded"] is True
        assert httpx.post(url + "/api/models/a/unload", timeout=60).json()["unloaded"] is False
        httpx.post(url + "/api/models/a/load", timeout=60)
        r = httpx.post(url + "/api/models/unload", timeout=60).json()
        assert r["message"] == "All models unloaded successfully" and r["unloadedCount"] == 1
        missing = httpx.post(url + "/api/models/nope/load", timeout=60)
        assert missing.status_code == 404
        assert (
            set(missing.json()) == {"error", "code", "details"}
            and missing.json()["code"] == "MODEL_NOT_FOUND"
        )
        assert (
            httpx.post(url + "/api/server/restart/hard").status_code == 400
        )  # embedded: no process to replace


def _listening_socket(pid: int, port: int) -> str:
    """The kernel identity (`socket:[inode]`) of the socket process `pid` listens on `port` with."""
    for conn in psutil.Process(pid).net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return os.readlink(f"/proc/{pid}/fd/{conn.fd}")
    raise AssertionError(f"process {pid} does not listen on port {port}")


def _states_unless_cut(url: str) -> dict[str, str] | None:
    """The model states, or None when the exec cut this request after its connection was made.

    A refused connection is not swallowed: that would be the port closing (the knocker counts it).
    """
    try:
        r = httpx.get(url + "/v1/models")
    except (httpx.RemoteProtocolError, httpx.ReadError):
        return None
    if r.status_code == 503:  # draining before the exec: retry later, as the Retry-After says
        assert r.json()["error"]["code"] == "SERVER_RESTARTING" and r.headers["retry-after"] == "1"
        return None
    return {m["id"]: m["state"] for m in r.json()["data"]}


def _thread_cpu(pid: int) -> dict[int, int]:
    """CPU time (clock ticks) of each thread of process `pid` but its main one (the event loop)."""
    ticks = {}
    for tid in map(int, os.listdir(f"/proc/{pid}/task")):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks[tid] = int(fields[11]) + int(fields[12])  # utime + stime
    ticks.pop(pid, None)
    return ticks


class _Knocker(threading.Thread):
    """Opens a TCP connection to the port every few milliseconds and counts the refusals.

    While a listening socket exists the kernel completes the handshake even if no process is
    accepting (the connection waits in the backlog), so a refusal means the port was closed.
    """

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.knocks = 0
        self.refused = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
            except ConnectionRefusedError:
                self.refused += 1
            self.knocks += 1
            self.stop.wait(0.005)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to identify the socket")
def test_hard_restart_hands_the_listening_socket_to_the_new_process(
    tmp_path: Path, tiny_llama_4k: Path
) -> None:
    cfg = tmp_path / "config.yaml"
    # A 4096-token context: the stream below is still generating when the restart drains.
    model = {"name": "a", "model": str(tiny_llama_4k), "context_length": 4096, "parallel": 1}
    cfg.write_text(yaml.safe_dump({"loop_nice": 10, "models": [model]}))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "claracore", "serve", "--config", str(cfg), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    knocker = _Knocker(port)
    base = os.getpriority(os.PRIO_PROCESS, 0)  # the child's, which it inherited from this thread
    lowered = min(19, base + 10)  # the config's loop_nice
    try:

        def up() -> bool:
            try:
                return httpx.get(url + "/health", timeout=10).status_code == 200
            except httpx.ConnectError:  # not listening yet: only before the first start
                assert proc.poll() is None, "the server exited"
                return False

        wait_for(up, timeout=60, what="the server to start")
        assert chat(url, "a").status_code == 200
        listening = _listening_socket(proc.pid, port)
        knocker.start()
        # A stream open across the restart ends with an error event and [DONE], never a cut.
        body = {"model": "a", "messages": USER, "max_tokens": 4000, "stream": True, "logit_bias": NO_EOS}
        reader, lines = background_stream(url, body)
        # Only the event loop (the main thread) runs lowered; the model computes at the priority
        # the server started with, though the loop asked for the model (claracore.priority).
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == lowered
        wait_for(lambda: max(_thread_cpu(proc.pid).values()) >= 5, timeout=30, what="the decode to use CPU")
        cpu = _thread_cpu(proc.pid)
        assert os.getpriority(os.PRIO_PROCESS, max(cpu, key=cpu.__getitem__)) == base
        r = httpx.post(url + "/api/server/restart/hard", timeout=60)
        assert r.status_code == 200 and r.json()["message"] == "Hard restart scheduled"
        reader.join(60)
        events = [line for line in lines if line.startswith("data: ")]
        assert events[-1] == "data: [DONE]", lines[-3:]
        assert json.loads(events[-2].removeprefix("data: "))["error"]["code"] == "SERVER_RESTARTING"
        # The sign of a new process (same pid: exec) is that the loaded model is gone.
        wait_for(lambda: _states_unless_cut(url) == {"a": "unloaded"}, timeout=60, what="the new process")
        knocker.stop.set()
        knocker.join()
        assert proc.poll() is None
        assert knocker.refused == 0 and knocker.knocks > 10, (knocker.refused, knocker.knocks)
        assert _listening_socket(proc.pid, port) == listening  # the very same socket, inherited
        assert chat(url, "a").status_code == 200
        # The exec ran from a thread that kept the starting priority, so the new process started
        # there and lowered its loop once (not twice: 19, Linux's lowest).
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == lowered
    finally:
        knocker.stop.set()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
