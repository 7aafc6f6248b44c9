"""The prompt cache behind the LLM slots, on tiny random models: what is saved, what is restored,
what it costs in decoding, its byte budget, and what happens when llama.cpp refuses a state."""

from __future__ import annotations

import asyncio
import logging
import mmap
import queue
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
import pytest

from claracore import AsyncEngine
from claracore.runtime.jobs import Delta, Event, Failed, Finished, Job, Slot
from claracore.runtime.llm import LlmOptions, LlmRuntime
from claracore.runtime.placement import RESTORE_COST, SAVE_MIN_TOKENS, Placer, choose
from claracore.runtime.prompt_cache import CacheEntry
from claracore.runtime.sampling import SamplingParams

MIB = 1 << 20
DEADLINE = 60.0


@dataclass
class Answer:
    tokens: list[int]
    text: str
    finished: Finished
    decoded: int  # prompt tokens the runtime put into batches for this job


def runtime(path: Path, *, cache: int = 16 * MIB, parallel: int = 1) -> LlmRuntime:
    return LlmRuntime(
        LlmOptions(path=str(path), n_ctx=256, parallel=parallel, n_threads=2, prompt_cache_bytes=cache)
    )


def no_eog(rt: LlmRuntime) -> dict[int, float]:
    """Ban end-of-generation tokens, so every answer has exactly max_tokens tokens."""
    return {t: -100.0 for t in range(rt.n_vocab) if llama_cpp.llama_vocab_is_eog(rt.vocab, t)}


def start(
    rt: LlmRuntime, prompt: list[int], *, max_tokens: int = 8, params: SamplingParams | None = None
) -> tuple[Job, queue.Queue[Event]]:
    """A greedy job (unless told) that reports its tokens, not yet submitted."""
    events: queue.Queue[Event] = queue.Queue()
    params = params or SamplingParams(temperature=0, logit_bias=no_eog(rt))
    job = Job(prompt=list(prompt), params=[params], max_tokens=max_tokens, emit=events.put, logprobs=True)
    return job, events


