"""The GGUF file format at the byte level: header, key/values and tensor table, never the weights.

The scanner reads every file in a folder and the pool reads a model before pricing it, so this is
a small struct-based reader of the header, key/value and tensor-info sections only: big arrays (a
49k-token vocabulary, its merges and scores) are skipped by seeking past them, never turned into
Python objects, and tensor data is never read. What the values *mean* is `gguf.py`'s concern;
`gguf` is used for its constant tables only.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import gguf

from claracore.errors import ClaraCoreError


class GGUFError(ClaraCoreError):
    """The file is missing, not a GGUF, truncated or otherwise unusable as a model."""

    code = "INVALID_MODEL_FILE"

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}", details={"path": str(path), "reason": reason})
        self.path = str(path)
        self.reason = reason


class TruncatedHeadError(GGUFError):
    """The bytes end inside the header: the file is cut short, or (reading a remote file's head)
    more of it must be fetched."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in the tensor-info section; `offset` is relative to the data section."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int
    n_bytes: int

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_HEADER = struct.Struct("<4sIQQ")
_TYPE_OFFSET = struct.Struct("<IQ")
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRUCTS = {t: struct.Struct("<" + c) for t, c in _SCALARS.items()}
_STRING, _ARRAY = 8, 9
_CHUNK = 1 << 20
# Arrays are parsed only when small (per-layer head counts, classifier labels); vocabularies are
# skipped. The limits keep a hostile file from making us build huge objects.
_MAX_NUMERIC_ARRAY = 4096
MAX_STRING_ARRAY = 64
_MAX_COUNT = 1 << 24


@dataclass(frozen=True)
class Skipped:
    """A large array that was seeked past; only its length is kept."""

    count: int


class _Reader:
    """Sequential reads over the head of a file, in 1 MiB chunks; skips seek instead of reading."""

    def __init__(self, f: BinaryIO, size: int, path: Path) -> None:
        self._f, self.size, self.path = f, size, path
        self._buf = b""
        self._base = 0
        self._pos = 0

    @property
    def offset(self) -> int:
        return self._base + self._pos

    def _fill(self, n: int) -> None:
        have = len(self._buf) - self._pos
        if have >= n:
            return
        chunk = self._f.read(max(n - have, _CHUNK))
        if have + len(chunk) < n:
            raise TruncatedHeadError(self.path, "file is truncated (metadata ends early)")
        self._buf = self._buf[self._pos :] + chunk
        self._base += self._pos
        self._pos = 0

    def unpack(self, s: struct.Struct) -> tuple[Any, ...]:
        self._fill(s.size)
        v = s.unpack_from(self._buf, self._pos)
        self._pos += s.size
        return v

    def skip(self, n: int) -> None:
        if self._pos + n <= len(self._buf):
            self._pos += n
            return
        target = self.offset + n
        if target > self.size:
            raise TruncatedHeadError(self.path, "file is truncated (metadata ends early)")
        self._f.seek(target)
        self._buf, self._base, self._pos = b"", target, 0

    def string(self) -> str:
        (n,) = self.unpack(_U64)
        if n > self.size:
            raise GGUFError(self.path, "corrupt metadata (string length past end of file)")
        self._fill(n)
        s = self._buf[self._pos : self._pos + n]
        self._pos += n
        return s.decode("utf-8", "replace")

    def skip_strings(self, count: int) -> None:
        """The hot loop for vocabularies: locals only, no method call per string."""
        buf, pos, end = self._buf, self._pos, len(self._buf)
        unpack = _U64.unpack_from
        for _ in range(count):
            if pos + 8 > end:
                self._pos = pos
                self._fill(8)
                buf, pos, end = self._buf, self._pos, len(self._buf)
            n = unpack(buf, pos)[0]
            pos += 8 + n
            if pos > end:
                self._pos = pos - n
                self.skip(n)
                buf, pos, end = self._buf, self._pos, len(self._buf)
        self._pos = pos

    def value(self, vtype: int) -> Any:
        if vtype in _STRUCTS:
            return self.unpack(_STRUCTS[vtype])[0]
        if vtype == _STRING:
            return self.string()
        if vtype != _ARRAY:
            raise GGUFError(self.path, f"corrupt metadata (unknown value type {vtype})")
        etype, count = self.unpack(_TYPE_OFFSET)
        if count > _MAX_COUNT:
            raise GGUFError(self.path, "corrupt metadata (array too long)")
        if etype in _SCALARS:
            if count <= _MAX_NUMERIC_ARRAY:
                return self.unpack(struct.Struct(f"<{count}{_SCALARS[etype]}"))
            self.skip(count * _STRUCTS[etype].size)
        elif etype == _STRING:
            if count <= MAX_STRING_ARRAY:
                return tuple(self.string() for _ in range(count))
            self.skip_strings(count)
        else:
            for _ in range(count):
                self.value(etype)
        return Skipped(count)


@dataclass
class Part:
    """One file's head as stored, before interpretation: a split model is read as several."""

    kv: dict[str, Any]
    tensors: list[TensorInfo]
    data_offset: int
    size: int


def parse(path: Path) -> Part:
    """Raise GGUFError for anything a loader would choke on, so a bad file fails at scan time."""
    try:
        size = path.stat().st_size
        f = path.open("rb")
    except FileNotFoundError:
        raise GGUFError(path, "file not found") from None
    except OSError as e:
        raise GGUFError(path, f"cannot read file: {e.strerror or e}") from None
    with f:
        return parse_stream(f, size, path)


def parse_stream(f: BinaryIO, size: int, path: Path) -> Part:
    """`parse` over any readable stream of a file that is `size` bytes long.

    The stream may hold only the file's head (a remote file's first megabytes): when the header
    runs past it, TruncatedHeadError says that more bytes are needed.
    """
    r = _Reader(f, size, path)
    if size < _HEADER.size:
        raise GGUFError(path, "not a GGUF file (too short)")
    magic, version, n_tensors, n_kv = r.unpack(_HEADER)
    if magic != b"GGUF":
        raise GGUFError(path, "not a GGUF file (bad magic)")
    if version not in (2, 3):
        raise GGUFError(path, f"unsupported GGUF version {version}")
    if n_tensors > _MAX_COUNT or n_kv > _MAX_COUNT:
        raise GGUFError(path, "corrupt header (absurd counts)")
    kv: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        (vtype,) = r.unpack(_U32)
        kv[key] = r.value(vtype)
    tensors: list[TensorInfo] = []
    for _ in range(n_tensors):
        name = r.string()
        (nd,) = r.unpack(_U32)
        if nd > 8:
            raise GGUFError(path, f"corrupt tensor info for {name!r}")
        shape = r.unpack(struct.Struct(f"<{nd}Q"))
        ttype, offset = r.unpack(_TYPE_OFFSET)
        tensors.append(TensorInfo(name, shape, ttype, offset, _nbytes(path, name, shape, ttype)))
    align = kv.get("general.alignment", 32)
    if not isinstance(align, int) or align <= 0:
        align = 32
    data_offset = -(-r.offset // align) * align
    end = max((t.offset + t.n_bytes for t in tensors), default=0)
    if data_offset + end > size:
        raise GGUFError(path, f"file is truncated: tensor data needs {data_offset + end} bytes, has {size}")
    return Part(kv, tensors, data_offset, size)


def _nbytes(path: Path, name: str, shape: tuple[int, ...], ttype: int) -> int:
    try:
        block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ttype)]
    except (ValueError, KeyError):
        raise GGUFError(path, f"tensor {name!r} has unknown type {ttype}") from None
    n = math.prod(shape)
    if n % block:
        raise GGUFError(path, f"corrupt tensor info for {name!r} (shape not a multiple of its block)")
    return n // block * type_size
