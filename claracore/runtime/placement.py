"""Which slot a new job gets and what KV it starts from: its own cells, another slot's, or a
saved state from the prompt cache. Kept apart from the decode loop, which only runs the plan.

The choice, for a prompt whose last token must always be decoded (its logits are sampled):

1. the longest reusable prefix wins, wherever it is: a free slot's own cells (kept in place), any
   slot's cells (shared into the job's sequence with `llama_memory_seq_cp`, which in a unified KV
   cache only tags cells, so a system prompt used by many conversations is held once), or a
   cache entry (copied back into the slot);
2. a cache entry must beat every slot, and by enough to pay for copying the whole entry in
   (RESTORE_COST);
3. on a tie, the cheaper source: a slot's own cells, then another slot's, then the cache;
4. the slot that takes a shared or restored prefix is an empty one, else the least recently used;
5. a free slot's own cells are used in place unless that throws away SAVE_MIN_TOKENS or more of
   them while an empty slot is free: then the empty slot shares the prefix, and the full one keeps
   what it holds, neither saved (a copy on the job's path) nor lost (its conversation may return).

Before a slot loses what a job does not share with it (SAVE_MIN_TOKENS), what it holds is saved
into the cache, so a conversation that comes back after its slot went to another is restored,
not read again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import llama_cpp
import numpy as np

from claracore.runtime.jobs import Job, Slot, common_prefix
from claracore.runtime.prompt_cache import CacheEntry, PromptCache

log = logging.getLogger(__name__)

#: Copying one token's saved KV back costs about 1/RESTORE_COST of decoding it, on a GPU; on a
#: CPU it is some hundred times cheaper. An entry is restored when the tokens it saves over the
#: best slot, times this, at least cover the tokens it copies.
RESTORE_COST = 16

#: A slot is saved before a job throws away at least this many of its tokens. A conversation
#: that comes back to its own slot drops none or a token or two (how the template closes a
#: turn): saving then would keep a near-copy of what the slot goes on to hold.
SAVE_MIN_TOKENS = 16

#: While other streams run, copies to and from the cache stop for the step once this many bytes
#: have moved (the first copy always goes ahead): 64 MiB is a few milliseconds of memcpy, less
#: than a decode step of any model whose states are that large, so streams pause for less than
#: a step, and the small copies of a busy server do not wait a step each.
COPY_PER_STEP = 64 << 20


@dataclass(frozen=True)
class Choice:
    """Where a job starts: `target` gets `keep` prompt tokens from `entry`, from `donor`'s cells,
    or (neither given) from its own cells."""

    target: Slot
    keep: int
    donor: Slot | None = None
    entry: CacheEntry | None = None


def choose(
    prompt: list[int], free: list[Slot], slots: list[Slot], entry: CacheEntry | None, entry_lcp: int
) -> Choice:
    """The plan for `prompt` (a pure function of what the slots and the best entry hold)."""
    limit = len(prompt) - 1  # the last prompt token is always decoded, for its logits

    def reuse(slot: Slot) -> int:
        return min(common_prefix(slot.tokens, prompt), limit)

    own = max(free, key=lambda s: (reuse(s), not s.tokens, -s.last_used))
    donor = max(slots, key=reuse)
    own_keep, donor_keep = reuse(own), reuse(donor)
    best_slot = max(own_keep, donor_keep)
    from_cache = min(entry_lcp, limit)
    if entry is not None and from_cache > best_slot and (from_cache - best_slot) * RESTORE_COST >= len(entry):
        return Choice(spare(free), from_cache, entry=entry)
    if own_keep >= donor_keep:
        if loses_enough(own, own_keep):
            target = spare(free)
            if not target.tokens:
                return Choice(target, own_keep, donor=own)
        return Choice(own, own_keep)
    return Choice(spare(free), donor_keep, donor=donor)


def loses_enough(slot: Slot, kept: int) -> bool:
    """Whether keeping only `kept` of `slot`'s tokens throws away enough to be worth saving."""
    return len(slot.tokens) - kept >= SAVE_MIN_TOKENS


def spare(free: list[Slot]) -> Slot:
    """The free slot whose cells matter least: an empty one, else the least recently used."""
    return min(free, key=lambda s: (bool(s.tokens), s.last_used))


