"""`Monitor`: what the engine knows about itself, from the events it publishes.

It observes the bus (synchronously, so no count is ever lost to a full queue): "request" events
feed the per-model figures and the Prometheus counters, "model" events count loads and evictions,
"download" events the bytes downloaded. It owns the log handler that puts logging onto the bus, and a
thread that publishes a "metrics" event every `metrics_interval` seconds. `metrics()` is the
answer of `GET /api/metrics`: the spec's cpu/memory/gpu/models plus the figures of every model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from claracore.errors import ModelNotFoundError
from claracore.events import Event, EventBus
from claracore.hardware.usage import UsageSampler
from claracore.monitor.figures import Figures
from claracore.monitor.logs import BusLogHandler
from claracore.monitor.prometheus import PoolState, PrometheusMetrics
from claracore.monitor.records import RequestRecord, current, iso_time
from claracore.pool.pool import ModelPool, ModelStatus
from claracore.runtime.base import PromptCacheStats

log = logging.getLogger(__name__)


class Monitor:
    """The engine's figures, logs on the bus, periodic metrics; `close()` undoes `start()`."""

    def __init__(self, bus: EventBus, pool: ModelPool, *, metrics_interval: float = 5.0) -> None:
        self.bus = bus
        self._pool = pool
        self.figures = Figures()
        self.prometheus = PrometheusMetrics(
            PoolState(
                pool.status,
                lambda: (pool.budget_vram, pool.budget_ram),
                lambda: bus.subscribers,
                pool.stranded,
            )
        )
        self.logs = BusLogHandler(bus)
        self._usage = UsageSampler()
        self._interval = metrics_interval
        self._lock = threading.Lock()
        self._download_bytes: dict[str, int] = {}  # bytes each download had at its last event
        self._loading: dict[str, float] = {}  # the load progress of each model loading now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unobserve = bus.observe(self._observe)

    def start(self) -> None:
        """Put logging onto the bus and start the periodic "metrics" events (idempotent)."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self.logs.install()
            if self._interval > 0:
                self._thread = threading.Thread(target=self._tick, name="claracore-metrics", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Stop the metrics thread, take logging off the bus, stop observing it, close NVML."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        self.logs.uninstall()
        self._unobserve()
        self._usage.close()

    def _tick(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.bus.publish("metrics", self.metrics())
            except Exception:  # a failed sample must not end the series
                log.exception("sampling the metrics failed")

    # ------------------------------------------------------------ requests

    def request(self, route: str) -> RequestRecord:
        """The record of the request being served: the HTTP layer's, or a new one the engine owns
        (and publishes in `finish`) for a Python caller; `route` names the engine method then."""
        record = current()
        return record if record is not None else RequestRecord(route=route, owned=True)

    def name(self, record: RequestRecord, model: str) -> None:
        """Set the record's model: the configured name when `model` names one (maybe by alias)."""
        try:
            record.model = self._pool.resolve(model)
        except ModelNotFoundError:
            record.model = model  # as asked for: the activity row shows what the client sent

    def track(self, route: str, model: str, *, stream: bool = False) -> RequestRecord:
        """`request(route)` with its model named and whether it streams."""
        record = self.request(route)
        self.name(record, model)
        record.stream = stream
        return record

    @asynccontextmanager
    async def tracked(self, route: str, model: str) -> AsyncIterator[RequestRecord]:
        """`track` for work that ends with the block: `finish` runs on the way out, with its error."""
        record = self.track(route, model)
        try:
            yield record
        except BaseException as exc:
            self.finish(record, exc)
            raise
        self.finish(record)

    def finish(self, record: RequestRecord, error: BaseException | None = None) -> None:
        """The engine's part is done (`error` if it failed); publish when the engine owns it."""
        if error is not None and record.error_code is None:
            record.error_code = getattr(error, "code", None) or (
                "INTERNAL_ERROR" if isinstance(error, Exception) else "CANCELLED"
            )
        record.end()
        if record.owned:
            self.publish(record)

    def publish(self, record: RequestRecord) -> None:
        """Publish the "request" event once."""
        if record.published:
            return
        record.published = True
        record.end()
        self.bus.publish("request", dict(record.event()))

    def http(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request of any route, for the Prometheus per-route counters."""
        self.prometheus.http(method, route, status, seconds)

    # ------------------------------------------------------------ the bus

    def _observe(self, event: Event) -> None:
        data = event.data
        if event.type == "request":
            model = str(data.get("model") or "")
            configured = model if model and self._configured(model) else ""
            self.prometheus.request(data, configured)
            if configured:
                self.figures.request(configured, data, event.time)
        elif event.type == "model":
            self._model_event(str(data.get("model")), data)
        elif event.type == "download":
            self._download_event(data)

    def _configured(self, name: str) -> bool:
        try:
            return self._pool.resolve(name) == name
        except ModelNotFoundError:
            return False

    def _model_event(self, model: str, data: dict[str, Any]) -> None:
        state = data.get("state")
        with self._lock:
            if state == "loading":
                self._loading[model] = float(data.get("progress") or 0.0)
            else:
                self._loading.pop(model, None)
        if state == "loaded":
            seconds = data.get("seconds")
            self.figures.loaded(model, seconds)
            self.prometheus.loads.labels(model, "loaded").inc()
            if seconds is not None:
                self.prometheus.load_seconds.labels(model).observe(float(seconds))
        elif state == "failed" or (state == "unloaded" and data.get("error")):
            self.figures.load_failed(model)
            self.prometheus.loads.labels(model, "failed").inc()
        elif state == "evicted":
            self.figures.evicted(model)
            self.prometheus.evictions.labels(model).inc()

    def _download_event(self, data: dict[str, Any]) -> None:
        """Count the bytes a download gained since its last event (its `bytesDone`, see
        `protocol.downloads.DownloadStatus`); bytes a resumed download had on disk before this
        process saw it are not counted, and one started again from zero counts anew."""
        key = str(data.get("id", ""))
        done = data.get("bytesDone")
        with self._lock:
            if data.get("event") == "removed":
                self._download_bytes.pop(key, None)
                return
            if not isinstance(done, int):
                return
            before = self._download_bytes.get(key, done)
            if done > before:
                self.prometheus.download_bytes.inc(done - before)
            self._download_bytes[key] = done

    def load_progress(self) -> dict[str, float]:
        """Each loading model's progress (0 to 1), as its last "model" event said."""
        with self._lock:
            return dict(self._loading)

    # ------------------------------------------------------------ GET /api/metrics

    def metrics(self) -> dict[str, Any]:
        """The spec's `cpu`, `memory`, `gpu` and `models` ({loaded, total}, plus `items`: each
        model's figures), and the pool's memory against its budget, in bytes."""
        models = self._pool.status()
        held = [m.estimate for m in models if m.state in ("loaded", "loading") and m.estimate is not None]
        stranded_vram, stranded_ram = self._pool.stranded()  # written-off runtimes' memory
        return {
            **self._usage.sample(),
            "models": {
                "loaded": sum(1 for m in models if m.state == "loaded"),
                "total": len(models),
                "items": [self._model(m) for m in models],
            },
            "pool": {
                "vram": {
                    "used": sum(e.vram_bytes for e in held) + stranded_vram,
                    "budget": self._pool.budget_vram,
                },
                "ram": {
                    "used": sum(e.ram_bytes for e in held) + stranded_ram,
                    "budget": self._pool.budget_ram,
                },
            },
            "events": {"subscribers": self.bus.subscribers},
        }

    def _model(self, s: ModelStatus) -> dict[str, Any]:
        figures = self.figures.view(s.name)
        last = figures.pop("lastUsed")
        occupancy = s.occupancy
        return {
            "id": s.name,
            "type": s.kind,
            "state": s.state,
            "inFlight": s.in_flight,
            "slots": occupancy.slots if occupancy else None,
            "activeSlots": occupancy.busy if occupancy else None,
            "queued": occupancy.queued if occupancy else None,
            "memory": {
                "estimate": _bytes(s.estimate.vram_bytes, s.estimate.ram_bytes) if s.estimate else None,
                "measured": _bytes(*s.measured) if s.measured else None,
                # an LLM's host-memory prompt cache: part of the estimate (what the pool reserves),
                # not of what llama.cpp allocated at load; it fills up to its limit as chats end
                "promptCache": _cache(s.prompt_cache) if s.prompt_cache else None,
            },
            **figures,
            "lastUsed": None if last is None else iso_time(last),
        }


def _cache(stats: PromptCacheStats) -> dict[str, int]:
    s = stats
    return {"limitBytes": s.limit_bytes, "bytes": s.bytes, "entries": s.entries, "hits": s.hits}


def _bytes(vram: int, ram: int) -> dict[str, int]:
    return {"vramBytes": vram, "ramBytes": ram}
