"""The SSE framer: an error mid-stream becomes one error event, and a bug also leaves its traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from claracore.errors import ModelUnavailableError
from claracore.server.sse import sse_response


class Chunk(BaseModel):
    text: str


async def _failing(exc: Exception) -> AsyncIterator[BaseModel]:
    yield Chunk(text="first")
    raise exc


async def _events(chunks: AsyncIterator[BaseModel]) -> list[bytes]:
    response = sse_response(chunks, done_marker=True)
    return [part if isinstance(part, bytes) else part.encode() async for part in response.body_iterator]


async def test_an_unexpected_error_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="claracore.server"):
        events = await _events(_failing(RuntimeError("a bug")))
    assert events[0] == b'data: {"text":"first"}\n\n' and events[-1] == b"data: [DONE]\n\n"
    error = json.loads(events[1].removeprefix(b"data: "))["error"]
    assert error["code"] == "INTERNAL_ERROR" and "a bug" not in error["message"]  # no internals leak
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert failures[0].exc_info[1] is not None and str(failures[0].exc_info[1]) == "a bug"


async def test_a_known_error_is_one_line_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="claracore.server"):
        events = await _events(_failing(ModelUnavailableError("model 'm' was unloaded")))
    error = json.loads(events[1].removeprefix(b"data: "))["error"]
    assert error["code"] == "MODEL_UNAVAILABLE" and error["message"] == "model 'm' was unloaded"
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert caplog.records[0].exc_info is None and "MODEL_UNAVAILABLE" in caplog.records[0].getMessage()
