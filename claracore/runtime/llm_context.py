"""How one LLM's llama.cpp context is shaped: the options the pool passes, and the parameters
they become. Kept apart from the worker loop so that sizing decisions (one KV cache for every
slot, one logits row per sequence) sit in one place beside the reasons for them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import llama_cpp

from claracore.runtime.native import CACHE_TYPES, FLASH_ATTN


@dataclass(frozen=True)
class LlmOptions:
    """How to load one LLM; the pool maps a config entry onto this."""

    path: str
    n_ctx: int = 4096  # per sequence; the context holds n_ctx * parallel cells
    parallel: int = 4
    n_batch: int = 512
    n_threads: int | None = None
    gpu_layers: int = 0
    use_mmap: bool = True
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    flash_attn: bool | str = "auto"
    chat_template: str | None = None
    rpc: tuple[str, ...] = ()  # RPC workers that take offloaded layers beside local GPUs
    lora: tuple[tuple[str, float], ...] = ()  # adapters (path, scale), claracore.runtime.lora
    mmproj: str | None = None  # a projector for images/audio (claracore.runtime.multimodal)
    speculative: str | None = None  # "ngram": draft by n-gram lookup (claracore.runtime.speculative)
    draft_max: int = 8  # tokens drafted per sequence and step
    draft_model: str | None = None  # a small model sharing the vocabulary (claracore.runtime.draft)
    prompt_cache_bytes: int = 0  # host memory for saved sequences; the pool may change it later


def outputs_per_step(o: LlmOptions, parallel: int) -> int:
    """Logits rows one decode may ask for: one per sequence, plus its draft when speculating."""
    return parallel * (1 + (o.draft_max if o.speculative or o.draft_model else 0))


def context_params(o: LlmOptions, n_ctx: int, parallel: int) -> Any:
    """llama.cpp's context parameters for `parallel` sequences of `n_ctx` tokens in one KV cache."""
    threads = o.n_threads or os.cpu_count() or 1
    p = llama_cpp.llama_context_default_params()
    p.n_ctx = n_ctx * parallel
    p.n_batch = o.n_batch
    p.n_ubatch = o.n_batch
    p.n_seq_max = parallel
    # At most one logits row per sequence per step (plus its draft): sizing the output buffer for that, not
    # for n_batch rows, saves most of the compute buffer (about 85 MiB on SmolLM2). llama.cpp
    # aborts on a decode with more rows, so prompt scoring (echo + logprobs) fits its chunks
    # into the rows the other sequences leave free (LlmRuntime._step).
    p.n_outputs_max = outputs_per_step(o, parallel)
    p.kv_unified = True
    p.n_threads = threads
    p.n_threads_batch = threads
    p.type_k = CACHE_TYPES[o.cache_type_k]
    p.type_v = CACHE_TYPES[o.cache_type_v]
    p.flash_attn_type = FLASH_ATTN[o.flash_attn]
    p.no_perf = True
    return p
