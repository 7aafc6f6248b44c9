"""A folder scan over HTTP stops when its client goes away, and a newer scan of the same folder
replaces a running one (409 for the old request), so no scan holds a core after nobody waits."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

import claracore.manage.folders as folders
import claracore.manage.scanner as scanner
from tests.e2e.server import running_server
from tests.waiting import wait_for

FILES = 400


@pytest.fixture
def slow_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[int], threading.Event]:
    """A tree of FILES candidates whose identification takes a while each; (tree, calls, finished).

    Setting `finished` also makes the files quick to identify from then on."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(FILES):
        (tree / f"m{i:03d}.gguf").write_bytes(b"GGUF")
    calls = [0]
    finished = threading.Event()
    real_identify, real_scan = scanner._identify, folders.scan_folder

    def identify(*args: object) -> object:
        calls[0] += 1
        finished.wait(0.05)  # a slow disk, until the test says otherwise
        return real_identify(*args)  # type: ignore[arg-type]

    def scan_folder(*args: object, **kwargs: object) -> object:
        try:
            return real_scan(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            finished.set()

    monkeypatch.setattr(scanner, "_identify", identify)
    monkeypatch.setattr(folders, "scan_folder", scan_folder)
    return tree, calls, finished


def test_a_scan_stops_when_its_client_goes_away(
    slow_scan: tuple[Path, list[int], threading.Event], tmp_path: Path
) -> None:
    """Found: a scan could not be cancelled; it ran on after the client left."""
    tree, calls, finished = slow_scan
    with running_server({"models": []}, data_dir=tmp_path / "d") as (url, _):
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/api/config/scan-folder", json={"folderPath": str(tree)}, timeout=1.0)
        wait_for(finished.is_set, timeout=30, what="the scan to stop")
        assert 0 < calls[0] < FILES / 2, calls  # stopped soon after the client left


def test_a_newer_scan_replaces_a_running_one(
    slow_scan: tuple[Path, list[int], threading.Event], tmp_path: Path
) -> None:
    tree, calls, finished = slow_scan
    with running_server({"models": []}, data_dir=tmp_path / "d") as (url, _):
        answers: list[httpx.Response] = []

        def scan() -> None:
            answers.append(
                httpx.post(url + "/api/config/scan-folder", json={"folderPath": str(tree)}, timeout=60)
            )

        first = threading.Thread(target=scan)
        first.start()
        wait_for(lambda: calls[0] > 0, timeout=30, what="the first scan to start")
        second = threading.Thread(target=scan)
        second.start()
        first.join(30)
        assert answers and answers[0].status_code == 409 and answers[0].json()["code"] == "SCAN_CANCELLED"
        assert "newer scan" in answers[0].json()["error"]
        finished.set()  # the newer scan may run at full speed now
        second.join(60)
        assert answers[1].status_code == 200 and len(answers[1].json()["skipped"]) == FILES
