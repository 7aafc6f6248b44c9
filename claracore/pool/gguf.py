"""GGUF metadata without loading weights.

The pool needs a model's shape (layers, heads, vocabulary, tensor sizes) to price it before it
loads it, and the scanner reads every file in a folder. Both must be fast, so this is a small
struct-based reader of the header, key/value and tensor-info sections only: big arrays (a 49k-token
vocabulary, its merges and scores) are skipped by seeking past them, never turned into Python
objects, and tensor data is never read. `gguf` is used for its constant tables only.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import gguf

from claracore.errors import ClaraCoreError

ModelType = Literal["llm", "embedding", "reranker", "stt", "tts"]


class GGUFError(ClaraCoreError):
    """The file is missing, not a GGUF, truncated or otherwise unusable as a model."""

    code = "INVALID_MODEL_FILE"

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}", details={"path": str(path), "reason": reason})
        self.path = str(path)
        self.reason = reason


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


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF model is and what its weights weigh, read from the file head only.

    Shape fields follow llama.cpp's defaults when a key is absent (head_count_kv = head_count,
    key_length = embedding_length // head_count). Byte counts cover every split part.
    """

    path: Path
    architecture: str
    name: str | None
    file_type: str
    parameter_count: int
    context_length: int
    block_count: int
    embedding_length: int
    feed_forward_length: int
    head_count: int
    head_count_kv: int
    key_length: int
    value_length: int
    vocab_size: int
    sliding_window: int | None = None
    swa_layers: tuple[bool, ...] = ()
    pooling_type: int | None = None
    causal: bool | None = None
    classifier_labels: tuple[str, ...] = ()
    chat_template: str | None = field(default=None, repr=False)
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    add_bos: bool | None = None
    split_no: int = 0
    split_count: int = 1
    parts: tuple[Path, ...] = ()
    tensor_bytes: int = 0
    layer_bytes: tuple[int, ...] = field(default=(), repr=False)
    other_bytes: int = 0
    output_bytes: int = 0
    token_embd_bytes: int = 0
    tied_embeddings: bool = False
    head_count_kv_layers: tuple[int, ...] = field(default=(), repr=False)
    data_offset: int = 0
    file_size: int = 0
    tensors: tuple[TensorInfo, ...] = field(default=(), repr=False)
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n_cls_out(self) -> int:
        """Rank models emit one score per label; a rank-pooled model without labels emits one."""
        if self.classifier_labels:
            return len(self.classifier_labels)
        return 1 if self.pooling_type == int(gguf.PoolingType.RANK) else 0


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
_MAX_STRING_ARRAY = 64
_MAX_METADATA_STRING = 4096
_MAX_COUNT = 1 << 24
_LAYER = re.compile(r"^blk\.(\d+)\.")
_SPLIT = re.compile(r"^(?P<stem>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


@dataclass(frozen=True)
class _Skipped:
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
            raise GGUFError(self.path, "file is truncated (metadata ends early)")
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
            raise GGUFError(self.path, "file is truncated (metadata ends early)")
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
            if count <= _MAX_STRING_ARRAY:
                return tuple(self.string() for _ in range(count))
            self.skip_strings(count)
        else:
            for _ in range(count):
                self.value(etype)
        return _Skipped(count)


@dataclass
class _Part:
    kv: dict[str, Any]
    tensors: list[TensorInfo]
    data_offset: int
    size: int


def _parse(path: Path) -> _Part:
    try:
        size = path.stat().st_size
        f = path.open("rb")
    except FileNotFoundError:
        raise GGUFError(path, "file not found") from None
    except OSError as e:
        raise GGUFError(path, f"cannot read file: {e.strerror or e}") from None
    with f:
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
    return _Part(kv, tensors, data_offset, size)


def _nbytes(path: Path, name: str, shape: tuple[int, ...], ttype: int) -> int:
    try:
        block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ttype)]
    except (ValueError, KeyError):
        raise GGUFError(path, f"tensor {name!r} has unknown type {ttype}") from None
    n = math.prod(shape)
    if n % block:
        raise GGUFError(path, f"corrupt tensor info for {name!r} (shape not a multiple of its block)")
    return n // block * type_size


