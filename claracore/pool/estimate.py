"""What a model will cost in VRAM and RAM, priced from its metadata before it is loaded.

The pool evicts to make room before a load, so it must know the cost up front; asking llama.cpp
means loading. The figures mirror what llama.cpp allocates for one context with a unified KV cache
(n_ctx × n_seq cells shared by n_seq sequences), buffer by buffer:

- model buffers: per-layer tensor bytes, the last layers and the output head on the GPU
  (llama.cpp's n_gpu_layers counts the output head as one more layer);
- the KV cache: cells × layers × KV heads × (key + value length) × bytes of the cache type, where
  sliding-window layers hold only their window;
- the compute buffer: the peak of the worst-case graph (n_ubatch tokens), the largest of the
  attention scores (n_kv × n_ubatch × n_head floats without flash attention), the feed-forward
  activations and the logits of every token in the ubatch;
- the output buffer: one row of logits (and an embedding) per sequence.

Measured against llama.cpp's own log lines in tests/unit/test_estimate.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import gguf

from claracore.errors import InvalidRequestError
from claracore.pool.gguf import ENCODER_ARCHITECTURES, GGUFError, GGUFInfo

_F32 = 4
_CTX_PAD = 256  # llama.cpp pads every context (and the SWA cache) to a multiple of this
# The attention phase keeps a handful of [n_embd, n_ubatch] activations (residual, norm, Q, the
# attention output, its projection) and two [n_embd_kv, n_ubatch] ones (K, V before the cache
# write) alive beside the scores; the feed-forward phase holds gate, up and their product. The
# multipliers were fitted to llama.cpp's allocator on several shapes (within a few percent).
_ATTN_EMBD, _ATTN_EMBD_KV = 5, 2
_FFN_FF, _FFN_EMBD = 3, 4
_LOGITS_EMBD = 3


@dataclass(frozen=True)
class MemoryEstimate:
    """A model's cost split by device. `vram_bytes` + `ram_bytes` is everything it allocates."""

    vram_bytes: int
    ram_bytes: int
    weights_vram: int = 0
    weights_ram: int = 0
    kv_bytes: int = 0
    kv_vram: int = 0
    compute_bytes: int = 0
    compute_vram: int = 0
    output_bytes: int = 0
    kv_cells: int = 0

    @property
    def total(self) -> int:
        return self.vram_bytes + self.ram_bytes

    @property
    def kv_on_gpu(self) -> bool:
        """Whether any of the KV cache lives in VRAM (it follows the offloaded layers)."""
        return self.kv_vram > 0

    def needed(self) -> dict[str, int]:
        """The shape InsufficientMemoryError takes."""
        return {"vram": self.vram_bytes, "ram": self.ram_bytes}


def pad_context(n_tokens: int) -> int:
    """The number of KV cells llama.cpp allocates for a requested context (multiple of 256)."""
    return -(-max(n_tokens, 1) // _CTX_PAD) * _CTX_PAD


def _type_size(name: str, param: str) -> tuple[int, int]:
    try:
        return gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[name.upper()]]
    except KeyError:
        raise InvalidRequestError(f"unknown cache type {name!r}", param=param) from None


