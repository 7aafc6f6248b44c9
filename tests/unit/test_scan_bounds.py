"""A folder scan ends whatever the tree looks like: each real directory once (symlink loops),
bounded depth and entry count, and a stop that the caller (a client gone, a newer scan) can pull."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

import claracore.manage.scanner as scanner
from claracore.errors import InvalidRequestError
from claracore.manage import folders
from claracore.manage.scanner import ScanCancelled, scan_folder
from claracore.manage.store import Store


@pytest.fixture
def tree(tmp_path: Path, tiny_llama: Path) -> Path:
    root = tmp_path / "models"
    (root / "sub").mkdir(parents=True)
    shutil.copy(tiny_llama, root / "sub" / "one.gguf")
    return root


@pytest.mark.timeout(60)
def test_self_links_are_walked_once(tree: Path) -> None:
    """Found: two links to their own folder made a recursive scan branch forever at 100 % CPU."""
    os.symlink(".", tree / "again")
    os.symlink(".", tree / "sub" / "loop")
    os.symlink("..", tree / "sub" / "up")
    os.symlink(tree / "sub", tree / "alias")  # another name for a folder: its models count once
    result = scan_folder(tree, recursive=True)
    assert [Path(m.path).name for m in result.models] == ["one.gguf"]
    assert result.skipped == []  # it ended by itself, not at a bound


def test_depth_is_bounded(tree: Path, tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scanner, "MAX_DEPTH", 3)
    deep = tree.joinpath(*[f"d{i}" for i in range(6)])
    deep.mkdir(parents=True)
    shutil.copy(tiny_llama, deep / "deep.gguf")
    shutil.copy(tiny_llama, tree / "d0" / "d1" / "d2" / "shallow.gguf")
    result = scan_folder(tree, recursive=True)
    assert sorted(Path(m.path).name for m in result.models) == ["one.gguf", "shallow.gguf"]
    assert any("folders deep" in s.reason for s in result.skipped)


def test_entry_count_is_bounded(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scanner, "MAX_ENTRIES", 50)
    for i in range(30):
        (tree / f"dir{i:02d}").mkdir()
        for j in range(3):
            (tree / f"dir{i:02d}" / f"f{j}.txt").write_text("x")
    result = scan_folder(tree, recursive=True)
    assert any("more than 50 entries" in s.reason for s in result.skipped)


def test_a_scan_stops_when_asked(tree: Path) -> None:
    calls = 0

    def stop() -> bool:
        nonlocal calls
        calls += 1
        return calls > 1

    with pytest.raises(ScanCancelled):
        scan_folder(tree, recursive=True, should_stop=stop)


def test_a_newer_scan_of_the_same_folder_stops_the_older_one(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "db.sqlite")
    registry = folders.ScanRegistry()
    entered, release = threading.Event(), threading.Event()
    real_walk = scanner._walk

    def slow_walk(*args: object) -> object:
        entered.set()
        assert release.wait(30)
        return real_walk(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(scanner, "_walk", slow_walk)
    outcome: list[object] = []

    def first() -> None:
        try:
            outcome.append(folders.scan_one(store, str(tree), True, False, registry))
        except ScanCancelled as exc:
            outcome.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    assert entered.wait(30)
    monkeypatch.setattr(scanner, "_walk", real_walk)
    second = folders.scan_one(store, str(tree), True, False, registry)  # replaces the first
    release.set()
    thread.join(30)
    assert len(second.models) == 1
    assert isinstance(outcome[0], ScanCancelled) and "newer scan" in outcome[0].message
    assert registry.running() == []
    store.close()


@pytest.mark.parametrize(
    "raw,why",
    [
        ("/tmp/a\x00b", "NUL"),
        ("/" + "x" * 300, "name longer"),
        ("/" + "a/" * 2100, "longer than"),
        ("models", "absolute"),
    ],
)
def test_unusable_folder_paths_are_a_400(tmp_path: Path, raw: str, why: str) -> None:
    """Found: NUL bytes and over-long paths in the folder routes were 500s."""
    store = Store(tmp_path / "db.sqlite")
    for call in (
        lambda: folders.add_folders(store, [raw], True),
        lambda: folders.remove_folders(store, [raw]),
        lambda: folders.scan_one(store, raw, True, False),
    ):
        with pytest.raises(InvalidRequestError) as err:
            call()
        assert why in err.value.message and err.value.param in ("folderPaths.0", "folderPath")
    store.close()
