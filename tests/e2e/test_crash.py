"""kill -9 while the server writes: config edits (temp file, fsync, rename, backups) and SQLite
store writes (settings, tracked folders) run back to back from three clients, the process is
killed at a random moment, and restarted on the same files. Each time: the config parses, the
database passes `PRAGMA integrity_check`, no temp file is left, and no edit the server
acknowledged (answered 200) is lost.
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
from tests.e2e.server import free_port, serve_child
from tests.waiting import wait_for

KILLS = 6


class Writer(threading.Thread):
    """Sends one kind of write after another until the server dies; remembers what was acknowledged."""

    def __init__(self, url: str, kind: str, start: int, folder: Path) -> None:
        super().__init__(daemon=True)
        self.url, self.kind, self.next, self.folder = url, kind, start, folder
        self.acked: list[int] = []
        self.sent: list[int] = []

    def request(self, i: int) -> httpx.Response:
        if self.kind == "config":
            return httpx.post(
                self.url + "/api/config/model/tiny", json={"temperature": i / 10_000}, timeout=30
            )
        if self.kind == "settings":
            return httpx.post(
                self.url + "/api/settings/system", json={"preferredContext": 256 + i}, timeout=30
            )
        path = self.folder / f"f{i:05d}"
        path.mkdir(exist_ok=True)
        return httpx.post(self.url + "/api/config/folders", json={"folderPaths": [str(path)]}, timeout=30)

    def run(self) -> None:
        while True:
            i, self.next = self.next, self.next + 1
            self.sent.append(i)
            try:
                r = self.request(i)
            except httpx.TransportError:
                return  # the server is gone
            assert r.status_code == 200, r.text
            self.acked.append(i)


def test_kill_9_during_writes_loses_nothing_acknowledged(tmp_path: Path, tiny_llama: Path) -> None:
    config = tmp_path / "conf" / "config.yaml"
    config.parent.mkdir()
    config.write_text(f"# crash test\nmodels:\n  - name: tiny  # the only one\n    model: {tiny_llama}\n")
    home, folders = tmp_path / "home", tmp_path / "folders"
    folders.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    chance = random.Random(1234)
    next_value = {"config": 1, "settings": 1, "folders": 1}
    acked: dict[str, list[int]] = {"config": [], "settings": [], "folders": []}
    sent_last = dict.fromkeys(acked, 0)
    for _ in range(KILLS):
        with serve_child(config, home, port) as proc:
            writers = [Writer(url, kind, next_value[kind], folders) for kind in next_value]
            for w in writers:
                w.start()
            wait_for(lambda ws=writers: all(len(w.acked) >= 2 for w in ws), timeout=60, what="writes to flow")
            threading.Event().wait(chance.uniform(0.0, 0.5))  # somewhere in the middle of writes
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
            for w in writers:
                w.join(30)
                acked[w.kind] += w.acked
                sent_last[w.kind] = max(w.sent)
                next_value[w.kind] = w.next
        check_after_restart(config, home, port, acked, sent_last)
    assert all(len(v) >= 2 * KILLS for v in acked.values()), {k: len(v) for k, v in acked.items()}


def check_after_restart(
    config: Path, home: Path, port: int, acked: dict[str, list[int]], sent_last: dict[str, int]
) -> None:
    url = f"http://127.0.0.1:{port}"
    with serve_child(config, home, port):
        # The config parses and holds the last acknowledged edit (or one sent after it).
        temperature = load_config(config).models[0].temperature
        assert temperature is not None
        assert max(acked["config"]) <= round(temperature * 10_000) <= sent_last["config"]
        assert "# crash test" in config.read_text()  # comments survive the edits
        assert not list(config.parent.glob(".config.yaml.*.tmp"))  # the restart removed them
        # The database is intact and holds every acknowledged write.
        with sqlite3.connect(home / "claracore.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        settings = httpx.get(url + "/api/settings/system", timeout=60).json()
        assert max(acked["settings"]) <= settings["preferredContext"] - 256 <= sent_last["settings"]
        tracked = {
            Path(f["path"]).name for f in httpx.get(url + "/api/config/folders", timeout=30).json()["folders"]
        }
        missing = [i for i in acked["folders"] if f"f{i:05d}" not in tracked]
        assert missing == [], missing


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLARACORE_CONFIG", raising=False)
