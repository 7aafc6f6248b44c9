"""The one table from exceptions to HTTP status and error envelope.

`/v1` answers in OpenAI's envelope so every OpenAI client understands it; `/api` answers in the
management spec's shape. Nothing ever answers with FastAPI's `{"detail": ...}`, a 422, or a
traceback; only real bugs are 500s (the openai client retries 5xx, so a bad request must not be one).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from claracore.errors import (
    ClaraCoreError,
    ConfigError,
    ConflictError,
    EngineClosedError,
    InsufficientMemoryError,
    InvalidRequestError,
    ModelLoadError,
    ModelNotFoundError,
    ModelUnavailableError,
    NotFoundError,
    PayloadTooLargeError,
    RemoteAccessError,
    RemoteError,
)
from claracore.protocol.validation import first_error
from claracore.server.telemetry import note_error

log = logging.getLogger("claracore.server")


class Unauthorized(Exception):
    """The API key is missing or wrong."""


# Most specific first: the first matching class decides.
STATUS: list[tuple[type[BaseException], int]] = [
    (Unauthorized, 401),
    (PayloadTooLargeError, 413),
    (InvalidRequestError, 400),
    (ConfigError, 400),
    (ModelNotFoundError, 404),
    (NotFoundError, 404),
    (ConflictError, 409),
    (RemoteAccessError, 403),  # the hub refused the user's token (not our own key: that is a 401)
    (RemoteError, 502),
    (InsufficientMemoryError, 503),
    (ModelLoadError, 503),
    (ModelUnavailableError, 503),
    (EngineClosedError, 503),
    (ClaraCoreError, 500),
]

OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    500: "server_error",
    502: "server_error",
    503: "service_unavailable_error",
}


def envelope(
    request: Request,
    status: int,
    message: str,
    code: str,
    param: str | None = None,
    details: dict[str, Any] | None = None,
) -> JSONResponse:
    """The error body for this route family, with Retry-After where waiting helps."""
    note_error(code)
    if request.url.path.startswith("/api"):
        # the field goes where the web UI looks for it (details.field), as the OpenAI shape's param
        named = {"field": param} if param else {}
        body: dict[str, Any] = {"error": message, "code": code, "details": {**named, **(details or {})}}
    else:
        err: dict[str, Any] = {
            "message": message,
            "type": OPENAI_TYPES.get(status, "invalid_request_error"),
            "param": param,
            "code": code,
        }
        if details:
            err["details"] = details
        body = {"error": err}
    headers = {"Retry-After": "1"} if code in ("MODEL_UNAVAILABLE", "SERVER_RESTARTING") else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(body, status_code=status, headers=headers)


def status_of(exc: BaseException) -> int:
    return next((status for cls, status in STATUS if isinstance(exc, cls)), 500)


def error_body(exc: BaseException) -> dict[str, Any]:
    """The OpenAI error object for an exception raised mid-stream (sent as an SSE event)."""
    if isinstance(exc, ClaraCoreError):
        return {
            "error": {
                "message": exc.message,
                "type": OPENAI_TYPES.get(status_of(exc), "server_error"),
                "param": getattr(exc, "param", None),
                "code": exc.code,
            }
        }
    return {
        "error": {
            "message": "internal error",
            "type": "server_error",
            "param": None,
            "code": "INTERNAL_ERROR",
        }
    }


async def _claracore_error(request: Request, exc: Exception) -> JSONResponse:
    status = status_of(exc)
    if isinstance(exc, Unauthorized):
        return envelope(request, 401, str(exc), "UNAUTHORIZED")
    assert isinstance(exc, ClaraCoreError)
    if status == 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return envelope(request, status, exc.message, exc.code, getattr(exc, "param", None), exc.details)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    kind = errors[0].get("type") if errors else ""
    if kind == "json_invalid":
        return envelope(request, 400, "the request body is not valid JSON", "INVALID_JSON")
    field, msg = first_error(errors)
    if kind == "model_attributes_type" or not field:
        return envelope(request, 400, "the request body must be a JSON object", "INVALID_REQUEST")
    return envelope(request, 400, f"{field}: {msg}", "INVALID_REQUEST", field)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
    message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    return envelope(request, exc.status_code, message, code)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s: unexpected error", request.method, request.url.path)
    return envelope(request, 500, "internal error (see the server log)", "INTERNAL_ERROR")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ClaraCoreError, _claracore_error)
    app.add_exception_handler(Unauthorized, _claracore_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