def split_parts(path: Path) -> tuple[Path, ...]:
    """All parts of a `-00001-of-0000N.gguf` split that exist beside `path`, in order."""
    m = _SPLIT.match(path.name)
    if not m:
        return (path,)
    count = int(m["count"])
    names = (f"{m['stem']}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1))
    return tuple(p for p in (path.with_name(n) for n in names) if p.exists())


# Encoder architectures: they embed rather than chat, have no LM head and no KV cache (llama.cpp
# creates no memory for them). Keep in step with llama.cpp's `create_memory`.
ENCODER_ARCHITECTURES = frozenset(
    {
        "bert",
        "nomic-bert",
        "nomic-bert-moe",
        "jina-bert-v2",
        "jina-bert-v3",
        "neo-bert",
        "modern-bert",
        "gemma-embedding",
        "eurobert",
    }
)
_EMBED_POOLING = frozenset(
    int(p) for p in (gguf.PoolingType.MEAN, gguf.PoolingType.CLS, gguf.PoolingType.LAST)
)


# Sliding-window layouts llama.cpp applies per architecture when the file has no explicit pattern:
# (n_pattern, dense_first). Keep in step with llama.cpp's `load_swa_pattern` calls.
_SWA_PATTERNS: dict[str, tuple[int, bool]] = {
    "gemma2": (2, False),
    "gemma3": (6, False),
    "gemma3n": (5, False),
    "gemma-embedding": (6, False),
    "cohere2": (4, False),
    "llama4": (4, False),
    "gpt-oss": (2, False),
    "exaone4": (4, False),
    "olmo2": (4, False),
    "modern-bert": (3, True),
    "afmoe": (4, False),
}


def _swa_layers(arch: str, kv: dict[str, Any], n_layer: int, window: int | None) -> tuple[bool, ...]:
    if not window:
        return ()
    pattern = kv.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, tuple):
        return tuple(bool(x) for x in pattern[:n_layer])
    default = _SWA_PATTERNS.get(arch)
    if default is None:
        return ()  # llama.cpp ignores the window for this architecture: every layer is full
    n, dense_first = (pattern, default[1]) if isinstance(pattern, int) else default
    if dense_first:
        return tuple(n == 0 or i % n != 0 for i in range(n_layer))
    return tuple(n == 0 or i % n < n - 1 for i in range(n_layer))


def _file_type(kv: dict[str, Any], tensors: list[TensorInfo]) -> str:
    ft = kv.get("general.file_type")
    if isinstance(ft, int) and ft != gguf.LlamaFileType.GUESSED:
        try:
            return gguf.LlamaFileType(ft).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            pass
    weights: dict[int, int] = {}
    for t in tensors:
        if len(t.shape) >= 2:
            weights[t.ggml_type] = weights.get(t.ggml_type, 0) + t.n_bytes
    if not weights:
        return "unknown"
    return gguf.GGMLQuantizationType(max(weights, key=weights.__getitem__)).name


def _per_layer(value: Any, n_layer: int, default: int) -> tuple[int, ...]:
    if isinstance(value, tuple):
        vals = [int(v) for v in value[:n_layer]]
        return tuple(vals + [vals[-1] if vals else default] * (n_layer - len(vals)))
    return (int(value) if isinstance(value, int) else default,) * n_layer


def _is_small(key: str, value: Any) -> bool:
    """Whether a key/value pair belongs in `GGUFInfo.metadata`: scalars, short strings, and
    short arrays other than vocabulary data (a tiny vocab is short but still not metadata)."""
    if isinstance(value, _Skipped):
        return False
    if isinstance(value, str):
        return len(value) <= _MAX_METADATA_STRING
    if isinstance(value, tuple):
        return len(value) <= _MAX_STRING_ARRAY * 4 and not key.startswith("tokenizer.ggml.")
    return True


def read_gguf(path: str | Path) -> GGUFInfo:
    """Read a GGUF model's metadata and tensor table (all split parts), never its weights.

    Raises GGUFError for a missing file, a non-GGUF file, a missing split part, and a truncated
    or corrupt file (including tensor data that would extend past the end of the file).
    """
    path = Path(path)
    first = _parse(path)
    try:
        return _info(path, first)
    except (ValueError, TypeError, IndexError) as e:  # a key of the wrong type or shape
        raise GGUFError(path, f"corrupt metadata ({e})") from None


