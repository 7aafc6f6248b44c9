"""The pool with real tiny models: single flight, eviction under a budget, failures, TTL."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from claracore.config import ModelSpec
from claracore.errors import InsufficientMemoryError, ModelLoadError, ModelNotFoundError
from claracore.pool import loaders
from claracore.pool.pool import ModelPool
from tests.tiny_models import make_tiny_llama

GB = 2**30


def spec(name: str, path: Path, **kw: Any) -> ModelSpec:
    return ModelSpec(name=name, model=str(path), context_length=256, parallel=2, **kw)


def cost(s: ModelSpec) -> int:
    return loaders.recipe(s, gpu_offload=False).estimate.ram_bytes


class CountingRecipes:
    """The real recipes, counting how many loads were attempted."""

    def __init__(self) -> None:
        self.loads: list[str] = []

    def __call__(self, s: ModelSpec) -> loaders.LoadRecipe:
        self.loads.append(s.name)  # an attempt, also when the file turns out to be broken
        return loaders.recipe(s, gpu_offload=False)


def make_pool(specs: list[ModelSpec], ram: int = 64 * GB, **kw: Any) -> tuple[ModelPool, CountingRecipes]:
    recipes = CountingRecipes()
    return ModelPool(specs, budget_vram=0, budget_ram=ram, recipe_for=recipes, **kw), recipes


def state(pool: ModelPool, name: str) -> str:
    return next(s.state for s in pool.status() if s.name == name)


def held_mid_load(
    gate: threading.Event, name: str, made: list[Any]
) -> Callable[[ModelSpec], loaders.LoadRecipe]:
    """The real recipes, but `name`'s load waits for `gate` after the pool reserved its memory,
    so a test can act while that model is mid-load; the runtimes it makes go into `made`."""

    def recipe_for(s: ModelSpec) -> loaders.LoadRecipe:
        r = loaders.recipe(s, gpu_offload=False)
        if s.name != name:
            return r

        def load() -> Any:
            if not gate.wait(30):
                raise TimeoutError("the test never let the load go on")
            made.append(r.load())
            return made[-1]

        return dataclasses.replace(r, load=load)

    return recipe_for


async def until_loading(pool: ModelPool, name: str) -> None:
    for _ in range(500):
        if state(pool, name) == "loading":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{name} never started loading")


async def test_single_flight_load_with_eight_waiters(tiny_llama: Path) -> None:
    pool, recipes = make_pool([spec("a", tiny_llama)])
    try:
        leases = await asyncio.gather(*(pool.acquire("a") for _ in range(8)))
        assert recipes.loads == ["a"]
        assert len({id(lease.runtime) for lease in leases}) == 1
        assert pool.status()[0].in_flight == 8
        for lease in leases:
            lease.release()
        assert pool.status()[0].in_flight == 0
    finally:
        pool.close()


async def test_evicts_the_idle_model_when_the_budget_fits_one(tiny_llama: Path, tiny_llama_gqa: Path) -> None:
    a, b = spec("a", tiny_llama), spec("b", tiny_llama_gqa)
    pool, _ = make_pool([a, b], ram=int(max(cost(a), cost(b)) * 1.5))
    try:
        async with pool.lease("a"):
            pass
        assert state(pool, "a") == "loaded"
        async with pool.lease("b"):
            assert state(pool, "a") == "unloaded"
            assert state(pool, "b") == "loaded"
    finally:
        pool.close()


async def test_never_evicts_a_model_in_use(tiny_llama: Path, tiny_llama_gqa: Path) -> None:
    a, b = spec("a", tiny_llama), spec("b", tiny_llama_gqa)
    pool, _ = make_pool([a, b], ram=int(max(cost(a), cost(b)) * 1.5), load_wait=0.5)
    try:
        held = await pool.acquire("a")
        started = time.monotonic()
        with pytest.raises(InsufficientMemoryError) as info:
            await pool.acquire("b")
        assert time.monotonic() - started >= 0.4  # it waited for "a" to become idle
        assert "waited" in info.value.message
        assert state(pool, "a") == "loaded"
        held.release()
        async with pool.lease("b"):  # now "a" is idle and can go
            assert state(pool, "a") == "unloaded"
    finally:
        pool.close()


async def test_waiting_load_proceeds_when_the_busy_model_is_released(
    tiny_llama: Path, tiny_llama_gqa: Path
) -> None:
    a, b = spec("a", tiny_llama), spec("b", tiny_llama_gqa)
    pool, _ = make_pool([a, b], ram=int(max(cost(a), cost(b)) * 1.5), load_wait=10)
    try:
        held = await pool.acquire("a")
        waiter = asyncio.ensure_future(pool.acquire("b"))
        await asyncio.sleep(0.3)
        assert not waiter.done()
        held.release()
        (await asyncio.wait_for(waiter, 5)).release()
        assert state(pool, "b") == "loaded"
    finally:
        pool.close()


async def test_pinned_model_is_never_evicted(tiny_llama: Path, tiny_llama_gqa: Path) -> None:
    a, b = spec("a", tiny_llama, pinned=True), spec("b", tiny_llama_gqa)
    pool, _ = make_pool([a, b], ram=int(max(cost(a), cost(b)) * 1.5))
    try:
        async with pool.lease("a"):
            pass
        with pytest.raises(InsufficientMemoryError) as info:
            await pool.acquire("b")
        assert "pinned" in info.value.message
        assert state(pool, "a") == "loaded"
    finally:
        pool.close()


@pytest.mark.parametrize("load_wait", [30, 0.5])
async def test_model_bigger_than_the_budget_fails_fast_with_figures(
    tiny_llama: Path, load_wait: float
) -> None:
    """Waiting cannot help a model larger than the budget: it fails at once, and does not claim to
    have waited, however short the configured wait."""
    a = spec("a", tiny_llama)
    pool, _ = make_pool([a], ram=cost(a) // 2, load_wait=load_wait)
    try:
        started = time.monotonic()
        with pytest.raises(InsufficientMemoryError) as info:
            await pool.acquire("a")
        assert time.monotonic() - started < 5
        assert info.value.needed["ram"] == cost(a)
        assert info.value.available["ram"] == cost(a) // 2
        assert "needs" in info.value.message and "available" in info.value.message
        assert "waited" not in info.value.message
        assert state(pool, "a") == "unloaded"  # not a broken file: it may fit another day
    finally:
        pool.close()


async def test_broken_files_fail_their_model_only(
    tiny_llama: Path, corrupt_gguf: Path, tmp_path: Path
) -> None:
    pool, recipes = make_pool(
        [spec("good", tiny_llama), spec("bad", corrupt_gguf), spec("gone", tmp_path / "missing.gguf")]
    )
    try:
        with pytest.raises(ModelLoadError) as info:
            await pool.acquire("bad")
        assert "truncated" in info.value.reason
        with pytest.raises(ModelLoadError) as info:
            await pool.acquire("gone")
        assert "not found" in info.value.reason
        statuses = {s.name: s for s in pool.status()}
        assert statuses["bad"].state == "failed" and statuses["bad"].error
        assert statuses["gone"].state == "failed"
        # a second request does not retry the same broken file
        loads = len(recipes.loads)
        with pytest.raises(ModelLoadError):
            await pool.acquire("bad")
        assert len(recipes.loads) == loads
        async with pool.lease("good") as lease:
            assert lease.runtime.kind == "llm"
    finally:
        pool.close()


async def test_a_broken_projector_fails_its_model_by_name(tiny_llama: Path, corrupt_gguf: Path) -> None:
    pool, _ = make_pool([spec("eyes", tiny_llama, mmproj=str(corrupt_gguf)), spec("good", tiny_llama)])
    try:
        with pytest.raises(ModelLoadError) as info:
            await pool.acquire("eyes")
        why = f"model 'eyes' failed to load: projector (mmproj) {corrupt_gguf.name}: "
        assert info.value.message.startswith(why)  # the model named, not the projector's file
        assert state(pool, "eyes") == "failed"
        async with pool.lease("good") as lease:
            assert lease.runtime.kind == "llm"
    finally:
        pool.close()


async def test_ttl_unloads_idle_models(tiny_llama: Path) -> None:
    pool, _ = make_pool([spec("a", tiny_llama, ttl=0.3)], ttl_interval=0.1)
    try:
        async with pool.lease("a"):
            await asyncio.sleep(0.5)
            assert state(pool, "a") == "loaded"  # in use: the clock does not run
        deadline = time.monotonic() + 5
        while state(pool, "a") == "loaded" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert state(pool, "a") == "unloaded"
    finally:
        pool.close()


class FakeClock:
    """The pool's clock, moved by hand: idle times and LRU order without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_eviction_takes_the_least_recently_released_model(tmp_path: Path, tiny_llama: Path) -> None:
    """LRU is by last use: "b" was leased before "a" but released after it, so "a" goes."""
    a, b = spec("a", tiny_llama), spec("b", make_tiny_llama(tmp_path / "b.gguf", seed=5))
    c = spec("c", make_tiny_llama(tmp_path / "c.gguf", seed=6))
    clock = FakeClock()
    pool, _ = make_pool([a, b, c], ram=cost(a) + cost(b) + cost(c) // 2, clock=clock)
    try:
        held_b = await pool.acquire("b")
        clock.now += 1
        held_a = await pool.acquire("a")
        clock.now += 1
        held_a.release()
        clock.now += 1
        held_b.release()
        clock.now += 1
        async with pool.lease("c"):
            assert {s.name: s.state for s in pool.status()} == {"a": "unloaded", "b": "loaded", "c": "loaded"}
        clock.now += 1
        async with pool.lease("a"):  # now "b" is the least recently used
            assert state(pool, "b") == "unloaded" and state(pool, "c") == "loaded"
    finally:
        pool.close()


async def test_ttl_counts_idle_time_from_the_last_release(tiny_llama: Path) -> None:
    clock = FakeClock()
    pool, _ = make_pool([spec("a", tiny_llama, ttl=10)], clock=clock, ttl_interval=3600)
    try:
        held = await pool.acquire("a")
        clock.now += 50
        assert pool.reap_idle() == []  # in use: never idle, however long
        held.release()
        clock.now += 9
        assert pool.reap_idle() == [] and state(pool, "a") == "loaded"
        async with pool.lease("a"):  # a use at 9 s restarts the idle clock
            pass
        clock.now += 9
        assert pool.reap_idle() == [] and state(pool, "a") == "loaded"
        clock.now += 1
        assert pool.reap_idle() == ["a"] and state(pool, "a") == "unloaded"
    finally:
        pool.close()


async def test_an_unknown_name_is_refused_by_name_with_the_models_there_are(tiny_llama: Path) -> None:
    pool, _ = make_pool([spec("a", tiny_llama, aliases=["first"])])
    try:
        with pytest.raises(ModelNotFoundError) as info:
            await pool.acquire("nope")
        assert info.value.details == {"modelId": "nope", "availableModels": ["a"]}
        async with pool.lease("first") as lease:  # an alias is not unknown
            assert lease.runtime is not None
    finally:
        pool.close()


async def test_explicit_load_unload_and_preload(tiny_llama: Path, tiny_llama_gqa: Path) -> None:
    pool, _ = make_pool([spec("a", tiny_llama, preload=True), spec("b", tiny_llama_gqa)])
    try:
        await pool.preload()
        assert state(pool, "a") == "loaded" and state(pool, "b") == "unloaded"
        await pool.load("b")
        assert state(pool, "b") == "loaded"
        assert await pool.unload("a")
        assert state(pool, "a") == "unloaded"
        assert await pool.unload_all() == ["b"]
        assert all(s.state == "unloaded" for s in pool.status())
    finally:
        pool.close()


def test_plan_uses_the_configured_settings(tiny_llama: Path) -> None:
    small = loaders.recipe(spec("a", tiny_llama), gpu_offload=False).estimate
    big = loaders.recipe(spec("a", tiny_llama).model_copy(update={"parallel": 4}), gpu_offload=False).estimate
    assert big.kv_bytes == 2 * small.kv_bytes
    assert small.vram_bytes == big.vram_bytes == 0  # no offload without a GPU build


async def test_every_kind_shares_one_budget(tiny_llama: Path, tiny_bert: Path, tiny_rerank: Path) -> None:
    """Embedding and rerank models are priced, evicted and TTL-unloaded like LLMs."""
    specs = [
        spec("chat", tiny_llama),
        ModelSpec(name="embed", model=str(tiny_bert)),
        ModelSpec(name="rank", model=str(tiny_rerank), ttl=0.2),
    ]
    costs = [cost(s) for s in specs]
    pool, _ = make_pool(specs, ram=max(costs) + min(costs) - 1, ttl_interval=0.05)  # any one fits, no two
    try:
        assert {s.name: s.kind for s in pool.status()} == {
            "chat": "llm",
            "embed": "embedding",
            "rank": "reranker",
        }
        for name in ("embed", "rank", "chat"):
            async with pool.lease(name) as lease:
                assert lease.runtime.kind == pool.kind(name)
                assert [s.name for s in pool.status() if s.state == "loaded"] == [
                    name
                ]  # the others were evicted
        async with pool.lease("rank"):
            pass
        deadline = time.monotonic() + 5
        while state(pool, "rank") == "loaded" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert state(pool, "rank") == "unloaded"
    finally:
        pool.close()


async def test_reconfigure_reports_and_closes_a_removed_model(tiny_llama: Path, tiny_llama_gqa: Path) -> None:
    a, b = spec("a", tiny_llama), spec("b", tiny_llama_gqa)
    pool, _ = make_pool([a, b])
    seen = pool.events.subscribe(["model"])
    try:
        async with pool.lease("a"):
            pass
        held = await pool.acquire("b")
        runtime_a = next(e.runtime for e in pool._entries.values() if e.spec.name == "a")
        report = pool.reconfigure([])  # both removed: "a" idle, "b" still serving a request
        assert report == {"added": [], "changed": [], "removed": ["a", "b"], "kept": []}
        assert runtime_a is not None and runtime_a._closing  # type: ignore[attr-defined]
        assert pool.status() == [] and len(pool._retiring) == 1
        held.release()  # its last request ends: the removed definition closes
        assert pool._retiring == [] and held.runtime._closing  # type: ignore[attr-defined]
        # the UI hears both go, and why, whether they closed at once or after their last request
        unloaded = {
            e.data["model"]: e.data for e in iter(seen.get_nowait, None) if e.data["state"] == "unloaded"
        }
        assert {m: d.get("reason") for m, d in unloaded.items()} == {
            "a": "the config changed",
            "b": "the config changed",
        }
    finally:
        pool.close()


async def test_reconfigure_keeps_one_model_and_closes_the_changed_and_removed_ones_after_it(
    tiny_llama: Path, tiny_llama_gqa: Path
) -> None:
    """A kept model listed first does not stop the models after it from being dealt with."""
    a, b, c = spec("a", tiny_llama), spec("b", tiny_llama_gqa), spec("c", tiny_llama)
    pool, _ = make_pool([a, b, c])
    try:
        runtimes = {}
        for name in ("a", "b", "c"):
            async with pool.lease(name) as lease:
                runtimes[name] = lease.runtime
        report = pool.reconfigure([a, spec("b", tiny_llama_gqa, temperature=0.5)])
        assert report == {"added": [], "changed": ["b"], "removed": ["c"], "kept": ["a"]}
        assert [runtimes[n]._closing for n in "abc"] == [False, True, True]  # type: ignore[attr-defined]
        assert {s.name: s.state for s in pool.status()} == {"a": "loaded", "b": "unloaded"}
    finally:
        pool.close()


async def test_insufficient_memory_names_what_is_left_beside_the_resident_models(
    tiny_llama: Path, tiny_llama_gqa: Path
) -> None:
    a, b = spec("a", tiny_llama, pinned=True), spec("b", tiny_llama_gqa)
    budget = cost(a) + cost(b) // 2
    pool, _ = make_pool([a, b], ram=budget)
    try:
        async with pool.lease("a"):
            pass
        with pytest.raises(InsufficientMemoryError) as info:
            await pool.acquire("b")
        assert info.value.available == {"vram": 0, "ram": budget - cost(a)}
        assert info.value.needed == {"vram": 0, "ram": cost(b)}
    finally:
        pool.close()


async def test_an_explicit_load_retries_a_failed_model(tiny_llama: Path, corrupt_gguf: Path) -> None:
    pool, recipes = make_pool([spec("bad", corrupt_gguf)])
    try:
        with pytest.raises(ModelLoadError):
            await pool.acquire("bad")
        with pytest.raises(ModelLoadError):
            await pool.acquire("bad")  # a request does not retry the same broken file
        assert recipes.loads == ["bad"]
        with pytest.raises(ModelLoadError):
            await pool.load("bad")  # an explicit load does
        assert recipes.loads == ["bad", "bad"] and state(pool, "bad") == "failed"
    finally:
        pool.close()


def test_an_llm_recipe_carries_the_configs_settings_to_the_runtime(tiny_llama: Path, tmp_path: Path) -> None:
    """Values other than the runtime's own defaults, so a setting the recipe drops shows."""
    s = spec("a", tiny_llama, batch_size=64, flash_attn=False)
    rt: Any = loaders.recipe(s, gpu_offload=False).load()
    try:
        assert (rt.options.n_batch, rt.n_batch, rt.options.flash_attn, rt.parallel) == (64, 64, False, 2)
    finally:
        rt.close()
    missing = spec("a", tiny_llama, lora=[{"path": str(tmp_path / "gone.gguf")}])
    with pytest.raises(ModelLoadError, match="LoRA adapter not found") as info:
        loaders.recipe(missing, gpu_offload=False)
    assert info.value.name == "a"


@pytest.mark.parametrize("kind", ["embedding", "reranker"])
def test_encoder_recipes_place_their_weights_where_the_config_says(
    tiny_bert: Path, tiny_rerank: Path, kind: str
) -> None:
    path = tiny_bert if kind == "embedding" else tiny_rerank
    on_cpu = loaders.recipe(ModelSpec(name="e", model=str(path), gpu_layers=-1), gpu_offload=False)
    on_gpu = loaders.recipe(ModelSpec(name="e", model=str(path), gpu_layers=-1), gpu_offload=True)
    kept = loaders.recipe(ModelSpec(name="e", model=str(path), gpu_layers=0), gpu_offload=True)
    assert on_cpu.kind == on_gpu.kind == kind
    assert on_cpu.estimate.vram_bytes == 0 and kept.estimate.vram_bytes == 0
    assert on_gpu.estimate.vram_bytes > 0 and on_gpu.estimate.ram_bytes < on_cpu.estimate.ram_bytes
    assert on_gpu.facts is not None and on_gpu.facts.gpu_layers == -1
    assert on_cpu.facts is not None and on_cpu.facts.gpu_layers == 0


def held(pool: ModelPool, name: str) -> tuple[int, int]:
    """(RAM the pool counts for a loaded model, its prompt cache's limit)."""
    status = next(s for s in pool.status() if s.name == name)
    assert status.estimate is not None and status.prompt_cache is not None
    return status.estimate.ram_bytes, status.prompt_cache.limit_bytes


async def test_an_unsized_prompt_cache_takes_free_memory_and_gives_it_back_before_evicting(
    tiny_llama: Path, tiny_llama_gqa: Path
) -> None:
    a, b = spec("a", tiny_llama), spec("b", tiny_llama_gqa)
    extra = 4 * 2**20
    pool, _ = make_pool([a, b], ram=cost(a) + cost(b) + extra)
    try:
        async with pool.lease("a"):
            pass
        assert held(pool, "a") == (cost(a) + cost(b) + extra, cost(b) + extra)  # all that was free
        async with pool.lease("b"):
            assert state(pool, "a") == "loaded"  # not evicted: its cache shrank instead
            assert held(pool, "a") == (cost(a) + extra, extra)
            assert held(pool, "b") == (cost(b), 0)  # nothing was left for b's cache
    finally:
        pool.close()


async def test_a_prompt_cache_larger_than_the_memory_left_is_refused_with_figures(
    tiny_llama: Path, tiny_llama_gqa: Path
) -> None:
    pinned = spec("p", tiny_llama_gqa, pinned=True)
    a = spec("a", tiny_llama, prompt_cache_mb=200)
    assert cost(a) == cost(spec("a", tiny_llama, prompt_cache_mb=0)) + 200 * 2**20  # reserved like weights
    budget = cost(a) + cost(pinned) // 2  # "a" fits alone, not beside "p"
    pool, _ = make_pool([pinned, a], ram=budget, load_wait=0.1)
    try:
        async with pool.lease("p"):
            pass
        with pytest.raises(InsufficientMemoryError) as info:
            await pool.acquire("a")
        assert info.value.needed["ram"] == cost(a)
        assert info.value.available["ram"] == budget - cost(pinned)
        assert "prompt_cache_mb reserves 200 MiB of what it needs" in info.value.message
        assert state(pool, "a") == "unloaded"
    finally:
        pool.close()


async def test_a_runtime_that_stops_serving_goes_back_to_unloaded_and_loads_again(tiny_llama: Path) -> None:
    """A runtime's own failure (an RPC worker lost mid-request, runtime/rpc_loss.py) reaches the
    pool through `on_failure`: the model is unloaded with the reason, and the next request loads
    a fresh runtime."""
    from claracore.runtime.rpc_loss import WorkerUnavailableError

    pool, _ = make_pool([spec("a", tiny_llama)])
    seen = pool.events.subscribe(["model"])
    try:
        async with pool.lease("a") as held:
            first = held.runtime
        first._on_failure(WorkerUnavailableError("10.0.0.9:50052", "lost mid-request"))
        assert state(pool, "a") == "unloaded"
        unloaded = [e.data for e in iter(seen.get_nowait, None) if e.data["state"] == "unloaded"]
        assert unloaded[-1]["reason"] == "stopped serving" and "10.0.0.9:50052" in unloaded[-1]["error"]
        async with pool.lease("a") as again:
            assert again.runtime is not first and state(pool, "a") == "loaded"
    finally:
        pool.close()


async def test_a_written_off_runtime_stays_charged_to_the_budget(
    tiny_llama: Path, tiny_llama_gqa: Path
) -> None:
    """llama.cpp still holds a written-off runtime's memory, so the pool keeps counting it: a
    second model that fitted beside nothing else no longer does."""
    from claracore.runtime.rpc_loss import WorkerUnavailableError

    a, b = spec("a", tiny_llama), spec("b", tiny_llama_gqa)
    budget = int(max(cost(a), cost(b)) * 1.5)
    pool, _ = make_pool([a, b], ram=budget, load_wait=0.5)
    try:
        async with pool.lease("a") as held:
            runtime = held.runtime
        runtime._on_failure(WorkerUnavailableError("10.0.0.9:50052", "lost mid-request"))
        assert pool.stranded()[1] >= cost(a)  # what /api/metrics and /metrics count as used
        with pytest.raises(InsufficientMemoryError) as refused:
            await pool.acquire("b")
        # the 503 says what is left: the budget less what the written-off runtime still holds
        assert refused.value.available == {"vram": 0, "ram": budget - pool.stranded()[1]}
        assert "pinned models ((written off)) hold the rest" in refused.value.message  # and what holds it
    finally:
        pool.close()


async def test_a_model_still_loading_holds_its_memory_against_a_second_load(
    tiny_llama: Path, tiny_llama_gqa: Path
) -> None:
    """Two models asked for at once, with room for one: the second waits for the first, which is
    still reading its file, and does not load beside it (the budget would not hold both)."""
    a, b = spec("a", tiny_llama), spec("b", tiny_llama_gqa)
    gate = threading.Event()
    recipes = held_mid_load(gate, "a", [])
    budget = int(max(cost(a), cost(b)) * 1.5)
    pool = ModelPool([a, b], budget_vram=0, budget_ram=budget, recipe_for=recipes, load_wait=0.5)
    try:
        first = asyncio.ensure_future(pool.acquire("a"))
        await until_loading(pool, "a")  # "a" holds its reservation and is reading its file
        with pytest.raises(InsufficientMemoryError) as refused:
            await pool.acquire("b")
        assert "waited" in refused.value.message
        assert state(pool, "b") == "unloaded"
        gate.set()
        (await asyncio.wait_for(first, 30)).release()
        assert state(pool, "a") == "loaded"
    finally:
        gate.set()
        pool.close()


async def test_a_reconfigured_budget_applies_and_an_omitted_one_stays(tiny_llama: Path) -> None:
    """Settings that change the memory budgets reach the pool through `reconfigure`; a call that
    changes only the model list keeps the budgets it had."""
    a = spec("a", tiny_llama)

    def on_gpu(s: ModelSpec) -> loaders.LoadRecipe:  # the accounting of a model offloaded to a GPU
        r = loaders.recipe(s, gpu_offload=False)
        return dataclasses.replace(r, estimate=dataclasses.replace(r.estimate, vram_bytes=GB))

    pool = ModelPool([a], budget_vram=GB // 2, budget_ram=64 * GB, recipe_for=on_gpu)
    try:
        with pytest.raises(InsufficientMemoryError):
            await pool.acquire("a")
        pool.reconfigure([a], budget_vram=2 * GB, budget_ram=32 * GB)
        assert (pool.budget_vram, pool.budget_ram) == (2 * GB, 32 * GB)
        pool.reconfigure([a])
        assert (pool.budget_vram, pool.budget_ram) == (2 * GB, 32 * GB)
        async with pool.lease("a"):
            assert state(pool, "a") == "loaded"
    finally:
        pool.close()


async def test_a_load_that_ends_after_the_pool_closed_is_closed_and_its_caller_told(tiny_llama: Path) -> None:
    """Shutting down mid-load: the runtime the load makes is closed (its memory freed), never
    installed in a pool that has stopped, and the request waiting on it hears why."""
    from claracore.errors import EngineClosedError

    gate = threading.Event()
    made: list[Any] = []
    pool = ModelPool(
        [spec("a", tiny_llama)], budget_vram=0, budget_ram=64 * GB, recipe_for=held_mid_load(gate, "a", made)
    )
    try:
        waiting = asyncio.ensure_future(pool.acquire("a"))
        await until_loading(pool, "a")
        pool.close()
        gate.set()
        with pytest.raises(EngineClosedError):
            await asyncio.wait_for(waiting, 30)
        assert len(made) == 1 and made[0]._closing
        assert state(pool, "a") != "loaded"
    finally:
        gate.set()
        pool.close()
