"""Per HTTP request: Prometheus's per-route figures, and for inference requests the activity record.

A plain ASGI middleware rather than Starlette's `BaseHTTPMiddleware`, whose task and memory
stream per request would sit on every streamed token. Here a token costs one extra function call
(the `send` wrapper), and the record is published when the last body chunk goes out, before it is
sent, so a client that has its answer finds the request in `GET /api/activity` already.

Inference requests are the POSTs under `/v1/`: the middleware opens their record (route, client
address) and binds it to the request's context, where the engine fills in the model, tokens and
time to first token; the error handlers add the error code of a request refused before it reached
the engine (an invalid body, a wrong key).
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claracore.monitor import Monitor, RequestRecord
from claracore.monitor.records import bound, current

UNMATCHED = "<unmatched>"  # the route label of a path no route serves (keeps label values bounded)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


class RequestTelemetry:
    """Counts and times every HTTP request; publishes the record of every inference request."""

    def __init__(self, app: ASGIApp, monitor: Monitor) -> None:
        self.app = app
        self.monitor = monitor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        inference = method == "POST" and scope["path"].startswith("/v1/")
        record = (
            RequestRecord(route=f"{method} {scope['path']}", client=_client(scope)) if inference else None
        )
        started = time.perf_counter()
        status = 500  # if the app fails before it answers
        done = False

        def finish() -> None:
            nonlocal done
            if done:
                return
            done = True
            route = _route(scope)
            if record is not None:
                record.route, record.status = f"{method} {route}", status
                if status >= 500 and record.error_code is None:
                    record.error_code = "INTERNAL_ERROR"
                self.monitor.publish(record)
            self.monitor.http(method, route, status, time.perf_counter() - started)

        async def send_through(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start":
                status = int(message["status"])
            elif kind == "http.response.body" and not message.get("more_body", False):
                finish()
            await send(message)

        with bound(record):
            try:
                await self.app(scope, receive, send_through)
            finally:
                finish()  # a client that went away before the last chunk


def note_error(code: str) -> None:
    """Called by the error handlers: the code of the answer, for the request's record."""
    record = current()
    if record is not None and record.error_code is None:
        record.error_code = code
