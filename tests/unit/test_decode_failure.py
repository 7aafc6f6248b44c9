"""A failed llama_decode fails every job that had tokens in that batch, and only those: a stream
already generating (it sits at row 0) and a long prompt still being read in chunks, whose KV
would otherwise go on after positions that were never written."""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from claracore.runtime.jobs import Delta, Event, Failed, Finished, Job
from claracore.runtime.llm import LlmOptions, LlmRuntime
from claracore.runtime.sampling import SamplingParams

DEADLINE = 60.0
N_BATCH = 16


def greedy(rt: LlmRuntime, prompt: list[int], max_tokens: int) -> tuple[Job, queue.Queue[Event]]:
    no_eog = {t: -100.0 for t in range(rt.n_vocab) if llama_cpp.llama_vocab_is_eog(rt.vocab, t)}
    events: queue.Queue[Event] = queue.Queue()
    params = SamplingParams(temperature=0, logit_bias=no_eog)
    return Job(prompt=prompt, params=[params], max_tokens=max_tokens, emit=events.put), events


def outcome(events: queue.Queue[Event]) -> tuple[str, str]:
    """('failed', message) or ('finished', text); a job that does neither in time fails the test."""
    text, deadline = "", time.monotonic() + DEADLINE
    while True:
        event = events.get(timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(event, Failed):
            return "failed", str(event.error)
        if isinstance(event, Delta):
            text += event.text
        elif isinstance(event, Finished):
            return "finished", text


def test_a_failed_decode_fails_the_generating_stream_and_the_prompt_read_in_chunks(
    tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = LlmRuntime(LlmOptions(path=str(tiny_llama), n_ctx=256, parallel=3, n_threads=2, n_batch=N_BATCH))
    try:
        long_prompt = rt.tokenize("the cat is on the sea and the dog is in the sun " * 4, add_special=True)
        assert len(long_prompt) > 2 * N_BATCH  # read in three chunks at least
        idle_prompt = rt.tokenize("an idle slot keeps what it held", add_special=True)
        idle, idle_events = greedy(rt, idle_prompt, 1)
        rt.submit(idle)
        assert outcome(idle_events)[0] == "finished"  # a slot that holds cells but is not in the batch

        real, armed, failed_batches = llama_cpp.llama_decode, [False], []

        def failing(ctx: Any, batch: Any) -> int:
            if armed[0] and batch.n_tokens > 1:  # the stream's token and the prompt's first chunk
                armed[0] = False
                failed_batches.append(batch.n_tokens)
                return 1  # llama.cpp: no room in the KV cache for this batch
            return int(real(ctx, batch))

        monkeypatch.setattr(llama_cpp, "llama_decode", failing)
        stream, stream_events = greedy(rt, rt.tokenize("a stream", add_special=True), 200)
        rt.submit(stream)
        first = stream_events.get(timeout=DEADLINE)
        assert isinstance(first, Delta)  # it is generating: its next token goes at row 0
        armed[0] = True
        reader, reader_events = greedy(rt, long_prompt, 4)
        rt.submit(reader)

        assert outcome(stream_events) == ("failed", "llama_decode failed with status 1")
        assert outcome(reader_events) == ("failed", "llama_decode failed with status 1")
        assert failed_batches == [N_BATCH]  # one token of the stream, 15 of the prompt's first chunk
        assert idle_events.empty()  # the idle job is long done and heard nothing more

        # The failed slots forgot their cells: the same prompt reads again from the start and
        # answers as a fresh runtime does.
        again, again_events = greedy(rt, long_prompt, 4)
        rt.submit(again)
        kind, text = outcome(again_events)
        assert kind == "finished"
    finally:
        rt.close()
    fresh = LlmRuntime(LlmOptions(path=str(tiny_llama), n_ctx=256, parallel=3, n_threads=2, n_batch=N_BATCH))
    try:
        cold, cold_events = greedy(fresh, long_prompt, 4)
        fresh.submit(cold)
        assert outcome(cold_events) == ("finished", text)
    finally:
        fresh.close()


def test_only_jobs_in_the_failed_batch_fail(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job still waiting for a slot is not in the batch: it runs once the failed ones are gone."""
    rt = LlmRuntime(LlmOptions(path=str(tiny_llama), n_ctx=256, parallel=1, n_threads=2, n_batch=N_BATCH))
    try:
        real, failures = llama_cpp.llama_decode, [1]

        def failing(ctx: Any, batch: Any) -> int:
            return failures.pop() if failures else int(real(ctx, batch))

        monkeypatch.setattr(llama_cpp, "llama_decode", failing)
        first, first_events = greedy(rt, rt.tokenize("one", add_special=True), 4)
        waiting, waiting_events = greedy(rt, rt.tokenize("two", add_special=True), 4)
        rt.submit(first)
        rt.submit(waiting)
        assert outcome(first_events)[0] == "failed"
        assert outcome(waiting_events)[0] == "finished"
    finally:
        rt.close()
