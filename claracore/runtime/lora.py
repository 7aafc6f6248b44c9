"""LoRA adapters: loaded with the model (`lora: [{path, scale}]`), freed with it by llama.cpp, and
scaled per request.

llama.cpp applies adapters to a whole context, so every sequence in one decode runs under the
same scales. The worker therefore runs one set of scales at a time: a queued job asking for
other scales waits until the running jobs finish, then the context switches (llama-server
batches only requests with equal adapters together, for the same reason). A switch forgets
every slot's cached tokens and the host-memory prompt cache, because their KV was computed under
the old scales and a prefix match would reuse it.
"""

from __future__ import annotations

import ctypes
import logging
from typing import TYPE_CHECKING, Any

import llama_cpp

from claracore.errors import InvalidRequestError

if TYPE_CHECKING:
    from claracore.runtime.jobs import Job, Slot
    from claracore.runtime.native import NativeModel
    from claracore.runtime.placement import Placer

log = logging.getLogger(__name__)


class Adapters:
    """The LoRA half of `LlmRuntime` (a mixin: it shares the worker's context and slots)."""

    lora: tuple[tuple[str, float], ...] = ()
    _adapters: list[Any]
    _ctx: Any
    _slots: list[Slot]
    _placer: Placer

    def _init_lora(self, lora: tuple[tuple[str, float], ...], model: NativeModel) -> None:
        """Load every adapter; a file that does not fit the model fails the load naming it."""
        self.lora = lora
        self._adapters = []
        for path, _scale in lora:
            adapter = llama_cpp.llama_adapter_lora_init(model.model, path.encode())
            if not adapter:  # those loaded so far are freed with the model
                raise ValueError(
                    f"the LoRA adapter {path} does not load with this model (see the log for why)"
                )
            self._adapters.append(adapter)
        self._scales: tuple[float, ...] = ()  # what the context runs now; () until the first set

    def _apply_lora(self, scales: tuple[float, ...]) -> None:
        if not self._adapters or scales == self._scales:
            return
        n = len(self._adapters)
        array = (llama_cpp.llama_adapter_lora_p_ctypes * n)(*self._adapters)
        values = (ctypes.c_float * n)(*scales)
        if llama_cpp.llama_set_adapters_lora(self._ctx, array, n, values) != 0:
            raise RuntimeError("llama_set_adapters_lora failed")
        if self._scales:  # the cached KV (slots and the host-memory cache) was computed under the old scales
            for slot in self._slots:
                llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self._ctx), slot.seq, -1, -1)
                slot.tokens = []
            self._placer.cache.clear()
        self._scales = scales

    def lora_scales(self, overrides: dict[int, float] | None) -> tuple[float, ...]:
        """The scales a request runs under: the configured ones, with `overrides` by adapter id."""
        scales = [scale for _path, scale in self.lora]
        for key, value in (overrides or {}).items():
            if not 0 <= key < len(scales):
                raise InvalidRequestError(
                    f"lora id {key} does not exist: this model has {len(scales)} adapter(s)", param="lora"
                )
            scales[key] = value
        return tuple(scales)

    def _lora_admits(self, job: Job) -> bool:
        """Whether `job` may start now: its scales are the context's, or nothing else is running
        (then the context switches to them)."""
        if not self._adapters:
            return True
        wanted = job.lora or tuple(scale for _path, scale in self.lora)
        if wanted == self._scales:
            return True
        if any(slot.job is not None for slot in self._slots):
            return False  # waits at the head of the queue until the running jobs finish
        self._apply_lora(wanted)
        return True
