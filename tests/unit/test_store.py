"""The SQLite store: migrations, folders, the scan cache's rows and settings."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from claracore.errors import ConflictError
from claracore.manage.store import MIGRATIONS, ModelFile, Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "claracore.db")
    yield s
    s.close()


def _file(path: str, folder: str = "/m", **kw: object) -> ModelFile:
    return ModelFile(path=path, folder=folder, size=10, mtime=1.5, name=Path(path).stem, kind="llm", **kw)  # type: ignore[arg-type]


def test_migrations_run_once_and_use_wal(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite")
    assert s.schema_version == len(MIGRATIONS)
    s.add_folder("/a")
    s.close()
    s = Store(tmp_path / "db.sqlite")  # reopening does not re-run (the folder survives)
    assert [f.path for f in s.folders()] == ["/a"]
    s.close()
    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_folders_add_conflict_remove(store: Store) -> None:
    f = store.add_folder("/models", recursive=False)
    assert f.to_api() == {
        "path": "/models",
        "enabled": True,
        "recursive": False,
        "addedAt": f.added_at,
        "lastScanned": None,
        "modelCount": 0,
    }
    assert f.added_at.endswith("Z")
    with pytest.raises(ConflictError) as err:
        store.add_folder("/models")
    assert err.value.code == "ALREADY_EXISTS"
    store.set_folder_scan("/models", 3, "2025-01-01T12:00:00Z")
    (got,) = store.folders()
    assert (got.model_count, got.last_scanned) == (3, "2025-01-01T12:00:00Z")
    store.upsert_files("/models", [_file("/models/a.gguf", "/models")])
    assert store.remove_folder("/models") is True
    assert store.remove_folder("/models") is False
    assert store.folders() == [] and store.files("/models") == []


def test_upsert_replaces_a_folders_files_and_files_lists_tracked_only(store: Store) -> None:
    bad = _file("/m/bad.gguf", error="truncated")
    store.upsert_files("/m", [_file("/m/a.gguf"), _file("/m/b.gguf"), bad])
    assert [f.path for f in store.files("/m")] == ["/m/a.gguf", "/m/b.gguf"]
    assert len(store.files("/m", include_errors=True)) == 3
    assert store.files() == []  # /m is not tracked: its rows are only a cache
    store.add_folder("/m")
    assert [f.name for f in store.files()] == ["a", "b"]
    store.upsert_files("/m", [_file("/m/b.gguf", quant="Q4_K_M")])
    (b,) = store.files("/m", include_errors=True)
    assert b.quant == "Q4_K_M" and b.to_api()["quantization"] == "Q4_K_M"


def test_cached_file_matches_size_and_mtime(store: Store) -> None:
    store.upsert_files("/m", [_file("/m/a.gguf", params=42)])
    hit = store.cached_file("/m/a.gguf", 10, 1.5)
    assert hit is not None and hit.params == 42
    assert store.cached_file("/m/a.gguf", 11, 1.5) is None
    assert store.cached_file("/m/a.gguf", 10, 2.0) is None
    assert store.cached_file("/m/x.gguf", 10, 1.5) is None


def test_settings_round_trip_json(store: Store) -> None:
    assert store.get_setting("missing", {"d": 1}) == {"d": 1}
    store.set_setting("system", {"port": 5800, "cors": True, "list": [1, "a"]})
    assert store.get_setting("system") == {"port": 5800, "cors": True, "list": [1, "a"]}
    with pytest.raises(TypeError):
        store.set_setting("bad", object())
    assert store.get_setting("bad") is None


def test_threads_share_the_store(store: Store) -> None:
    def work(n: int) -> None:
        for i in range(50):
            store.set_setting(f"k{n}-{i}", i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get_setting("k3-49") == 49
