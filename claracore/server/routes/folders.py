"""Model folder routes: track folders, stop tracking them, scan one (the work is `manage.folders`')."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request

from claracore.manage import folders
from claracore.protocol import manage as m
from claracore.server.deps import StateDep, StoreDep, require_key
from claracore.server.disconnect import watching

router = APIRouter(prefix="/api/config", dependencies=[Depends(require_key)])


@router.get("/folders")
async def get_folders(db: StoreDep) -> dict[str, Any]:
    return {"folders": [f.to_api() for f in db.folders()]}


@router.post("/folders")
async def add_folders(body: m.AddFoldersRequest, request: Request, state: StateDep) -> dict[str, Any]:
    """Track and scan every folder; one already tracked is a 409 and nothing is added."""
    async with watching(request) as gone:
        added, scans = await asyncio.to_thread(
            folders.add_folders, state.store, body.folderPaths, body.recursive, state.scans, gone
        )
    return {
        "message": f"added {len(added)} folder(s), found {sum(len(s.models) for s in scans)} model(s)",
        "folders": [f.to_api() for f in added],
        "scans": [s.to_api() for s in scans],
    }


@router.delete("/folders")
async def remove_folders(body: m.RemoveFoldersRequest, db: StoreDep) -> dict[str, Any]:
    """Stop tracking folders. They need not exist any more: a deleted folder must be removable."""
    removed, not_tracked = await asyncio.to_thread(folders.remove_folders, db, body.folderPaths)
    return {
        "message": f"removed {len(removed)} folder(s)",
        "removed": removed,
        "notTracked": not_tracked,
        "folders": [f.to_api() for f in db.folders()],
    }


@router.post("/scan-folder")
async def scan(body: m.ScanFolderRequest, request: Request, state: StateDep) -> dict[str, Any]:
    """Scan one folder; `addToDatabase` also tracks it (a folder already tracked is just rescanned).

    A newer scan of the same folder, or the client going away, stops it (409 SCAN_CANCELLED).
    """
    async with watching(request) as gone:
        result = await asyncio.to_thread(
            folders.scan_one,
            state.store,
            body.folderPath,
            body.recursive,
            body.addToDatabase,
            state.scans,
            gone,
        )
    return {**result.to_api(), "addedToDatabase": body.addToDatabase}
