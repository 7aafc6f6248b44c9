"""ClaraCore's download transfer against huggingface_hub's own downloader, side by side in one run.

    PYTHONPATH=. python scripts/bench_download.py [--mb 256] [--repeat 3]

Both fetch the same random file from the loopback hub stand-in (tests/hub_stub.py) into a
scratch folder: ClaraCore through `DownloadManager` (a `.part`, a running sha256, verified
against the hub's LFS checksum, renamed), the peer through `hf_hub_download(local_dir=...)`.
Prints MB/s of each (the best of `--repeat`) and the ratio. Loopback measures the client's own
cost (hashing, writing, the event loop), not a network.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from huggingface_hub import hf_hub_download  # noqa: E402

from claracore.events import EventBus  # noqa: E402
from claracore.manage.config_file import ConfigFile  # noqa: E402
from claracore.manage.downloads import DownloadManager, DownloadOptions  # noqa: E402
from claracore.manage.settings import Settings  # noqa: E402
from claracore.manage.store import Store  # noqa: E402
from claracore.protocol.downloads import DownloadRequest  # noqa: E402
from tests.hub_stub import HubStub  # noqa: E402

REPO, FILE = "bench/random-GGUF", "random.bin"


async def _claracore(url: str, folder: Path) -> float:
    store = Store(folder / "db.sqlite")
    manager = DownloadManager(
        store, EventBus(), Settings(store), ConfigFile(None), data_dir=folder, options=DownloadOptions(url)
    )
    await manager.start()
    try:
        start = time.perf_counter()
        out = str(folder / "out")
        request = DownloadRequest(repo=REPO, filename=FILE, targetDir=out, autoConfigure=False)
        d = await manager.create(request)
        while d.state not in ("completed", "failed"):
            await asyncio.sleep(0.005)
        seconds = time.perf_counter() - start
        if d.state != "completed":
            raise SystemExit(f"ClaraCore's download failed: {d.error}")
        return seconds
    finally:
        await manager.close()
        store.close()


def _peer(url: str, folder: Path) -> float:
    start = time.perf_counter()
    hf_hub_download(REPO, FILE, local_dir=folder / "out", endpoint=url, token=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    data = os.urandom(args.mb << 20)
    best = {"claracore": float("inf"), "huggingface_hub": float("inf")}
    with HubStub() as hub:
        hub.add(REPO, {FILE: data})
        for _ in range(args.repeat):
            for name in best:
                folder = Path(tempfile.mkdtemp(prefix="bench-dl-"))
                try:
                    if name == "claracore":
                        seconds = asyncio.run(_claracore(hub.url, folder))
                    else:
                        seconds = _peer(hub.url, folder)
                    assert (folder / "out" / FILE).read_bytes() == data
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
                best[name] = min(best[name], seconds)
    for name, seconds in best.items():
        print(f"{name:16s} {args.mb / seconds:8.1f} MB/s  ({seconds:.2f} s for {args.mb} MB)")
    print(f"ratio claracore / huggingface_hub: {best['huggingface_hub'] / best['claracore']:.2f}x")


if __name__ == "__main__":
    main()