def finish(events: queue.Queue[Event], decoded: int = 0) -> Answer:
    """Collect a job's answer, failing the test if it takes too long."""
    tokens: list[int] = []
    text = ""
    deadline = time.monotonic() + DEADLINE
    while True:
        event = events.get(timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(event, Delta):
            tokens += [lp.token_id for lp in event.logprobs]
            text += event.text
        elif isinstance(event, Failed):
            raise event.error
        elif isinstance(event, Finished):
            return Answer(tokens, text, event, decoded)


def ask(
    rt: LlmRuntime, prompt: list[int], *, max_tokens: int = 8, params: SamplingParams | None = None
) -> Answer:
    """Run one job to its end; `decoded` counts the prompt tokens it cost (nothing else runs)."""
    job, events = start(rt, prompt, max_tokens=max_tokens, params=params)
    before = rt.prompt_tokens_decoded
    rt.submit(job)
    answer = finish(events)
    answer.decoded = rt.prompt_tokens_decoded - before
    return answer


def words(rt: LlmRuntime, text: str) -> list[int]:
    return rt.tokenize(text, add_special=True, parse_special=False)


def conversation_prompts(rt: LlmRuntime) -> tuple[list[int], list[int]]:
    """Two prompts of about 40 tokens that share nothing but the first (BOS) token."""
    a = words(rt, "the cat is on the sea and the dog is in the sun " * 3)
    b = words(rt, "red blue yes no hello world test ok one have this from " * 3)
    return a, b


# ---------------------------------------------------------------- what a restore saves


def test_a_restored_conversation_decodes_only_its_new_tokens(tiny_llama: Path) -> None:
    """One slot, two conversations: the first comes back after the second took its slot."""
    rt = runtime(tiny_llama)
    try:
        a, b = conversation_prompts(rt)
        first = ask(rt, a)
        ask(rt, b)  # takes the only slot: conversation a is saved
        follow_up = a + first.tokens + words(rt, "yes no")[1:]
        again = ask(rt, follow_up)
        held = len(a) + len(first.tokens) - 1  # the last sampled token was never decoded
        assert again.finished.cached_tokens == held
        assert again.decoded == len(follow_up) - held  # the answer's last token and the new turn
        stats = rt.prompt_cache_stats()
        assert (stats.hits, stats.restored_tokens, stats.failures) == (1, held, 0)
    finally:
        rt.close()
    plain = runtime(tiny_llama, cache=0)
    try:
        ask(plain, a)
        ask(plain, b)
        without = ask(plain, follow_up)
        assert without.finished.cached_tokens <= 2  # what a and b begin with
        assert without.decoded == len(follow_up) - without.finished.cached_tokens
    finally:
        plain.close()


async def test_greedy_output_is_the_same_with_and_without_the_cache(tiny_llama: Path) -> None:
    """Six conversations on two slots, three turns each, taken together: every answer matches."""

    async def run(cache_mb: int) -> tuple[list[list[str]], Any]:
        spec = {"name": "m", "model": str(tiny_llama), "context_length": 512, "parallel": 2}
        engine = AsyncEngine({"models": [{**spec, "prompt_cache_mb": cache_mb}]})
        system = {"role": "system", "content": "you are a cat " * 12}
        chats: list[list[dict[str, str]]] = [[system] for _ in range(6)]
        answers: list[list[str]] = []
        try:
            for turn in range(3):

                async def one(i: int, turn: int) -> str:
                    chats[i].append({"role": "user", "content": f"dog {i} sea {turn} " + "sun " * i})
                    r = await engine.chat(model="m", messages=chats[i], max_tokens=12, temperature=0)
                    text = r.choices[0].message.content or ""
                    chats[i].append({"role": "assistant", "content": text})
                    return text

                answers.append(list(await asyncio.gather(*(one(i, turn) for i in range(6)))))
            return answers, engine.model("m").prompt_cache
        finally:
            await engine.close()

    plain, off = await run(0)
    cached, stats = await run(16)
    assert cached == plain
    assert off is None or off.hits == 0
    assert stats.hits > 0 and stats.failures == 0


def test_a_refused_state_falls_back_to_a_full_prefill_and_logs_it(
    tiny_llama: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rt = runtime(tiny_llama)
    try:
        a, b = conversation_prompts(rt)
        first = ask(rt, a)
        ask(rt, b)
        (entry,) = [e for e in rt._placer.cache._entries.values() if e.tokens[1] == a[1]]
        entry.blob[0] ^= 0xFF  # llama.cpp checks a magic number first
        follow_up = a + first.tokens + words(rt, "yes no")[1:]
        with caplog.at_level(logging.WARNING, logger="claracore.runtime.prompt_cache"):
            again = ask(rt, follow_up)
        assert "refused a cached state" in caplog.text
        stats = rt.prompt_cache_stats()
        assert (stats.hits, stats.failures) == (0, 1)
        assert all(e is not entry for e in rt._placer.cache._entries.values())  # a bad entry goes
        assert again.decoded == len(follow_up) - again.finished.cached_tokens
        assert again.finished.cached_tokens <= 2
    finally:
        rt.close()
    plain = runtime(tiny_llama, cache=0)
    try:
        assert ask(plain, follow_up).tokens == again.tokens
    finally:
        plain.close()


def test_a_shared_system_prompt_is_restored_once_then_shared_between_slots(tiny_llama: Path) -> None:
    """Two slots; the system prompt is only in the cache. The first conversation restores it;
    the second, arriving while the first runs, shares the first one's cells instead."""
    rt = runtime(tiny_llama, parallel=2)
    try:
        system = words(rt, "you are a cat and a dog in the sun " * 3)
        ask(rt, system + words(rt, "hello world")[1:])
        ask(rt, system + words(rt, "yes no")[1:])  # the empty slot, sharing the first one's cells
        for w in ("red", "blue"):  # both slots now hold something else
            ask(rt, words(rt, f"{w} " * 40))
        assert rt.prompt_cache_stats().hits == 0
        first, first_events = start(rt, system + words(rt, "test ok")[1:], max_tokens=120)
        rt.submit(first)
        deadline = time.monotonic() + DEADLINE
        while rt.prompt_cache_stats().hits == 0:  # restored: its prompt is being decoded
            assert time.monotonic() < deadline, "the first conversation was never restored"
            time.sleep(0.005)
        second = ask(rt, system + words(rt, "the sea")[1:])
        assert finish(first_events).finished.cached_tokens >= len(system)
        assert second.finished.cached_tokens >= len(system)
        assert rt.prompt_cache_stats().hits == 1  # the second copied the first's cells
    finally:
        rt.close()


# ---------------------------------------------------------------- budget and memory


def test_no_memory_for_a_state_leaves_it_unsaved_and_the_jobs_running(
    tiny_llama: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_memory(*_args: object) -> mmap.mmap:
        raise OSError(12, "Cannot allocate memory")

    rt = runtime(tiny_llama)
    try:
        a, b = conversation_prompts(rt)
        ask(rt, a)
        monkeypatch.setattr("claracore.runtime.prompt_cache.mmap.mmap", no_memory)
        with caplog.at_level(logging.WARNING, logger="claracore.runtime.prompt_cache"):
            answer = ask(rt, b)  # its slot held a: saving it fails for want of memory
        assert answer.finished.completion_tokens == 8
        assert "no memory for a cached state" in caplog.text
        assert rt.prompt_cache_stats().saves == 0
    finally:
        rt.close()


def test_the_cache_stays_within_its_byte_budget_least_recently_used_out(tiny_llama: Path) -> None:
    rt = runtime(tiny_llama)
    try:
        prompts = [words(rt, f"{w} " * 40) for w in ("cat", "dog", "sun", "sea", "red")]
        ask(rt, prompts[0])
        ask(rt, prompts[1])
        one = rt.prompt_cache_stats().bytes  # what one saved sequence of this length costs
        assert one > 0
        limit = int(2.5 * one)
        rt.set_prompt_cache_limit(limit)
        for prompt in prompts[2:]:
            ask(rt, prompt)
            assert 0 < rt.prompt_cache_stats().bytes <= limit
        assert rt.prompt_cache_stats().entries == 2  # "sun" and "sea"; "cat" and "dog" went first
        assert ask(rt, prompts[3]).finished.cached_tokens > 40  # "sea" restored
        assert ask(rt, prompts[0]).finished.cached_tokens <= 2  # "cat" was evicted: BOS and "▁" are shared
        rt.set_prompt_cache_limit(0)
        assert rt.prompt_cache_stats().bytes == 0 and rt.prompt_cache_stats().entries == 0
    finally:
        rt.close()


async def test_the_cache_gives_its_memory_back_on_unload(tiny_llama: Path) -> None:
    engine = AsyncEngine({"models": [{"name": "m", "model": str(tiny_llama), "parallel": 1}]})
    try:
        for word in ("cat", "dog", "sun"):
            await engine.chat(
                model="m", messages=[{"role": "user", "content": f"{word} " * 30}], max_tokens=4
            )
        info = engine.model("m")
        assert info.prompt_cache is not None and info.prompt_cache.entries == 2
        assert info.memory is not None
        lease = await engine.pool.acquire("m")
        rt: Any = lease.runtime
        lease.release()
        blobs = [weakref.ref(e.blob) for e in rt._placer.cache._entries.values()]
        assert await engine.unload("m")
        assert all(ref() is None for ref in blobs)  # unmapped, not left to a collector
        assert rt.prompt_cache_stats().bytes == 0
        info = engine.model("m")
        assert info.state == "unloaded" and info.prompt_cache is None
    finally:
        await engine.close()


# ---------------------------------------------------------------- entries never cross


async def test_another_model_or_sampler_never_gets_an_entry_made_for_another(
    tiny_llama: Path, tiny_llama_gqa: Path
) -> None:
    """A conversation saved on one model is not restored into another that gets the same prompt;
    and a restore carries no sampler state: a seeded, penalised sampler draws what it draws
    without the cache."""
    a_rt, b_rt = runtime(tiny_llama), runtime(tiny_llama_gqa)
    try:
        a, b = conversation_prompts(a_rt)
        first = ask(a_rt, a)
        ask(a_rt, b)
        follow_up = a + first.tokens + words(a_rt, "yes no")[1:]
        penalised = SamplingParams(temperature=0.9, seed=7, repeat_penalty=1.3, presence_penalty=0.5)
        restored = ask(a_rt, follow_up, max_tokens=16, params=penalised)
        assert a_rt.prompt_cache_stats().hits == 1
        other = ask(b_rt, follow_up)
        stats = b_rt.prompt_cache_stats()
        assert (stats.hits, stats.failures, stats.restored_tokens) == (0, 0, 0)
        assert other.decoded == len(follow_up)
    finally:
        a_rt.close()
        b_rt.close()
    for path, expect in ((tiny_llama, restored.tokens), (tiny_llama_gqa, other.tokens)):
        plain = runtime(path, cache=0)
        try:
            params = penalised if path == tiny_llama else None
            assert ask(plain, follow_up, max_tokens=16 if params else 8, params=params).tokens == expect
        finally:
            plain.close()


# ---------------------------------------------------------------- the choice, without a model


def slot(seq: int, tokens: list[int], used: int = 0, busy: bool = False) -> Slot:
    s = Slot(seq)
    s.tokens, s.last_used = list(tokens), used
    if busy:
        s.job = object()  # type: ignore[assignment]
    return s


def entry(tokens: list[int]) -> CacheEntry:
    return CacheEntry(np.asarray(tokens, dtype=np.int32), mmap.mmap(-1, 16))


def test_choose_takes_the_longest_prefix_and_the_cheaper_source_on_a_tie() -> None:
    prompt = list(range(100))
    own = slot(0, prompt[:30], used=5)
    other = slot(1, [7, 7], used=1)
    busy = slot(2, prompt[:60], busy=True)
    free = [own, other]
    c = choose(prompt, free, [own, other, busy], None, 0)
    assert (c.target, c.keep, c.donor) == (other, 60, busy)  # shared into the least recently used
    c = choose(prompt, free, [own, other, slot(2, prompt[:30], busy=True)], None, 0)
    assert (c.target, c.keep, c.donor) == (own, 30, None)  # a tie: its own cells, in place
    e = entry(prompt[:80])
    c = choose(prompt, free, [own, other, busy], e, 80)
    assert (c.target, c.keep, c.entry) == (other, 80, e)
    c = choose(prompt, free, [own, other, busy], e, 60)
    assert c.entry is None and c.donor is busy  # a tie with a slot: no copy needed


def test_choose_keeps_a_full_slot_whole_while_an_empty_one_can_share_its_prefix() -> None:
    """Cutting a slot would save (copy) what it loses first, on the job's path, then lose it from
    the slots; an empty slot takes the prefix by sharing cells instead. A loss under
    SAVE_MIN_TOKENS (a conversation back at its own slot) stays in place."""
    prompt = list(range(100))
    full = slot(0, prompt[:30] + [-1] * SAVE_MIN_TOKENS, used=5)
    empty = slot(1, [], used=1)
    c = choose(prompt, [full, empty], [full, empty], None, 0)
    assert (c.target, c.keep, c.donor) == (empty, 30, full)
    nearly = slot(0, prompt[:30] + [-1] * (SAVE_MIN_TOKENS - 1), used=5)
    c = choose(prompt, [nearly, empty], [nearly, empty], None, 0)
    assert (c.target, c.keep, c.donor) == (nearly, 30, None)
    c = choose(prompt, [full], [full, slot(1, [7], busy=True)], None, 0)
    assert (c.target, c.keep, c.donor) == (full, 30, None)  # no empty slot: in place


def test_choose_restores_only_when_the_gain_pays_for_the_copy() -> None:
    prompt = list(range(100))
    free = [slot(0, prompt[:20])]
    gain = 40  # an entry holding prompt[:60] saves decoding 40 tokens over the slot
    worth = entry(prompt[:60] + [-1] * (gain * RESTORE_COST - 60))
    assert choose(prompt, free, free, worth, 60).entry is worth
    too_long = entry(prompt[:60] + [-1] * (gain * RESTORE_COST - 59))
    assert choose(prompt, free, free, too_long, 60).entry is None


def test_choose_never_reuses_the_last_prompt_token() -> None:
    """Its logits are what the first answer token is sampled from, so it is always decoded."""
    prompt = [1, 2, 3]
    whole = slot(0, [1, 2, 3, 4])
    assert choose(prompt, [whole], [whole], None, 0).keep == 2


@pytest.mark.parametrize("budget", [1, None])
def test_cache_copies_per_step_are_bounded_while_other_streams_run(
    tiny_llama: Path, monkeypatch: pytest.MonkeyPatch, budget: int | None
) -> None:
    """Two jobs that each need a saved state restored are queued together while a stream runs.
    Copies stall the stream (they run between its steps), so with a copy budget smaller than one
    state the second restore waits a step and the stream decodes a token between the two; within
    the budget (the default, far above the tiny model's states) both start in the same step."""
    if budget is not None:
        monkeypatch.setattr("claracore.runtime.llm.COPY_PER_STEP", budget)
    rt = runtime(tiny_llama, parallel=3)
    steps = [0]
    moves: list[tuple[int, int]] = []  # (step, tokens the running stream had) at each copy
    step, place = LlmRuntime._step, Placer.place

    def counting_step(self: LlmRuntime) -> None:
        steps[0] += 1
        step(self)

    def watching_place(self: Placer, job: Job, free: list[Slot]) -> tuple[list[Slot], int]:
        group, moved = place(self, job, free)
        if moved:
            streaming = [s.n_gen for s in self._slots if s.job is running]
            assert streaming, "the running stream ended before the restores"
            moves.append((steps[0], streaming[0]))
        return group, moved

    try:
        prompts = [words(rt, f"{w} " * 30) for w in ("cat", "dog", "sun", "sea", "red", "blue")]
        firsts = [ask(rt, p) for p in prompts]  # six conversations on three slots: three are saved
        monkeypatch.setattr(LlmRuntime, "_step", counting_step)
        monkeypatch.setattr(Placer, "place", watching_place)
        running, stream = start(rt, prompts[5] + firsts[5].tokens, max_tokens=200)
        rt.submit(running)
        deadline = time.monotonic() + DEADLINE
        while not rt._busy():
            assert time.monotonic() < deadline, "the running stream never started"
            time.sleep(0.01)
        moves.clear()
        back = [start(rt, prompts[i] + firsts[i].tokens) for i in (0, 1)]
        with rt._cv:  # the worker admits nothing until both are queued
            for job, _ in back:
                rt.submit(job)
        answers = [finish(events) for _, events in back]
        assert all(a.finished.cached_tokens > 30 for a in answers)  # both were restored
        assert len(moves) == 2
        (first_step, first_tokens), (second_step, second_tokens) = moves
        if budget is None:
            assert second_step == first_step and second_tokens == first_tokens
        else:
            assert second_step == first_step + 1  # one step later, not one per job in the queue
            assert second_tokens == first_tokens + 1  # the stream decoded in between
        assert finish(stream).tokens, "the stream did not go on to its end"
    finally:
        rt.close()
