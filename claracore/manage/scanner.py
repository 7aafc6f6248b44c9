"""Find the models in a folder: GGUF files, Whisper CTranslate2 folders and Piper voices.

A models folder can hold thousands of files, and people rescan it often, so a scan reads only
GGUF headers (`read_gguf` never touches weights) and remembers each result in the store by size
and mtime: a rescan of unchanged files stats them and reads nothing. Files it cannot use are
reported with the reason rather than dropped silently, so a user can tell why a model is missing.

What counts as one model:
- `x.gguf`; a split `x-00001-of-0000N.gguf` is one model, its later parts are not models;
- `mmproj*.gguf` (any GGUF with "mmproj" in its name) is a vision projector, paired with the LLM
  beside it whose name shares the longest prefix with it, never a model of its own;
- a folder holding `model.bin` and `config.json` (a CTranslate2 Whisper), as a whole;
- `voice.onnx` with its `voice.onnx.json` (a Piper voice).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from claracore.errors import ConflictError
from claracore.manage.store import ModelFile, Store
from claracore.modelfile.gguf import GGUFError, read_gguf
from claracore.modelfile.kind import gguf_model_type
from claracore.modelfile.names import model_name, part_name, split_match, split_parts

log = logging.getLogger(__name__)

#: Called once per candidate file with (done, total, path), for progress displays.
Progress = Callable[[int, int, str], None]
#: Asked between folders and between files; True stops the scan (ScanCancelled).
ShouldStop = Callable[[], bool]

#: Bounds on one scan, so a folder tree of any shape ends: levels below the scanned folder, and
#: directory entries looked at. Each real directory is walked once, however many links reach it.
MAX_DEPTH = 16
MAX_ENTRIES = 200_000


class ScanCancelled(ConflictError):
    """The scan was stopped: its client went away, or a newer scan of the folder replaced it."""

    code = "SCAN_CANCELLED"


@dataclass(frozen=True)
class Skipped:
    """A file that looked like a model but is not one we can serve, and why."""

    path: str
    reason: str

    def to_api(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass
class ScanResult:
    """What one scan found; `read` counts the files whose header was actually read (cache misses)."""

    folder: str
    recursive: bool
    models: list[ModelFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    read: int = 0

    def to_api(self) -> dict[str, Any]:
        return {
            "folderPath": self.folder,
            "recursive": self.recursive,
            "models": [m.to_api() for m in self.models],
            "skipped": [s.to_api() for s in self.skipped],
            "modelCount": len(self.models),
        }


@dataclass
class _Candidate:
    """A model to identify: where it is, its cache key, and how to read it when the cache misses."""

    path: Path
    kind: str  # "gguf", "stt" or "tts"
    size: int
    mtime: float


def scan_folder(
    path: str | Path,
    *,
    recursive: bool = True,
    store: Store | None = None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> ScanResult:
    """Scan `path` (an existing directory; the caller resolves and checks it) for models.

    With a store, results are cached by size+mtime and saved as this folder's files (including
    unreadable ones, so they are not re-read either). Never raises for a bad file: it is skipped
    with a reason. Symlinks are followed, each real directory once; the walk stops at MAX_DEPTH
    levels and MAX_ENTRIES entries (saying so in `skipped`). Raises OSError only when `path`
    itself cannot be listed, and ScanCancelled when `should_stop` answers True.
    """
    root = Path(path)
    stop = should_stop or (lambda: False)
    result = ScanResult(folder=str(root), recursive=recursive)
    candidates, projectors = _walk(root, recursive, result.skipped, stop)
    records: list[ModelFile] = []
    for i, cand in enumerate(candidates):
        if stop():
            raise ScanCancelled(f"the scan of {root} was stopped")
        if progress:
            progress(i, len(candidates), str(cand.path))
        cached = store.cached_file(str(cand.path), cand.size, cand.mtime) if store else None
        if cached is None:
            cached = _identify(cand, str(root))
            if cand.kind == "gguf":
                result.read += 1
        records.append(cached)
    if progress:
        progress(len(candidates), len(candidates), "")
    records = _pair_projectors(records, projectors, result.skipped)
    if store is not None:
        store.upsert_files(str(root), records)
    for rec in records:
        if rec.error is not None:
            result.skipped.append(Skipped(rec.path, rec.error))
        else:
            result.models.append(rec)
    result.skipped.sort(key=lambda s: s.path)
    return result


def _walk(
    root: Path, recursive: bool, skipped: list[Skipped], stop: ShouldStop
) -> tuple[list[_Candidate], list[Path]]:
    """Every candidate model and every projector under `root`, sorted; only stats, no reads."""
    candidates: list[_Candidate] = []
    projectors: list[Path] = []
    stack = [(root, 0)]
    seen: set[tuple[int, int]] = set()  # (device, inode) of each real directory walked
    looked = 0
    too_deep = False
    while stack:
        if stop():
            raise ScanCancelled(f"the scan of {root} was stopped")
        folder, depth = stack.pop()
        try:
            st = folder.stat()  # through symlinks: the real directory behind the name
            if (st.st_dev, st.st_ino) in seen:
                continue  # reached again through a link (to itself, to a parent): walked once
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if folder == root:
                raise
            skipped.append(Skipped(str(folder), f"cannot list folder: {exc.strerror or exc}"))
            continue
        looked += len(entries)
        if looked > MAX_ENTRIES:
            skipped.append(
                Skipped(str(folder), f"scan stopped: more than {MAX_ENTRIES} entries under {root}")
            )
            break
        names = {e.name for e in entries}
        if "model.bin" in names and "config.json" in names:
            files = [Path(e.path) for e in entries if e.is_file()]
            candidates.append(_candidate(Path(folder), "stt", files, skipped))
            continue  # a Whisper folder is one model; its files are not models of their own
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if recursive and not entry.name.startswith("."):
                    if depth < MAX_DEPTH:
                        stack.append((Path(entry.path), depth + 1))
                    elif not too_deep:
                        too_deep = True
                        skipped.append(
                            Skipped(entry.path, f"not scanned: more than {MAX_DEPTH} folders deep")
                        )
                continue
            try:
                regular = entry.is_file()
            except OSError:
                regular = False
            if regular:  # a FIFO or socket named *.gguf would block the read forever
                _classify(Path(entry.path), names, candidates, projectors, skipped)
    candidates = [c for c in candidates if c.size >= 0]
    candidates.sort(key=lambda c: str(c.path))
    return candidates, sorted(projectors)


def _classify(
    path: Path, names: set[str], candidates: list[_Candidate], projectors: list[Path], skipped: list[Skipped]
) -> None:
    lower = path.name.lower()
    if lower.endswith(".gguf"):
        if "mmproj" in lower:
            projectors.append(path)
            return
        split = split_match(path)
        if split and int(split["no"]) != 1:
            first = part_name(split, 1)
            if first not in names:
                why = f"part of a split model whose first part {first} is missing"
                skipped.append(Skipped(str(path), why))
            return  # read with its first part
        parts = split_parts(path) if split else (path,)
        candidates.append(_candidate(path, "gguf", list(parts), skipped))
    elif lower.endswith(".onnx"):
        if path.name + ".json" in names:
            candidates.append(_candidate(path, "tts", [path, path.with_name(path.name + ".json")], skipped))
        else:
            skipped.append(Skipped(str(path), "ONNX file without its Piper voice config (.onnx.json)"))


def _candidate(path: Path, kind: str, files: list[Path], skipped: list[Skipped]) -> _Candidate:
    """Size is the sum over the model's files and mtime their newest, so any change misses the cache."""
    size, mtime = 0, 0.0
    for f in files:
        try:
            st = f.stat()
        except OSError as exc:
            skipped.append(Skipped(str(path), f"cannot stat {f.name}: {exc.strerror or exc}"))
            return _Candidate(path, kind, -1, 0.0)
        size += st.st_size
        mtime = max(mtime, st.st_mtime)
    return _Candidate(path, kind, size, mtime)


