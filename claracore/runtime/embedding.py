"""The embedding runtime: a pooled encoder (BERT and kin) decoding many texts per llama call.

llama-cpp-python's `Llama.embed()` decodes texts in one sequence stream and reads them back one
by one; here each text gets its own sequence id, a whole batch of them goes through one
`llama_decode`/`llama_encode`, and llama.cpp's own pooling layer (mean, CLS, last or rank,
whatever the GGUF says) hands back one vector per sequence through `llama_get_embeddings_seq`.
Encoders are non-causal: every token of a sequence must be in the same micro-batch, so
`n_ubatch = n_batch` and no input may exceed it.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import llama_cpp
import numpy as np

from claracore.errors import InvalidRequestError, ModelUnavailableError
from claracore.inputs import check_token_ids
from claracore.runtime.native import NativeModel, new_context
from claracore.runtime.native import tokenize as native_tokenize


@dataclass(frozen=True)
class EmbeddingOptions:
    """How to load one embedding (or rerank) model; the pool maps a config entry onto this."""

    path: str
    n_ctx: int = 512  # per sequence: the longest input accepted
    n_batch: int = 2048  # tokens per decode, all sequences together
    n_seq: int = 32  # sequences per decode
    n_threads: int | None = None
    gpu_layers: int = 0
    use_mmap: bool = True


class _Pending:
    """One call's inputs waiting for the context, and its result once decoded."""

    __slots__ = ("inputs", "width", "result", "error", "done")

    def __init__(self, inputs: Sequence[Sequence[int]], width: int) -> None:
        self.inputs = inputs
        self.width = width
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = False


