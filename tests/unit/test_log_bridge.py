"""Logging onto the bus: ClaraCore's lines and llama.cpp's (through its log callback), each with its
source and level; the handler keeps a tail for snapshots and never recurses into itself."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from claracore.events import EventBus
from claracore.monitor.logs import BusLogHandler, source_of
from claracore.runtime.native import forward_log

WARN, ERROR = 3, 4  # ggml_log_level


@pytest.fixture
def bus() -> Iterator[EventBus]:
    bus = EventBus()
    handler = BusLogHandler(bus, keep=3)
    handler.install()
    try:
        yield bus
    finally:
        handler.uninstall()


def test_llama_cpps_lines_arrive_with_their_source_and_level(bus: EventBus) -> None:
    sub = bus.subscribe(["log"])
    forward_log(ERROR, "llama_model_load: error loading model\n")  # what the C callback hands over
    logging.getLogger("claracore.pool.pool").warning("loading %s failed", "m")
    logging.getLogger("somelib.server").error("a library's problem")
    got = [e.data for e in iter(sub.get_nowait, None)]
    assert [(d["source"], d["level"], d["logger"], d["message"]) for d in got] == [
        ("llama.cpp", "error", "claracore.llama", "llama_model_load: error loading model"),
        ("claracore", "warning", "claracore.pool.pool", "loading m failed"),
        ("somelib", "error", "somelib.server", "a library's problem"),
    ]
    assert all(d["time"].endswith("Z") for d in got)


def test_the_loggers_levels_decide_what_reaches_the_bus(bus: EventBus) -> None:
    sub = bus.subscribe(["log"])
    logging.getLogger("claracore.quiet").debug("not at the default level")
    forward_log(2, "llama.cpp's INFO chatter is DEBUG here\n")
    assert sub.get_nowait() is None


def test_a_traceback_travels_with_its_line_and_the_tail_is_kept(bus: EventBus) -> None:
    log = logging.getLogger("claracore.test")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed")
    for i in range(4):
        log.warning("line %d", i)
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, BusLogHandler))
    assert [line["message"] for line in handler.recent()] == ["line 1", "line 2", "line 3"]
    assert [line["message"] for line in handler.recent(1)] == ["line 3"]
    first = bus.since(0)[0].data
    assert first["message"].startswith("it failed\nTraceback") and "ValueError: boom" in first["message"]


def test_a_line_logged_while_publishing_a_line_is_not_published_again(bus: EventBus) -> None:
    def chatty(event: object) -> None:
        logging.getLogger("claracore.observer").warning("seen %s", event)

    bus.observe(chatty)
    logging.getLogger("claracore.test").warning("one line")
    assert [e.data["message"] for e in bus.since(0)] == ["one line"]


def test_sources_by_logger_family() -> None:
    assert source_of("claracore.llama") == "llama.cpp"
    assert source_of("claracore.llamas") == "claracore"
    assert source_of("claracore") == "claracore"
    assert source_of("httpx") == "httpx"