class Placer:
    """Carries out placements on one context: saves, restores, shares and trims sequences."""

    def __init__(self, ctx: Any, slots: list[Slot], cache: PromptCache) -> None:
        self._ctx = ctx
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._slots = slots
        self.cache = cache
        self._tick = 0

    def place(self, job: Job, free: list[Slot]) -> tuple[list[Slot], int]:
        """Give `job` its slots (the primary first) and set the primary's pending prompt.

        Returns the group and the bytes copied to or from the cache, which the other streams
        wait for: see COPY_PER_STEP.
        """
        prompt = job.prompt
        if job.prompt_logprobs:  # every prompt token is decoded again, for its logits
            primary, keep = spare(free), 0
            moved = self._save(primary, kept=0)
            self.drop(primary)
        else:
            entry, entry_lcp = (None, 0)
            if self.cache.enabled:
                entry, entry_lcp = self.cache.best(np.asarray(prompt, dtype=np.int64))
            choice = choose(prompt, free, self._slots, entry, entry_lcp)
            primary = choice.target
            keep, moved = self._start(choice, prompt)
        free = [s for s in free if s is not primary]
        free.sort(key=lambda s: (bool(s.tokens), s.last_used))
        group = [primary, *free[: job.n - 1]]
        for sibling in group[1:]:  # they take a copy of the prompt: save what they held first
            moved += self._save(sibling, kept=0)
            sibling.pending = []
        primary.pending = prompt[keep:]
        primary.cached = keep
        self._tick += 1
        for slot in group:
            slot.last_used = self._tick
        return group, moved

    def _start(self, choice: Choice, prompt: list[int]) -> tuple[int, int]:
        """Put the chosen prefix into the target's sequence; returns (tokens kept, bytes copied)."""
        target = choice.target
        in_place = choice.donor is None and choice.entry is None
        moved = self._save(target, kept=choice.keep if in_place else 0)
        if choice.entry is not None:
            moved += choice.entry.nbytes
            if self.cache.restore(self._ctx, choice.entry, target.seq, choice.keep):
                target.tokens = choice.entry.tokens.tolist()
                return self._trim(target, choice.keep), moved
            self.drop(target)  # refused: start from what the slots hold instead
            choice = choose(prompt, [target], self._slots, None, 0)
        if choice.donor is not None:
            return self._share(choice.donor, target, choice.keep), moved
        return self._trim(target, choice.keep), moved

    def _save(self, slot: Slot, *, kept: int) -> int:
        """Save `slot` into the cache before it drops all but `kept` tokens, if that loses enough;
        returns the bytes copied."""
        if not self.cache.enabled or not loses_enough(slot, kept):
            return 0
        return self.cache.save(self._ctx, slot.seq, slot.tokens)

    def _trim(self, slot: Slot, keep: int) -> int:
        """Keep the first `keep` tokens of `slot`; none, where the memory cannot cut a sequence."""
        if not llama_cpp.llama_memory_seq_rm(self._mem, slot.seq, keep, -1):
            self.drop(slot)
            return 0
        del slot.tokens[keep:]
        return keep

    def _share(self, donor: Slot, target: Slot, keep: int) -> int:
        self.drop(target)
        if keep > 0 and donor is not target:
            llama_cpp.llama_memory_seq_cp(self._mem, donor.seq, target.seq, 0, keep)
            target.tokens = donor.tokens[:keep]
            return keep
        return 0

    def copy_prompt(self, src: Slot, dst: Slot) -> None:
        """After the primary's prompt is decoded, a sibling (n > 1) shares its cells."""
        self.drop(dst)
        llama_cpp.llama_memory_seq_cp(self._mem, src.seq, dst.seq, -1, -1)
        dst.tokens = list(src.tokens)
        dst.cached = src.cached

    def drop(self, slot: Slot) -> None:
        """Forget everything `slot` holds."""
        llama_cpp.llama_memory_seq_rm(self._mem, slot.seq, -1, -1)
        slot.tokens = []

    def release(self, slot: Slot) -> None:
        """A slot freed now counts as used now, for the least-recently-used choice."""
        self._tick += 1
        slot.last_used = self._tick