class EmbeddingRuntime:
    """A loaded pooled model. `embed` is thread-safe: one lock guards the llama context."""

    kind = "embedding"
    _param = "input"  # the request field that errors name

    def __init__(self, options: EmbeddingOptions, *, name: str = "") -> None:
        """Load the model and create its context (blocking); ValueError on a bad file."""
        self.options = options
        self.name = name or os.path.basename(options.path)
        self._lock = threading.Lock()  # the context: llama.cpp contexts are not thread-safe
        self._pending_lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._model = NativeModel.load(options.path, gpu_layers=options.gpu_layers, use_mmap=options.use_mmap)
        try:
            self._init_context()
        except BaseException:
            self._model.close()
            raise

    def _init_context(self) -> None:
        o = self.options
        model = self._model.model
        self.vocab = self._model.vocab
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.n_embd = llama_cpp.llama_model_n_embd(model)
        n_train = llama_cpp.llama_model_n_ctx_train(model)
        # Positions past the trained context have no position embedding in BERT-style models.
        self.n_ctx = max(8, min(o.n_ctx, n_train) if n_train > 0 else o.n_ctx)
        self.n_seq = max(1, o.n_seq)
        # llama.cpp reserves its graph with n_ubatch tokens split evenly over n_seq_max
        # sequences and aborts the process (GGML_ASSERT in the pooling matmul) when they do not
        # divide, so the batch is rounded up to a multiple of n_seq.
        n_batch = max(o.n_batch, self.n_ctx)
        self.n_batch = -(-n_batch // self.n_seq) * self.n_seq
        threads = o.n_threads or os.cpu_count() or 1
        p = llama_cpp.llama_context_default_params()
        # Encoders keep no KV cache, so the context size costs nothing beyond the batch; it only
        # has to hold one full batch, which must also fit one micro-batch (non-causal attention).
        p.n_ctx = self.n_batch
        p.n_batch = self.n_batch
        p.n_ubatch = self.n_batch
        p.n_seq_max = self.n_seq
        p.kv_unified = True
        p.embeddings = True
        p.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED  # the GGUF's own pooling
        p.n_threads = threads
        p.n_threads_batch = threads
        p.no_perf = True
        self._ctx: Any = new_context(self._model, p)
        self.pooling = int(llama_cpp.llama_pooling_type(self._ctx))
        if self.pooling == llama_cpp.LLAMA_POOLING_TYPE_NONE:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
            raise ValueError("the model has no pooling layer: it gives token vectors, not text embeddings")
        self._mem = llama_cpp.llama_get_memory(self._ctx)  # NULL for encoders (no KV cache)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        # numpy views of the batch's arrays: filling them is a slice copy, not a loop per token.
        b, cap = self._batch, self.n_batch
        self._tok = np.ctypeslib.as_array(b.token, (cap,))
        self._pos = np.ctypeslib.as_array(b.pos, (cap,))
        np.ctypeslib.as_array(b.n_seq_id, (cap,))[:] = 1
        np.ctypeslib.as_array(b.logits, (cap,))[:] = 1  # pooling reads every token's output
        self._seq_ptrs = [b.seq_id[j] for j in range(cap)]
        self._arange = np.arange(cap, dtype=np.int32)

    # ------------------------------------------------------------ text -> tokens (any thread)

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        """Tokenize with the model's special tokens ([CLS] ... [SEP] for BERT)."""
        return native_tokenize(self.vocab, text, add_special=add_special, parse_special=True)

    # ------------------------------------------------------------ pooled vectors

    def embed(self, inputs: list[list[int]], *, normalize: bool = True) -> list[list[float]]:
        """One pooled vector per token list, in order; L2-normalised unless `normalize` is False.

        Raises InvalidRequestError naming `input.N` for an empty input, one longer than `n_ctx`,
        or one holding ids outside the vocabulary; nothing is decoded then.
        """
        self._check(inputs, self._param)
        if not inputs:
            return []
        rows = self._pooled(inputs, self.n_embd)
        if normalize:
            norms = np.linalg.norm(rows, axis=1, keepdims=True)
            rows = rows / np.maximum(norms, 1e-12)
        out: list[list[float]] = rows.tolist()
        return out

    def _check(self, inputs: Sequence[Sequence[int]], param: str) -> None:
        for i, tokens in enumerate(inputs):
            if not tokens:
                raise InvalidRequestError(f"{param} {i} is empty", param=f"{param}.{i}")
            if len(tokens) > self.n_ctx:
                raise InvalidRequestError(
                    f"{param} {i} is {len(tokens)} tokens; this model takes at most {self.n_ctx}",
                    param=f"{param}.{i}",
                    details={"tokens": len(tokens), "context_length": self.n_ctx},
                )
            check_token_ids(tokens, self.n_vocab, f"{param}.{i}")

    def _groups(self, inputs: Sequence[Sequence[int]]) -> Iterator[range]:
        """Consecutive runs of inputs that fit one decode (n_seq sequences, n_batch tokens)."""
        start, used = 0, 0
        for i, tokens in enumerate(inputs):
            if i > start and (i - start >= self.n_seq or used + len(tokens) > self.n_batch):
                yield range(start, i)
                start, used = i, 0
            used += len(tokens)
        yield range(start, len(inputs))

    def _pooled(self, inputs: Sequence[Sequence[int]], width: int) -> np.ndarray:
        """Decode every input (one sequence each) and read `width` pooled floats per sequence.

        Calls that arrive while the context is busy are decoded together: each call queues its
        inputs, and whoever next holds the context decodes everything queued, so concurrent
        requests share batches instead of taking turns.
        """
        mine = _Pending(inputs, width)
        with self._pending_lock:
            self._pending.append(mine)
        with self._lock:
            if not mine.done:
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._decode_pending(batch)
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        return mine.result

    def _decode_pending(self, batch: list[_Pending]) -> None:
        """Decode the queued calls of each output width in shared groups; called with the lock."""
        for width in {p.width for p in batch}:
            calls = [p for p in batch if p.width == width]
            flat = [tokens for p in calls for tokens in p.inputs]
            try:
                if self._ctx is None:
                    raise ModelUnavailableError(f"model '{self.name}' is unloaded")
                out = np.empty((len(flat), width), dtype=np.float32)
                for group in self._groups(flat):
                    self._decode(flat, group)
                    for seq, i in enumerate(group):
                        ptr = llama_cpp.llama_get_embeddings_seq(self._ctx, seq)
                        if not ptr:
                            raise RuntimeError("llama.cpp returned no pooled output for a sequence")
                        floats = ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float))
                        out[i] = np.ctypeslib.as_array(floats, (width,))
            except Exception as exc:
                for p in calls:
                    p.error, p.done = exc, True
                continue
            start = 0
            for p in calls:
                p.result, p.done = out[start : start + len(p.inputs)], True
                start += len(p.inputs)

    def _decode(self, inputs: Sequence[Sequence[int]], group: range) -> None:
        batch = self._batch
        n = 0
        for seq, i in enumerate(group):
            tokens = inputs[i]
            k = len(tokens)
            self._tok[n : n + k] = tokens
            self._pos[n : n + k] = self._arange[:k]
            for ptr in self._seq_ptrs[n : n + k]:
                ptr[0] = seq
            n += k
        batch.n_tokens = n
        if self._mem:
            llama_cpp.llama_memory_clear(self._mem, True)
            rc = llama_cpp.llama_decode(self._ctx, batch)
        else:
            rc = llama_cpp.llama_encode(self._ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama.cpp failed to encode the batch (code {rc})")

    def close(self) -> None:
        """Free the context and weights now; later calls raise ModelUnavailableError."""
        with self._lock:
            if self._ctx is None:
                return
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
            self._model.close()
