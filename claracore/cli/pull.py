"""`claracore pull`: download a model from the hub (or a URL) with a progress bar, on its own.

It runs the server's own download manager in this process, on the same data directory (the
SQLite store, `$CLARACORE_HOME/models`) and the same config file `claracore serve` would use,
so a pulled model is registered and configured as if the server had fetched it; a running
server serves it after its next restart. Ctrl+C stops at once and keeps the bytes: running the
same command again goes on from them. `--search WORDS` lists what the hub has. The hub is
`HF_ENDPOINT` (default the public hub), the token the stored one or `HF_TOKEN`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from claracore.cli.common import CliError, say
from claracore.config import Config
from claracore.errors import ClaraCoreError, ConflictError
from claracore.manage.defaults import data_dir, find_config, resolve_config

EXIT_INTERRUPTED = 130
_BAR = 30


def cmd_pull(args: argparse.Namespace) -> int:
    """Download (or with --search, list); exit 0 when done, 2 on an error, 130 on Ctrl+C."""
    try:
        return asyncio.run(_pull(args))
    except KeyboardInterrupt:
        say("", err=True)
        say("interrupted; run the same command again to resume from the bytes downloaded", err=True)
        return EXIT_INTERRUPTED


async def _pull(args: argparse.Namespace) -> int:
    from claracore.events import EventBus
    from claracore.manage.config_file import ConfigFile
    from claracore.manage.downloads import DownloadManager
    from claracore.manage.settings import Settings
    from claracore.manage.store import Store

    home = Path.cwd() / data_dir(os.environ)
    path = find_config(args.config, os.environ, Path.cwd()) or home / "config.yaml"
    store = Store(home / "claracore.db")
    events = EventBus()
    manager = DownloadManager(
        store, events, Settings(store), ConfigFile(path, running=_running(args)), data_dir=home
    )
    try:
        await manager.start(resume=False)
        if args.search:
            if not 1 <= args.limit <= 100:
                raise CliError(f"--limit: expected 1 to 100, got {args.limit}")
            return await _search(manager, " ".join(args.what), args.limit)
        return await _download(manager, events, args)
    finally:
        await manager.close()
        store.close()


def _running(args: argparse.Namespace) -> Any:
    """What the config file starts from when it does not exist yet: the bundled default, as the
    server would run it, so a pull does not shadow that default with a one-model file."""

    def running() -> Config:
        try:
            return resolve_config(args.config, os.environ, Path.cwd())[0]
        except ClaraCoreError:
            return Config()

    return running


async def _search(manager: Any, query: str, limit: int) -> int:
    hits = await manager.search(query, limit)
    if not hits:
        say(f"no GGUF repositories match {query!r}")
        return 0
    rows = [
        (h["id"], str(h["downloads"] or 0), str(h["likes"] or 0), (h["updated"] or "")[:10]) for h in hits
    ]
    header = ("REPOSITORY", "DOWNLOADS", "LIKES", "UPDATED")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        say("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    say("download one with: claracore pull REPOSITORY [FILE]  (without FILE: the best fit for this machine)")
    return 0


def _request(args: argparse.Namespace) -> dict[str, Any]:
    what = list(args.what)
    is_url = "://" in what[0]
    if len(what) > 2 or (is_url and len(what) > 1):
        raise CliError("give REPO [FILE] or one URL (or --search WORDS)")
    body: dict[str, Any] = {"autoConfigure": not args.no_configure}
    if is_url:
        body["url"] = what[0]
    else:
        body["repo"] = what[0]
        if len(what) > 1:
            body["filename"] = what[1]
    for key, value in (
        ("revision", args.revision),
        ("mmproj", args.mmproj),
        ("modelId", args.name),
        ("sha256", args.sha256),
        ("targetDir", str(Path(args.dir).expanduser().resolve()) if args.dir else None),
    ):
        if value is not None:
            body[key] = value
    return body


async def _download(manager: Any, events: Any, args: argparse.Namespace) -> int:
    from claracore.manage.downloads.manager import DownloadExistsError
    from claracore.protocol.downloads import DownloadRequest
    from claracore.protocol.validation import parse

    request = parse(DownloadRequest, _request(args))
    if request.repo and not request.filename:
        filename = await _choose(manager, request.repo, request.revision or "main")
        request = request.model_copy(update={"filename": filename})
    with events.subscribe(["download"]) as sub:
        try:
            d = await manager.create(request)
        except DownloadExistsError as exc:
            d = manager.get(exc.details["id"])
            say(f"resuming {d.id} from {_size(d.done)} on disk", err=True)
            d = await manager.resume(d.id)
        except ConflictError as exc:
            if "path" in exc.details and "id" not in exc.details:
                say(f"already downloaded: {exc.details['path']}")
                return 0
            raise
        bar = _Bar(d.files[0].name)
        while d.state not in ("completed", "failed", "cancelled"):
            await sub.next(timeout=0.5)
            bar.draw(d.view().model_dump())
        bar.done()
    view = d.view()
    if view.state != "completed":
        raise CliError(f"download {d.id} {view.state}: {view.error or ''}")
    say(f"saved {view.destination}")
    model = view.model
    if model is not None and model.configured:
        say(f"added to the config as '{model.name}' (a running server serves it after a restart)")
        say(f"chat with it: claracore chat {model.name}")
    elif model is not None and model.note:
        say(model.note)
    return 0


async def _choose(manager: Any, repo: str, revision: str) -> str:
    """The repository's recommended model for this machine (its file name), said aloud."""
    listing = await manager.repo_files(repo, revision)
    pick = next((m for m in listing.models if m.recommended), None)
    if pick is None:
        names = ", ".join(m.filename for m in listing.models) or "no GGUF models"
        raise CliError(f"nothing in {repo} fits this machine ({names}); name a FILE to download anyway")
    fit = pick.fit
    where = {"gpu": "on the GPU", "partial": "partly on the GPU", "ram": "in RAM"}[fit.verdict]
    say(
        f"choosing {pick.filename} ({_size(pick.size)}, {pick.quantization or '?'}): fits {where}"
        f" with a {fit.contextLength}-token context",
        err=True,
    )
    return pick.filename


class _Bar:
    """One line on stderr, redrawn in place on a terminal; a line every 5 s otherwise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._state = ""

    def draw(self, v: dict[str, Any]) -> None:
        now = time.monotonic()
        changed = v["state"] != self._state
        if not self.tty and not changed and now - self._last < 5:
            return
        self._last, self._state = now, v["state"]
        total, done = v["totalBytes"], v["bytesDone"]
        frac = done / total if total else 0.0
        filled = int(frac * _BAR)
        eta = _clock(v["eta"]) if v["eta"] is not None else "--:--"
        size = f"{_size(done)}/{_size(total)}" if total else _size(done)
        line = (
            f"{self.name} [{'#' * filled}{'.' * (_BAR - filled)}] {frac * 100:5.1f}% {size} "
            f"{_size(int(v['speed']))}/s ETA {eta} {v['state']}"
        )
        if v["message"]:
            line += f" ({v['message']})"
        say(("\r" + line + "\x1b[K") if self.tty else line, err=True, end="" if self.tty else "\n")

    def done(self) -> None:
        if self.tty:
            say("", err=True)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
