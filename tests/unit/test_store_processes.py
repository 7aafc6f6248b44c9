"""The SQLite store shared by several processes, as replicas behind a proxy share it.

Each child opens the same new file at the same moment (so they race through the migration),
then does read-modify-write transactions on one counter and adds folders of its own. Every
increment and every folder must be there at the end, and no child may see "database is locked".
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from claracore.manage.store import MIGRATIONS, Store
from tests.processes import run_in_children

CHILDREN = 4
ROUNDS = 40


def _child(path: str, index: int, start: Any, errors: Any) -> None:
    """One process: open the store when all are ready, then write; errors go back as text."""
    try:
        start.wait(timeout=120)  # spawning is slow on a starved machine
        store = Store(path)
        for n in range(ROUNDS):
            with store.transaction() as db:  # read, then write: the case BEGIN IMMEDIATE is for
                row = db.execute("SELECT value FROM settings WHERE key = 'counter'").fetchone()
                value = int(row[0]) + 1 if row else 1
                db.execute("INSERT OR REPLACE INTO settings VALUES ('counter', ?)", (str(value),))
            store.add_folder(f"/models/{index}/{n}")
        store.close()
    except Exception as exc:  # noqa: BLE001 - any failure is reported to the parent
        errors.put(f"child {index}: {type(exc).__name__}: {exc}")


def test_processes_migrate_once_and_lose_no_write(tmp_path: Path) -> None:
    path = tmp_path / "claracore.db"
    assert run_in_children(_child, CHILDREN, str(path)) == []
    store = Store(path)
    try:
        assert store.schema_version == len(MIGRATIONS)
        assert store.get_setting("counter") == CHILDREN * ROUNDS
        assert len(store.folders()) == CHILDREN * ROUNDS
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1
    db.close()
