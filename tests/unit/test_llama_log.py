"""llama.cpp's log in `logging`: levels per line, and per-thread state, since loads run concurrently."""

from __future__ import annotations

import logging
import threading

import pytest

from claracore.runtime.native import forward_log, warnings_demoted

WARN, ERROR, CONT = 3, 4, 5  # ggml_log_level


def _in_thread(level: int, text: str) -> None:
    t = threading.Thread(target=forward_log, args=(level, text))
    t.start()
    t.join()


def test_demoting_warnings_while_one_thread_creates_a_context_leaves_other_threads_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="claracore.llama"):
        with warnings_demoted():
            forward_log(WARN, "overflow that cannot happen\n")
            _in_thread(WARN, "another load's real warning\n")  # a concurrent load on another thread
        forward_log(WARN, "a later warning\n")
    levels = {r.getMessage(): r.levelno for r in caplog.records}
    assert levels == {
        "overflow that cannot happen": logging.INFO,
        "another load's real warning": logging.WARNING,
        "a later warning": logging.WARNING,
    }


def test_a_continuation_line_takes_the_level_of_its_own_threads_last_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="claracore.llama"):
        forward_log(WARN, "first half")
        _in_thread(ERROR, "another thread's error\n")
        forward_log(CONT, " second half\n")
    assert [(r.getMessage(), r.levelno) for r in caplog.records] == [
        ("first half", logging.WARNING),
        ("another thread's error", logging.ERROR),
        (" second half", logging.WARNING),
    ]
