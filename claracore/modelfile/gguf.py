"""What a GGUF model is and what its weights weigh, interpreted from its file head.

The pool needs a model's shape (layers, heads, vocabulary, tensor sizes) to price it before it
loads it, and the scanner reads every file in a folder. The bytes come from `reader`, which
never reads weights; this module applies llama.cpp's defaults and per-architecture rules to them,
so the numbers match what llama.cpp will actually allocate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from claracore.modelfile.names import split_parts
from claracore.modelfile.reader import MAX_STRING_ARRAY, GGUFError, Part, Skipped, TensorInfo, parse

__all__ = [
    "ENCODER_ARCHITECTURES",
    "GGUFError",
    "GGUFInfo",
    "TensorInfo",
    "read_gguf",
]


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


_MAX_METADATA_STRING = 4096
_LAYER = re.compile(r"^blk\.(\d+)\.")


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
    if isinstance(value, Skipped):
        return False
    if isinstance(value, str):
        return len(value) <= _MAX_METADATA_STRING
    if isinstance(value, tuple):
        return len(value) <= MAX_STRING_ARRAY * 4 and not key.startswith("tokenizer.ggml.")
    return True


def read_gguf(path: str | Path) -> GGUFInfo:
    """Read a GGUF model's metadata and tensor table (all split parts), never its weights.

    Raises GGUFError for a missing file, a non-GGUF file, a missing split part, and a truncated
    or corrupt file (including tensor data that would extend past the end of the file).
    """
    path = Path(path)
    first = parse(path)
    try:
        return _info(path, first, _later_parts(path, first))
    except (ValueError, TypeError, IndexError) as e:  # a key of the wrong type or shape
        raise GGUFError(path, f"corrupt metadata ({e})") from None


def info_from_parts(path: Path, first: Part, later: Sequence[tuple[Path, Part]] = ()) -> GGUFInfo:
    """`read_gguf` of heads parsed elsewhere (a remote model's, fetched by HTTP range): `first`
    is the head of `path`, `later` the other split parts in order. Raises GGUFError."""
    try:
        return _info(path, first, list(later))
    except (ValueError, TypeError, IndexError) as e:
        raise GGUFError(path, f"corrupt metadata ({e})") from None


def _later_parts(path: Path, first: Part) -> list[tuple[Path, Part]]:
    split_count = int(first.kv.get("split.count", 1) or 1)
    parts = split_parts(path) if split_count > 1 else (path,)
    if len(parts) < split_count:
        raise GGUFError(path, f"split model has {split_count} parts, found {len(parts)}")
    return [(p, parse(p)) for p in parts if p != path]


def _info(path: Path, first: Part, later: list[tuple[Path, Part]]) -> GGUFInfo:
    kv = first.kv
    split_count = int(kv.get("split.count", 1) or 1)
    parts = (path, *(p for p, _ in later))
    tensors = list(first.tensors)
    for _, part in later:
        tensors += part.tensors

    arch = str(kv.get("general.architecture", "")) or "unknown"

    def get(key: str, default: Any = None) -> Any:
        v = kv.get(f"{arch}.{key}", default)
        return default if isinstance(v, Skipped) else v

    n_layer = int(get("block_count", 0))
    n_embd = int(get("embedding_length", 0))
    hc, hkv = get("attention.head_count", 0), get("attention.head_count_kv")
    head_layers = _per_layer(hc, n_layer, 0)
    n_head = max(hc) if isinstance(hc, tuple) else int(hc)
    kv_layers = head_layers if hkv is None else _per_layer(hkv, n_layer, n_head)
    head_dim = n_embd // n_head if n_head else 0
    tokens = kv.get("tokenizer.ggml.tokens")
    n_vocab = get("vocab_size") or (tokens.count if isinstance(tokens, Skipped) else len(tokens or ()))
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
        file_size=first.size + sum(part.size for _, part in later),
        tensors=tuple(tensors),
        metadata=small,
    )
