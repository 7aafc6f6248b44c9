"""The folder scanner: what counts as one model, classification from metadata, skip reasons and
the size+mtime cache (a rescan of unchanged files reads no header)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest

import claracore.manage.scanner as scanner
from claracore.manage.scanner import scan_folder
from claracore.manage.store import Store
from claracore.modelfile.gguf import GGUFInfo
from claracore.modelfile.names import model_name


def write_split_part(path: Path, no: int, count: int) -> Path:
    """One part of a tiny split llama: every part carries `split.no`/`split.count` and a tensor."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_context_length(256)
    w.add_embedding_length(8)
    w.add_head_count(1)
    w.add_uint16("split.no", no)
    w.add_uint16("split.count", count)
    w.add_tensor(f"blk.0.t{no}.weight", np.zeros((8, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def build_model_tree(root: Path, tiny_llama: Path, tiny_bert: Path, tiny_rerank: Path) -> Path:
    """A models folder with one of everything the scanner must tell apart.

    root/chat.gguf + mmproj-chat-f16.gguf    LLM with its projector
    root/embed.gguf, root/rerank.gguf        classified from metadata, not name
    root/big-0000{1,2}-of-00002.gguf         one split model
    root/corrupt.gguf                        truncated: skipped with a reason
    root/notes.txt                           ignored
    root/sub/whisper-tiny/{model.bin,config.json}, root/sub/voice.onnx{,.json}
    root/sub/lonely.onnx                     no .onnx.json: skipped
    """
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_llama, root / "chat.gguf")
    shutil.copy(tiny_llama, root / "mmproj-chat-f16.gguf")
    shutil.copy(tiny_bert, root / "embed.gguf")
    shutil.copy(tiny_rerank, root / "rerank.gguf")
    write_split_part(root / "big-00001-of-00002.gguf", 0, 2)
    write_split_part(root / "big-00002-of-00002.gguf", 1, 2)
    data = tiny_llama.read_bytes()
    (root / "corrupt.gguf").write_bytes(data[: len(data) // 2])
    (root / "notes.txt").write_text("not a model")
    whisper = root / "sub" / "whisper-tiny"
    whisper.mkdir(parents=True)
    (whisper / "model.bin").write_bytes(b"\0" * 64)
    (whisper / "config.json").write_text("{}")
    (whisper / "vocabulary.txt").write_text("a")
    (root / "sub" / "voice.onnx").write_bytes(b"\0" * 32)
    (root / "sub" / "voice.onnx.json").write_text("{}")
    (root / "sub" / "lonely.onnx").write_bytes(b"\0" * 8)
    return root


@pytest.fixture
def tree(tmp_path: Path, tiny_llama: Path, tiny_bert: Path, tiny_rerank: Path) -> Path:
    return build_model_tree(tmp_path / "models", tiny_llama, tiny_bert, tiny_rerank)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "db.sqlite")
    yield s
    s.close()


def test_model_names() -> None:
    assert model_name(Path("/m/Qwen2-7B-Q4_K_M.gguf")) == "qwen2-7b-q4_k_m"
    assert model_name(Path("/m/big-00001-of-00003.gguf")) == "big"
    assert model_name(Path("/m/en_US-joe.onnx")) == "en_us-joe"
    assert model_name(Path("/m/whisper-tiny.en")) == "whisper-tiny.en"


def test_recursive_scan_finds_and_classifies_everything(tree: Path) -> None:
    result = scan_folder(tree, recursive=True)
    found = {m.name: m for m in result.models}
    assert {n: m.kind for n, m in found.items()} == {
        "chat": "llm",
        "embed": "embedding",
        "rerank": "reranker",
        "big": "llm",
        "whisper-tiny": "stt",
        "voice": "tts",
    }
    assert found["chat"].mmproj == str(tree / "mmproj-chat-f16.gguf")
    assert found["embed"].mmproj is None
    assert found["big"].path == str(tree / "big-00001-of-00002.gguf")
    assert found["big"].size == sum(p.stat().st_size for p in tree.glob("big-*.gguf"))
    assert found["chat"].arch == "llama" and found["chat"].quant == "F32" and found["chat"].params
    assert found["chat"].context_length == 512
    assert found["whisper-tiny"].path == str(tree / "sub" / "whisper-tiny")
    reasons = {Path(s.path).name: s.reason for s in result.skipped}
    assert set(reasons) == {"corrupt.gguf", "lonely.onnx"}
    assert "truncated" in reasons["corrupt.gguf"]
    assert ".onnx.json" in reasons["lonely.onnx"]
    api = result.to_api()
    assert api["modelCount"] == 6 and api["folderPath"] == str(tree)


def test_flat_scan_stays_in_the_folder(tree: Path) -> None:
    names = {m.name for m in scan_folder(tree, recursive=False).models}
    assert names == {"chat", "embed", "rerank", "big"}


def test_split_part_without_its_first_part_and_projector_without_model(tmp_path: Path) -> None:
    write_split_part(tmp_path / "x-00002-of-00002.gguf", 1, 2)
    write_split_part(tmp_path / "y-00001-of-00002.gguf", 0, 2)  # second part missing
    (tmp_path / "mmproj-z.gguf").write_bytes(b"GGUF")
    result = scan_folder(tmp_path, recursive=False)
    assert result.models == []
    reasons = {Path(s.path).name: s.reason for s in result.skipped}
    assert "first part x-00001-of-00002.gguf is missing" in reasons["x-00002-of-00002.gguf"]
    assert "found 1" in reasons["y-00001-of-00002.gguf"]
    assert "projector" in reasons["mmproj-z.gguf"]


def test_a_split_model_named_in_capitals_is_one_model(tmp_path: Path) -> None:
    """`.GGUF` (a file copied from Windows) splits like `.gguf`: the parts keep their own spelling."""
    write_split_part(tmp_path / "Big-00001-of-00002.GGUF", 0, 2)
    write_split_part(tmp_path / "Big-00002-of-00002.GGUF", 1, 2)
    result = scan_folder(tmp_path, recursive=False)
    assert [(m.name, Path(m.path).name) for m in result.models] == [("big", "Big-00001-of-00002.GGUF")]
    assert result.skipped == []


def test_projectors_pair_by_name_when_several_models_share_a_folder(tmp_path: Path, tiny_llama: Path) -> None:
    for name in ("qwen2-vl-7b.gguf", "llava-1.5.gguf", "mmproj-qwen2-vl-f16.gguf", "llava-1.5-mmproj.gguf"):
        shutil.copy(tiny_llama, tmp_path / name)
    found = {m.name: m.mmproj for m in scan_folder(tmp_path, recursive=False).models}
    assert found == {
        "qwen2-vl-7b": str(tmp_path / "mmproj-qwen2-vl-f16.gguf"),
        "llava-1.5": str(tmp_path / "llava-1.5-mmproj.gguf"),
    }


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_special_files_are_never_opened(tmp_path: Path, tiny_llama: Path) -> None:
    os.mkfifo(tmp_path / "pipe.gguf")  # opening it for reading would block the scan forever
    shutil.copy(tiny_llama, tmp_path / "ok.gguf")
    result = scan_folder(tmp_path, recursive=False)
    assert [m.name for m in result.models] == ["ok"] and result.skipped == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file_is_skipped_with_reason(tmp_path: Path, tiny_llama: Path) -> None:
    locked = tmp_path / "locked.gguf"
    shutil.copy(tiny_llama, locked)
    locked.chmod(0)
    try:
        (skip,) = scan_folder(tmp_path, recursive=False).skipped
    finally:
        locked.chmod(0o644)
    assert "cannot read" in skip.reason


def test_rescan_of_thousands_of_unchanged_files_reads_no_header(
    tmp_path: Path,
    tiny_llama: Path,
    tiny_bert: Path,
    tiny_rerank: Path,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = build_model_tree(tmp_path / "big", tiny_llama, tiny_bert, tiny_rerank)
    junk = root / "junk"
    junk.mkdir()
    for i in range(1000):
        (junk / f"bogus-{i}.gguf").write_bytes(b"nope")  # candidates: read once, fail, cached
        (junk / f"data-{i}.bin").write_bytes(b"x")  # not candidates at all
    calls: list[Path] = []
    real = scanner.read_gguf

    def counting(path: str | Path) -> GGUFInfo:
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(scanner, "read_gguf", counting)
    first = scan_folder(root, recursive=True, store=store)
    assert len(calls) == first.read == 1000 + 5  # bogus files + chat, embed, rerank, big, corrupt
    assert len(first.skipped) == 1002
    calls.clear()
    second = scan_folder(root, recursive=True, store=store)
    assert calls == [] and second.read == 0
    assert second.to_api() == first.to_api()

    # A changed file (new size) is read again; the others still come from the cache.
    shutil.copy(tiny_bert, root / "chat.gguf")
    third = scan_folder(root, recursive=True, store=store)
    assert calls == [root / "chat.gguf"]
    assert {m.name: m.kind for m in third.models}["chat"] == "embedding"
    # A deleted file leaves the store with the next scan.
    (root / "embed.gguf").unlink()
    scan_folder(root, recursive=True, store=store)
    assert str(root / "embed.gguf") not in {f.path for f in store.files(str(root))}


def test_cli_scan_prints_models_and_skips(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from claracore.cli import main

    monkeypatch.setenv("CLARACORE_HOME", str(tmp_path / "home"))
    assert main(["scan", str(tree), "--recursive"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "SIZE", "FILE"]
    rows = {line.split()[0]: line.split() for line in lines[1:7]}
    assert rows["chat"][1] == "llm" and rows["chat"][-1] == str(tree / "chat.gguf")
    assert rows["whisper-tiny"][1] == "stt" and rows["voice"][1] == "tts"
    assert "6 model(s)" in out and "corrupt.gguf: file is truncated" in out
    assert "scanning" in err and (tmp_path / "home" / "claracore.db").is_file()
    assert main(["scan", str(tree / "notes.txt")]) == 2
    assert "is not a folder" in capsys.readouterr().err
