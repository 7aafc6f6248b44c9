"""The pool's "model" events with real tiny models: why a model unloads, load progress, measured
memory, slot occupancy, and a listing's figures while a request decodes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from claracore.config import ModelSpec
from claracore.events import Event, EventBus
from claracore.runtime.jobs import Job
from claracore.runtime.sampling import SamplingParams
from tests.tiny_models import EOS_ID
from tests.unit.test_pool import make_pool, spec


def story(events: list[Event]) -> list[tuple[str, str, str]]:
    return [
        (e.data["model"], e.data["state"], e.data.get("reason", ""))
        for e in events
        if e.data["state"] != "loading"
    ]


async def test_each_way_out_says_why(tiny_llama: Path, tiny_llama_gqa: Path) -> None:
    now = [0.0]
    bus = EventBus()
    sub = bus.subscribe(["model"])
    pool, _ = make_pool(
        [spec("a", tiny_llama, ttl=10), spec("b", tiny_llama_gqa)], events=bus, clock=lambda: now[0]
    )
    try:
        await pool.load("a")
        await pool.load("b")
        now[0] = 11.0
        assert pool.reap_idle() == ["a"]
        assert await pool.unload("b")
        await pool.load("b")
        pool.reconfigure([spec("b", tiny_llama_gqa, temperature=0.5)])
    finally:
        pool.close()
    got = list(iter(sub.get_nowait, None))
    assert story(got) == [
        ("a", "loaded", ""),
        ("b", "loaded", ""),
        ("a", "unloading", "idle past its ttl"),
        ("a", "unloaded", "idle past its ttl"),
        ("b", "unloading", "requested"),
        ("b", "unloaded", "requested"),
        ("b", "loaded", ""),
        ("b", "unloading", "the config changed"),
        ("b", "unloaded", "the config changed"),
    ]
    assert all(e.data["type"] == "llm" for e in got)


async def test_a_load_reports_progress_to_the_end_and_the_memory_llama_cpp_allocated(
    tiny_llama: Path,
) -> None:
    bus = EventBus()
    sub = bus.subscribe(["model"])
    pool, _ = make_pool([spec("a", tiny_llama)], events=bus)
    try:
        await pool.load("a")
        status = pool.status()[0]
    finally:
        pool.close()
    events = list(iter(sub.get_nowait, None))
    progress = [e.data["progress"] for e in events if e.data["state"] == "loading"]
    assert progress[0] == 0.0 and progress[-1] == 1.0 and progress == sorted(set(progress))
    assert len(progress) > 2  # llama.cpp's callback, not just our start and end
    loaded = next(e.data for e in events if e.data["state"] == "loaded")
    assert loaded["seconds"] > 0
    assert status.measured is not None and status.estimate is not None
    assert loaded["memory"]["measured"] == {"vramBytes": status.measured[0], "ramBytes": status.measured[1]}
    estimate = {"vramBytes": status.estimate.vram_bytes, "ramBytes": status.estimate.ram_bytes}
    assert loaded["memory"]["estimate"] == estimate  # what the pool reserves
    assert status.prompt_cache is not None
    cache = loaded["memory"]["promptCacheBytes"]
    assert cache == status.prompt_cache.limit_bytes > 0  # what was free, for the unsized cache
    model_ram = status.estimate.ram_bytes - cache
    assert status.measured[1] > 0.9 * model_ram  # the KV, compute and weight buffers


async def test_the_listing_shows_busy_slots_and_the_queue(tiny_llama_4k: Path) -> None:
    pool, _ = make_pool([ModelSpec(name="a", model=str(tiny_llama_4k), context_length=4096, parallel=1)])
    try:
        lease = await pool.acquire("a")
        runtime = lease.runtime
        loop = asyncio.get_running_loop()
        first, second = asyncio.Event(), asyncio.Event()

        def job(flag: asyncio.Event) -> Job:
            return Job(
                prompt=[1, 5, 6],
                params=[SamplingParams(temperature=0, logit_bias={EOS_ID: -100.0})],  # runs until cancelled
                max_tokens=3000,
                emit=lambda _ev: loop.call_soon_threadsafe(flag.set),
            )

        running, waiting = job(first), job(second)
        runtime.submit(running)  # type: ignore[attr-defined]
        await asyncio.wait_for(first.wait(), 30)  # decoding in the only slot
        runtime.submit(waiting)  # type: ignore[attr-defined]
        occupancy = pool.status()[0].occupancy
        assert occupancy is not None and (occupancy.slots, occupancy.busy, occupancy.queued) == (1, 1, 1)
        runtime.cancel(running)  # type: ignore[attr-defined]
        runtime.cancel(waiting)  # type: ignore[attr-defined]
        lease.release()
    finally:
        pool.close()
    assert pool.status()[0].occupancy is None  # unloaded: nothing to show
