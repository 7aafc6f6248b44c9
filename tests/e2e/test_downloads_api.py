"""Downloads over real HTTP against the loopback hub: transfer, verification, pause/resume/cancel,
retries, the queue, split models, auto-configuration, and what a download page needs."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from claracore.events import EventBus
from claracore.manage.config_file import ConfigFile
from claracore.manage.downloads import DownloadManager, DownloadOptions
from claracore.manage.downloads.manager import PUBLISH_EVERY
from claracore.manage.downloads.records import Download, DownloadFile
from claracore.manage.settings import Settings
from claracore.manage.store import Store
from claracore.protocol.downloads import DownloadRequest
from claracore.protocol.manage import SystemSettingsUpdate
from tests.e2e.downloads import act, download_server, start, status, wait_bytes, wait_state
from tests.hub_stub import HubStub, StubFile
from tests.tiny_models import make_tiny_llama
from tests.waiting import wait_until

REPO = "org/tiny-GGUF"
FILE = "tiny-Q4_K_M.gguf"


@pytest.fixture
def hub() -> Iterator[HubStub]:
    with HubStub() as stub:
        yield stub


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_tiny_llama(tmp_path_factory.mktemp("src") / "tiny.gguf").read_bytes()


def _part(path: str) -> Path:
    return Path(path + ".part")


def test_download_is_verified_registered_configured_and_chats(
    hub: HubStub, model_bytes: bytes, tmp_path: Path
) -> None:
    hub.add(REPO, {FILE: model_bytes})
    hub.rate = 1_000_000  # half a second: time for progress events between the states
    with download_server(hub, tmp_path) as (url, engine, home):
        events = engine.events.subscribe(["download"])
        d = start(url, {"repo": REPO, "filename": FILE, "modelId": "tiny"})
        assert d["state"] in ("queued", "downloading") and d["totalBytes"] == len(model_bytes)
        assert d["files"][0]["sha256"] == hashlib.sha256(model_bytes).hexdigest()  # the hub's LFS checksum
        done = wait_state(url, d["id"], "completed")
        dest = home / "models" / REPO / FILE
        assert done["destination"] == str(dest) and dest.read_bytes() == model_bytes
        assert not _part(str(dest)).exists()
        assert done["bytesDone"] == done["totalBytes"] and done["progress"] == 1.0
        assert done["files"][0]["verified"] is True
        assert done["model"] == {
            "name": "tiny",
            "path": str(dest),
            "mmproj": None,
            "configured": True,
            "note": None,
        }
        assert done["needsRestart"] is True
        # the folder is tracked and the file registered with its metadata
        folders = httpx.get(url + "/api/config/folders").json()["folders"]
        assert [f["path"] for f in folders] == [str(home / "models")]
        entry = yaml.safe_load((tmp_path / "config.yaml").read_text())["models"][0]
        assert entry["name"] == "tiny" and entry["model"] == str(dest) and entry["context_length"] == 512
        # nothing changed behind the user's back: served only after the restart it asked for
        assert "tiny" not in [m["id"] for m in httpx.get(url + "/v1/models").json()["data"]]
        assert httpx.post(url + "/api/server/restart", timeout=60).json()["models"]["added"] == ["tiny"]
        r = httpx.post(
            url + "/v1/chat/completions",
            json={
                "model": "tiny",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 4,
                "seed": 1,
            },
            timeout=60,
        )
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1
        # every state change went out on the event bus, with progress in between
        seen = []
        while (event := events.get_nowait()) is not None:
            seen.append(event.data)
        states = [e["state"] for e in seen if e["event"] in ("created", "state")]
        assert states == ["queued", "downloading", "verifying", "completed"]
        assert all(e["id"] == d["id"] for e in seen)
        assert any(e["event"] == "progress" for e in seen)


def test_pause_then_resume_goes_on_from_the_bytes_on_disk(
    hub: HubStub, model_bytes: bytes, tmp_path: Path
) -> None:
    hub.add(REPO, {FILE: model_bytes})
    hub.hold_after = 100_000
    with download_server(hub, tmp_path) as (url, _, _home):
        d = start(url, {"repo": REPO, "filename": FILE, "autoConfigure": False})
        wait_bytes(url, d["id"], 100_000)
        paused = act(url, d["id"], "pause").json()
        assert paused["state"] == "paused" and paused["speed"] == 0 and paused["eta"] is None
        assert _part(paused["destination"]).stat().st_size == 100_000  # every byte that came is kept
        assert act(url, d["id"], "pause").json()["state"] == "paused"  # pausing twice is harmless
        hub.release()
        assert act(url, d["id"], "resume").json()["state"] in ("queued", "downloading")
        done = wait_state(url, d["id"], "completed")
        assert Path(done["destination"]).read_bytes() == model_bytes
        assert hub.ranges_asked(FILE) == ["", "bytes=100000-"]
        assert done["model"]["configured"] is False and done["needsRestart"] is False
        assert yaml.safe_load((tmp_path / "config.yaml").read_text())["models"] == []
        assert act(url, d["id"], "pause").status_code == 409  # nothing left to pause


def test_cancel_deletes_the_partial_file_and_remove_forgets_it(
    hub: HubStub, model_bytes: bytes, tmp_path: Path
) -> None:
    hub.add(REPO, {FILE: model_bytes})
    hub.hold_after = 50_000
    with download_server(hub, tmp_path) as (url, _, _home):
        d = start(url, {"repo": REPO, "filename": FILE})
        wait_bytes(url, d["id"], 50_000)
        assert _part(d["destination"]).exists()
        cancelled = act(url, d["id"], "cancel").json()
        assert cancelled["state"] == "cancelled" and cancelled["bytesDone"] == 0
        assert not _part(d["destination"]).exists() and not Path(d["destination"]).exists()
        r = act(url, d["id"], "resume")
        assert r.status_code == 409 and r.json()["code"] == "INVALID_STATE"
        assert httpx.delete(f"{url}/api/models/downloads/{d['id']}").json()["state"] == "cancelled"
        assert httpx.get(url + "/api/models/downloads").json() == {"downloads": []}
        gone = httpx.get(f"{url}/api/models/downloads/{d['id']}")
        assert gone.status_code == 404 and gone.json()["code"] == "DOWNLOAD_NOT_FOUND"


def test_a_checksum_mismatch_fails_and_leaves_no_file(
    hub: HubStub, model_bytes: bytes, tmp_path: Path
) -> None:
    hub.add(REPO, {FILE: StubFile(model_bytes, sha256="0" * 64)})
    with download_server(hub, tmp_path) as (url, _, _home):
        d = start(url, {"repo": REPO, "filename": FILE})
        failed = wait_state(url, d["id"], "failed")
        assert failed["errorCode"] == "CHECKSUM_MISMATCH" and "checksum mismatch" in failed["error"]
        assert not Path(d["destination"]).exists() and not _part(d["destination"]).exists()
        assert failed["model"] is None


def test_dropped_connections_and_server_errors_are_retried_from_the_bytes_on_disk(
    hub: HubStub, model_bytes: bytes, tmp_path: Path
) -> None:
    hub.add(REPO, {FILE: model_bytes})
    hub.statuses = [503]
    hub.drop_at = [200_000]
    with download_server(hub, tmp_path) as (url, _, _home):
        d = start(url, {"repo": REPO, "filename": FILE, "autoConfigure": False})
        done = wait_state(url, d["id"], "completed")
        assert done["retries"] == 2 and done["message"] is None
        assert Path(done["destination"]).read_bytes() == model_bytes
        assert hub.ranges_asked(FILE) == ["", "", "bytes=200000-"]


def test_a_server_that_ignores_ranges_restarts_the_file_cleanly(
    hub: HubStub, model_bytes: bytes, tmp_path: Path
) -> None:
    hub.add(REPO, {FILE: model_bytes})
    hub.ranges = False
    hub.hold_after = 100_000
    with download_server(hub, tmp_path) as (url, _, _home):
        d = start(url, {"repo": REPO, "filename": FILE, "autoConfigure": False})
        wait_bytes(url, d["id"], 100_000)
        act(url, d["id"], "pause")
        hub.release()
        act(url, d["id"], "resume")
        done = wait_state(url, d["id"], "completed")
        assert hub.ranges_asked(FILE) == ["", "bytes=100000-"]  # asked, got the whole file
        assert Path(done["destination"]).read_bytes() == model_bytes  # not the first 100 kB twice


def test_two_run_at_once_and_a_third_waits_its_turn(hub: HubStub, model_bytes: bytes, tmp_path: Path) -> None:
    names = ["a-Q4_K_M.gguf", "b-Q4_K_M.gguf", "c-Q4_K_M.gguf"]
    hub.add(REPO, {n: model_bytes + n.encode() for n in names})
    hub.hold_after = 20_000
    with download_server(hub, tmp_path) as (url, _, _home):
        r = httpx.post(url + "/api/settings/system", json={"maxConcurrentDownloads": 2})
        assert r.status_code == 200 and r.json()["maxConcurrentDownloads"] == 2
        a, b, c = (start(url, {"repo": REPO, "filename": n, "autoConfigure": False}) for n in names)
        wait_bytes(url, a["id"], 20_000)
        wait_bytes(url, b["id"], 20_000)
        assert status(url, c["id"])["state"] == "queued"
        assert [x["state"] for x in httpx.get(url + "/api/models/downloads").json()["downloads"]] == [
            "downloading",
            "downloading",
            "queued",
        ]
        act(url, a["id"], "pause")  # a slot frees: the queued one starts
        wait_bytes(url, c["id"], 20_000)
        assert status(url, b["id"])["state"] == "downloading"
        act(url, a["id"], "resume")
        assert status(url, a["id"])["state"] == "queued"  # both slots are taken
        hub.release()
        for d, name in zip((a, b, c), names, strict=True):
            assert (
                Path(wait_state(url, d["id"], "completed")["destination"]).read_bytes()
                == model_bytes + name.encode()
            )


def test_a_split_model_and_its_projector_are_one_download(tmp_path: Path, hub: HubStub) -> None:
    (tmp_path / "src").mkdir()
    first = make_tiny_llama(tmp_path / "src" / "tiny.gguf", split_max_tensors=10)
    parts = {p.name: p.read_bytes() for p in sorted(first.parent.glob("tiny-*.gguf"))}
    projector = "mmproj-tiny-f16.gguf"
    hub.add("org/split-GGUF", {**{f"Q8_0/{n}": b for n, b in parts.items()}, projector: b"GGUF" + b"\0" * 64})
    with download_server(hub, tmp_path) as (url, _, home):
        body = {"repo": "org/split-GGUF", "filename": "Q8_0/tiny-00002-of-00003.gguf", "mmproj": projector}
        d = start(url, body)
        # every part, from the first whichever was named, then the projector
        assert [f["name"] for f in d["files"]] == [f"Q8_0/{n}" for n in parts] + [projector]
        assert [f["role"] for f in d["files"]] == ["model"] * 3 + ["mmproj"]
        assert d["totalBytes"] == sum(map(len, parts.values())) + 68
        done = wait_state(url, d["id"], "completed")
        folder = home / "models" / "org" / "split-GGUF"
        for name, data in parts.items():
            assert (folder / "Q8_0" / name).read_bytes() == data
        entry = yaml.safe_load((tmp_path / "config.yaml").read_text())["models"][0]
        assert entry["model"] == str(folder / "Q8_0" / "tiny-00001-of-00003.gguf")
        assert entry["mmproj"] == str(folder / "mmproj-tiny-f16.gguf")
        assert done["model"]["mmproj"] == entry["mmproj"]


def test_search_and_files_give_sizes_quantisations_and_fits(
    hub: HubStub, model_bytes: bytes, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    split = make_tiny_llama(tmp_path / "src" / "tiny.gguf", split_max_tensors=10).parent
    hub.add(
        REPO,
        {
            FILE: model_bytes,
            "tiny-Q8_0.gguf": model_bytes + b"\0" * 4096,
            "tiny-F16.gguf": StubFile(model_bytes, size=900 << 30),  # claims 900 GiB
            **{f"big/{p.name}": p.read_bytes() for p in sorted(split.glob("tiny-*.gguf"))[:2]},  # 2 of 3
            "mmproj-tiny-f16.gguf": b"GGUF",
            "README.md": StubFile(b"# tiny", lfs=False),
        },
        downloads=100,
        likes=7,
    )
    hub.add("org/other-GGUF", {FILE: model_bytes}, downloads=5)
    hub.add("org/GGUF-in-name-only", {"model.safetensors": b"x"}, downloads=1000)
    with download_server(hub, tmp_path) as (url, _, _home):
        found = httpx.get(url + "/api/models/search", params={"q": "GGUF"}, timeout=30).json()
        # GGUF repositories only, the most downloaded first
        assert [h["id"] for h in found["results"]] == [REPO, "org/other-GGUF"]
        assert found["results"][0] | {"tags": []} == {
            "id": REPO,
            "author": "org",
            "downloads": 100,
            "likes": 7,
            "updated": "2025-01-02T03:04:05+00:00",
            "gated": False,
            "pipelineTag": "text-generation",
            "tags": [],
        }
        listing = httpx.get(f"{url}/api/models/search/{REPO}/files", timeout=60).json()
        models = {m["filename"]: m for m in listing["models"]}
        assert list(models) == ["big/tiny-00001-of-00003.gguf", "tiny-F16.gguf", FILE, "tiny-Q8_0.gguf"]
        small, q8, huge = models[FILE], models["tiny-Q8_0.gguf"], models["tiny-F16.gguf"]
        assert (small["size"], small["quantization"], small["split"]) == (len(model_bytes), "Q4_K_M", False)
        assert small["fit"]["verdict"] == "ram" and small["fit"]["contextLength"] == 512
        assert small["fit"]["estimated"] is False and q8["fit"]["estimated"] is True
        assert q8["fit"]["verdict"] == "ram" and q8["fit"]["ramBytes"] > small["fit"]["ramBytes"]
        assert huge["fit"]["verdict"] == "too_big" and "does not fit" in huge["fit"]["reason"]
        broken = models["big/tiny-00001-of-00003.gguf"]
        assert broken["split"] is True and broken["complete"] is False
        assert broken["fit"]["verdict"] == "unknown"
        assert small["mmproj"] == ["mmproj-tiny-f16.gguf"] and listing["mmproj"] == [
            {"name": "mmproj-tiny-f16.gguf", "size": 4}
        ]
        assert [m["filename"] for m in listing["models"] if m["recommended"]] == [FILE]
        # one header was read, by range, and the other sizes were priced from it
        assert hub.ranges_asked("tiny-") == [f"bytes=0-{len(model_bytes) - 1}"]
        # the machine as the settings describe it: a GPU with room for it all
        httpx.post(url + "/api/settings/system", json={"backend": "cuda", "vramGB": 8})
        listing = httpx.get(f"{url}/api/models/search/{REPO}/files", timeout=60).json()
        fit = {m["filename"]: m["fit"] for m in listing["models"]}[FILE]
        assert fit["verdict"] == "gpu" and fit["gpuLayers"] == -1 and fit["vramBytes"] > 0
        assert listing["hardware"]["backend"] == "cuda"


def test_cancel_all_stops_every_unfinished_download_and_remove_keeps_finished_files(
    hub: HubStub, model_bytes: bytes, tmp_path: Path
) -> None:
    names = ["done-Q4_0.gguf", "a-Q4_0.gguf", "b-Q4_0.gguf", "c-Q4_0.gguf"]
    hub.add(REPO, {n: model_bytes + n.encode() for n in names})
    with download_server(hub, tmp_path) as (url, _, _home):
        done = start(url, {"repo": REPO, "filename": names[0], "autoConfigure": False})
        done = wait_state(url, done["id"], "completed")
        hub.hold_after = 30_000
        a, b, c = (start(url, {"repo": REPO, "filename": n, "autoConfigure": False}) for n in names[1:])
        wait_bytes(url, a["id"], 30_000)
        act(url, a["id"], "pause")
        wait_bytes(url, b["id"], 30_000)
        r = httpx.post(url + "/api/models/download/cancel")
        assert r.status_code == 200 and sorted(r.json()["cancelled"]) == sorted(d["id"] for d in (a, b, c))
        listed = {d["id"]: d["state"] for d in httpx.get(url + "/api/models/downloads").json()["downloads"]}
        assert listed == {
            done["id"]: "completed",
            a["id"]: "cancelled",
            b["id"]: "cancelled",
            c["id"]: "cancelled",
        }
        assert not any(_part(d["destination"]).exists() for d in (a, b, c))
        assert httpx.delete(f"{url}/api/models/downloads/{done['id']}").json()["state"] == "completed"
        assert Path(done["destination"]).read_bytes() == model_bytes + names[0].encode()  # the model stays
        assert done["id"] not in {
            d["id"] for d in httpx.get(url + "/api/models/downloads").json()["downloads"]
        }


async def test_a_download_paused_before_its_task_ever_ran_gives_its_slot_back(
    hub: HubStub, model_bytes: bytes, tmp_path: Path
) -> None:
    hub.add(REPO, {"a-Q4_0.gguf": model_bytes, "b-Q4_0.gguf": model_bytes})
    store = Store(tmp_path / "db.sqlite")
    settings = Settings(store)
    settings.save_preferences(SystemSettingsUpdate(maxConcurrentDownloads=1))
    manager = DownloadManager(
        store, EventBus(), settings, ConfigFile(None), data_dir=tmp_path, options=DownloadOptions(hub.url)
    )
    await manager.start()
    try:
        a = await manager.create(DownloadRequest(repo=REPO, filename="a-Q4_0.gguf", autoConfigure=False))
        await manager.pause(a.id)  # its task was created, and cancelled before its first step
        assert a.state == "paused" and manager._tasks == {}
        b = await manager.create(DownloadRequest(repo=REPO, filename="b-Q4_0.gguf", autoConfigure=False))
        await wait_until(lambda: b.state == "completed", timeout=30, what="b to finish in the freed slot")
    finally:
        await manager.close()
        store.close()


async def test_held_back_progress_goes_out_even_when_its_timer_fires_early(tmp_path: Path) -> None:
    """A progress tick inside the quarter second is held for the rest of it; a timer that fires a
    hair early (the loop's clock resolution) holds it again instead of dropping it, or a transfer
    that then stalls would leave every progress bar on the count from before the burst."""
    store = Store(tmp_path / "db.sqlite")
    bus = EventBus()
    manager = DownloadManager(store, bus, Settings(store), ConfigFile(None), data_dir=tmp_path)
    file = DownloadFile(name="a.gguf", url="http://127.0.0.1:9/a.gguf", size=10, sha256=None, done=5)
    d = Download(id="dl-early", source="url", target_dir=str(tmp_path), files=[file], state="downloading")
    try:
        manager._ticks[d.id] = (time.monotonic(), 0.0)  # a state event just went out
        manager._trail(d)  # the held tick's timer, fired before the interval is up
        assert bus.since(0, ["download"]) == []
        await wait_until(
            lambda: bus.since(0, ["download"]), timeout=10 * PUBLISH_EVERY, what="the held-back progress"
        )
        (event,) = bus.since(0, ["download"])
        assert (event.data["id"], event.data["event"], event.data["bytesDone"]) == (d.id, "progress", 5)
        d.state = "paused"  # a download that stopped moving needs no held tick
        manager._ticks[d.id] = (time.monotonic(), 0.0)
        manager._trail(d)
        assert manager._trailing == {}
    finally:
        await manager.close()
        store.close()
