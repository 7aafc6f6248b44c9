"""Stored activity and log lines on a real SQLite file: what the bus publishes is readable at once,
kept within its caps and retention, and filtered as the query asks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claracore.config import Monitoring
from claracore.events import EventBus
from claracore.manage.activity import ActivityLog, matches
from claracore.manage.store import Store
from claracore.monitor.records import iso_time
from claracore.protocol.monitor import ActivityQuery, LogsQuery, parse_since
from tests.unit.test_monitor import request


@pytest.fixture
def limits() -> Monitoring:
    return Monitoring(activity_rows=5, log_lines=4, retention_days=1)


@pytest.fixture
def stored(tmp_path: Path, limits: Monitoring) -> Iterator[tuple[EventBus, ActivityLog]]:
    bus, store = EventBus(), Store(tmp_path / "claracore.db")
    activity = ActivityLog(store, bus, lambda: limits)
    activity.start()
    try:
        yield bus, activity
    finally:
        activity.close()
        store.close()


def publish_requests(bus: EventBus, n: int, **data: Any) -> None:
    for i in range(n):
        bus.publish(
            "request", request(data.pop("model", "a"), id=f"r{i}", time=iso_time(time.time() + i), **data)
        )


def test_a_published_request_is_listed_at_once_and_the_cap_keeps_the_newest(
    stored: tuple[EventBus, ActivityLog],
) -> None:
    bus, activity = stored
    publish_requests(bus, 8)
    page = activity.requests(ActivityQuery())  # no wait: reading writes what is pending first
    assert page["total"] == 5 and [r["id"] for r in page["items"]] == ["r7", "r6", "r5", "r4", "r3"]
    assert page["items"][0] == {**request("a", id="r7", time=page["items"][0]["time"])}


def test_retention_drops_old_rows(stored: tuple[EventBus, ActivityLog]) -> None:
    bus, activity = stored
    bus.publish("request", request("a", id="old", time=iso_time(time.time() - 3 * 86400)))
    bus.publish("request", request("a", id="new", time=iso_time(time.time())))
    assert [r["id"] for r in activity.requests(ActivityQuery())["items"]] == ["new"]


def test_filters_and_pages(stored: tuple[EventBus, ActivityLog]) -> None:
    bus, activity = stored
    now = time.time()
    bus.publish("request", request("a", id="1", time=iso_time(now - 30)))
    bus.publish(
        "request", request("b", id="2", time=iso_time(now - 20), status=404, errorCode="MODEL_NOT_FOUND")
    )
    bus.publish("request", request("a", id="3", time=iso_time(now - 10), status=None, errorCode="CANCELLED"))
    bus.publish("request", request("a", id="4", time=iso_time(now), route="chat", status=None))

    def ids(**query: Any) -> list[str]:
        return [r["id"] for r in activity.requests(ActivityQuery(**query))["items"]]

    assert ids() == ["4", "3", "2", "1"]
    assert ids(model="a") == ["4", "3", "1"] and ids(route="chat") == ["4"]
    assert ids(status="ok") == ["4", "1"] and ids(status="error") == ["3", "2"] and ids(status="404") == ["2"]
    assert ids(since=iso_time(now - 15)) == ["4", "3"]
    assert ids(pageSize=3, page=2) == ["1"] and ids(pageSize=3, page=3) == []
    assert activity.requests(ActivityQuery(pageSize=3, page=9)) | {"items": []} == {
        "items": [],
        "page": 9,
        "pageSize": 3,
        "total": 4,
        "pages": 2,
    }


def test_log_lines_are_capped_and_filtered(stored: tuple[EventBus, ActivityLog]) -> None:
    bus, activity = stored
    lines = [
        ("debug", "claracore", "a debug line"),
        ("info", "llama.cpp", "llama info"),
        ("warning", "claracore", "a Warning"),
        ("error", "llama.cpp", "llama error"),
        ("warning", "uvicorn", "server warning"),
    ]
    for level, source, message in lines:
        bus.publish(
            "log",
            {
                "time": iso_time(time.time()),
                "level": level,
                "source": source,
                "logger": source,
                "message": message,
            },
        )

    def got(**query: Any) -> list[str]:
        return [x["message"] for x in activity.lines(LogsQuery(**query))]

    assert got() == ["llama info", "a Warning", "llama error", "server warning"]  # capped at 4, oldest first
    assert got(level="warning") == ["a Warning", "llama error", "server warning"]
    assert got(source="llama.cpp") == ["llama info", "llama error"]
    assert got(source="claracore, uvicorn", q="WARN") == ["a Warning", "server warning"]
    assert got(limit=2) == ["llama error", "server warning"]
    assert activity.lines(LogsQuery(limit=1))[0] == {
        "time": activity.lines(LogsQuery(limit=1))[0]["time"],
        "level": "warning",
        "source": "uvicorn",
        "logger": "uvicorn",
        "message": "server warning",
    }


def test_a_live_line_matches_as_a_stored_one_would() -> None:
    line = {
        "time": "2025-01-01T00:00:10.000Z",
        "level": "warning",
        "source": "llama.cpp",
        "message": "KV full",
    }
    assert matches(LogsQuery(level="warning", source="llama.cpp", q="kv"), line)
    assert not matches(LogsQuery(level="error"), line)
    assert not matches(LogsQuery(source="claracore"), line)
    assert not matches(LogsQuery(q="nothing"), line)
    assert not matches(LogsQuery(since="2025-01-01T00:00:11Z"), line)


def test_times_are_unix_seconds_or_iso_8601() -> None:
    assert (
        parse_since("1735689600") == parse_since("2025-01-01T00:00:00Z") == parse_since("2025-01-01T00:00:00")
    )
    assert parse_since("2025-01-01T01:00:00+01:00") == 1735689600.0
    assert parse_since(None) is None and parse_since("") is None
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_since("yesterday")


def test_caps_of_zero_keep_nothing(tmp_path: Path) -> None:
    bus, store = EventBus(), Store(tmp_path / "claracore.db")
    activity = ActivityLog(store, bus, lambda: Monitoring(activity_rows=0, log_lines=0))
    activity.start()
    try:
        publish_requests(bus, 2)
        bus.publish("log", {"level": "error", "source": "claracore", "logger": "x", "message": "m"})
        assert activity.requests(ActivityQuery())["total"] == 0 and activity.lines(LogsQuery()) == []
    finally:
        activity.close()
        store.close()
