"""Downloads across real processes: `claracore serve` killed with SIGKILL mid-download and
started again, a disk that fills up (a file-size limit the kernel enforces), and
`claracore pull` interrupted with Ctrl+C and run again. The hub is the loopback stand-in,
reached through HF_ENDPOINT as a user would point ClaraCore at a mirror."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.downloads import start, wait_bytes, wait_state
from tests.e2e.server import free_port
from tests.hub_stub import HubStub
from tests.tiny_models import make_tiny_llama
from tests.waiting import wait_for

REPO = "org/tiny-GGUF"
FILE = "tiny-Q4_K_M.gguf"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="signals and rlimits are POSIX")


@pytest.fixture
def hub() -> Iterator[HubStub]:
    with HubStub() as stub:
        yield stub


def _env(hub: HubStub, home: Path) -> dict[str, str]:
    return {**os.environ, "HF_ENDPOINT": hub.url, "CLARACORE_HOME": str(home), "HF_TOKEN": ""}


@contextmanager
def serve(
    hub: HubStub, tmp_path: Path, *, file_limit: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`claracore serve` in a child process on the data dir `tmp_path/home`; stopped at the end."""
    config = tmp_path / "config.yaml"
    if not config.exists():
        config.write_text("models: []\n")
    port = free_port()

    def limit() -> None:  # in the child: the kernel refuses to grow any file past this
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    proc = subprocess.Popen(
        [sys.executable, "-m", "claracore", "serve", "--config", str(config), "--port", str(port)],
        env=_env(hub, tmp_path / "home"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=limit,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, "the server exited"
        try:
            return httpx.get(url + "/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, timeout=60, what="claracore serve to start")
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_sigkill_mid_download_then_restart_resumes_from_the_bytes_on_disk(
    hub: HubStub, tmp_path: Path
) -> None:
    data = make_tiny_llama(tmp_path / "src.gguf").read_bytes()
    hub.add(REPO, {FILE: data})
    hub.hold_after = 150_000
    with serve(hub, tmp_path) as (url, proc):
        d = start(url, {"repo": REPO, "filename": FILE, "modelId": "tiny"})
        wait_bytes(url, d["id"], 150_000)
        part = Path(d["destination"] + ".part")
        wait_for(
            lambda: part.exists() and part.stat().st_size == 150_000, timeout=10, what="the bytes on disk"
        )
        proc.kill()  # SIGKILL: no shutdown, no last save
        proc.wait()
    on_disk = part.stat().st_size
    assert on_disk == 150_000 and not Path(d["destination"]).exists()
    hub.release()
    with serve(hub, tmp_path) as (url, _):
        done = wait_state(url, d["id"], "completed")  # it came back by itself, running
        assert Path(done["destination"]).read_bytes() == data and done["files"][0]["verified"]
        assert hub.ranges_asked(FILE) == ["", f"bytes={on_disk}-"]
        assert done["model"]["configured"] and done["needsRestart"]
        assert httpx.post(url + "/api/server/restart", timeout=60).json()["models"]["added"] == ["tiny"]
        r = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
            timeout=60,
        )
        assert r.status_code == 200


def test_a_paused_download_stays_paused_across_a_restart(hub: HubStub, tmp_path: Path) -> None:
    hub.add(REPO, {FILE: b"GGUF" + b"\1" * 300_000})
    hub.hold_after = 100_000
    with serve(hub, tmp_path) as (url, _):
        d = start(url, {"repo": REPO, "filename": FILE})
        wait_bytes(url, d["id"], 100_000)
        assert httpx.post(f"{url}/api/models/downloads/{d['id']}/pause").json()["state"] == "paused"
    hub.release()
    with serve(hub, tmp_path) as (url, _):
        again = httpx.get(f"{url}/api/models/downloads/{d['id']}").json()
        assert again["state"] == "paused" and again["bytesDone"] == 100_000
        assert hub.ranges_asked(FILE) == [""]  # nothing fetched behind the user's back


def test_a_full_disk_fails_the_download_with_a_reason_and_no_file_in_place(
    hub: HubStub, tmp_path: Path
) -> None:
    data = os.urandom(3 << 20)
    hub.add(REPO, {"big-Q8_0.gguf": data})
    with serve(hub, tmp_path, file_limit=1 << 20) as (url, _):
        d = start(url, {"repo": REPO, "filename": "big-Q8_0.gguf"})
        failed = wait_state(url, d["id"], "failed")
        assert failed["errorCode"] == "DISK_FULL" and failed["error"].startswith("disk full")
        dest = Path(d["destination"])
        assert not dest.exists()
        part = Path(d["destination"] + ".part").read_bytes()
        assert 0 < len(part) <= 1 << 20 and data.startswith(part)  # a clean prefix to resume from
    with serve(hub, tmp_path) as (url, _):  # room again: a retry goes on from that prefix
        assert httpx.post(f"{url}/api/models/downloads/{d['id']}/resume").status_code == 200
        wait_state(url, d["id"], "completed")
        assert dest.read_bytes() == data
        assert hub.ranges_asked("big-Q8_0")[-1] == f"bytes={len(part)}-"


@pytest.fixture
def pull(hub: HubStub, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Runs `claracore pull ARGS` in `tmp_path` (data dir `tmp_path/home`); kills leftovers."""
    started: list[subprocess.Popen[str]] = []

    def run(*args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "claracore", "pull", *args],
            env=_env(hub, tmp_path / "home"),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_pull_ctrl_c_then_again_resumes_and_configures(
    hub: HubStub, tmp_path: Path, pull: Callable[..., subprocess.Popen[str]]
) -> None:
    data = make_tiny_llama(tmp_path / "src.gguf").read_bytes()
    hub.add(REPO, {FILE: data, "tiny-F16.gguf": data + b"\0" * 1000}, downloads=3)
    hub.hold_after = 120_000
    found = pull("--search", "tiny")
    out, err = found.communicate(timeout=60)
    assert found.returncode == 0, err
    assert REPO in out and "DOWNLOADS" in out
    proc = pull(REPO, "--name", "tiny")  # no FILE: the best fit is chosen
    part = tmp_path / "home" / "models" / REPO / (FILE + ".part")
    wait_for(lambda: part.exists() and part.stat().st_size == 120_000, timeout=60, what="120 kB on disk")
    proc.send_signal(signal.SIGINT)
    # Exits in about a second; the bound is wide because a starved 2-core CI machine once needed 30 s.
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "choosing tiny-Q4_K_M.gguf" in err and "run the same command again" in err
    assert part.stat().st_size == 120_000
    hub.release()
    again = pull(REPO, "--name", "tiny")
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert "resuming" in err and "added to the config as 'tiny'" in out
    assert (tmp_path / "home" / "models" / REPO / FILE).read_bytes() == data
    assert hub.ranges_asked(FILE)[-1] == "bytes=120000-"
    config = yaml.safe_load((tmp_path / "home" / "config.yaml").read_text())
    assert "tiny" in [m["name"] for m in config["models"]]
    bad = pull("org/missing", "x.gguf")
    _, err = bad.communicate(timeout=60)
    assert bad.returncode == 2 and err.strip() == (
        "claracore: error: repository org/missing not found on the hub "
        "(a private one needs an HF token that can read it)"
    )
