"""The monitor's figures from the events it observes: per-model counts, speeds and percentiles,
loads and evictions, download bytes, and the Prometheus text they become."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from claracore.events import EventBus
from claracore.monitor import Monitor
from claracore.monitor.figures import RECENT, percentile
from tests.unit.test_pool import make_pool, spec


@pytest.fixture
def monitor(tiny_llama: Path) -> Iterator[Monitor]:
    bus = EventBus()
    pool, _ = make_pool([spec("a", tiny_llama, aliases=["alias"]), spec("b", tiny_llama)], events=bus)
    monitor = Monitor(bus, pool, metrics_interval=0)
    try:
        yield monitor
    finally:
        monitor.close()
        pool.close()


def request(model: str, **data: Any) -> dict[str, Any]:
    return {
        "id": "x",
        "time": "2025-01-01T00:00:00.000Z",
        "route": "POST /v1/chat/completions",
        "model": model,
        "client": None,
        "stream": False,
        "promptTokens": 10,
        "completionTokens": 11,
        "cachedTokens": 0,
        "ttft": 0.5,
        "duration": 1.5,
        "tokensPerSecond": 10.0,
        "status": 200,
        "errorCode": None,
        **data,
    }


def prometheus(monitor: Monitor) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = monitor.prometheus.text().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_requests_add_up_per_model_and_speeds_come_from_those_that_made_tokens(monitor: Monitor) -> None:
    bus = monitor.bus
    bus.publish("request", request("a", ttft=0.2, duration=1.2, promptTokens=40, cachedTokens=20))
    bus.publish("request", request("a", ttft=0.6, duration=2.6, completionTokens=21))
    bus.publish(
        "request", request("a", status=503, errorCode="MODEL_UNAVAILABLE", ttft=None, completionTokens=0)
    )
    bus.publish("request", request("nope", status=404, errorCode="MODEL_NOT_FOUND"))
    figures = {m["id"]: m for m in monitor.metrics()["models"]["items"]}
    a = figures["a"]
    assert (a["requests"], a["errors"]) == (3, 1)
    assert (a["promptTokens"], a["completionTokens"], a["cachedTokens"]) == (60, 32, 20)
    # prompt: (40-20 + 10) tokens over 0.2 + 0.6 s; generation: (10 + 20) tokens over 1.0 + 2.0 s
    assert a["promptTokensPerSecond"] == pytest.approx(30 / 0.8)
    assert a["generationTokensPerSecond"] == pytest.approx(30 / 3.0)
    assert a["ttft"] == {"p50": 0.2, "p95": 0.6}
    assert a["lastUsed"] is not None and figures["b"]["requests"] == 0 and figures["b"]["lastUsed"] is None
    samples = prometheus(monitor)
    chat = ("route", "POST /v1/chat/completions")
    assert samples[("claracore_requests_total", (("model", "a"), chat, ("status", "200")))] == 2
    assert samples[("claracore_requests_total", (("model", "a"), chat, ("status", "503")))] == 1
    assert samples[("claracore_requests_total", (("model", ""), chat, ("status", "404")))] == 1
    assert samples[("claracore_completion_tokens_total", (("model", "a"),))] == 32
    assert samples[("claracore_time_to_first_token_seconds_count", (("model", "a"),))] == 2
    assert not any(labels == (("model", "nope"),) for _, labels in samples)  # no label per unknown name
    for _ in range(RECENT):  # a burst of refusals does not push the timed requests out of the window
        bus.publish("request", request("a", status=503, errorCode="MODEL_UNAVAILABLE", ttft=None))
    assert monitor.metrics()["models"]["items"][0]["ttft"] == {"p50": 0.2, "p95": 0.6}


def test_a_python_callers_request_has_ok_or_error_for_status(monitor: Monitor) -> None:
    monitor.bus.publish("request", request("a", route="chat", status=None))
    monitor.bus.publish("request", request("a", route="chat", status=None, errorCode="CANCELLED"))
    samples = prometheus(monitor)
    assert samples[("claracore_requests_total", (("model", "a"), ("route", "chat"), ("status", "ok")))] == 1
    assert (
        samples[("claracore_requests_total", (("model", "a"), ("route", "chat"), ("status", "error")))] == 1
    )


def test_loads_evictions_and_load_progress_come_from_model_events(monitor: Monitor) -> None:
    bus = monitor.bus
    bus.publish("model", {"model": "a", "state": "loading", "progress": 0.0})
    bus.publish("model", {"model": "a", "state": "loading", "progress": 0.4})
    assert monitor.load_progress() == {"a": 0.4}
    bus.publish("model", {"model": "a", "state": "loaded", "seconds": 0.25})
    bus.publish("model", {"model": "a", "state": "evicted", "by": "b"})
    bus.publish("model", {"model": "b", "state": "failed", "error": "corrupt"})
    bus.publish("model", {"model": "b", "state": "unloaded", "error": "not enough memory"})
    assert monitor.load_progress() == {}
    figures = {m["id"]: m for m in monitor.metrics()["models"]["items"]}
    assert (figures["a"]["loads"], figures["a"]["loadSeconds"], figures["a"]["evictions"]) == (1, 0.25, 1)
    assert figures["b"]["loadFailures"] == 2
    samples = prometheus(monitor)
    assert samples[("claracore_model_loads_total", (("model", "b"), ("outcome", "failed")))] == 2
    assert samples[("claracore_model_evictions_total", (("model", "a"),))] == 1
    assert samples[("claracore_model_load_seconds_sum", (("model", "a"),))] == 0.25


def test_download_bytes_count_each_byte_once(monitor: Monitor) -> None:
    bus = monitor.bus

    def download(event: str, key: str, done: int, state: str = "downloading") -> None:
        bus.publish("download", {"event": event, "id": key, "state": state, "bytesDone": done})

    download("created", "d1", 0, "queued")
    download("progress", "d1", 100)
    download("state", "d2", 5000)  # resumed from disk: those bytes came before this process
    download("progress", "d2", 5050)
    download("progress", "d1", 600)
    download("state", "d1", 600, "paused")
    download("progress", "d1", 0)  # started again from scratch (the server ignored the range)
    download("progress", "d1", 1000)
    download("removed", "d1", 1000, "completed")
    download("created", "d1", 0, "queued")  # a new download may reuse nothing of the old count
    download("progress", "d1", 10)
    assert prometheus(monitor)[("claracore_download_bytes_total", ())] == 100 + 50 + 500 + 1000 + 10


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0], 95) == 1.0
    ordered = [float(i) for i in range(1, 101)]
    assert (percentile(ordered, 50), percentile(ordered, 95), percentile(ordered, 100)) == (50.0, 95.0, 100.0)
