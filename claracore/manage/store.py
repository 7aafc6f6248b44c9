"""ClaraCore's SQLite store: tracked model folders, the files found in them, and settings.

config.yaml stays the human-editable source of truth for model definitions; this database holds
what the machine learns and the user should not have to write by hand (which folders to watch,
what a scan found, settings). It is one file in the data directory, in WAL mode so readers never
wait on the writer, and migrated forward by the numbered scripts in `MIGRATIONS` (never edit a
released one: append a new one). One connection is shared behind a lock, because the server
calls it from the event loop and from worker threads alike and every statement here is short.

Several processes may share the file (replicas behind a proxy, `claracore pull` beside a
server): a writer that finds the database locked waits up to `BUSY_TIMEOUT_MS` instead of
failing, and every write transaction starts `BEGIN IMMEDIATE`, taking the write lock before it
reads, because a deferred transaction that reads first and then writes cannot wait for another
process's commit (SQLite answers it SQLITE_BUSY at once). The migration runs in one such
transaction, so two processes starting on a new file never both create the tables.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from claracore.errors import ConflictError

#: How long a write waits for another connection's (or process's) write lock before failing.
BUSY_TIMEOUT_MS = 10_000

#: Schema scripts; the store runs those after its recorded `schema_version`, each in a transaction.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE folders (
        path TEXT PRIMARY KEY,
        enabled INTEGER NOT NULL DEFAULT 1,
        recursive INTEGER NOT NULL DEFAULT 1,
        added_at TEXT NOT NULL,
        last_scanned TEXT,
        model_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE model_files (
        path TEXT PRIMARY KEY,
        folder TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime REAL NOT NULL,
        digest TEXT,
        kind TEXT,
        name TEXT NOT NULL,
        arch TEXT,
        params INTEGER,
        quant TEXT,
        context_length INTEGER,
        mmproj TEXT,
        error TEXT
    );
    CREATE INDEX model_files_folder ON model_files(folder);
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # Downloads (manage/downloads/records.py holds the queries): what a restart resumes.
    """
    CREATE TABLE downloads (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        token TEXT,
        data TEXT NOT NULL
    );
    """,
    # Request activity and log lines (manage/activity.py holds the queries); `time` is Unix seconds.
    """
    CREATE TABLE activity (
        id TEXT PRIMARY KEY,
        time REAL NOT NULL,
        route TEXT NOT NULL,
        model TEXT NOT NULL,
        client TEXT,
        stream INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        ttft REAL,
        duration REAL NOT NULL,
        tokens_per_second REAL,
        status INTEGER,
        error_code TEXT
    );
    CREATE INDEX activity_time ON activity(time);
    CREATE INDEX activity_model_time ON activity(model, time);
    CREATE TABLE logs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time REAL NOT NULL,
        level INTEGER NOT NULL,
        source TEXT NOT NULL,
        logger TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX logs_time ON logs(time);
    """,
]


def utc_now() -> str:
    """Timestamps as the spec writes them (`2025-01-01T12:00:00Z`), sortable as text."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Folder:
    """A folder the user asked ClaraCore to watch for models."""

    path: str
    enabled: bool = True
    recursive: bool = True
    added_at: str = ""
    last_scanned: str | None = None
    model_count: int = 0

    def to_api(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "enabled": self.enabled,
            "recursive": self.recursive,
            "addedAt": self.added_at,
            "lastScanned": self.last_scanned,
            "modelCount": self.model_count,
        }


@dataclass(frozen=True)
class ModelFile:
    """One model a scan found (or a file it could not use, with `error` saying why).

    `path` is the GGUF (the first part of a split), the Piper `.onnx`, or the Whisper folder.
    `size` and `mtime` are the scan cache's key: a file whose both are unchanged is not re-read.
    `kind` uses the config's model types (llm, embedding, reranker, stt, tts).
    """

    path: str
    folder: str
    size: int
    mtime: float
    name: str
    kind: str | None = None
    digest: str | None = None
    arch: str | None = None
    params: int | None = None
    quant: str | None = None
    context_length: int | None = None
    mmproj: str | None = None
    error: str | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "type": self.kind,
            "size": self.size,
            "architecture": self.arch,
            "parameterCount": self.params,
            "quantization": self.quant,
            "contextLength": self.context_length,
            "mmproj": self.mmproj,
            "folder": self.folder,
        }


_FILE_COLUMNS = (
    "path, folder, size, mtime, name, kind, digest, arch, params, quant, context_length, mmproj, error"
)


