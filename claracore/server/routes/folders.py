"""Model folder routes: track folders, stop tracking them, scan one (spec: "Model Folder Management").

Paths are resolved (`~` expanded, symlinks followed) before anything is stored, so the same folder
typed two ways is one folder. Scans read files, so they run in a worker thread and never block the
event loop. Adding folders scans them at once: the spec's setup flow goes straight from adding
folders to `regenerate-from-db`, which needs the scan results.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from claracore.errors import ConflictError, InvalidRequestError
from claracore.manage.scanner import ScanResult, scan_folder
from claracore.manage.store import Store, utc_now
from claracore.server.deps import require_key, store

router = APIRouter(prefix="/api/config", dependencies=[Depends(require_key)])
Db = Annotated[Store, Depends(store)]


class FoldersBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    folderPaths: list[str]
    recursive: bool = True


class RemoveFoldersBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    folderPaths: list[str]


class ScanBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    folderPath: str
    recursive: bool = True
    addToDatabase: bool = False


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


async def _scan(db: Store, path: str, recursive: bool, track: bool) -> ScanResult:
    """Scan in a thread; record the count on the folder when it is tracked."""
    try:
        result = await asyncio.to_thread(scan_folder, path, recursive=recursive, store=db)
    except OSError as exc:
        why = f"folderPath: cannot list {path}: {exc.strerror or exc}"
        raise InvalidRequestError(why, param="folderPath", details={"path": path}) from None
    if track:
        db.set_folder_scan(path, len(result.models), utc_now())
    return result


@router.get("/folders")
async def get_folders(db: Db) -> dict[str, Any]:
    return {"folders": [f.to_api() for f in db.folders()]}


@router.post("/folders")
async def add_folders(body: FoldersBody, db: Db) -> dict[str, Any]:
    """Track and scan every folder; one already tracked is a 409 and nothing is added."""
    paths = _paths(body.folderPaths, check=True)
    tracked = {f.path for f in db.folders()}
    if clash := [p for p in paths if p in tracked]:
        raise ConflictError(f"already tracked: {', '.join(clash)}", details={"folderPaths": clash})
    scans = []
    for path in paths:
        db.add_folder(path, body.recursive)
        scans.append(await _scan(db, path, body.recursive, track=True))
    added = [f for f in db.folders() if f.path in paths]
    return {
        "message": f"added {len(paths)} folder(s), found {sum(len(s.models) for s in scans)} model(s)",
        "folders": [f.to_api() for f in added],
        "scans": [s.to_api() for s in scans],
    }


@router.delete("/folders")
async def remove_folders(body: RemoveFoldersBody, db: Db) -> dict[str, Any]:
    """Stop tracking folders. They need not exist any more: a deleted folder must be removable."""
    paths = _paths(body.folderPaths, check=False)
    removed = [p for p in paths if db.remove_folder(p)]
    return {
        "message": f"removed {len(removed)} folder(s)",
        "removed": removed,
        "notTracked": [p for p in paths if p not in removed],
        "folders": [f.to_api() for f in db.folders()],
    }


@router.post("/scan-folder")
async def scan(body: ScanBody, db: Db) -> dict[str, Any]:
    """Scan one folder; `addToDatabase` also tracks it (a folder already tracked is just rescanned)."""
    path = str(directory(body.folderPath, "folderPath"))
    track = body.addToDatabase or db.folder(path) is not None
    if body.addToDatabase and db.folder(path) is None:
        db.add_folder(path, body.recursive)
    result = await _scan(db, path, body.recursive, track=track)
    return {**result.to_api(), "addedToDatabase": body.addToDatabase}
