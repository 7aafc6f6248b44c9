"""`GET /metrics`: ClaraCore's figures in Prometheus's text format, through prometheus-client.

Counters and histograms are updated as things happen (requests from the "request" events and the
HTTP layer, loads and evictions from the "model" events, bytes from the "download" events); what
is a state rather than a count (loaded models, queue depth, slots, pool memory) is read from the
pool when the scrape comes. Each monitor has its own registry: no module-global metrics, so two
engines in one process (as in the tests) never share counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from claracore.pool.pool import ModelStatus
from claracore.runtime.base import PromptCacheStats

#: Prometheus's text format, version 0.0.4 (what `generate_latest` writes).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)
_LOAD = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class PoolState:
    """What the gauges read at scrape time: the models, the budget, the live subscribers."""

    def __init__(
        self,
        models: Callable[[], list[ModelStatus]],
        budget: Callable[[], tuple[int, int]],
        subscribers: Callable[[], int],
        stranded: Callable[[], tuple[int, int]] = lambda: (0, 0),
    ) -> None:
        self.models, self.budget, self.subscribers = models, budget, subscribers
        self.stranded = stranded  # (VRAM, RAM) runtimes written off still hold


class _Gauges(Collector):
    def __init__(self, state: PoolState) -> None:
        self._state = state

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        models = self._state.models()
        budget_vram, budget_ram = self._state.budget()
        loaded = [m for m in models if m.state == "loaded"]
        yield GaugeMetricFamily("claracore_models_loaded", "Models resident in memory", value=len(loaded))
        yield GaugeMetricFamily("claracore_models_configured", "Models in the config", value=len(models))
        per_model = {
            "queue_depth": ("Requests waiting for a slot", lambda m: m.occupancy.queued),
            "active_slots": ("Slots decoding a request", lambda m: m.occupancy.busy),
            "slots": ("Slots (parallel sequences)", lambda m: m.occupancy.slots),
        }
        for suffix, (doc, read) in per_model.items():
            family = GaugeMetricFamily(f"claracore_model_{suffix}", doc, labels=["model"])
            for m in models:
                if m.occupancy is not None:
                    family.add_metric([m.name], read(m))
            yield family
        in_flight = GaugeMetricFamily(
            "claracore_model_in_flight", "Requests holding the model", labels=["model"]
        )
        for m in models:
            in_flight.add_metric([m.name], m.in_flight)
        yield in_flight
        yield from _prompt_caches(models)
        held = [m.estimate for m in models if m.state in ("loaded", "loading") and m.estimate is not None]
        used = GaugeMetricFamily(
            "claracore_pool_memory_used_bytes", "Memory the pool has reserved", labels=["device"]
        )
        stranded_vram, stranded_ram = self._state.stranded()
        used.add_metric(["vram"], sum(e.vram_bytes for e in held) + stranded_vram)
        used.add_metric(["ram"], sum(e.ram_bytes for e in held) + stranded_ram)
        yield used
        budget = GaugeMetricFamily(
            "claracore_pool_memory_budget_bytes", "Memory the pool may fill", labels=["device"]
        )
        budget.add_metric(["vram"], budget_vram)
        budget.add_metric(["ram"], budget_ram)
        yield budget
        yield GaugeMetricFamily(
            "claracore_event_subscribers",
            "Live subscribers of the event bus",
            value=self._state.subscribers(),
        )


#: Each prompt-cache figure: its name, help text, whether it is a counter, and how to read it.
_CACHE_FIGURES: tuple[tuple[str, str, bool, Callable[[PromptCacheStats], int]], ...] = (
    ("bytes", "Bytes the prompt cache holds", False, lambda c: c.bytes),
    ("limit_bytes", "Bytes the prompt cache may hold", False, lambda c: c.limit_bytes),
    ("entries", "Sequences the prompt cache holds", False, lambda c: c.entries),
    ("lookups", "Jobs placed while the prompt cache was on", True, lambda c: c.lookups),
    ("hits", "Jobs that had a cached sequence restored into their slot", True, lambda c: c.hits),
    ("restored_tokens", "Prompt tokens restored instead of decoded", True, lambda c: c.restored_tokens),
    ("saves", "Sequences saved into the cache", True, lambda c: c.saves),
    ("failures", "Cached states llama.cpp refused to take back", True, lambda c: c.failures),
)


def _prompt_caches(models: list[ModelStatus]) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """Each loaded LLM's host prompt cache: its size now, and what it saved since the model loaded
    (counters that start again at a reload, which Prometheus's rate() reads as a reset)."""
    cached = [(m.name, m.prompt_cache) for m in models if m.prompt_cache is not None]
    for suffix, doc, counts, read in _CACHE_FIGURES:
        kind = CounterMetricFamily if counts else GaugeMetricFamily
        family = kind(f"claracore_prompt_cache_{suffix}", doc, labels=["model"])
        for name, cache in cached:
            family.add_metric([name], read(cache))
        yield family


class PrometheusMetrics:
    """The registry and the counters and histograms the monitor updates."""

    def __init__(self, state: PoolState) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "claracore_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "claracore_http_request_duration_seconds",
            "HTTP request duration, to the last byte sent",
            ["method", "route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.requests = Counter(
            "claracore_requests",
            "Inference requests by route, model and status",
            ["route", "model", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "claracore_request_duration_seconds",
            "Inference request duration by route and model",
            ["route", "model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.ttft = Histogram(
            "claracore_time_to_first_token_seconds",
            "Time to the first generated token",
            ["model"],
            buckets=_TTFT,
            registry=r,
        )
        self.prompt_tokens = Counter("claracore_prompt_tokens", "Prompt tokens read", ["model"], registry=r)
        self.completion_tokens = Counter(
            "claracore_completion_tokens", "Tokens generated", ["model"], registry=r
        )
        self.cached_tokens = Counter(
            "claracore_cached_prompt_tokens", "Prompt tokens taken from the KV cache", ["model"], registry=r
        )
        self.loads = Counter(
            "claracore_model_loads", "Model loads by outcome", ["model", "outcome"], registry=r
        )
        self.load_seconds = Histogram(
            "claracore_model_load_seconds", "Time to load a model", ["model"], buckets=_LOAD, registry=r
        )
        self.evictions = Counter(
            "claracore_model_evictions", "Models evicted to make room", ["model"], registry=r
        )
        self.download_bytes = Counter("claracore_download_bytes", "Bytes downloaded", registry=r)
        r.register(_Gauges(state))

    def request(self, data: dict[str, Any], model: str) -> None:
        """One finished inference request; `model` is "" when it named no configured model."""
        status = data.get("status")
        label = str(status) if status is not None else ("error" if data.get("errorCode") else "ok")
        route = data.get("route") or ""
        self.requests.labels(route, model, label).inc()
        self.request_seconds.labels(route, model).observe(float(data.get("duration") or 0.0))
        if not model:
            return
        self.prompt_tokens.labels(model).inc(int(data.get("promptTokens") or 0))
        self.completion_tokens.labels(model).inc(int(data.get("completionTokens") or 0))
        self.cached_tokens.labels(model).inc(int(data.get("cachedTokens") or 0))
        if data.get("ttft") is not None:
            self.ttft.labels(model).observe(float(data["ttft"]))

    def http(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_seconds.labels(method, route).observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)
