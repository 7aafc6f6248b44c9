"""kill -9 while the server writes: config edits (temp file, fsync, rename, backups), SQLite
store writes (settings, tracked folders) and downloads (the .part file, the record, the config
entry a finished download adds) run back to back from four clients, the process is killed at a
random moment, and restarted on the same files. Each time: the config parses, the database
passes `PRAGMA integrity_check`, no temp file is left, no edit the server acknowledged (answered
200) is lost, and every acknowledged download finishes (resumed) with its model configured.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest

from claracore.config import load_config
from tests.e2e.downloads import wait_state
from tests.e2e.server import free_port, serve_child
from tests.hub_stub import HubStub
from tests.tiny_models import make_tiny_llama
from tests.waiting import wait_for

KILLS = 6
REPO = "org/crash-GGUF"
CONTEXT = 4096  # preferredContext written: at least minContext, or a finished download fails to plan
FILES = 200  # more than the downloads writer gets through (one at a time)


class Writer(threading.Thread):
    """Sends one kind of write after another until the server dies; remembers what was acknowledged."""

    def __init__(self, url: str, kind: str, start: int, folder: Path) -> None:
        super().__init__(daemon=True)
        self.url, self.kind, self.next, self.folder = url, kind, start, folder
        self.acked: list[int] = []
        self.sent: list[int] = []
        self.downloads: list[str] = []  # the ids of acknowledged downloads

    def request(self, i: int) -> httpx.Response:
        if self.kind == "config":
            return httpx.post(
                self.url + "/api/config/model/tiny", json={"temperature": i / 10_000}, timeout=30
            )
        if self.kind == "settings":
            return httpx.post(
                self.url + "/api/settings/system", json={"preferredContext": CONTEXT + i}, timeout=30
            )
        if self.kind == "downloads":
            body = {"repo": REPO, "filename": f"m{i:05d}.gguf", "modelId": f"m{i:05d}"}
            return httpx.post(self.url + "/api/models/download", json=body, timeout=30)
        path = self.folder / f"f{i:05d}"
        path.mkdir(exist_ok=True)
        return httpx.post(self.url + "/api/config/folders", json={"folderPaths": [str(path)]}, timeout=30)

    def run(self) -> None:
        while True:
            i, self.next = self.next, self.next + 1
            self.sent.append(i)
            try:
                r = self.request(i)
                assert r.status_code == 200, r.text
                self.acked.append(i)
                if self.kind == "downloads":  # one at a time: the next starts when this one ended
                    download_id = r.json()["id"]
                    self.downloads.append(download_id)
                    wait_state(self.url, download_id, "completed")
            except httpx.TransportError:
                return  # the server is gone


def test_kill_9_during_writes_loses_nothing_acknowledged(
    tmp_path: Path, tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "conf" / "config.yaml"
    config.parent.mkdir()
    config.write_text(f"# crash test\nmodels:\n  - name: tiny  # the only one\n    model: {tiny_llama}\n")
    home, folders = tmp_path / "home", tmp_path / "folders"
    folders.mkdir()
    model = make_tiny_llama(tmp_path / "src.gguf", seed=3).read_bytes()
    hub = HubStub()
    hub.add(REPO, {f"m{i:05d}.gguf": model for i in range(1, FILES + 1)})
    monkeypatch.setenv("HF_ENDPOINT", hub.url)  # the served processes download from the stand-in
    monkeypatch.setenv("HF_TOKEN", "")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    chance = random.Random(1234)
    next_value = {"config": 1, "settings": 1, "folders": 1, "downloads": 1}
    acked: dict[str, list[int]] = {kind: [] for kind in next_value}
    sent_last = dict.fromkeys(acked, 0)
    downloads: list[str] = []
    with hub:
        for _ in range(KILLS):
            with serve_child(config, home, port) as proc:
                writers = [Writer(url, kind, next_value[kind], folders) for kind in next_value]
                for w in writers:
                    w.start()
                wait_for(
                    lambda ws=writers: all(len(w.acked) >= 2 for w in ws), timeout=60, what="writes to flow"
                )
                threading.Event().wait(chance.uniform(0.0, 0.5))  # somewhere in the middle of writes
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(30)
                for w in writers:
                    w.join(30)
                    acked[w.kind] += w.acked
                    sent_last[w.kind] = max(w.sent)
                    next_value[w.kind] = w.next
                    downloads += w.downloads
            check_after_restart(config, home, port, acked, sent_last, downloads)
    assert all(len(v) >= 2 * KILLS for v in acked.values()), {k: len(v) for k, v in acked.items()}


def check_after_restart(
    config: Path,
    home: Path,
    port: int,
    acked: dict[str, list[int]],
    sent_last: dict[str, int],
    downloads: list[str],
) -> None:
    url = f"http://127.0.0.1:{port}"
    stale = temp_files(config)
    with serve_child(config, home, port):
        # The config parses and holds the last acknowledged edit (or one sent after it).
        temperature = load_config(config).models[0].temperature
        assert temperature is not None
        assert max(acked["config"]) <= round(temperature * 10_000) <= sent_last["config"]
        assert "# crash test" in config.read_text()  # comments survive the edits
        # The restart removed the temp files the kill left (a resumed download may be writing
        # a new one now: those are checked once every download has finished).
        assert not stale & temp_files(config), stale
        # The database is intact and holds every acknowledged write.
        with sqlite3.connect(home / "claracore.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        settings = httpx.get(url + "/api/settings/system", timeout=60).json()
        assert max(acked["settings"]) <= settings["preferredContext"] - CONTEXT <= sent_last["settings"]
        tracked = {
            Path(f["path"]).name for f in httpx.get(url + "/api/config/folders", timeout=30).json()["folders"]
        }
        missing = [i for i in acked["folders"] if f"f{i:05d}" not in tracked]
        assert missing == [], missing
        # Every acknowledged download finishes (resumed where it was cut) and is configured.
        for download_id in downloads:
            assert wait_state(url, download_id, "completed")["model"]["configured"]
        names = {spec.name for spec in load_config(config).models}
        assert {f"m{i:05d}" for i in acked["downloads"]} <= names
        assert not temp_files(config)


def temp_files(config: Path) -> set[Path]:
    """The temp files of config writes (`fsutil.atomic_write`) beside `config`."""
    return set(config.parent.glob(f".{config.name}.*.tmp"))


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLARACORE_CONFIG", raising=False)
