"""Atomic file writes: a reader never sees a half-written file, a crash never loses the old one."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import time
from pathlib import Path


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write `data` to `path` through a temp file in the same folder, fsync, then rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temp files `atomic_write` left beside `path` when killed mid-write; returns them.

    Call at start, before anything writes `path` (a temp file of a live writer would go too).
    """
    target = Path(path)
    stale = list(target.parent.glob(f".{glob.escape(target.name)}.*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def backup(path: str | os.PathLike[str], keep: int = 10) -> Path | None:
    """Copy `path` to a timestamped sibling in `.backups/` and keep only the newest `keep`.

    Returns the backup's path, or None when there was nothing to back up.
    """
    src = Path(path)
    if not src.exists():
        return None
    folder = src.parent / ".backups"
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000_000:09d}"
    dst = folder / f"{src.name}.{stamp}"
    shutil.copy2(src, dst)
    old = sorted(folder.glob(f"{src.name}.*"))
    for stale in old[: max(0, len(old) - keep)]:
        stale.unlink(missing_ok=True)
    return dst


def fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; not every platform can open a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