def _info(path: Path, first: _Part) -> GGUFInfo:
    kv = first.kv
    split_count = int(kv.get("split.count", 1) or 1)
    parts = split_parts(path) if split_count > 1 else (path,)
    if len(parts) < split_count:
        raise GGUFError(path, f"split model has {split_count} parts, found {len(parts)}")
    tensors = list(first.tensors)
    for p in parts:
        if p != path:
            tensors += _parse(p).tensors

    arch = str(kv.get("general.architecture", "")) or "unknown"

    def get(key: str, default: Any = None) -> Any:
        v = kv.get(f"{arch}.{key}", default)
        return default if isinstance(v, _Skipped) else v

    n_layer = int(get("block_count", 0))
    n_embd = int(get("embedding_length", 0))
    hc, hkv = get("attention.head_count", 0), get("attention.head_count_kv")
    head_layers = _per_layer(hc, n_layer, 0)
    n_head = max(hc) if isinstance(hc, tuple) else int(hc)
    kv_layers = head_layers if hkv is None else _per_layer(hkv, n_layer, n_head)
    head_dim = n_embd // n_head if n_head else 0
    tokens = kv.get("tokenizer.ggml.tokens")
    n_vocab = get("vocab_size") or (tokens.count if isinstance(tokens, _Skipped) else len(tokens or ()))
    window = get("attention.sliding_window")
    if arch == "gemma2" and window is None:
        window = 4096  # llama.cpp's default for gemma 2
    labels = get("classifier.output_labels", ())

    layer_bytes = [0] * n_layer
    other = output = embd = 0
    for t in tensors:
        m = _LAYER.match(t.name)
        if m and int(m[1]) < n_layer:
            layer_bytes[int(m[1])] += t.n_bytes
            continue
        other += t.n_bytes
        if t.name.startswith(("output.", "output_norm.", "cls.")):
            output += t.n_bytes
        elif t.name == "token_embd.weight":
            embd = t.n_bytes
    has_output = any(t.name == "output.weight" for t in tensors)
    ff = get("feed_forward_length", 0)
    small = {k: v for k, v in kv.items() if _is_small(k, v)}
    return GGUFInfo(
        path=path,
        architecture=arch,
        name=kv.get("general.name"),
        file_type=_file_type(kv, tensors),
        parameter_count=sum(t.n_elements for t in tensors),
        context_length=int(get("context_length", 0)),
        block_count=n_layer,
        embedding_length=n_embd,
        feed_forward_length=max(ff) if isinstance(ff, tuple) else int(ff),
        head_count=n_head,
        head_count_kv=max(kv_layers, default=n_head),
        key_length=int(get("attention.key_length", head_dim)),
        value_length=int(get("attention.value_length", head_dim)),
        vocab_size=int(n_vocab),
        sliding_window=int(window) if window else None,
        swa_layers=_swa_layers(arch, kv, n_layer, window),
        pooling_type=get("pooling_type"),
        causal=get("attention.causal"),
        classifier_labels=tuple(labels) if isinstance(labels, tuple) else (),
        chat_template=kv.get("tokenizer.chat_template"),
        bos_token_id=kv.get("tokenizer.ggml.bos_token_id"),
        eos_token_id=kv.get("tokenizer.ggml.eos_token_id"),
        add_bos=kv.get("tokenizer.ggml.add_bos_token"),
        split_no=int(kv.get("split.no", 0)),
        split_count=split_count,
        parts=parts,
        tensor_bytes=sum(t.n_bytes for t in tensors),
        layer_bytes=tuple(layer_bytes),
        other_bytes=other,
        output_bytes=output,
        token_embd_bytes=embd,
        tied_embeddings=not has_output and embd > 0 and arch not in ENCODER_ARCHITECTURES,
        head_count_kv_layers=kv_layers,
        data_offset=first.data_offset,
        file_size=sum(p.stat().st_size for p in parts),
        tensors=tuple(tensors),
        metadata=small,
    )


def infer_model_type(path: str | Path) -> ModelType:
    """Which runtime serves this file or folder, decided from its layout and GGUF metadata.

    A folder with `model.bin` is a CTranslate2 Whisper (stt); an `.onnx` with a sibling
    `.onnx.json` is a Piper voice (tts); a GGUF is a reranker (rank pooling or classifier
    labels), an embedding model (encoder architecture, non-causal attention, or mean/CLS/last
    pooling) or else an LLM. Raises GGUFError for anything else or an unreadable GGUF.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "model.bin").is_file():
            return "stt"
        raise GGUFError(path, "folder is not a CTranslate2 Whisper model (no model.bin)")
    if path.suffix == ".onnx":
        if path.with_name(path.name + ".json").is_file():
            return "tts"
        raise GGUFError(path, "ONNX file without its Piper voice config (.onnx.json)")
    return gguf_model_type(read_gguf(path))


def gguf_model_type(info: GGUFInfo) -> ModelType:
    """The type a GGUF's metadata says: reranker (rank pooling or classifier labels), embedding
    (encoder architecture, non-causal attention, or mean/CLS/last pooling), else llm."""
    if info.pooling_type == int(gguf.PoolingType.RANK) or info.classifier_labels:
        return "reranker"
    if info.architecture in ENCODER_ARCHITECTURES or info.causal is False:
        return "embedding"
    if info.pooling_type in _EMBED_POOLING:
        return "embedding"
    return "llm"
