"""What a model file is called: split-file names, the parts of a split model, the served name.

llama.cpp writes a model too big for one file as `name-00001-of-00003.gguf`, `…-00002-…`, and
loads all parts given the first. Everything that sees model files (the GGUF reader, the scanner,
`--models-dir`, the config editor) must agree on what one model is and what it is called, so
the pattern and the naming rule live here once.
"""

from __future__ import annotations

import re
from pathlib import Path

#: `stem-00001-of-00003.gguf`; any case of `.gguf`, since a file copied from Windows may be `.GGUF`.
SPLIT = re.compile(r"^(?P<stem>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})(?P<suffix>\.gguf)$", re.IGNORECASE)


def split_match(path: Path) -> re.Match[str] | None:
    """The split pattern's match on the file's name (stem, no, count, suffix), or None."""
    return SPLIT.match(path.name)


def part_name(split: re.Match[str], number: int) -> str:
    """The name of part `number` of the split model `split` matched, spelt as its parts are."""
    return f"{split['stem']}-{number:05d}-of-{split['count']}{split['suffix']}"


def split_parts(path: Path) -> tuple[Path, ...]:
    """All parts of a `-00001-of-0000N.gguf` split that exist beside `path`, in order."""
    m = split_match(path)
    if not m:
        return (path,)
    names = (part_name(m, i) for i in range(1, int(m["count"]) + 1))
    return tuple(p for p in (path.with_name(n) for n in names) if p.exists())


def model_name(path: Path) -> str:
    """The name a model is served under: the stem, lowercased, without split suffix or `.gguf`.

    A Piper voice (`voice.onnx`) loses `.onnx`; a Whisper folder keeps its whole name.
    """
    name = path.name
    if m := split_match(path):
        name = m["stem"]
    elif path.suffix.lower() in (".gguf", ".onnx"):
        name = path.stem
    return name.lower()
