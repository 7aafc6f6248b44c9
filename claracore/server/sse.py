"""The one place that frames Server-Sent Events: `data: {json}` per chunk, then `data: [DONE]`.

An error after the stream has started cannot change the status code any more, so it is sent as
one `data: {"error": ...}` event followed by `[DONE]`, which OpenAI's clients raise as an error.
A ClaraCore error there is expected (a model unloaded mid-stream, a hard restart: see
`server.drain`, whose signal is checked after each chunk) and logged in one line; any
other exception is a bug, and its traceback is logged before the client sees "internal error".
No keep-alive comments: some clients choke on them, and tokens flow continuously anyway.

Framing is done here rather than by a library: it is three lines, and on the per-token path
every layer shows (sse-starlette's task group and memory stream cost about 3 % of single-stream
tokens/s on 2 cores). A client that disconnects makes Starlette cancel this generator, whose
`finally` closes the chunk iterator and so cancels the generation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from claracore.errors import ClaraCoreError, ServerRestartingError
from claracore.server.drain import closing
from claracore.server.errors import error_body

log = logging.getLogger("claracore.server")

_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_response(
    chunks: AsyncIterator[BaseModel],
    on_end: Callable[[BaseModel | None, str], None] | None = None,
    *,
    done_marker: bool = True,
) -> StreamingResponse:
    """Stream `chunks`; `on_end(last_chunk, outcome)` runs once however the stream ends.

    `done_marker` ends with `data: [DONE]` as chat and completions do; OpenAI's typed event
    streams (speech) end with their own last event instead.
    """

    async def events() -> AsyncIterator[bytes]:
        last: BaseModel | None = None
        outcome = "disconnected"
        stop = closing()
        try:
            async for chunk in chunks:
                last = chunk
                yield b"data: " + chunk.__pydantic_serializer__.to_json(chunk) + b"\n\n"
                if stop is not None and stop.is_set():
                    raise ServerRestartingError("the server is restarting; the stream was ended early")
            outcome = "ok"
        except Exception as exc:
            outcome = f"error: {exc}"
            if isinstance(exc, ClaraCoreError):
                log.warning("stream ended early: %s (%s)", exc.message, exc.code)
            else:
                log.exception("stream failed: unexpected error")
            yield b"data: " + json.dumps(error_body(exc)).encode() + b"\n\n"
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            if on_end is not None:
                on_end(last, outcome)
        if done_marker:
            yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers=_HEADERS)
