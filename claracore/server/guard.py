"""The gate every HTTP request passes before any route sees it (a pure ASGI middleware).

In this order, so that nothing is read or parsed for a caller who may not be served:

1. **The key.** Every path except the public ones (`PUBLIC`: the health check, the root's
   redirect and the UI's static files) needs the API key when one is required (`Auth.allows`
   decides, the one place that does). Unknown paths too, and `/openapi.json`. Checked on the headers alone, so
   a 50 MB upload without the key is refused before a byte of it is read.
2. **The origin.** A state-changing request (POST, PUT, PATCH, DELETE) that a browser sends
   from another site carries its `Origin`: it must be the server's own or one the config's
   `cors` allows, or the answer is 403. Clients that are not browsers send no Origin.
3. **The media type.** A state-changing request with a body must declare one of the types the
   route documents in the OpenAPI document (JSON everywhere, YAML for `POST /api/config`,
   multipart for uploads), or the answer is 415. With (1)-(3), a web page the user visits
   cannot edit the config or restart the server, even with no key set.
4. **The size.** A body over the limit (`max_body_mb`; `max_upload_mb` plus 1 MB of form
   overhead for uploads) is a 413, from its Content-Length before reading when it has one.
5. **The text.** A JSON body must parse, nest at most `inputs.MAX_DEPTH` deep and hold no
   lone surrogate (`inputs.find_problem`), or the answer is a 400 naming the field; the
   routes then read the very bytes that were checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claracore.inputs import find_problem
from claracore.server.errors import envelope
from claracore.server.state import AppState
from claracore.units import MIB

#: Paths anyone may reach without the key: these exactly (the root only redirects to the UI),
#: and everything under PUBLIC_PREFIXES (the UI's static files; the UI asks for the key).
PUBLIC = frozenset({"/", "/health", "/ui"})
PUBLIC_PREFIXES = ("/ui/",)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON = "application/json"
UPLOAD_OVERHEAD = 1 * MIB  # multipart framing and the form fields beside the file
DRAIN_LIMIT = 1 * MIB  # a refused body up to this size is read (and dropped) before answering


def is_public(path: str) -> bool:
    return path in PUBLIC or path.startswith(PUBLIC_PREFIXES)


def media_type(content_type: str) -> str:
    """`application/json; charset=utf-8` -> `application/json`."""
    return content_type.split(";", 1)[0].strip().lower()


class _Refused(Exception):
    """A refusal; `body` says how much of the request body was read: "none", "part" or "all"."""

    def __init__(
        self, status: int, message: str, code: str, param: str | None = None, body: str = "none"
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.body = status, message, code, param, body


class BodyTypes:
    """Which media types each operation's body may have, read from the app's OpenAPI document."""

    def __init__(self, openapi: Callable[[], dict[str, Any]]) -> None:
        self._openapi = openapi
        self._table: list[tuple[re.Pattern[str], str, frozenset[str]]] | None = None

    def _build(self) -> list[tuple[re.Pattern[str], str, frozenset[str]]]:
        rows = []
        for template, operations in self._openapi().get("paths", {}).items():
            pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", ".+", re.escape(template)) + "$")
            for method, op in operations.items():
                content = (op.get("requestBody") or {}).get("content") or {JSON: {}}
                rows.append((pattern, method.upper(), frozenset(media_type(t) for t in content)))
        # The most literal template first: /api/config/folders before /api/config/model/{id}.
        rows.sort(key=lambda row: -len(re.sub(r"\.\+", "", row[0].pattern)))
        return rows

    def of(self, method: str, path: str) -> frozenset[str]:
        if self._table is None:
            self._table = self._build()
        for pattern, op_method, types in self._table:
            if op_method == method and pattern.match(path):
                return types
        return frozenset({JSON})  # no such route: the router answers 404 or 405 after this


def _accepts(types: frozenset[str], given: str) -> bool:
    return given in types or (given.endswith("+json") and JSON in types)


class RequestGuard:
    """Key, origin, media type, size and text checks before the app (see the module docstring)."""

    def __init__(self, app: ASGIApp, state: AppState, openapi: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.state = state
        self.body_types = BodyTypes(openapi)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            self._check_headers(request)
            if request.method in UNSAFE:
                body = await self._read_body(request, receive)
                if body is None:
                    return  # the client left before sending its body
                receive = _replay(body, receive)
        except _Refused as refused:
            response = envelope(request, refused.status, refused.message, refused.code, refused.param)
            if refused.body == "part" or (refused.body == "none" and not await _drain(request, receive)):
                response.headers["Connection"] = "close"  # the rest of a large body is never read
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check_headers(self, request: Request) -> None:
        if not is_public(request.url.path) and not self.state.auth.allows(request.headers):
            raise _Refused(
                401,
                "a valid API key is required (Authorization: Bearer KEY, or X-API-Key: KEY)",
                "UNAUTHORIZED",
            )
        if request.method not in UNSAFE:
            return
        origin = request.headers.get("origin")
        if origin is not None and not self._origin_allowed(origin, request):
            raise _Refused(
                403,
                f"cross-site request refused: Origin {origin} is neither this server nor an allowed "
                "CORS origin (config: cors)",
                "FORBIDDEN_ORIGIN",
            )

    def _origin_allowed(self, origin: str, request: Request) -> bool:
        cors = self.state.engine.config.cors
        if cors is True:
            return True
        if origin.rstrip("/") in {o.rstrip("/") for o in (cors or [])}:
            return True
        parts = urlsplit(origin)
        host = request.headers.get("host", "")
        return bool(parts.scheme and parts.netloc) and (parts.scheme, parts.netloc.lower()) == (
            request.url.scheme,
            host.lower(),
        )

    def _limit(self, types: frozenset[str]) -> int:
        config = self.state.engine.config
        if "multipart/form-data" in types:
            return int(config.max_upload_mb * MIB) + UPLOAD_OVERHEAD
        return int(config.max_body_mb * MIB)

    async def _read_body(self, request: Request, receive: Receive) -> bytes | None:
        """The whole body, checked; None when the client disconnected before sending it."""
        types = self.body_types.of(request.method, request.url.path)
        limit = self._limit(types)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large(limit, types)
        given = media_type(request.headers.get("content-type", ""))
        if given and not _accepts(types, given):
            raise _Refused(
                415,
                f"Content-Type {given} is not accepted here; send {' or '.join(sorted(types))}",
                "UNSUPPORTED_MEDIA_TYPE",
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large(limit, types, body="part")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            if body.strip() and not given:
                needed = " or ".join(sorted(types))
                raise _Refused(
                    415, f"a request body needs a Content-Type: {needed}", "UNSUPPORTED_MEDIA_TYPE"
                )
            if body.strip() and (given == JSON or given.endswith("+json")):
                _check_json(body)
        except _Refused as refused:
            refused.body = "all"
            raise
        return body

    @staticmethod
    def _too_large(limit: int, types: frozenset[str], body: str = "none") -> _Refused:
        setting = "max_upload_mb" if "multipart/form-data" in types else "max_body_mb"
        message = f"the request body is larger than {limit / MIB:g} MB (config: {setting})"
        return _Refused(413, message, "PAYLOAD_TOO_LARGE", body=body)


def _check_json(body: bytes) -> None:
    try:
        data = json.loads(body)
    except RecursionError:
        raise _Refused(400, "the request body is nested too deeply", "INVALID_JSON") from None
    except ValueError:  # UnicodeDecodeError included
        raise _Refused(400, "the request body is not valid JSON", "INVALID_JSON") from None
    found = find_problem(data)
    if found is not None:
        field, problem = found
        raise _Refused(400, f"{field or 'the request body'}: {problem}", "INVALID_REQUEST", field or None)


async def _drain(request: Request, receive: Receive) -> bool:
    """Read and drop a small unread body, so the client gets the refusal rather than a reset
    connection (closing a socket with unread data resets it). False: too large, left unread."""
    if request.method not in UNSAFE:
        return True
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > DRAIN_LIMIT:
        return False
    size = 0
    while size <= DRAIN_LIMIT:
        message = await receive()
        size += len(message.get("body", b""))
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return True
    return False


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then waits on the client as before."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
