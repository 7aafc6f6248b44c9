"""Speculative decoding inside the batching loop: each generating slot proposes a few tokens, the
target model checks every slot's proposals in the one batch it decodes anyway, and each slot
keeps the proposals its own sampler agrees with.

Drafts come from n-gram lookup (`speculative: ngram`): the last few tokens of a sequence are
looked up earlier in its prompt and answer, and the tokens that followed them there are the
draft. That costs nothing to make and pays off when the answer repeats the prompt (code edits,
quotes from retrieved text, JSON rewrites).

Checking is sample-and-compare, as llama.cpp's `common_sampler_sample_and_accept_n`: the slot's
own sampler chain samples each drafted row in order and stops at the first token that differs
from the draft. Every emitted token is therefore sampled from the target model's distribution
given the true prefix, with one draw per emitted token, so the output (greedy or seeded) is the
one the model gives without speculation. Rejected drafts leave the KV cache at once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import llama_cpp

from claracore.runtime.draft import DraftModel

if TYPE_CHECKING:
    from claracore.runtime.jobs import Job, Slot
    from claracore.runtime.llm_context import LlmOptions
    from claracore.runtime.native import NativeModel

log = logging.getLogger(__name__)

#: Lookup lengths tried, longest first: a longer match is a better bet, a shorter one still finds
#: the place in a text the answer repeats after a changed word.
NGRAM_SIZES = (4, 3, 2)


class NgramIndex:
    """Where each n-gram of one sequence last ended, so a draft is a dictionary lookup per step.

    Only tokens that are part of the sequence for good are indexed (never a draft still being
    checked), so rejected drafts need no undo.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.seen: dict[tuple[int, ...], int] = {}  # n-gram -> index of the token that followed it
        self.indexed = 0  # tokens whose following n-grams are in `seen`
        self.drafted = 0  # this sequence's drafted tokens, and those its sampler agreed with
        self.accepted = 0

    def draft(self, tokens: list[int], limit: int) -> list[int]:
        """Up to `limit` tokens that followed the latest earlier occurrence of `tokens`' tail."""
        end = len(tokens) - 1  # the tail's own n-grams have no follower yet
        seen = self.seen
        for i in range(max(self.indexed, 1), end + 1):
            for n in NGRAM_SIZES:
                if i >= n:
                    seen[tuple(tokens[i - n : i])] = i
        self.indexed = end + 1
        for n in NGRAM_SIZES:
            if len(tokens) > n:
                at = seen.get(tuple(tokens[-n:]))
                if at is not None:
                    draft = tokens[at : at + limit]
                    media = next((i for i, t in enumerate(draft) if t < 0), -1)  # an image's placeholders
                    return draft if media < 0 else draft[:media]
        return []


class Speculating:
    """The drafting and checking half of `LlmRuntime` (a mixin: it shares the worker's batch,
    memory and sampling). `draft_max` 0 turns it off."""

    draft_max: int
    speculative: str | None
    n_ctx: int
    _batch: Any
    _ctx: Any

    def _init_speculation(self, o: LlmOptions, model: NativeModel, parallel: int) -> None:
        """`speculative: ngram`, or a draft model (loaded here; it must share the vocabulary)."""
        self.speculative = "draft" if o.draft_model else o.speculative
        self.draft_max = o.draft_max if self.speculative else 0
        self._draft_model = (
            DraftModel(o.draft_model, model, o, self.n_ctx, parallel) if o.draft_model else None
        )
        self._proposed: dict[int, list[int]] = {}  # by slot seq: the draft model's tokens this step
        self._indexes: dict[int, NgramIndex] = {}  # by slot seq
        self._drafts: dict[int, list[int]] = {}  # by slot seq: tokens in this batch being checked
        self.drafted_tokens = 0  # figures for benchmarks and /metrics: drafted and accepted
        self.accepted_tokens = 0

    if TYPE_CHECKING:  # the worker's own, in LlmRuntime

        def _put(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None: ...

        def _sample(self, slot: Slot, idx: int) -> None: ...

    def _propose(self, generating: list[Slot]) -> None:
        """With a draft model: draft for every generating slot at once, before the target's batch."""
        if self._draft_model is None:
            return
        wants = {
            s.seq: ([*s.tokens, s.next_token], self._draft_limit(s, len(s.tokens) + 1)) for s in generating
        }
        self._proposed = self._draft_model.propose(wants)

    def _draft_limit(self, slot: Slot, n_tokens: int) -> int:
        """How many tokens `slot` may draft when its sequence holds `n_tokens` (its next token
        included): one token still to emit needs no draft, and the context must hold the bonus
        token the last draft row yields."""
        return min(self.draft_max, slot.max_tokens - slot.n_gen - 1, self.n_ctx - n_tokens - 2)

    def _close_speculation(self) -> None:
        if getattr(self, "_draft_model", None) is not None:
            assert self._draft_model is not None
            self._draft_model.close()
            self._draft_model = None

    def _add_drafts(self, slot: Slot, n: int, room: int) -> int:
        """Put `slot`'s draft after its next token (row n - 1) in the batch; returns the new n."""
        job = slot.job
        assert job is not None
        limit = min(room, self._draft_limit(slot, len(slot.tokens)))
        if limit <= 0:
            return n
        index = self._indexes.get(slot.seq)
        if index is None or index.job is not job:
            index = self._indexes[slot.seq] = NgramIndex(job)
        if self._draft_model is not None:
            draft = self._proposed.pop(slot.seq, [])[:limit]
        else:
            draft = index.draft(slot.tokens, limit)
        if not draft:
            return n
        index.drafted += len(draft)
        pos = len(slot.tokens)
        for i, token in enumerate(draft):
            self._put(n + i, token, pos + i, slot.seq, True)
        slot.tokens.extend(draft)
        self._drafts[slot.seq] = draft
        self.drafted_tokens += len(draft)
        return n + len(draft)

    def _sample_drafted(self, slot: Slot, idx: int) -> None:
        """Sample row `idx` and, while the sampled token is the draft's next one, the rows after."""
        draft = self._drafts.pop(slot.seq, None)
        if not draft:
            self._sample(slot, idx)
            return
        base = len(slot.tokens) - len(draft)  # the drafts' first position
        accepted = 0
        for j in range(len(draft) + 1):
            self._sample(slot, idx + j)
            if slot.job is None or j == len(draft) or slot.next_token != draft[j]:
                break
            accepted += 1  # already in the KV cache: the next row says what follows it
            self.accepted_tokens += 1  # counted before the caller can hear the answer is done
            self._indexes[slot.seq].accepted += 1
        keep = base + accepted
        if keep < len(slot.tokens):
            llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self._ctx), slot.seq, keep, -1)
            del slot.tokens[keep:]

    def _draft_counts(self, slot: Slot) -> tuple[int, int]:
        """(accepted, rejected) draft tokens of `slot`'s current job, for its usage figures."""
        index = self._indexes.get(slot.seq)
        if index is None or index.job is not slot.job:
            return 0, 0
        return index.accepted, index.drafted - index.accepted

    def _forget_drafts(self) -> None:
        """After a failed decode: nothing drafted this step is in the cache for sure."""
        self._drafts.clear()