def _identify(cand: _Candidate, folder: str) -> ModelFile:
    """Read what the model is; an unusable file becomes a record with `error` set."""
    base = ModelFile(
        path=str(cand.path), folder=folder, size=cand.size, mtime=cand.mtime, name=model_name(cand.path)
    )
    if cand.kind in ("stt", "tts"):
        return replace(base, kind=cand.kind, arch="whisper" if cand.kind == "stt" else "piper")
    try:
        info = read_gguf(cand.path)
        kind = gguf_model_type(info)  # from the header just read, not a second read
    except GGUFError as exc:
        return replace(base, error=exc.reason)
    digest = hashlib.sha256(json.dumps(info.metadata, sort_keys=True, default=str).encode()).hexdigest()
    return replace(
        base,
        kind=kind,
        digest=digest[:32],
        arch=info.architecture,
        params=info.parameter_count,
        quant=info.file_type,
        context_length=info.context_length or None,
    )


def _stem_key(path: Path) -> str:
    """A projector's or model's name reduced to what they share (`mmproj-Qwen2-VL-f16` → `qwen2-vl-f16`)."""
    name = model_name(path)
    return re.sub(r"(^|[-_.])mmproj([-_.]|$)", r"\1", name).strip("-_.")


def _pair_projectors(
    records: list[ModelFile], projectors: list[Path], skipped: list[Skipped]
) -> list[ModelFile]:
    """Give each LLM the projector in its folder sharing the longest name prefix with it.

    A folder with one LLM and one projector pairs them whatever their names; a projector that no
    LLM in its folder matches is reported as skipped.
    """
    out = [replace(r, mmproj=None) if r.mmproj else r for r in records]
    by_dir: dict[Path, list[Path]] = {}
    for proj in projectors:
        by_dir.setdefault(proj.parent, []).append(proj)
    used: set[Path] = set()
    for i, rec in enumerate(out):
        if rec.kind != "llm" or rec.error is not None:
            continue
        options = by_dir.get(Path(rec.path).parent, [])
        if not options:
            continue
        llms_here = [r for r in out if r.kind == "llm" and Path(r.path).parent == Path(rec.path).parent]
        key = _stem_key(Path(rec.path))
        score, best = max((len(os.path.commonprefix([key, _stem_key(p)])), p) for p in options)
        if score == 0 and not (len(options) == 1 and len(llms_here) == 1):
            continue
        out[i] = replace(rec, mmproj=str(best))
        used.add(best)
    for proj in projectors:
        if proj not in used:
            skipped.append(Skipped(str(proj), "multimodal projector without a matching model in its folder"))
    return out
