"""A host-memory cache of sequences' KV state, so more conversations than slots stay fast.

A slot holds one sequence's KV cells; when a job is about to overwrite a slot, what the slot
held is copied out with llama.cpp's per-sequence state API (`llama_state_seq_get_data`) and kept
here, keyed by its tokens. A later job whose prompt shares a long prefix with an entry has the
entry copied back into its slot (`llama_state_seq_set_data`) and decodes only the rest, instead
of reading the whole conversation again: copying a token's KV costs microseconds, decoding it
milliseconds on a CPU.

The cache belongs to one runtime, i.e. one model and one context, so an entry can never reach
another model (nor, once they exist, another LoRA set or image). Entries are bounded in bytes and
the least recently used goes first. Each blob is an anonymous mmap of exactly its size: dropping
an entry unmaps it at once, so memory goes back to the system when the cache shrinks or the
model unloads, not whenever the allocator chooses.

The worker thread saves and restores; the pool may lower the limit from its own thread
(`set_limit`), so the entry list sits behind a lock that is never held across a native call.
A blob being read or written holds a reference of its own, so an entry evicted meanwhile is
unmapped only when that call is done.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import threading
from collections import OrderedDict

import llama_cpp
import numpy as np

from claracore.runtime.base import PromptCacheStats

log = logging.getLogger(__name__)

__all__ = ["CacheEntry", "PromptCache", "PromptCacheStats"]


class CacheEntry:
    """One saved sequence: its tokens (in position order) and llama.cpp's state blob."""

    __slots__ = ("tokens", "blob", "nbytes")

    def __init__(self, tokens: np.ndarray, blob: mmap.mmap) -> None:
        self.tokens = tokens
        self.blob = blob
        self.nbytes = len(blob)

    def __len__(self) -> int:
        return len(self.tokens)


def common_prefix_array(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the common prefix of two int32 token arrays (compared in C, not per token)."""
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


class PromptCache:
    """Saved KV states of one context's sequences, at most `limit_bytes` of them in all."""

    def __init__(self, limit_bytes: int) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, CacheEntry] = OrderedDict()  # least recently used first
        self._serial = 0
        self._limit = max(0, limit_bytes)
        self._bytes = 0
        self._lookups = self._hits = self._restored = self._saves = self._failures = 0

    @property
    def enabled(self) -> bool:
        return self._limit > 0

    # ------------------------------------------------------------ any thread

    def set_limit(self, limit_bytes: int) -> None:
        """Change the byte budget; entries past it go at once, least recently used first."""
        with self._lock:
            self._limit = max(0, limit_bytes)
            self._evict_to(self._limit)

    def clear(self) -> None:
        """Drop every entry (their memory is unmapped as the last reference goes)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def stats(self) -> PromptCacheStats:
        with self._lock:
            return PromptCacheStats(
                limit_bytes=self._limit,
                bytes=self._bytes,
                entries=len(self._entries),
                lookups=self._lookups,
                hits=self._hits,
                restored_tokens=self._restored,
                saves=self._saves,
                failures=self._failures,
            )

    # ------------------------------------------------------------ the worker thread

    def best(self, prompt: np.ndarray) -> tuple[CacheEntry | None, int]:
        """The entry sharing the longest prefix with `prompt`, and that length (the shorter entry
        on a tie: it is cheaper to restore). Counts one lookup."""
        found: CacheEntry | None = None
        longest = 0
        with self._lock:
            self._lookups += 1
            for entry in self._entries.values():
                n = common_prefix_array(entry.tokens, prompt)
                if n > longest or (n and n == longest and found is not None and len(entry) < len(found)):
                    found, longest = entry, n
        return found, longest

    def save(self, ctx: llama_cpp.llama_context_p, seq: int, tokens: list[int]) -> int:
        """Copy sequence `seq` (whose cells hold `tokens`) into the cache; returns the bytes copied,
        0 when it was not worth it (already held, larger than the budget) or llama.cpp failed.

        Entries that are a prefix of `tokens` go: restoring the new one and cutting it serves
        them. Room is made before the blob is allocated, so the cache never exceeds its limit.
        """
        if not tokens or not self.enabled:
            return 0
        key = np.asarray(tokens, dtype=np.int32)
        with self._lock:
            for serial, entry in self._entries.items():
                if len(entry) >= len(key) and common_prefix_array(entry.tokens, key) == len(key):
                    self._entries.move_to_end(serial)  # already held, maybe as part of a longer one
                    return 0
        size = llama_cpp.llama_state_seq_get_size(ctx, seq)
        with self._lock:
            if size == 0 or size > self._limit:
                return 0
            covered = [s for s, e in self._entries.items() if common_prefix_array(e.tokens, key) == len(e)]
            for serial in covered:
                self._bytes -= self._entries.pop(serial).nbytes
            self._evict_to(self._limit - size)
        try:
            blob = mmap.mmap(-1, size)
        except OSError as exc:  # the system is out of memory: the job goes on without saving
            log.warning("no memory for a cached state of %d bytes (%s); not cached", size, exc)
            return 0
        view = (ctypes.c_uint8 * size).from_buffer(blob)
        written = llama_cpp.llama_state_seq_get_data(ctx, view, size, seq)
        del view  # the blob's buffer export
        if written != size:
            log.warning(
                "llama.cpp wrote %d of %d bytes of sequence %d's state: not cached", written, size, seq
            )
            return 0
        with self._lock:
            self._evict_to(self._limit - size)  # the limit may have shrunk meanwhile
            if size > self._limit:
                return 0
            self._serial += 1
            self._entries[self._serial] = CacheEntry(key, blob)
            self._bytes += size
            self._saves += 1
        return size

    def restore(self, ctx: llama_cpp.llama_context_p, entry: CacheEntry, seq: int, keep: int) -> bool:
        """Load `entry` into sequence `seq` (replacing what it held), counting `keep` reused tokens.

        False when llama.cpp refuses the blob (corrupt, or made by another context): the entry
        is dropped, the sequence is left empty, and the caller decodes the prompt instead.
        """
        size = entry.nbytes
        view = (ctypes.c_uint8 * size).from_buffer(entry.blob)
        read = llama_cpp.llama_state_seq_set_data(ctx, view, size, seq)
        del view
        with self._lock:
            serial = next((s for s, e in self._entries.items() if e is entry), None)
            if read == size:
                if serial is not None:
                    self._entries.move_to_end(serial)
                self._hits += 1
                self._restored += keep
                return True
            self._failures += 1
            if serial is not None:
                self._bytes -= self._entries.pop(serial).nbytes
        log.warning(
            "llama.cpp refused a cached state of %d tokens (%d bytes) for sequence %d; "
            "decoding the prompt instead",
            len(entry),
            size,
            seq,
        )
        return False

    def _evict_to(self, limit: int) -> None:
        """Called with the lock held: drop least recently used entries until `limit` is met."""
        while self._entries and self._bytes > max(0, limit):
            _, entry = self._entries.popitem(last=False)
            self._bytes -= entry.nbytes
