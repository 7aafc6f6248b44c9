"""A draft model for speculative decoding: a small model sharing the target's vocabulary proposes
the next few tokens of every generating slot, and the target checks them in its own batch
(`claracore.runtime.speculative`).

The draft model has its own context with one sequence per target slot. Each step it first
catches each sequence up with its slot (the tokens the target accepted since; a rejected draft
is cut off first), then drafts greedily, one token per sequence per decode, all sequences in one
batch. Its KV cache follows the slot's tokens by common prefix, so a new request in a slot reuses
what the draft model already read of a shared prefix, as the target does.
"""

from __future__ import annotations

import logging
from typing import Any

import llama_cpp

from claracore.runtime.jobs import common_prefix
from claracore.runtime.llm_context import LlmOptions, context_params
from claracore.runtime.native import NativeModel, new_context

log = logging.getLogger(__name__)


def vocab_mismatch(target: Any, draft: Any) -> str | None:
    """Why two vocabularies cannot share drafts, or None when they can (as llama-server checks:
    type, size, BOS/EOS, and the text of the tokens)."""
    if llama_cpp.llama_vocab_type(target) != llama_cpp.llama_vocab_type(draft):
        return "their tokenizers are of different types"
    n_target, n_draft = llama_cpp.llama_vocab_n_tokens(target), llama_cpp.llama_vocab_n_tokens(draft)
    if abs(n_target - n_draft) > 128:
        return f"their vocabularies have {n_target} and {n_draft} tokens"
    for name in ("bos", "eos"):
        get = getattr(llama_cpp, f"llama_vocab_{name}")
        if get(target) != get(draft):
            return f"their {name.upper()} tokens differ"
    for token in range(min(n_target, n_draft)):
        if llama_cpp.llama_vocab_get_text(target, token) != llama_cpp.llama_vocab_get_text(draft, token):
            return f"token {token} differs"
    return None


class DraftModel:
    """The draft model's weights, context and per-slot token lists. Used by the worker thread only."""

    def __init__(
        self, path: str, target: NativeModel, options: LlmOptions, n_ctx: int, parallel: int
    ) -> None:
        self.model = NativeModel.load(path, gpu_layers=options.gpu_layers, use_mmap=options.use_mmap)
        try:
            why = vocab_mismatch(target.vocab, self.model.vocab)
            if why is not None:
                raise ValueError(f"the draft model {path} cannot draft for {options.path}: {why}")
            draft_options = LlmOptions(path=path, n_batch=options.n_batch, n_threads=options.n_threads)
            self.ctx: Any = new_context(self.model, context_params(draft_options, n_ctx, parallel))
        except BaseException:
            self.model.close()
            raise
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.n_batch = options.n_batch
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, parallel)
        self.greedy = llama_cpp.llama_sampler_init_greedy()
        self.tokens: list[list[int]] = [[] for _ in range(parallel)]

    def propose(self, wants: dict[int, tuple[list[int], int]]) -> dict[int, list[int]]:
        """Drafts for each sequence: `wants[seq]` is (the slot's tokens, how many to draft)."""
        wants = {s: (t, k) for s, (t, k) in wants.items() if k > 0 and min(t) >= 0}  # no drafts over media
        if not wants:
            return {}
        rows = self._catch_up({seq: tokens for seq, (tokens, _) in wants.items()})
        drafts: dict[int, list[int]] = {seq: [] for seq in wants}
        while rows:
            live = list(rows)
            more: dict[int, int] = {}
            for seq in live:
                token = llama_cpp.llama_sampler_sample(self.greedy, self.ctx, rows[seq])
                drafts[seq].append(token)
                if len(drafts[seq]) < wants[seq][1]:  # the last draft token needs no decode
                    more[seq] = len(more)
                    self._put(more[seq], token, len(self.tokens[seq]), seq)
                    self.tokens[seq].append(token)
            if more and not self._decode(len(more)):
                return {}
            rows = more
        return drafts

    def _catch_up(self, targets: dict[int, list[int]]) -> dict[int, int]:
        """Bring each sequence's KV up to its slot's tokens; returns each one's logits row."""
        pending: dict[int, list[int]] = {}
        for seq, tokens in targets.items():
            keep = min(
                common_prefix(self.tokens[seq], tokens), len(tokens) - 1
            )  # the last is decoded for logits
            if not llama_cpp.llama_memory_seq_rm(self.mem, seq, keep, -1):
                llama_cpp.llama_memory_seq_rm(self.mem, seq, -1, -1)
                keep = 0
            del self.tokens[seq][keep:]
            pending[seq] = tokens[keep:]
        # Everything but each sequence's last token, in chunks without logits; then the last
        # tokens together, one logits row each (the context has one row per sequence).
        body = [(seq, rest[:-1]) for seq, rest in pending.items()]
        n = 0
        for seq, run in body:
            for token in run:
                if n == self.n_batch:
                    if not self._decode(n):
                        return {}
                    n = 0
                self._put(n, token, len(self.tokens[seq]), seq, False)
                self.tokens[seq].append(token)
                n += 1
        if n and not self._decode(n):
            return {}
        rows: dict[int, int] = {}
        for i, (seq, rest) in enumerate(pending.items()):
            self._put(i, rest[-1], len(self.tokens[seq]), seq, True)
            self.tokens[seq].append(rest[-1])
            rows[seq] = i
        if not self._decode(len(rows)):
            return {}
        return rows

    def _put(self, i: int, token: int, pos: int, seq: int, logits: bool = True) -> None:
        b = self.batch
        b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
        b.seq_id[i][0] = seq

    def _decode(self, n: int) -> bool:
        self.batch.n_tokens = n
        if llama_cpp.llama_decode(self.ctx, self.batch) == 0:
            return True
        log.warning("the draft model failed to decode; drafting nothing this step")
        self.forget()
        return False

    def forget(self) -> None:
        """Drop every sequence's KV: after a failure its state is unknown."""
        llama_cpp.llama_memory_clear(self.mem, True)
        self.tokens = [[] for _ in self.tokens]

    def close(self) -> None:
        llama_cpp.llama_sampler_free(self.greedy)
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)
        self.model.close()
