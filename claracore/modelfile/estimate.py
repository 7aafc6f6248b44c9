"""What a model will cost in VRAM and RAM, priced from its metadata before it is loaded.

The pool evicts to make room before a load, so it must know the cost up front; asking llama.cpp
means loading. The figures mirror what llama.cpp allocates for one context with a unified KV cache
(n_ctx × n_seq cells shared by n_seq sequences), buffer by buffer:

- model buffers: per-layer tensor bytes, the last layers and the output head on the GPU
  (llama.cpp's n_gpu_layers counts the output head as one more layer);
- the KV cache: cells × layers × KV heads × (key + value length) × bytes of the cache type, where
  sliding-window layers hold only their window;
- the compute buffer: the peak of the worst-case graph (n_ubatch tokens), found by replaying
  ggml-alloc over the graph llama.cpp builds (see _GraphAlloc): the attention scores
  (n_kv × n_ubatch × n_head floats without flash attention), the feed-forward activations and the
  logits of every output token, with the gaps the allocator leaves between them;
- the output buffer: one row of logits (and an embedding) per sequence.

Measured against llama.cpp's own log lines in tests/unit/test_estimate.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import gguf

from claracore.errors import InvalidRequestError
from claracore.modelfile.gguf import ENCODER_ARCHITECTURES, GGUFError, GGUFInfo

_F32 = 4
_CTX_PAD = 256  # llama.cpp pads every context (and the SWA cache) to a multiple of this
_ALIGN = 32  # ggml-alloc rounds every tensor up to the CPU buffer's alignment


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
    remote_bytes: int = 0  # on llama.cpp RPC workers: outside this machine's budget

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


class _GraphAlloc:
    """A replay of ggml-alloc (ggml_gallocr) over a compute graph: the buffer size it reserves.

    llama.cpp sizes the compute buffer by running ggml-alloc over the worst-case graph, and what
    that costs is not the sum of the live activations: the allocator places each tensor in the
    smallest free gap that holds it (the last one on a tie), else at the end of the buffer, which
    grows; a gap too small for what comes next is wasted, and which gaps exist depends on every
    earlier layer. Whether the feed-forward product fits the gap left by the attention's
    activations, for instance, decides the peak of a model whose n_ff is at most 2 × n_embd, and a
    fixed formula of live tensors missed it (the tiny test models, 0.25 MiB of 1.5). So the
    tensors are added in llama.cpp's graph order and `run` does what ggml_gallocr_alloc_graph
    does: inputs first, then each node in turn, taking over the memory of a source of the same
    size when the op can run in place and nothing else still reads that source, and freeing
    every source after its last reader, merging the freed range with the gaps beside it. Views and tensors
    outside the buffer (weights, the KV cache) are left out: a view hands its source on to its
    readers, and a node of 0 bytes (a write into the cache) only reads.
    """

    def __init__(self) -> None:
        self._size: list[int] = []
        self._srcs: list[tuple[int, ...]] = []
        self._inplace: list[bool] = []
        self._n_inputs = 0
        self._mark: int | None = None

    def input(self, nbytes: int) -> int:
        """A graph input (ggml_set_input): allocated before every node, in the order added."""
        assert self._n_inputs == len(self._size), "inputs come before nodes"
        self._n_inputs += 1
        return self.op(nbytes)

    def op(self, nbytes: int, *srcs: int, inplace: bool = False) -> int:
        """A node reading `srcs`; `inplace` for the ops ggml lets overwrite a source (add, mul,
        norms, softmax, unary ops) when that source is not a view."""
        self._size.append(-(-nbytes // _ALIGN) * _ALIGN)
        self._srcs.append(srcs)
        self._inplace.append(inplace)
        return len(self._size) - 1

    def mark(self) -> None:
        """Note the peak so far when `run` reaches the next node (the layers before the head)."""
        self._mark = len(self._size)

    def run(self) -> tuple[int, int]:
        """The buffer size, and what it was when the mark was reached."""
        readers = [0] * len(self._size)
        for srcs in self._srcs:
            for src in srcs:
                readers[src] += 1
        free: list[list[int]] = [[0, 1 << 62]]  # [offset, size] by offset; the last one is the end
        where: dict[int, int] = {}  # tensor -> offset, while it owns memory
        peak = at_mark = 0

        def alloc(size: int) -> int:
            nonlocal peak
            best = len(free) - 1
            for i in range(len(free) - 1):
                if free[i][1] >= size and (best == len(free) - 1 or free[i][1] <= free[best][1]):
                    best = i
            offset = free[best][0]
            free[best][0] += size
            free[best][1] -= size
            if free[best][1] == 0:
                del free[best]
            peak = max(peak, offset + size)
            return offset

        def release(offset: int, size: int) -> None:
            for i, block in enumerate(free):
                if block[0] + block[1] == offset:  # extends a gap that ends where it starts
                    block[1] += size
                    if i + 1 < len(free) and block[0] + block[1] == free[i + 1][0]:
                        block[1] += free.pop(i + 1)[1]
                    return
                if offset + size == block[0]:  # extends a gap that starts where it ends
                    block[0], block[1] = offset, block[1] + size
                    if i > 0 and free[i - 1][0] + free[i - 1][1] == offset:
                        free[i - 1][1] += free.pop(i)[1]
                    return
            free.append([offset, size])
            free.sort()

        for node, (size, srcs) in enumerate(zip(self._size, self._srcs, strict=True)):
            if node == self._mark:
                at_mark = peak
            if size:
                reusable = [s for s in srcs if s in where and readers[s] == 1 and self._size[s] == size]
                if self._inplace[node] and reusable:
                    where[node] = where.pop(reusable[0])  # in place: the source is not freed
                else:
                    where[node] = alloc(size)
            for src in srcs:
                readers[src] -= 1
                if readers[src] == 0 and src in where:
                    release(where.pop(src), self._size[src])
        return peak, at_mark if self._mark is not None else peak


def _decoder_graph(
    info: GGUFInfo, *, n_tokens: int, n_out: int, n_kv: list[tuple[bool, int]], flash_attn: bool
) -> _GraphAlloc:
    """llama.cpp's graph for a llama-style decoder (llm_build_llama): pre-norm attention with a
    KV cache, then a gated feed-forward (gate, up, their product, down). `n_kv` holds each
    layer's cache (sliding-window or not) and its cells; each cache has its own mask and
    indices. Norm weights, biases and the Gemma-style extra norms run in place and cost nothing
    here."""
    t, f = n_tokens, n_tokens * _F32
    n_embd, n_ff = info.embedding_length, info.feed_forward_length
    q_len, o_len = info.head_count * info.key_length, info.head_count * info.value_length
    k_len, v_len = info.head_count_kv * info.key_length, info.head_count_kv * info.value_length
    g = _GraphAlloc()
    tokens = g.input(4 * t)
    g.input(f * n_embd)  # inp_embd: the embeddings input, allocated even when tokens are given
    pos = g.input(4 * t)
    caches: dict[bool, tuple[int, int, int]] = {}  # (k_idxs, v_idxs, mask) of each cache
    for swa, cells in n_kv:
        if swa not in caches:
            v_idxs = 8 * t * (1 if flash_attn else v_len)  # a transposed V cache is written per element
            mask = cells * t * (2 if flash_attn else _F32)
            caches[swa] = (g.input(8 * t), g.input(v_idxs), g.input(mask))
    out_ids = g.input(4 * n_out)

    x = g.op(f * n_embd, tokens)  # token embeddings
    for il, (swa, cells) in enumerate(n_kv):
        k_idxs, v_idxs, mask = caches[swa]
        norm = g.op(f * n_embd, x)  # x is read again by the residual add, so not in place
        # RoPE reads Q and K through a reshaped view, and ggml-alloc never reuses a view's memory.
        q = g.op(f * q_len, g.op(f * q_len, norm), pos)
        v = g.op(f * v_len, norm)
        k = g.op(f * k_len, g.op(f * k_len, norm), pos)
        g.op(0, k, k_idxs)  # K and V are copied into the cache, then freed
        g.op(0, v, v_idxs)
        if flash_attn:
            attn = g.op(f * o_len, q, mask)
        else:
            scores = g.op(f * cells * info.head_count, q)
            scores = g.op(f * cells * info.head_count, scores, mask, inplace=True)  # softmax
            attn = g.op(f * o_len, scores)
            attn = g.op(f * o_len, attn)  # the heads made contiguous again
        cur = g.op(f * n_embd, attn)  # output projection
        if il == len(n_kv) - 1:  # only the output rows go on from the last layer's attention
            f = n_out * _F32
            cur, x = g.op(f * n_embd, cur, out_ids), g.op(f * n_embd, x, out_ids)
        x = g.op(f * n_embd, cur, x, inplace=True)  # residual
        norm = g.op(f * n_embd, x)
        gate, up = g.op(f * n_ff, norm), g.op(f * n_ff, norm)
        prod = g.op(f * n_ff, gate, up)  # the GLU op does not run in place
        x = g.op(f * n_embd, g.op(f * n_embd, prod), x, inplace=True)
    g.mark()
    x = g.op(f * n_embd, x, inplace=True)  # output norm
    g.op(f * info.vocab_size, x)  # logits
    return g


def _encoder_graph(info: GGUFInfo, *, n_tokens: int, n_out: int, n_seq: int, flash_attn: bool) -> _GraphAlloc:
    """llama.cpp's graph for a BERT-style encoder (llm_build_bert): post-norm layers (layer norm,
    which is not done in place) attending within the ubatch, a GELU feed-forward, mean pooling."""
    t, f = n_tokens, n_tokens * _F32
    n_embd, n_ff = info.embedding_length, info.feed_forward_length
    q_len, o_len = info.head_count * info.key_length, info.head_count * info.value_length
    k_len, v_len = info.head_count_kv * info.key_length, info.head_count_kv * info.value_length
    g = _GraphAlloc()
    tokens = g.input(4 * t)
    g.input(f * n_embd)
    pos = g.input(4 * t)
    mask = g.input(t * t * (2 if flash_attn else _F32))
    out_ids = g.input(4 * n_out)
    mean = g.input(_F32 * t * n_seq)  # the pooling weights, a column per sequence

    x = g.op(f * n_embd, tokens)  # token embeddings
    pos_embd = g.op(f * n_embd, pos)
    x = g.op(f * n_embd, x, inplace=True)  # + the token-type embedding
    x = g.op(f * n_embd, pos_embd, x, inplace=True)  # + the position embeddings
    x = g.op(f * n_embd, x)  # embedding layer norm
    for il in range(info.block_count):
        q, k, v = g.op(f * q_len, x), g.op(f * k_len, x), g.op(f * v_len, x)
        if flash_attn:  # K and V cast to f16 first
            attn = g.op(f * o_len, q, g.op(2 * t * k_len, k), g.op(2 * t * v_len, v), mask)
        else:
            v = g.op(f * v_len, v)  # V transposed, made contiguous
            scores = g.op(f * t * info.head_count, k, q)
            scores = g.op(f * t * info.head_count, scores, mask, inplace=True)
            attn = g.op(f * o_len, g.op(f * o_len, v, scores))
        cur = g.op(f * n_embd, attn)
        if il == info.block_count - 1:
            f = n_out * _F32
            cur, x = g.op(f * n_embd, cur, out_ids), g.op(f * n_embd, x, out_ids)
        x = g.op(f * n_embd, g.op(f * n_embd, cur, x, inplace=True))  # residual, layer norm
        up = g.op(f * n_ff, x)
        x = g.op(f * n_embd, g.op(f * n_embd, up), x, inplace=True)
        x = g.op(f * n_embd, x)
    g.mark()
    g.op(_F32 * n_embd * n_seq, g.op(f * n_embd, x), mean)  # mean pooling over the transposed output
    return g


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
    if has_kv:  # encoders have no cache: they attend within the ubatch
        for il in range(n_layer):
            heads = kv_heads[il] if il < len(kv_heads) else info.head_count_kv
            row = _row_bytes(info.key_length * heads, size_k) + _row_bytes(info.value_length * heads, size_v)
            kv_per_layer[il] = (swa_cells if is_swa[il] else cells) * row

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

    # Compute buffer: what ggml-alloc reserves for the worst-case graph of n_tokens tokens.
    n_out = min(n_tokens, n_outputs_max or batch)
    if encoder:
        graph = _encoder_graph(info, n_tokens=n_tokens, n_out=n_out, n_seq=n_seq, flash_attn=flash_attn)
    else:
        n_kv = [(swa, swa_cells if swa else cells) for swa in is_swa]
        graph = _decoder_graph(info, n_tokens=n_tokens, n_out=n_out, n_kv=n_kv, flash_attn=flash_attn)
    compute, layers_peak = graph.run()
    act = n_tokens * _F32
    n_embd = info.embedding_length
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


def disk_size(path: Path) -> int:
    """Bytes a model takes on disk: the file, or every file of a model folder."""
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
    size = disk_size(path)
    if path.suffix == ".onnx":
        config = path.with_name(path.name + ".json")
        size += config.stat().st_size if config.is_file() else 0
    if on_gpu:
        return MemoryEstimate(vram_bytes=size, ram_bytes=0, weights_vram=size)
    return MemoryEstimate(vram_bytes=0, ram_bytes=size, weights_ram=size)
