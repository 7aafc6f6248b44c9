"""Thread priorities: threads that compute keep the priority of whoever built the pool or the
executor, even when a lowered thread (the server's event loop) asks for them."""

from __future__ import annotations

import asyncio
import os
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from claracore.config import ModelSpec
from claracore.pool import loaders
from claracore.pool.pool import ModelPool
from claracore.priority import ThreadStarter, lower_this_thread, nice_of, prestarted_executor

T = TypeVar("T")
BASE = os.getpriority(os.PRIO_PROCESS, 0) if sys.platform.startswith("linux") else 0

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="only Linux threads have their own nice"),
    pytest.mark.skipif(BASE > 14, reason="the test process runs too nice to be lowered by 5 more"),
]


def my_nice() -> int | None:
    return nice_of(threading.get_native_id())


def in_a_lowered_thread(work: Callable[[], T]) -> T:
    """Run `work` in a new thread that first lowers itself by 5 nice steps (as the event loop
    does), and return what it returned."""
    out: list[T] = []

    def run() -> None:
        assert lower_this_thread(5) == BASE + 5 == my_nice()
        out.append(work())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert out, "the lowered thread failed"
    return out[0]


def niceness_of_a_thread_started(start: Callable[[threading.Thread], None]) -> int | None:
    seen: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    start(threading.Thread(target=lambda: seen.put(my_nice())))
    return seen.get(timeout=10)  # the starter starts it a moment later


def test_a_thread_started_through_the_starter_keeps_the_starters_priority() -> None:
    starter = ThreadStarter("test")
    try:
        direct = in_a_lowered_thread(lambda: niceness_of_a_thread_started(threading.Thread.start))
        assert direct == BASE + 5  # what the starter is for: a new thread inherits its creator's
        assert in_a_lowered_thread(lambda: niceness_of_a_thread_started(starter.start)) == BASE
    finally:
        starter.close()


def test_work_whose_thread_cannot_start_runs_in_the_starter_rather_than_never() -> None:
    class Unstartable(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")  # what Python raises at the system's limit

    starter = ThreadStarter("test")
    ran: queue.SimpleQueue[str] = queue.SimpleQueue()
    try:
        starter.start(Unstartable(target=lambda: ran.put(threading.current_thread().name)))
        assert ran.get(timeout=10) == "test"
    finally:
        starter.close()


def test_the_prestarted_executor_runs_work_at_its_creators_priority() -> None:
    executor = prestarted_executor(3)
    try:

        def submit_many() -> set[int | None]:
            # More at once than there are threads: a pool that started one more now would
            # start it lowered.
            hold = threading.Barrier(3)

            def held() -> int | None:
                hold.wait(timeout=10)
                return my_nice()

            futures = [executor.submit(held) for _ in range(3)] + [executor.submit(my_nice) for _ in range(5)]
            return {f.result(timeout=30) for f in futures}

        assert in_a_lowered_thread(submit_many) == {BASE}
    finally:
        executor.shutdown()


def test_a_model_asked_for_from_a_lowered_thread_decodes_at_the_pools_priority(tiny_llama: Path) -> None:
    spec = ModelSpec(name="a", model=str(tiny_llama), context_length=256, parallel=1)
    pool = ModelPool(
        [spec], budget_vram=0, budget_ram=64 << 30, recipe_for=lambda s: loaders.recipe(s, gpu_offload=False)
    )
    try:

        def load() -> None:
            asyncio.run(pool.load("a"))

        in_a_lowered_thread(load)
        decode = next(t for t in threading.enumerate() if t.name == "llm:a")
        assert decode.native_id is not None
        assert nice_of(decode.native_id) == BASE
    finally:
        pool.close()


def test_lowering_stops_at_the_lowest_priority() -> None:
    assert in_a_lowered_thread(lambda: lower_this_thread(100)) == 19
