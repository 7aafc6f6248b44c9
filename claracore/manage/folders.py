"""Tracked model folders: add (and scan at once), stop tracking, scan one (spec: "Model Folder Management").

Paths are resolved (`~` expanded, symlinks followed) before anything is stored, so the same folder
typed two ways is one folder. Adding folders scans them at once: the spec's setup flow goes
straight from adding folders to `regenerate-from-db`, which needs the scan results. Everything
here reads the disk, so async callers run it in a worker thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from claracore.errors import ConflictError, InvalidRequestError
from claracore.inputs import check_path
from claracore.manage.scanner import ScanCancelled, ScanResult, scan_folder
from claracore.manage.store import Folder, Store, utc_now


def _resolved(raw: str, param: str) -> Path:
    """`raw` as an absolute, resolved path; NUL bytes, over-long or relative paths are a 400.

    Relative paths are refused: they would be relative to the server's working folder, which
    means nothing to a client (and could be anything).
    """
    if not raw.strip():
        raise InvalidRequestError(f"{param}: the path is empty", param=param)
    check_path(raw, param)
    try:
        path = Path(raw).expanduser()
        if not path.is_absolute():
            raise InvalidRequestError(f"{param}: give an absolute path, not {raw!r}", param=param)
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, an unknown ~user
        raise InvalidRequestError(f"{param}: cannot resolve {raw}: {exc}", param=param) from None


def directory(raw: str, param: str) -> Path:
    """`raw` as an existing, readable directory; else a 400 naming `param` and the path."""
    path = _resolved(raw, param)
    details = {"path": str(path)}
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as exc:
        why = f"{param}: cannot reach {path}: {exc.strerror or exc}"
        raise InvalidRequestError(why, param=param, details=details) from None
    if not exists:
        raise InvalidRequestError(f"{param}: {path} does not exist", param=param, details=details)
    if not is_dir:
        raise InvalidRequestError(f"{param}: {path} is not a folder", param=param, details=details)
    if not os.access(path, os.R_OK | os.X_OK):
        raise InvalidRequestError(f"{param}: {path} cannot be read", param=param, details=details)
    return path


class ScanRegistry:
    """The scan running on each folder: a newer scan of the same folder stops the older one,
    which answers ScanCancelled (409) instead of going on beside it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, threading.Event] = {}

    @contextmanager
    def scanning(self, path: str) -> Iterator[threading.Event]:
        """The stop event of a new scan of `path`; the scan it replaces is told to stop."""
        stop = threading.Event()
        with self._lock:
            older = self._running.get(path)
            if older is not None:
                older.set()
            self._running[path] = stop
        try:
            yield stop
        finally:
            with self._lock:
                if self._running.get(path) is stop:
                    del self._running[path]

    def running(self) -> list[str]:
        """The folders being scanned now."""
        with self._lock:
            return sorted(self._running)


def _paths(raw: list[str], check: bool) -> list[str]:
    if not raw:
        raise InvalidRequestError("folderPaths: give at least one folder", param="folderPaths")
    paths = [
        str(directory(p, f"folderPaths.{i}") if check else _resolved(p, f"folderPaths.{i}"))
        for i, p in enumerate(raw)
    ]
    return list(dict.fromkeys(paths))


def _scan(
    store: Store,
    path: str,
    recursive: bool,
    track: bool,
    scans: ScanRegistry | None,
    gone: threading.Event | None,
) -> ScanResult:
    """Scan; record the count on the folder when it is tracked. A folder that cannot be listed is a 400.

    `gone` is set when the client left; with `scans`, a newer scan of `path` stops this one.
    Raises ScanCancelled (409) in either case.
    """
    try:
        with (scans or ScanRegistry()).scanning(path) as replaced:

            def stop() -> bool:
                return replaced.is_set() or (gone is not None and gone.is_set())

            result = scan_folder(path, recursive=recursive, store=store, should_stop=stop)
    except ScanCancelled:
        why = "its client went away" if gone is not None and gone.is_set() else "a newer scan replaced it"
        raise ScanCancelled(f"the scan of {path} stopped: {why}", details={"path": path}) from None
    except OSError as exc:
        why = f"folderPath: cannot list {path}: {exc.strerror or exc}"
        raise InvalidRequestError(why, param="folderPath", details={"path": path}) from None
    if track:
        store.set_folder_scan(path, len(result.models), utc_now())
    return result


def add_folders(
    store: Store,
    raw: list[str],
    recursive: bool,
    scans: ScanRegistry | None = None,
    gone: threading.Event | None = None,
) -> tuple[list[Folder], list[ScanResult]]:
    """Track and scan every folder; one already tracked is a ConflictError and nothing is added."""
    paths = _paths(raw, check=True)
    tracked = {f.path for f in store.folders()}
    if clash := [p for p in paths if p in tracked]:
        raise ConflictError(f"already tracked: {', '.join(clash)}", details={"folderPaths": clash})
    results = []
    for path in paths:
        store.add_folder(path, recursive)
        results.append(_scan(store, path, recursive, True, scans, gone))
    return [f for f in store.folders() if f.path in paths], results


def remove_folders(store: Store, raw: list[str]) -> tuple[list[str], list[str]]:
    """Stop tracking folders, which need not exist any more (a deleted folder must be removable).

    Returns (removed, not tracked).
    """
    paths = _paths(raw, check=False)
    removed = [p for p in paths if store.remove_folder(p)]
    return removed, [p for p in paths if p not in removed]


def scan_one(
    store: Store,
    raw: str,
    recursive: bool,
    add: bool,
    scans: ScanRegistry | None = None,
    gone: threading.Event | None = None,
) -> ScanResult:
    """Scan one folder; `add` also tracks it (a folder already tracked is just rescanned)."""
    path = str(directory(raw, "folderPath"))
    track = add or store.folder(path) is not None
    if add and store.folder(path) is None:
        store.add_folder(path, recursive)
    return _scan(store, path, recursive, track, scans, gone)
