"""Request activity and log lines kept in the store, taken from the event bus; their queries.

A writer thread drains a bus subscription every half second and inserts what came in one
transaction, then trims each table to its cap and its retention (`config.Monitoring`). A
reader first drains what is pending (`sync`), so a request that has finished is listed by the
next `GET /api/activity` however recently the writer woke. The subscription is large (and a
dropped event is counted and logged), because log lines can come in bursts: a model load with
`--log-level debug` writes hundreds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from claracore.config import Monitoring
from claracore.events import Event, EventBus, Subscription
from claracore.manage.store import Store
from claracore.monitor.records import iso_time
from claracore.protocol.monitor import ActivityQuery, LogsQuery, parse_since

log = logging.getLogger(__name__)

_FLUSH_EVERY = 0.5  # seconds
_QUEUE = 50_000  # events the writer may fall behind by before it drops the oldest
_ACTIVITY_COLUMNS = (
    "id, time, route, model, client, stream, prompt_tokens, completion_tokens, cached_tokens, "
    "ttft, duration, tokens_per_second, status, error_code"
)
_OK = "(error_code IS NULL AND (status IS NULL OR status < 400))"


def _level(name: str) -> int:
    value = logging.getLevelName(name.upper())
    return value if isinstance(value, int) else logging.INFO


class ActivityLog:
    """The stored requests and log lines of one store; `start()` follows the bus, `close()` stops.

    `limits` returns the caps in force (the running config's, so a soft restart changes them).
    """

    def __init__(self, store: Store, bus: EventBus, limits: Callable[[], Monitoring]) -> None:
        self._store = store
        self._bus = bus
        self._limits = limits
        self._lock = threading.Lock()  # one drain at a time, so rows go in in publication order
        self._sub: Subscription | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._sub = self._bus.subscribe(["request", "log"], maxsize=_QUEUE)
        self._thread = threading.Thread(target=self._run, name="claracore-activity", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop following the bus; what was published before is written first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sync()
        if self._sub is not None:
            self._sub.close()

    def _run(self) -> None:
        while not self._stop.wait(_FLUSH_EVERY):
            try:
                self.sync()
            except Exception:  # a full disk or a locked file: try again at the next flush
                log.exception("writing the activity log failed")

    def sync(self) -> None:
        """Write every event published so far (the writer does this twice a second)."""
        sub = self._sub
        if sub is None:
            return
        with self._lock:
            events = list(iter(sub.get_nowait, None))
            missed = sub.take_missed()
            if events:
                self._write(events)
        if missed:
            log.warning("the activity log fell behind and lost %d events", missed)

    def _write(self, events: list[Event]) -> None:
        requests = [_request_row(e.data) for e in events if e.type == "request"]
        lines = [_log_row(e) for e in events if e.type == "log"]
        limits = self._limits()
        with self._store.transaction() as db:
            if requests and limits.activity_rows:
                db.executemany(
                    f"INSERT OR REPLACE INTO activity ({_ACTIVITY_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    requests,
                )
            if lines and limits.log_lines:
                db.executemany(
                    "INSERT INTO logs (time, level, source, logger, message) VALUES (?, ?, ?, ?, ?)", lines
                )
            # Trim by rowid (it only grows), so the cap costs a range delete, not a sort.
            for table, cap in (("activity", limits.activity_rows), ("logs", limits.log_lines)):
                db.execute(f"DELETE FROM {table} WHERE rowid <= (SELECT MAX(rowid) FROM {table}) - ?", (cap,))
                if limits.retention_days:
                    db.execute(
                        f"DELETE FROM {table} WHERE time < ?", (time.time() - limits.retention_days * 86400,)
                    )

    # ------------------------------------------------------------ GET /api/activity

    def requests(self, query: ActivityQuery) -> dict[str, Any]:
        """One page of stored requests, newest first, with the total that match."""
        self.sync()
        where, params = _activity_filter(query)
        total = int(self._store.query(f"SELECT COUNT(*) FROM activity{where}", params)[0][0])
        rows = self._store.query(
            f"SELECT {_ACTIVITY_COLUMNS} FROM activity{where} "
            "ORDER BY time DESC, rowid DESC LIMIT ? OFFSET ?",
            [*params, query.pageSize, (query.page - 1) * query.pageSize],
        )
        return {
            "items": [_request_item(r) for r in rows],
            "page": query.page,
            "pageSize": query.pageSize,
            "total": total,
            "pages": -(-total // query.pageSize),
        }

    # ------------------------------------------------------------ GET /api/logs

    def lines(self, query: LogsQuery) -> list[dict[str, Any]]:
        """The newest `limit` stored lines that match, oldest first."""
        self.sync()
        clauses, params = _log_filter(query)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        rows = self._store.query(
            f"SELECT time, level, source, logger, message FROM logs{where} ORDER BY seq DESC LIMIT ?",
            [*params, query.limit],
        )
        return [
            {
                "time": iso_time(t),
                "level": logging.getLevelName(level).lower(),
                "source": source,
                "logger": logger,
                "message": message,
            }
            for t, level, source, logger, message in reversed(rows)
        ]


def matches(query: LogsQuery, line: dict[str, Any]) -> bool:
    """Whether a live "log" event passes the filters `lines` applies in SQL (for `?follow=`)."""
    if query.level and _level(str(line.get("level", "info"))) < _level(query.level):
        return False
    sources = query.sources()
    if sources and line.get("source") not in sources:
        return False
    if query.q and query.q.lower() not in str(line.get("message", "")).lower():
        return False
    return not (query.since and (parse_since(line.get("time")) or 0.0) < query.since)


def _activity_filter(q: ActivityQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if q.model:
        clauses.append("model = ?")
        params.append(q.model)
    if q.route:
        clauses.append("route = ?")
        params.append(q.route)
    if q.status == "ok":
        clauses.append(_OK)
    elif q.status == "error":
        clauses.append(f"NOT {_OK}")
    elif q.status:
        clauses.append("status = ?")
        params.append(int(q.status))
    if q.since is not None:
        clauses.append("time >= ?")
        params.append(q.since)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _log_filter(q: LogsQuery) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if q.level:
        clauses.append("level >= ?")
        params.append(_level(q.level))
    sources = q.sources()
    if sources:
        clauses.append(f"source IN ({', '.join('?' * len(sources))})")
        params.extend(sources)
    if q.q:
        clauses.append("instr(lower(message), ?) > 0")
        params.append(q.q.lower())
    if q.since is not None:
        clauses.append("time >= ?")
        params.append(q.since)
    return clauses, params


def _request_row(d: dict[str, Any]) -> tuple[Any, ...]:
    return (
        d["id"],
        parse_since(d["time"]),
        d["route"],
        d["model"],
        d.get("client"),
        int(bool(d.get("stream"))),
        d["promptTokens"],
        d["completionTokens"],
        d["cachedTokens"],
        d.get("ttft"),
        d["duration"],
        d.get("tokensPerSecond"),
        d.get("status"),
        d.get("errorCode"),
    )


def _request_item(r: tuple[Any, ...]) -> dict[str, Any]:
    """A stored row in the "request" event's shape, so a live event and a row look the same."""
    rid, t, route, model, client, stream, prompt, completion, cached, ttft, duration, tps, status, code = r
    return {
        "id": rid,
        "time": iso_time(t),
        "route": route,
        "model": model,
        "client": client,
        "stream": bool(stream),
        "promptTokens": prompt,
        "completionTokens": completion,
        "cachedTokens": cached,
        "ttft": ttft,
        "duration": duration,
        "tokensPerSecond": tps,
        "status": status,
        "errorCode": code,
    }


def _log_row(e: Event) -> tuple[Any, ...]:
    d = e.data
    return (
        e.time,
        _level(str(d.get("level", "info"))),
        d.get("source", ""),
        d.get("logger", ""),
        d.get("message", ""),
    )
