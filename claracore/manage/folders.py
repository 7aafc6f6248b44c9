"""Tracked model folders: add (and scan at once), stop tracking, scan one (spec: "Model Folder Management").

Paths are resolved (`~` expanded, symlinks followed) before anything is stored, so the same folder
typed two ways is one folder. Adding folders scans them at once: the spec's setup flow goes
straight from adding folders to `regenerate-from-db`, which needs the scan results. Everything
here reads the disk, so async callers run it in a worker thread.
"""

from __future__ import annotations

import os
from pathlib import Path

from claracore.errors import ConflictError, InvalidRequestError
from claracore.manage.scanner import ScanResult, scan_folder
from claracore.manage.store import Folder, Store, utc_now


def _resolved(raw: str, param: str) -> Path:
    if not raw.strip():
        raise InvalidRequestError(f"{param}: the path is empty", param=param)
    try:
        return Path(raw).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, an unknown ~user
        raise InvalidRequestError(f"{param}: cannot resolve {raw}: {exc}", param=param) from None


def directory(raw: str, param: str) -> Path:
    """`raw` as an existing, readable directory; else a 400 naming `param` and the path."""
    path = _resolved(raw, param)
    details = {"path": str(path)}
    if not path.exists():
        raise InvalidRequestError(f"{param}: {path} does not exist", param=param, details=details)
    if not path.is_dir():
        raise InvalidRequestError(f"{param}: {path} is not a folder", param=param, details=details)
    if not os.access(path, os.R_OK | os.X_OK):
        raise InvalidRequestError(f"{param}: {path} cannot be read", param=param, details=details)
    return path


def _paths(raw: list[str], check: bool) -> list[str]:
    if not raw:
        raise InvalidRequestError("folderPaths: give at least one folder", param="folderPaths")
    paths = [
        str(directory(p, f"folderPaths.{i}") if check else _resolved(p, f"folderPaths.{i}"))
        for i, p in enumerate(raw)
    ]
    return list(dict.fromkeys(paths))


def _scan(store: Store, path: str, recursive: bool, track: bool) -> ScanResult:
    """Scan; record the count on the folder when it is tracked. A folder that cannot be listed is a 400."""
    try:
        result = scan_folder(path, recursive=recursive, store=store)
    except OSError as exc:
        why = f"folderPath: cannot list {path}: {exc.strerror or exc}"
        raise InvalidRequestError(why, param="folderPath", details={"path": path}) from None
    if track:
        store.set_folder_scan(path, len(result.models), utc_now())
    return result


def add_folders(store: Store, raw: list[str], recursive: bool) -> tuple[list[Folder], list[ScanResult]]:
    """Track and scan every folder; one already tracked is a ConflictError and nothing is added."""
    paths = _paths(raw, check=True)
    tracked = {f.path for f in store.folders()}
    if clash := [p for p in paths if p in tracked]:
        raise ConflictError(f"already tracked: {', '.join(clash)}", details={"folderPaths": clash})
    scans = []
    for path in paths:
        store.add_folder(path, recursive)
        scans.append(_scan(store, path, recursive, track=True))
    return [f for f in store.folders() if f.path in paths], scans


def remove_folders(store: Store, raw: list[str]) -> tuple[list[str], list[str]]:
    """Stop tracking folders, which need not exist any more (a deleted folder must be removable).

    Returns (removed, not tracked).
    """
    paths = _paths(raw, check=False)
    removed = [p for p in paths if store.remove_folder(p)]
    return removed, [p for p in paths if p not in removed]


def scan_one(store: Store, raw: str, recursive: bool, add: bool) -> ScanResult:
    """Scan one folder; `add` also tracks it (a folder already tracked is just rescanned)."""
    path = str(directory(raw, "folderPath"))
    track = add or store.folder(path) is not None
    if add and store.folder(path) is None:
        store.add_folder(path, recursive)
    return _scan(store, path, recursive, track=track)
