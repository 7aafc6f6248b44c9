"""The model pool: which models are resident, leases, single-flight loads, eviction and TTL.

A lease pins a model while a request uses it, so eviction (a pure policy over a snapshot, see
`policy.py`) never takes a model with work in flight. Loads run in their own thread, one per
model however many callers wait, and the asyncio side only awaits a future, so the pool works
from any event loop and from plain threads alike. All state sits behind one lock.

Every change of a model's state is published on the event bus as it happens (type "model", see
`protocol.events.ModelEvent`): loading with llama.cpp's progress, loaded with the memory llama.cpp
reported, evicted and why, unloading, unloaded, failed with the reason.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

from claracore.config import ModelSpec
from claracore.errors import (
    ClaraCoreError,
    EngineClosedError,
    InsufficientMemoryError,
    ModelLoadError,
    ModelNotFoundError,
    ModelUnavailableError,
)
from claracore.events import EventBus
from claracore.modelfile.estimate import MemoryEstimate
from claracore.pool.entries import Entry, Lease, ModelStatus, file_stat, memory_figures
from claracore.pool.loaders import LoadRecipe
from claracore.pool.policy import Resident, choose_evictions
from claracore.priority import ThreadStarter
from claracore.protocol.events import ModelEvent, ModelState
from claracore.runtime.base import Batching, Failing, PromptCaching, Runtime
from claracore.runtime.loading import LoadWatch, watching

log = logging.getLogger(__name__)

RecipeFor = Callable[[ModelSpec], LoadRecipe]


class ModelPool:
    """Loads models on demand and keeps as many resident as the memory budget allows."""

    def __init__(
        self,
        specs: list[ModelSpec],
        *,
        budget_vram: int,
        budget_ram: int,
        recipe_for: RecipeFor,
        load_wait: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        ttl_interval: float = 1.0,
        events: EventBus | None = None,
    ) -> None:
        self.events = events if events is not None else EventBus()
        self.budget_vram = budget_vram
        self.budget_ram = budget_ram
        self._recipe_for = recipe_for
        self._load_wait = load_wait
        self._clock = clock
        self._cv = threading.Condition()
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}
        for spec in specs:
            self._entries[spec.name] = Entry(spec)
            for alias in spec.aliases:
                self._aliases[alias] = spec.name
        self._retiring: list[Entry] = []  # replaced definitions still serving their last requests
        self._stranded: list[MemoryEstimate] = []  # of runtimes written off: llama.cpp still holds it
        self._closed = False
        self._reaper = threading.Thread(target=self._reap, args=(ttl_interval,), name="pool-ttl", daemon=True)
        self._reaper.start()
        # Loads (and the decode threads they start) get the priority of whoever built the pool,
        # not that of the thread asking for a model: the server's event loop may run lowered.
        self._starter = ThreadStarter("pool-loads")

    # ------------------------------------------------------------ lookups

    def resolve(self, name: str) -> str:
        """The model's canonical name; raises ModelNotFoundError listing what exists."""
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise ModelNotFoundError(name, list(self._entries))

    def of_kind(self, kind: str) -> list[ModelSpec]:
        """The configured models of one type, in config order."""
        return [e.spec for e in self._entries.values() if e.kind == kind]

    def kind(self, name: str) -> str:
        """The model's type (llm, embedding, ...), known without loading it."""
        return self._entries[self.resolve(name)].kind

    def spec(self, name: str) -> ModelSpec:
        return self._entries[self.resolve(name)].spec

    def status(self) -> list[ModelStatus]:
        """Every model; those not resident carry the estimate a load would budget for."""
        with self._cv:
            missing = [e for e in self._entries.values() if e.facts is None and e.expected is None]
        for e in missing:  # metadata reads (milliseconds each), outside the lock, cached
            try:
                recipe = self._recipe_for(e.spec)
                e.expected, e.facts = recipe.estimate, recipe.facts
            except Exception as exc:  # a listing never fails: the load reports what is wrong
                log.debug("no estimate for %s: %s", e.spec.name, exc)
        with self._cv:
            return [self._status(e) for e in self._entries.values()]

    def _status(self, e: Entry) -> ModelStatus:
        return ModelStatus(
            name=e.spec.name,
            kind=e.kind,
            aliases=tuple(e.spec.aliases),
            state=e.state,
            error=e.error,
            estimate=e.estimate or e.expected,
            in_flight=e.in_flight,
            pinned=e.spec.pinned,
            prompt_cache=e.runtime.prompt_cache_stats() if isinstance(e.runtime, PromptCaching) else None,
            facts=e.facts,
            measured=e.measured if e.runtime is not None else None,
            occupancy=e.runtime.occupancy() if isinstance(e.runtime, Batching) else None,
        )

    def _announce(self, entry: Entry, state: ModelState, **extra: object) -> None:
        """Publish a "model" event (held under the lock where the state changes, so in order)."""
        event: ModelEvent = {"model": entry.spec.name, "type": entry.kind, "state": state}
        self.events.publish("model", {**event, **extra})

    # ------------------------------------------------------------ leases

    async def acquire(self, name: str) -> Lease:
        """Lease `name`, loading it first if needed (one load however many callers wait).

        Raises ModelNotFoundError, ModelLoadError, InsufficientMemoryError.
        """
        return await asyncio.wrap_future(self.acquire_future(name))

    @asynccontextmanager
    async def lease(self, name: str) -> AsyncIterator[Lease]:
        held = await self.acquire(name)
        try:
            yield held
        finally:
            held.release()

    def acquire_future(self, name: str) -> concurrent.futures.Future[Lease]:
        """The thread-side of `acquire`: a future that resolves to a lease."""
        key = self.resolve(name)
        result: concurrent.futures.Future[Lease] = concurrent.futures.Future()
        with self._cv:
            if self._closed:
                raise EngineClosedError("the engine is closed")
            entry = self._entries[key]
            if entry.state == "failed" and entry.failed_stat == file_stat(entry.spec.model):
                raise ModelLoadError(key, entry.error or "unknown error")
            entry.in_flight += 1  # counts while loading too, so nothing evicts it under us
            if entry.state == "loaded" and entry.runtime is not None:
                result.set_result(Lease(self, entry, entry.runtime))
                return result
            loading = self._start_load(entry)

        def done(fut: concurrent.futures.Future[Runtime]) -> None:
            exc = fut.exception()
            if exc is not None:
                self._release(entry)
                result.set_exception(exc)
            else:
                result.set_result(Lease(self, entry, fut.result()))

        loading.add_done_callback(done)
        return result

    def _release(self, entry: Entry) -> None:
        runtime = None
        with self._cv:
            entry.in_flight -= 1
            entry.last_used = self._clock()
            if entry.retired and entry.in_flight == 0 and entry.loading is None:
                runtime, entry.runtime, entry.estimate = entry.runtime, None, None
                self._retiring.remove(entry)
            self._cv.notify_all()
        if runtime is not None:  # its definition was changed or removed while it served
            log.info("unloading the retired definition of %s", entry.spec.name)
            runtime.close()
            self._announce(entry, "unloaded", reason="the config changed")

    def reconfigure(
        self, specs: list[ModelSpec], *, budget_vram: int | None = None, budget_ram: int | None = None
    ) -> dict[str, list[str]]:
        """Apply a new model list without stopping: unchanged models keep running, new ones load
        on first use, and changed or removed ones finish the requests they have on the old
        definition and then unload. Returns the names by outcome."""
        closing: list[tuple[Entry, Runtime]] = []
        report: dict[str, list[str]] = {"added": [], "changed": [], "removed": [], "kept": []}
        with self._cv:
            old, new = self._entries, {}
            for spec in specs:
                prev = old.get(spec.name)
                if prev is not None and prev.spec == spec:
                    new[spec.name] = prev
                    report["kept"].append(spec.name)
                else:
                    new[spec.name] = Entry(spec)
                    report["changed" if prev is not None else "added"].append(spec.name)
            for name, prev in old.items():
                if new.get(name) is prev:
                    continue
                if name not in new:
                    report["removed"].append(name)
                if prev.in_flight == 0 and prev.loading is None:
                    if prev.runtime is not None:
                        closing.append((prev, prev.runtime))
                else:
                    prev.retired = True
                    self._retiring.append(prev)
            self._entries = new
            self._aliases = {alias: spec.name for spec in specs for alias in spec.aliases}
            if budget_vram is not None:
                self.budget_vram = budget_vram
            if budget_ram is not None:
                self.budget_ram = budget_ram
            self._cv.notify_all()
        for prev, runtime in closing:
            self._announce(prev, "unloading", reason="the config changed")
            runtime.close()
            self._announce(prev, "unloaded", reason="the config changed")
        return report

    # ------------------------------------------------------------ loading and eviction

    def _start_load(self, entry: Entry) -> concurrent.futures.Future[Runtime]:
        """Called with the lock held: join the load in progress or start one."""
        if entry.loading is not None:
            return entry.loading
        entry.state, entry.error = "loading", None
        self._announce(entry, "loading", progress=0.0)
        fut: concurrent.futures.Future[Runtime] = concurrent.futures.Future()
        entry.loading = fut
        name = f"load:{entry.spec.name}"
        self._starter.start(threading.Thread(target=self._load, args=(entry, fut), name=name, daemon=True))
        return fut

    def _load(self, entry: Entry, fut: concurrent.futures.Future[Runtime]) -> None:
        name = entry.spec.name
        started = time.monotonic()
        watch = LoadWatch(on_progress=_Progress(self, entry))
        try:
            recipe = self._recipe_for(entry.spec)
            evicted = self._make_room(entry, recipe)
            for victim, runtime in evicted:
                log.info("evicting %s to make room for %s", victim.spec.name, name)
                runtime.close()
                self._announce(victim, "unloaded", reason=f"evicted to make room for {name}")
            with watching(watch):
                runtime = recipe.load()
        except BaseException as exc:
            with self._cv:
                entry.loading = None
                entry.estimate = None
                if isinstance(exc, InsufficientMemoryError | ModelUnavailableError):
                    entry.state = "unloaded"  # may fit (or a worker answer) later: not the file's fault
                    why = "not enough memory" if isinstance(exc, InsufficientMemoryError) else "unavailable"
                    self._announce(entry, "unloaded", reason=why, error=exc.message)
                else:
                    entry.state = "failed"
                    entry.error = exc.reason if isinstance(exc, ModelLoadError) else repr(exc)
                    entry.failed_stat = file_stat(entry.spec.model)
                    self._announce(entry, "failed", error=entry.error)
                self._cv.notify_all()
            log.warning("loading %s failed: %s", name, exc)
            if not isinstance(exc, ClaraCoreError):
                exc = ModelLoadError(name, repr(exc))
            fut.set_exception(exc)
            return
        seconds = time.monotonic() - started
        with self._cv:
            entry.loading = None
            closed = self._closed
            if not closed:
                entry.runtime, entry.state, entry.kind = runtime, "loaded", recipe.kind
                entry.measured = watch.measured()
                if isinstance(runtime, Failing):
                    runtime.on_failure(functools.partial(self._written_off, entry, runtime))
                if recipe.spare_ram and isinstance(runtime, PromptCaching):
                    runtime.set_prompt_cache_limit(entry.spare)  # under the lock: a shrink may race it
                self._announce(
                    entry,
                    "loaded",
                    seconds=round(seconds, 3),
                    memory={
                        **memory_figures(entry.estimate or recipe.estimate, entry.measured),
                        # the part of the estimate held for the prompt cache, not allocated at load
                        "promptCacheBytes": entry.spare + recipe.prompt_cache_bytes,
                    },
                )
        if closed:
            runtime.close()
            fut.set_exception(EngineClosedError("the engine closed while the model loaded"))
            return
        log.info("loaded %s (%s) in %.2fs, estimate %s", name, recipe.kind, seconds, recipe.estimate)
        fut.set_result(runtime)

    def _written_off(self, entry: Entry, runtime: Runtime, why: ClaraCoreError) -> None:
        """`runtime` stopped serving on its own (an RPC worker lost mid-request; any thread).

        Its requests have failed with `why`; the model goes back to unloaded with that reason, so
        the next request loads it again, which fails fast with `why`'s 503 until the cause is
        gone (or the config drops the worker). llama.cpp keeps its memory, so the budget does too.
        """
        with self._cv:
            if entry.runtime is not runtime:
                return
            if entry.estimate is not None:
                self._stranded.append(entry.estimate)
            entry.runtime, entry.state, entry.estimate, entry.spare = None, "unloaded", None, 0
            self._cv.notify_all()
        log.error("%s stopped serving: %s", entry.spec.name, why.message)
        self._announce(entry, "unloaded", reason="stopped serving", error=why.message)
        runtime.close()

    def stranded(self) -> tuple[int, int]:
        """(VRAM, RAM) of runtimes written off: llama.cpp holds it until the process ends."""
        with self._cv:
            return sum(m.vram_bytes for m in self._stranded), sum(m.ram_bytes for m in self._stranded)

    def _make_room(self, entry: Entry, recipe: LoadRecipe) -> list[tuple[Entry, Runtime]]:
        """Reserve the newcomer's memory, evicting idle models; waits while busy ones could free it."""
        need = recipe.estimate
        deadline = time.monotonic() + self._load_wait
        with self._cv:
            while True:
                residents = [
                    Resident(
                        e.spec.name,
                        e.estimate.vram_bytes,
                        e.estimate.ram_bytes,
                        e.in_flight,
                        e.spec.pinned or e.retired,  # a retired definition closes by itself
                        e.last_used,
                        0 if e.retired else e.spare,  # by name: a retired one may share its name
                    )
                    for e in [*self._entries.values(), *self._retiring]
                    if e is not entry and e.estimate is not None and e.state in ("loaded", "loading")
                ]
                # what written-off runtimes still hold: never evictable, never freed
                residents += [
                    Resident("(written off)", m.vram_bytes, m.ram_bytes, 0, True, 0.0, 0)
                    for m in self._stranded
                ]
                decision = choose_evictions(
                    residents, need.vram_bytes, need.ram_bytes, self.budget_vram, self.budget_ram
                )
                remaining = deadline - time.monotonic()
                if decision.fits:
                    break
                if not decision.fits_when_idle or remaining <= 0 or self._closed:
                    why = decision.why if remaining > 0 else f"{decision.why}; waited {self._load_wait:.0f}s"
                    if cache := recipe.prompt_cache_bytes:
                        why += f"; prompt_cache_mb reserves {cache >> 20} MiB of what it needs"
                    raise InsufficientMemoryError(
                        entry.spec.name,
                        {"vram": need.vram_bytes, "ram": need.ram_bytes},
                        self._available(exclude=entry),
                        why,
                    )
                self._cv.wait(min(remaining, 1.0))
            evicted: list[tuple[Entry, Runtime]] = []
            for victim_name in decision.evict:
                victim = self._entries[victim_name]
                if victim.runtime is not None:
                    evicted.append((victim, victim.runtime))
                victim.runtime, victim.state, victim.estimate = None, "unloaded", None
                self._announce(
                    victim, "evicted", reason=f"to make room for {entry.spec.name}", by=entry.spec.name
                )
            for name, keep in decision.shrink:
                self._shrink(self._entries[name], keep)
            entry.spare = min(recipe.spare_ram, decision.room_ram)
            entry.estimate = replace(need, ram_bytes=need.ram_bytes + entry.spare)
            return evicted

    def _shrink(self, e: Entry, keep: int) -> None:
        """Called with the lock held: take back all but `keep` bytes of a prompt cache's grant."""
        assert e.estimate is not None
        e.estimate = replace(e.estimate, ram_bytes=e.estimate.ram_bytes - (e.spare - keep))
        e.spare = keep
        if isinstance(e.runtime, PromptCaching):
            e.runtime.set_prompt_cache_limit(keep)
        log.info("prompt cache of %s shrunk to %d MiB to make room", e.spec.name, keep >> 20)

    def _available(self, *, exclude: Entry) -> dict[str, int]:
        """Free memory for `exclude`, counting prompt caches' grants as free: they are given back."""
        held = [e for e in [*self._entries.values(), *self._retiring] if e.estimate and e is not exclude]
        used_vram = sum(e.estimate.vram_bytes for e in held if e.estimate)
        used_ram = sum(e.estimate.ram_bytes - e.spare for e in held if e.estimate)
        used_vram += sum(m.vram_bytes for m in self._stranded)
        used_ram += sum(m.ram_bytes for m in self._stranded)
        return {"vram": max(0, self.budget_vram - used_vram), "ram": max(0, self.budget_ram - used_ram)}

    # ------------------------------------------------------------ explicit control

    async def load(self, name: str) -> None:
        """Load `name` now (a failed model is retried)."""
        key = self.resolve(name)
        with self._cv:
            entry = self._entries[key]
            if entry.state == "failed":
                entry.state, entry.failed_stat = "unloaded", None
        (await self.acquire(key)).release()

    async def unload(self, name: str) -> bool:
        """Unload `name` now; requests still using it fail with ModelUnavailableError."""
        key = self.resolve(name)
        return await asyncio.to_thread(self._unload, [key], reason="requested")

    async def unload_all(self) -> list[str]:
        """Unload every resident model; returns the names unloaded."""
        with self._cv:
            names = [n for n, e in self._entries.items() if e.runtime is not None]
        await asyncio.to_thread(self._unload, names, reason="requested")
        return names

    async def preload(self) -> None:
        """Load every model marked `preload`; failures are recorded on the model, not raised."""
        names = [n for n, e in self._entries.items() if e.spec.preload]
        results = await asyncio.gather(*(self.load(n) for n in names), return_exceptions=True)
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("preloading %s failed: %s", name, result)

    def _unload(self, names: list[str], *, reason: str, idle_only: bool = False) -> bool:
        """Close the runtimes of `names`; with `idle_only`, skip any a request has just leased."""
        closing: list[tuple[Entry, Runtime]] = []
        with self._cv:
            for key in names:
                entry = self._entries.get(key)
                if entry is None or (idle_only and entry.in_flight):
                    continue
                if entry.runtime is not None:
                    closing.append((entry, entry.runtime))
                    entry.runtime, entry.state, entry.estimate = None, "unloaded", None
                    self._announce(entry, "unloading", reason=reason)
            self._cv.notify_all()
        for entry, runtime in closing:
            runtime.close()
            self._announce(entry, "unloaded", reason=reason)
        return bool(closing)

    def _reap(self, interval: float) -> None:
        """The TTL thread: every `interval` seconds, unload what has been idle too long."""
        while True:
            with self._cv:
                if self._closed:
                    return
                self._cv.wait(interval)
                if self._closed:
                    return
            self.reap_idle()

    def reap_idle(self) -> list[str]:
        """Unload models idle (no request in flight) for at least their `ttl`; returns their names.

        Idle time runs from a model's last release, by the pool's clock.
        """
        with self._cv:
            now = self._clock()
            idle = [
                n
                for n, e in self._entries.items()
                if e.runtime is not None
                and e.in_flight == 0
                and e.spec.ttl
                and not e.spec.pinned
                and now - e.last_used >= e.spec.ttl
            ]
        if idle:
            log.info("unloading %s: idle past ttl", ", ".join(idle))
            self._unload(idle, reason="idle past its ttl", idle_only=True)  # one may have been leased since
        return idle

    def close(self) -> None:
        """Unload everything and stop the TTL thread. Later acquires raise EngineClosedError."""
        with self._cv:
            self._closed = True
            names = list(self._entries)
            self._cv.notify_all()
        self._unload(names, reason="shutting down")
        self._reaper.join(timeout=5)
        self._starter.close()


class _Progress:
    """Publishes a load's progress from llama.cpp's callback, once per percent (it calls per tensor)."""

    def __init__(self, pool: ModelPool, entry: Entry) -> None:
        self._pool, self._entry, self._percent = pool, entry, 0

    def __call__(self, fraction: float) -> None:
        percent = int(fraction * 100)
        if percent > self._percent:
            self._percent = percent
            self._pool._announce(self._entry, "loading", progress=percent / 100)
