"""What a download does to the disk around its transfers (blocking: run them in a worker thread).

Before: the target folder exists and has room for what is left. After: every verified `.part`
is made durable and renamed into place together, so a scan never sees half a split model.
Cancelled: the partial files go.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from claracore.fsutil import fsync_dir
from claracore.manage.downloads.records import Download
from claracore.manage.downloads.transfer import TransferError, fsync
from claracore.units import GIB, MIB


def _human(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / MIB:.1f} MiB"


def prepare(d: Download) -> None:
    """Create the target folder and check there is room for what is left to fetch (blocking)."""
    try:
        d.target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TransferError(f"cannot create {d.target}: {exc.strerror or exc}", code="WRITE_ERROR") from None
    need = 0
    for f in d.files:
        part = f.part(d.target)
        if f.size is not None and not f.verified:
            need += max(f.size - (part.stat().st_size if part.exists() else 0), 0)
    free = shutil.disk_usage(d.target).free
    if need > free:
        raise TransferError(
            f"not enough disk space in {d.target}: {_human(need)} more needed, {_human(free)} free",
            code="DISK_FULL",
        )


def has(path: Path, size: int | None) -> bool:
    return size is not None and path.exists() and path.stat().st_size == size


def place(d: Download) -> None:
    """Make every verified `.part` durable, then rename them all into place (blocking). A file
    already in place was renamed by a run that stopped before it could say so."""
    parts = [(f.part(d.target), f.path(d.target)) for f in d.files if f.part(d.target).exists()]
    for part, _ in parts:
        fsync(part)
    for part, final in parts:
        os.replace(part, final)
    for folder in {f.path(d.target).parent for f in d.files}:
        fsync_dir(folder)


def remove_parts(d: Download) -> None:
    for f in d.files:
        f.part(d.target).unlink(missing_ok=True)