def _row_bytes(n: int, size: tuple[int, int]) -> int:
    block, type_size = size
    return -(-n // block) * type_size


def estimate_llm(
    info: GGUFInfo,
    *,
    n_ctx: int,
    n_seq: int = 1,
    cache_type_k: str = "f16",
    cache_type_v: str = "f16",
    gpu_layers: int = 0,
    n_batch: int = 512,
    n_ubatch: int = 512,
    flash_attn: bool = False,
    embedding_only: bool = False,
    n_outputs_max: int | None = None,
    swa_full: bool = True,
) -> MemoryEstimate:
    """Price a llama.cpp context of `n_ctx` tokens for each of `n_seq` sequences.

    The context is one unified KV cache of n_ctx × n_seq cells. `gpu_layers` is llama.cpp's
    n_gpu_layers: 0 keeps everything in RAM; k offloads the output head and the last k - 1
    layers; -1 or at least block_count offloads every layer and the head (pass -1 to llama.cpp
    then). The token embedding always stays in RAM, as llama.cpp keeps the input layer on the
    CPU; a tied LM head is copied to the GPU. `embedding_only` prices an embedding context
    (encoders have no KV cache). `n_outputs_max` is llama.cpp's context parameter of that name
    (None: its default, n_batch), which bounds the logits in the compute buffer. `swa_full` is
    llama.cpp's context flag (default on): sliding-window layers hold only their window (padded
    to 256 cells, plus one ubatch) when it is off, and a full-size cache when it is on.

    Raises InvalidRequestError for an unknown cache type or a non-positive n_ctx or n_seq.
    """
    if n_ctx <= 0 or n_seq <= 0:
        param = "n_ctx" if n_ctx <= 0 else "n_seq"
        raise InvalidRequestError(f"{param} must be positive", param=param)
    size_k, size_v = _type_size(cache_type_k, "cache_type_k"), _type_size(cache_type_v, "cache_type_v")
    n_layer = info.block_count
    encoder = info.architecture in ENCODER_ARCHITECTURES
    has_kv = has_lm_head = not encoder

    # llama.cpp: n_batch is capped by the (unpadded) context for causal models, n_ubatch by n_batch,
    # and the worst-case graph is reserved for min(n_ctx, n_ubatch) tokens.
    requested = n_ctx * n_seq
    cells = pad_context(requested)
    batch = min(requested, n_batch) if has_kv else n_batch
    ubatch = min(batch, n_ubatch)
    n_tokens = min(cells, ubatch)

    # KV cache, per layer so it can follow its layer to a device.
    kv_heads = info.head_count_kv_layers or (info.head_count_kv,) * n_layer
    is_swa = [il < len(info.swa_layers) and info.swa_layers[il] for il in range(n_layer)]
    swa_cells = cells
    if info.sliding_window and any(is_swa) and not swa_full:
        swa_cells = min(cells, pad_context(info.sliding_window * n_seq + ubatch))
    kv_per_layer = [0] * n_layer
    caches = [n_tokens]  # encoders have no cache: they attend within the ubatch
    if has_kv:
        for il in range(n_layer):
            heads = kv_heads[il] if il < len(kv_heads) else info.head_count_kv
            row = _row_bytes(info.key_length * heads, size_k) + _row_bytes(info.value_length * heads, size_v)
            kv_per_layer[il] = (swa_cells if is_swa[il] else cells) * row
        caches = ([cells] if not all(is_swa) else []) + ([swa_cells] if any(is_swa) else [])

    # Which layers are on the GPU: llama.cpp offloads layers il >= n_layer + 1 - n_gpu_layers,
    # where index n_layer is the output head.
    ngl = n_layer + 1 if gpu_layers < 0 or gpu_layers >= n_layer else gpu_layers
    first_gpu = n_layer + 1 - ngl
    output_on_gpu = ngl > 0
    all_on_gpu = first_gpu == 0

    weights_vram = sum(b for il, b in enumerate(info.layer_bytes) if il >= first_gpu)
    weights_ram = sum(b for il, b in enumerate(info.layer_bytes) if il < first_gpu)
    weights_ram += info.other_bytes - info.output_bytes
    if output_on_gpu:
        weights_vram += info.output_bytes
        if info.tied_embeddings and has_lm_head:
            weights_vram += info.token_embd_bytes  # llama.cpp duplicates a tied head onto the GPU
    else:
        weights_ram += info.output_bytes

    kv_bytes = sum(kv_per_layer)
    kv_vram = sum(b for il, b in enumerate(kv_per_layer) if il >= first_gpu)

    # Compute buffer: the peak of the worst-case graph.
    n_embd, n_embd_kv = info.embedding_length, info.head_count_kv * info.key_length
    act = n_tokens * _F32
    # The KQ masks (one per cache: full and sliding-window) are inputs every layer's attention
    # reads, so they stay alive until the last layer (f16 with flash attention, f32 without);
    # the scores exist only without flash attention, for the largest cache.
    mask = sum(caches) * n_tokens * (2 if flash_attn else _F32)
    scores = 0 if flash_attn else max(caches) * n_tokens * info.head_count * _F32
    attn = mask + scores + act * (_ATTN_EMBD * n_embd + _ATTN_EMBD_KV * n_embd_kv)
    ffn = mask + act * (_FFN_FF * info.feed_forward_length + _FFN_EMBD * n_embd)
    layers_peak = max(attn, ffn)
    logits = 0
    if has_lm_head:
        n_out = min(n_tokens, n_outputs_max or batch)
        logits = n_out * info.vocab_size * _F32 + act * _LOGITS_EMBD * n_embd
    compute = max(layers_peak, logits)
    if not output_on_gpu:
        compute_vram, compute_ram = 0, compute
    elif all_on_gpu:
        compute_vram, compute_ram = compute, act * n_embd  # the host only gathers input embeddings
    else:
        compute_vram, compute_ram = compute, layers_peak  # CPU layers keep their own activations

    # The output buffer (host memory): logits, plus an embedding per output in embedding mode.
    output = n_seq * _F32 * (info.vocab_size + (n_embd if embedding_only else 0))

    return MemoryEstimate(
        vram_bytes=weights_vram + kv_vram + compute_vram,
        ram_bytes=weights_ram + (kv_bytes - kv_vram) + compute_ram + output,
        weights_vram=weights_vram,
        weights_ram=weights_ram,
        kv_bytes=kv_bytes,
        kv_vram=kv_vram,
        compute_bytes=compute_vram + compute_ram,
        compute_vram=compute_vram,
        output_bytes=output,
        kv_cells=cells if has_kv else 0,
    )


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += (Path(root) / name).stat().st_size
    return total


def estimate_file(path: str | Path, *, on_gpu: bool = False) -> MemoryEstimate:
    """Price a non-GGUF model (a Whisper folder, a Piper voice) by the bytes it holds on disk.

    Such runtimes load their weights whole, so the file size is a fair first figure; a Piper
    `.onnx` counts its `.onnx.json` too. Raises GGUFError when the path does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise GGUFError(path, "file not found")
    size = _tree_size(path)
    if path.suffix == ".onnx":
        config = path.with_name(path.name + ".json")
        size += config.stat().st_size if config.is_file() else 0
    if on_gpu:
        return MemoryEstimate(vram_bytes=size, ram_bytes=0, weights_vram=size)
    return MemoryEstimate(vram_bytes=0, ram_bytes=size, weights_ram=size)
