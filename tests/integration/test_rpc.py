"""llama.cpp RPC workers: a model's layers split over two `claracore worker` processes and the CPU.

Most of this needs llama.cpp built with GGML_RPC (the `rpc` preset). `scripts/rpc_check.sh`
builds it and runs this file with LLAMA_CPP_LIB_PATH pointing at that build; on a build without
RPC those tests skip, and the test that runs instead checks that such a build refuses a model
with workers by name (503 RPC_UNSUPPORTED) instead of silently serving it locally.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from claracore import AsyncEngine
from claracore.config import parse_config
from claracore.errors import ConfigError
from claracore.hardware import workers
from claracore.runtime import rpc
from claracore.runtime.native import capture_log
from claracore.units import GIB
from tests.e2e.server import free_port, running_server
from tests.processes import stop
from tests.tiny_models import NO_EOS
from tests.waiting import wait_for

pytestmark = pytest.mark.integration
needs_rpc = pytest.mark.skipif(
    not rpc.supported(), reason="llama.cpp here lacks GGML_RPC (scripts/rpc_check.sh runs these on its build)"
)
QUESTION = [{"role": "user", "content": "What is the capital city of France? Answer in one sentence."}]


def test_config_checks_worker_addresses() -> None:
    config = parse_config({"workers": ["10.0.0.2:50052", "[::1]:50053"], "models": []})
    assert config.workers == ["10.0.0.2:50052", "[::1]:50053"]
    with pytest.raises(ConfigError) as caught:
        parse_config({"models": [{"name": "m", "model": "/m.gguf", "rpc": ["no-port"]}]})
    assert "models.0.rpc.0" in str(caught.value.errors)


@pytest.mark.skipif(rpc.supported(), reason="this build has RPC: the refusal cannot happen")
async def test_a_build_without_rpc_refuses_a_model_with_workers(tiny_llama: Path) -> None:
    spec = {"name": "tiny", "model": str(tiny_llama), "gpu_layers": -1}
    async with AsyncEngine({"workers": ["127.0.0.1:50052"], "models": [spec]}) as engine:
        with pytest.raises(rpc.RpcUnsupportedError) as caught:
            await engine.chat(model="tiny", messages=QUESTION, max_tokens=2)
    assert "built without RPC" in caught.value.message and "--backend rpc" in caught.value.message


@contextmanager
def worker_processes(
    count: int, mem: float | None = None
) -> Iterator[tuple[list[str], list[subprocess.Popen[bytes]]]]:
    """`count` `claracore worker` processes on loopback ports, each serving its CPU (`--mem`)."""
    procs, endpoints = [], []
    try:
        for _ in range(count):
            port = free_port()
            argv = [sys.executable, "-m", "claracore", "worker", "--port", str(port), "--threads", "1"]
            argv += ["--mem", str(mem)] if mem is not None else []
            quiet = subprocess.DEVNULL
            procs.append(subprocess.Popen(argv, env=os.environ, stdout=quiet, stderr=quiet))
            endpoints.append(f"127.0.0.1:{port}")
        for endpoint, proc in zip(endpoints, procs, strict=True):

            def up(e: str = endpoint, p: subprocess.Popen[bytes] = proc) -> bool:
                assert p.poll() is None, f"the worker on {e} exited"
                try:
                    rpc.probe(e, timeout=0.5)
                except rpc.WorkerUnavailableError:
                    return False
                return True

            wait_for(up, timeout=60, what=f"the worker on {endpoint}")
        yield endpoints, procs
    finally:
        for proc in procs:
            stop(proc, timeout=10)


@pytest.fixture(scope="module")
def workers_up() -> Iterator[list[str]]:
    """Two workers shared by the tests that only use them."""
    if not rpc.supported():
        pytest.skip("llama.cpp here lacks GGML_RPC")
    with worker_processes(2) as (endpoints, _):
        yield endpoints


async def _answer(spec: dict[str, Any], **config: Any) -> tuple[str, list[Any]]:
    async with AsyncEngine({"models": [spec], **config}) as engine:
        r = await engine.chat(model="smol", messages=QUESTION, temperature=0, max_tokens=24)
        return r.choices[0].message.content or "", engine.models().data


@needs_rpc
async def test_a_model_split_over_two_workers_answers_as_the_local_run(
    smollm2: Path, workers_up: list[str]
) -> None:
    spec = {"name": "smol", "model": str(smollm2), "context_length": 1024, "parallel": 1}
    local, _ = await _answer(spec)
    with capture_log() as lines:  # llama.cpp names each buffer's device as it loads
        remote, models = await _answer({**spec, "gpu_layers": 20, "rpc": workers_up})
    assert remote == local and local
    for worker in workers_up:  # layers really went to both workers
        assert any(f"RPC0[{worker}] model buffer size" in line for line in lines), worker
    assert any("CPU_Mapped model buffer size" in line or "CPU model buffer size" in line for line in lines)
    assert models[0].state == "loaded" and models[0].rpc == workers_up
    assert models[0].memory.remote_bytes > 0 and models[0].memory.vram_bytes == 0


@needs_rpc
async def test_a_worker_with_mem_reports_at_most_that_and_its_part_answers_the_same(smollm2: Path) -> None:
    """`claracore worker --mem 0.5`: its relay caps what the device reports (less what the
    model holds there once loaded), and the layers on it compute exactly as before."""
    spec = {"name": "smol", "model": str(smollm2), "context_length": 1024, "parallel": 1}
    local, _ = await _answer(spec)
    with worker_processes(1, mem=0.5) as (endpoints, _):
        [before] = rpc.remote_devices(endpoints)
        assert 0 < before.free <= before.total <= GIB // 2
        split = {**spec, "gpu_layers": 20, "rpc": endpoints}
        with capture_log() as lines:
            async with AsyncEngine({"models": [split]}) as engine:
                r = await engine.chat(model="smol", messages=QUESTION, temperature=0, max_tokens=24)
                [during] = rpc.remote_devices(endpoints)
    assert (r.choices[0].message.content or "") == local and local
    assert any(f"RPC0[{endpoints[0]}] model buffer size" in line for line in lines)
    assert during.total == before.total and during.free < before.free  # the model's buffers count


@needs_rpc
def test_a_worker_with_mem_on_a_taken_port_says_so_in_one_line() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        argv = [sys.executable, "-m", "claracore", "worker", "--port", port, "--mem", "1"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "Traceback" not in done.stderr


@needs_rpc
def test_the_workers_report_their_devices_and_memory(workers_up: list[str]) -> None:
    devices = rpc.remote_devices(workers_up)
    assert [d.endpoint for d in devices] == workers_up
    assert all(d.total > 0 and 0 < d.free <= d.total for d in devices)


@needs_rpc
async def test_a_worker_that_is_gone_fails_the_model_with_a_503_naming_it(smollm2: Path) -> None:
    gone = f"127.0.0.1:{free_port()}"  # nothing listens there
    spec = {"name": "smol", "model": str(smollm2), "context_length": 512, "gpu_layers": 20, "rpc": [gone]}
    async with AsyncEngine({"models": [spec]}) as engine:
        with pytest.raises(rpc.WorkerUnavailableError) as caught:
            await engine.chat(model="smol", messages=QUESTION, max_tokens=2)
        assert caught.value.details == {"worker": gone}
        assert gone in caught.value.message
        # The model reloads without the worker once its `rpc` list drops it.
        await engine.reconfigure({"models": [{**spec, "rpc": []}]})
        r = await engine.chat(model="smol", messages=QUESTION, temperature=0, max_tokens=4)
        assert r.choices[0].message.content


def test_detection_and_doctor_name_each_worker_and_what_is_wrong() -> None:
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    alive, gone = f"127.0.0.1:{listening.getsockname()[1]}", f"127.0.0.1:{free_port()}"
    try:
        config = parse_config(
            {"workers": [alive], "models": [{"name": "m", "model": "/m.gguf", "rpc": [gone]}]}
        )
        found = workers.report(config)
        lines = workers.render(config)
    finally:
        listening.close()
    assert [w["endpoint"] for w in found["workers"]] == [alive, gone]
    dead = found["workers"][1]
    assert dead["reachable"] is False and gone in dead["error"]
    assert any(gone in line for line in lines)
    if not rpc.supported():
        assert found["supported"] is False and "built without RPC" in found["workers"][0]["error"]
        assert lines[0] == "RPC workers: not compiled in by this llama.cpp"


@needs_rpc
def test_detection_shows_the_workers_devices_and_memory(workers_up: list[str]) -> None:
    found = workers.report(parse_config({"workers": workers_up, "models": []}))
    assert found["supported"] is True
    for endpoint, w in zip(workers_up, found["workers"], strict=True):
        assert w["reachable"] and w["devices"][0]["worker"] == endpoint
        assert w["devices"][0]["totalBytes"] > 0


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (struct.pack("<Q", 28) + bytes([6, 0, 0, 0]) + bytes(24), "it speaks RPC protocol 6.0.0"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "does not speak llama.cpp's RPC protocol"),
    ],
)
def test_the_handshake_refuses_what_ggml_rpc_would_abort_on(reply: bytes, reason: str) -> None:
    """Another protocol version, or another service on the port, is a WorkerUnavailableError."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    endpoint = f"127.0.0.1:{server.getsockname()[1]}"

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(1 + 8 + 24)
            conn.sendall(reply)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with pytest.raises(rpc.WorkerUnavailableError) as caught:
            rpc.handshake(endpoint)
    finally:
        thread.join(10)
        server.close()
    assert reason in caught.value.message and caught.value.details == {"worker": endpoint}


