"""The one place that frames Server-Sent Events: `data: {json}` per chunk, then `data: [DONE]`.

An error after the stream has started cannot change the status code any more, so it is sent as
one `data: {"error": ...}` event followed by `[DONE]`, which OpenAI's clients raise as an error.
No keep-alive comments: some clients choke on them, and tokens flow continuously anyway.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable

from pydantic import BaseModel
from sse_starlette import EventSourceResponse

from claracore.server.errors import error_body

log = logging.getLogger("claracore.server")

_NO_PING = 24 * 3600


def sse_response(
    chunks: AsyncIterator[BaseModel], on_end: Callable[[BaseModel | None, str], None]
) -> EventSourceResponse:
    """Stream `chunks`; `on_end(last_chunk, outcome)` runs once however the stream ends."""

    async def events() -> AsyncIterator[dict[str, str]]:
        last: BaseModel | None = None
        outcome = "disconnected"
        try:
            async for chunk in chunks:
                last = chunk
                yield {"data": chunk.model_dump_json()}
            outcome = "ok"
        except Exception as exc:
            outcome = f"error: {exc}"
            yield {"data": json.dumps(error_body(exc))}
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            on_end(last, outcome)
        yield {"data": "[DONE]"}

    return EventSourceResponse(events(), ping=_NO_PING, sep="\n")
