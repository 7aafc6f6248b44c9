"""What passes between callers and the LLM worker: jobs, the events they get back, and the
per-sequence slot state, plus the small text helpers the worker runs each token."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from claracore.runtime.sampling import SamplingParams, TokenLogprob

# ---------------------------------------------------------------- events sent to the caller


@dataclass(frozen=True)
class Delta:
    """New text for choice `index` (may be empty when a stop string is being held back)."""

    index: int
    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class Finished:
    """Choice `index` is done: `reason` is "stop" or "length"."""

    index: int
    reason: str
    completion_tokens: int
    prompt_tokens: int
    cached_tokens: int
    accepted_draft: int = 0  # speculative decoding: drafted tokens kept, and drafted in vain
    rejected_draft: int = 0


@dataclass(frozen=True)
class PromptLogprobs:
    """How likely the model found each prompt token given the ones before it (for `echo`).

    `items[i]` scores prompt token i + 1; the first token has no context, hence no score.
    Sent once per choice, after the prompt is decoded and before that choice's first Delta.
    """

    index: int
    first_token: int
    items: tuple[TokenLogprob, ...]


@dataclass(frozen=True)
class Failed:
    error: BaseException


Event = Delta | PromptLogprobs | Finished | Failed


@dataclass
class Job:
    """One request: `n` choices sharing one prompt, each with its own sampling parameters.

    `emit` is called from the worker thread; it must be cheap and must not block (the engine
    passes `loop.call_soon_threadsafe`-based delivery). Set `cancelled` from any thread.
    """

    prompt: list[int]
    params: list[SamplingParams]
    max_tokens: int
    emit: Callable[[Event], None]
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    prompt_logprobs: bool = False  # score the prompt too (completions with echo and logprobs)
    cancelled: bool = False
    chains: list[Any] = field(default_factory=list)
    lora: tuple[float, ...] | None = None  # adapter scales for this request; None: the model's
    media: Any = None  # a MediaPrompt (claracore.runtime.multimodal) when the prompt holds images or audio
    remaining: int = 0  # choices not yet finished

    @property
    def n(self) -> int:
        return len(self.params)


# ---------------------------------------------------------------- per-sequence state


class Slot:
    """One sequence id of the context and what its KV cache holds."""

    __slots__ = (
        "seq",
        "tokens",
        "job",
        "choice",
        "chain",
        "pending",
        "next_token",
        "batch_idx",
        "n_gen",
        "held",
        "decoder",
        "cached",
        "siblings",
        "max_tokens",
        "prompt_lp",
        "lp_rows",
        "last_used",
    )

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.tokens: list[int] = []  # tokens whose KV is in the cache, in position order
        self.job: Job | None = None
        self.choice = 0
        self.chain: Any = None
        self.pending: list[int] = []  # prompt tokens still to decode
        self.cached = 0
        self.max_tokens = 0
        self.last_used = 0  # when a job last took or left it (a counter), for least-recently-used
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.reset_output()

    def reset_output(self) -> None:
        """What one choice's generation keeps, emptied for the next (and set up at creation)."""
        self.n_gen = 0
        self.held = ""  # text held back because it may begin a stop string
        self.decoder.reset()
        self.next_token = -1  # sampled but not yet decoded
        self.batch_idx = -1  # row in the current batch whose logits this slot samples from
        self.siblings: list[Slot] = []  # for n > 1: slots that take a copy of this prompt
        self.prompt_lp: list[TokenLogprob] = []  # prompt scores so far, for a prompt_logprobs job
        self.lp_rows = (-1, 0)  # (first batch row, count) of prompt tokens decoded with logits


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def scan_stops(text: str, stops: tuple[str, ...]) -> tuple[int, int]:
    """Where the first stop string starts in `text` (-1 if none), and how many trailing
    characters must be held back because they could begin one."""
    if not stops:
        return -1, 0
    first = -1
    for stop in stops:
        at = text.find(stop)
        if at >= 0 and (first < 0 or at < first):
            first = at
    if first >= 0:
        return first, 0
    hold = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), hold, -1):
            if text.endswith(stop[:k]):
                hold = k
                break
    return -1, hold