@pytest.mark.skipif(rpc.supported(), reason="this build has RPC: the worker would start")
def test_the_worker_command_says_in_one_line_that_the_build_lacks_rpc() -> None:
    argv = [sys.executable, "-m", "claracore", "worker", "--port", str(free_port())]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "built without RPC" in done.stderr and "--backend rpc" in done.stderr
    assert "Traceback" not in done.stderr


@needs_rpc
def test_a_worker_lost_mid_decode_fails_its_requests_with_a_503_naming_it(
    tmp_path: Path, tiny_llama_4k: Path, tiny_llama: Path
) -> None:
    """kill -9 of a worker while a long stream decodes on it: ggml-rpc would abort the process.

    Instead the stream ends with an error naming the worker, the next request gets a 503 naming
    it, the server and its other models keep serving, and the model loads again without it.
    """
    with worker_processes(2) as (endpoints, procs):
        split = {"name": "split", "model": str(tiny_llama_4k), "gpu_layers": -1, "rpc": endpoints}
        local = {"name": "local", "model": str(tiny_llama)}
        cfg = tmp_path / "config.yaml"
        cfg.write_text(yaml.safe_dump({"models": [split, local]}))
        with running_server({"models": [split, local]}, config_path=cfg) as (url, _):
            body = {
                "model": "split",
                "messages": QUESTION,
                "max_tokens": 4000,
                "stream": True,
                "logit_bias": NO_EOS,  # runs to max_tokens: only the lost worker can end it early
            }
            with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as r:
                assert r.status_code == 200
                frames = []
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        frames.append(line[6:])
                    if len(frames) == 20:
                        procs[1].kill()  # kill -9, mid-decode
                assert 20 <= len(frames) < 4000
            assert frames[-1] == "[DONE]"
            error = json.loads(frames[-2])["error"]  # the stream's last event names the worker
            assert endpoints[1] in error["message"] and error["code"] == "WORKER_UNAVAILABLE"

            again = httpx.post(url + "/v1/chat/completions", json={**body, "stream": False}, timeout=60)
            assert again.status_code == 503
            assert again.json()["error"]["code"] == "WORKER_UNAVAILABLE"
            assert endpoints[1] in again.json()["error"]["message"]
            other = {"model": "local", "messages": QUESTION, "max_tokens": 4}
            assert httpx.post(url + "/v1/chat/completions", json=other, timeout=60).status_code == 200
            assert httpx.get(url + "/health", timeout=10).status_code == 200

            # Without the lost worker the model loads and answers again.
            cfg.write_text(yaml.safe_dump({"models": [{**split, "rpc": endpoints[:1]}, local]}))
            restarted = httpx.post(url + "/api/server/restart", timeout=60).json()
            assert restarted["models"]["changed"] == ["split"]
            short = {**body, "stream": False, "max_tokens": 8}
            done = httpx.post(url + "/v1/chat/completions", json=short, timeout=60)
            assert done.status_code == 200, done.text
            assert done.json()["usage"]["completion_tokens"] == 8