class Store:
    """The database behind the management API; every method is safe to call from any thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
        )
        self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._use_wal()
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._closed = False
        self._migrate()

    # ------------------------------------------------------------------ lifecycle

    def _use_wal(self) -> None:
        """Switch to WAL, retrying for the busy timeout: while another process opens the same new
        file, SQLite answers this pragma "database is locked" at once, without its busy handler."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _migrate(self) -> None:
        # One IMMEDIATE transaction from the version check to the last script: a second process
        # starting at the same moment waits here, then finds the version already current.
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version VALUES (0)")
            version = row[0] if row else 0
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in _statements(script):  # not executescript: it would commit first
                    db.execute(statement)
                db.execute("UPDATE schema_version SET version = ?", (number,))

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT version FROM schema_version").fetchone()[0])

    def close(self) -> None:
        """Close the connection; later calls fail. Closing twice is harmless."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, in one transaction (rolled back if the block raises).

        For the modules that own a table's queries (`manage/activity.py`), so they need not be
        methods here.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read (for the same modules)."""
        return self._read(sql, params)

    def _write(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, tuple(params))

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    # ------------------------------------------------------------------ folders

    def add_folder(self, path: str, recursive: bool = True) -> Folder:
        """Track `path` (already resolved by the caller). Raises ConflictError when tracked."""
        folder = Folder(path=path, recursive=recursive, added_at=utc_now())
        try:
            self._write(
                "INSERT INTO folders (path, enabled, recursive, added_at) VALUES (?, 1, ?, ?)",
                (path, int(recursive), folder.added_at),
            )
        except sqlite3.IntegrityError:
            raise ConflictError(f"folder {path} is already tracked", details={"folderPath": path}) from None
        return folder

    def remove_folder(self, path: str) -> bool:
        """Stop tracking `path` and forget its files; False when it was not tracked."""
        with self.transaction() as db:
            gone = db.execute("DELETE FROM folders WHERE path = ?", (path,)).rowcount
            db.execute("DELETE FROM model_files WHERE folder = ?", (path,))
        return gone > 0

    def folder(self, path: str) -> Folder | None:
        rows = self._read("SELECT * FROM folders WHERE path = ?", (path,))
        return _folder(rows[0]) if rows else None

    def folders(self) -> list[Folder]:
        return [_folder(r) for r in self._read("SELECT * FROM folders ORDER BY added_at, path")]

    def set_folder_scan(self, path: str, count: int, when: str | None = None) -> None:
        """Record a finished scan of a tracked folder: how many models, and when."""
        self._write(
            "UPDATE folders SET model_count = ?, last_scanned = ? WHERE path = ?",
            (count, when or utc_now(), path),
        )

    # ------------------------------------------------------------------ model files

    def upsert_files(self, folder: str, files: list[ModelFile]) -> None:
        """Make `files` the scan result of `folder`: rows it no longer has are dropped.

        A file last seen under another scanned folder moves to this one (paths are unique).
        """
        rows = [_file_row(f, folder) for f in files]
        with self.transaction() as db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS seen (path TEXT PRIMARY KEY)")
            db.execute("DELETE FROM seen")
            db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", [(r[0],) for r in rows])
            db.execute(
                "DELETE FROM model_files WHERE folder = ? AND path NOT IN (SELECT path FROM seen)",
                (folder,),
            )
            db.executemany(
                f"INSERT OR REPLACE INTO model_files ({_FILE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def files(self, folder: str | None = None, *, include_errors: bool = False) -> list[ModelFile]:
        """Usable models of one folder, or (None) of every enabled tracked folder, by path.

        Scans of untracked folders are kept only as a cache, so they are not listed under None.
        """
        sql = f"SELECT {_FILE_COLUMNS} FROM model_files WHERE "
        if folder is None:
            sql += "folder IN (SELECT path FROM folders WHERE enabled)"
            params: tuple[Any, ...] = ()
        else:
            sql += "folder = ?"
            params = (folder,)
        if not include_errors:
            sql += " AND error IS NULL"
        return [ModelFile(*r) for r in self._read(sql + " ORDER BY path", params)]

    def cached_file(self, path: str, size: int, mtime: float) -> ModelFile | None:
        """The stored result for `path` if the file still has this size and mtime, else None."""
        rows = self._read(
            f"SELECT {_FILE_COLUMNS} FROM model_files WHERE path = ? AND size = ? AND mtime = ?",
            (path, size, mtime),
        )
        return ModelFile(*rows[0]) if rows else None

    # ------------------------------------------------------------------ settings

    def get_setting(self, key: str, default: Any = None) -> Any:
        rows = self._read("SELECT value FROM settings WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set_setting(self, key: str, value: Any) -> None:
        """Store any JSON-serialisable value (TypeError otherwise, before anything is written)."""
        text = json.dumps(value)
        self._write("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, text))


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration script, one at a time (a trigger body's `;` stays inside)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                yield pending
            pending = ""


def _folder(row: tuple[Any, ...]) -> Folder:
    path, enabled, recursive, added_at, last_scanned, count = row
    return Folder(path, bool(enabled), bool(recursive), added_at, last_scanned, int(count))


def _file_row(f: ModelFile, folder: str) -> tuple[Any, ...]:
    return (
        f.path,
        folder,
        f.size,
        f.mtime,
        f.name,
        f.kind,
        f.digest,
        f.arch,
        f.params,
        f.quant,
        f.context_length,
        f.mmproj,
        f.error,
    )
